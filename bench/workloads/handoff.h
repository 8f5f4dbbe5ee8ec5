// bench/workloads/handoff.h: a bounded lock-free queue of pointers with
// sleeping waits, for the producer/consumer workloads (xmalloc_test,
// xmalloc_pairs) and the clock of fixed-duration runs.
//
// Contract:
//   * Handoff<T, N> carries T* from any number of producers to any number of
//     consumers, at most N (a power of two) at a time. The queue itself is
//     Vyukov's bounded MPMC ring: one CAS per push or pop on a shared index
//     and a per-slot sequence number, no lock and no ABA (slots are reused
//     by sequence, never by address). A full push or an empty pop spins a
//     little, then sleeps on a counter the other side bumps (C++20
//     atomic wait/notify: a futex on Linux), so oversubscribed runs do not
//     burn the CPUs the other threads need.
//   * Push returns false and Pop nullptr only once Stop() was called (and,
//     for Pop, the queue is empty or the caller gave up because of the
//     stop); Stop wakes every sleeper. After the threads are joined,
//     Drain() pops whatever is left.
//   * RunFor: a fixed-duration run's clock (see there).
// Thread-safety: Push/Pop/Stop are safe from any threads; Drain only once
// the users are joined.
#ifndef STRATA_BENCH_WORKLOADS_HANDOFF_H_
#define STRATA_BENCH_WORKLOADS_HANDOFF_H_

#include <atomic>
#include <chrono>
#include <cstddef>
#include <cstdint>
#include <thread>

namespace strata_bench {

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  __builtin_ia32_pause();
#else
  asm volatile("" ::: "memory");
#endif
}

template <typename T, size_t N>
class Handoff {
  static_assert(N >= 2 && (N & (N - 1)) == 0, "N must be a power of two");

 public:
  Handoff() {
    for (size_t i = 0; i < N; ++i) {
      slots_[i].seq.store(i, std::memory_order_relaxed);
    }
  }
  Handoff(const Handoff&) = delete;
  Handoff& operator=(const Handoff&) = delete;

  // Blocks while the queue is full; false only after Stop().
  bool Push(T* item) {
    for (int spins = 0;; ++spins) {
      const uint32_t seen = popped_.load(std::memory_order_acquire);
      if (TryPush(item)) {
        pushed_.fetch_add(1, std::memory_order_release);
        pushed_.notify_all();
        return true;
      }
      if (stop_.load(std::memory_order_acquire)) return false;
      if (spins < kSpins) {
        CpuRelax();
      } else {
        popped_.wait(seen, std::memory_order_acquire);
      }
    }
  }

  // Blocks while the queue is empty; nullptr only after Stop().
  T* Pop() {
    for (int spins = 0;; ++spins) {
      const uint32_t seen = pushed_.load(std::memory_order_acquire);
      if (T* item = TryPop()) {
        popped_.fetch_add(1, std::memory_order_release);
        popped_.notify_all();
        return item;
      }
      if (stop_.load(std::memory_order_acquire)) return nullptr;
      if (spins < kSpins) {
        CpuRelax();
      } else {
        pushed_.wait(seen, std::memory_order_acquire);
      }
    }
  }

  bool stopped() const { return stop_.load(std::memory_order_acquire); }

  // Makes every Push and Pop return (Pop still returns queued items it
  // finds) and wakes the sleepers.
  void Stop() {
    stop_.store(true, std::memory_order_seq_cst);
    pushed_.fetch_add(1, std::memory_order_seq_cst);
    popped_.fetch_add(1, std::memory_order_seq_cst);
    pushed_.notify_all();
    popped_.notify_all();
  }

  // What is left once every user is joined.
  T* Drain() { return TryPop(); }

 private:
  static constexpr int kSpins = 200;

  bool TryPush(T* item) {
    size_t pos = head_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& s = slots_[pos & (N - 1)];
      const size_t seq = s.seq.load(std::memory_order_acquire);
      const intptr_t diff =
          static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos);
      if (diff == 0) {
        if (head_.compare_exchange_weak(pos, pos + 1,
                                        std::memory_order_relaxed)) {
          s.item = item;
          s.seq.store(pos + 1, std::memory_order_release);
          return true;
        }
      } else if (diff < 0) {
        return false;  // full: the slot still holds an item N pushes back
      } else {
        pos = head_.load(std::memory_order_relaxed);
      }
    }
  }

  T* TryPop() {
    size_t pos = tail_.load(std::memory_order_relaxed);
    for (;;) {
      Slot& s = slots_[pos & (N - 1)];
      const size_t seq = s.seq.load(std::memory_order_acquire);
      const intptr_t diff =
          static_cast<intptr_t>(seq) - static_cast<intptr_t>(pos + 1);
      if (diff == 0) {
        if (tail_.compare_exchange_weak(pos, pos + 1,
                                        std::memory_order_relaxed)) {
          T* item = s.item;
          s.seq.store(pos + N, std::memory_order_release);
          return item;
        }
      } else if (diff < 0) {
        return nullptr;  // empty
      } else {
        pos = tail_.load(std::memory_order_relaxed);
      }
    }
  }

  struct alignas(64) Slot {
    std::atomic<size_t> seq;
    T* item = nullptr;
  };
  Slot slots_[N];
  alignas(64) std::atomic<size_t> head_{0};
  alignas(64) std::atomic<size_t> tail_{0};
  alignas(64) std::atomic<uint32_t> pushed_{0};
  alignas(64) std::atomic<uint32_t> popped_{0};
  alignas(64) std::atomic<bool> stop_{false};
};

// The clock of a fixed-duration run: start() releases the workers waiting
// in WaitForStart(), sleeps `seconds`, and calls stop(); the workers then
// finish the item in hand and return. The caller joins the threads whose
// work it counts and reads Elapsed(): the time from the release to that
// point, which therefore covers every counted operation.
class RunClock {
 public:
  void WaitForStart() { go_.wait(false, std::memory_order_acquire); }

  template <typename StopFn>
  void Run(double seconds, StopFn stop) {
    start_ = std::chrono::steady_clock::now();
    go_.store(true, std::memory_order_release);
    go_.notify_all();
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop();
  }

  double Elapsed() const {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                         start_)
        .count();
  }

 private:
  std::atomic<bool> go_{false};
  std::chrono::steady_clock::time_point start_;
};

}  // namespace strata_bench

#endif  // STRATA_BENCH_WORKLOADS_HANDOFF_H_
