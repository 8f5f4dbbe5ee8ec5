// alloc/internal/engine_lock.h: the engine's spin lock, owner-aware so that
// fork() is safe even from a signal handler.
//
// Why not concurrency/base's SpinLock: the engine registers pthread_atfork
// handlers that take every engine lock before fork() and release them after
// (so the child never inherits a lock held by a thread that does not exist
// there). If a signal handler calls fork() on a thread that was interrupted
// *inside* an engine critical section, a plain prepare handler would wait
// for a lock its own thread holds: a self-deadlock. EngineLock records its
// owner (a per-thread token), and the fork protocol is:
//   ForkTryAcquire  held by this thread -> skip it (the interrupted frame
//                   owns it and releases it when the handler returns);
//                   otherwise try to take it for a bounded time.
//   ForkAbandon     give back what ForkTryAcquire took (back-off).
//   ForkParent      Unlock() what was taken.
//   ForkChild       forget what was taken (only this thread exists); a lock
//                   the interrupted frame holds stays held and is released
//                   by that frame, in the child as in the parent.
// The prepare handler (thread_cache.cc) takes all locks in the lock order
// or none: when one stays busy it abandons those it took, backs off and
// retries. Why: glibc runs prepare handlers of concurrent forks
// concurrently, and a fork from a handler that interrupted the holder of
// lock B may need lock A that another forking thread took while it waits
// for B; backing off breaks that cycle. Lock order: registry | central pool
// (one at a time) | tracked central pool -> page heap.
// What no protocol can save: two threads, *each* interrupted inside an
// engine critical section, forking from handlers at the same time, each
// needing the lock the other's interrupted frame holds (glibc's own malloc
// deadlocks there too; POSIX 2024 no longer lists fork() as
// async-signal-safe and offers _Fork(), which runs no handlers). What the
// child may not do is re-enter the engine from the handler while the
// interrupted frame is mid-operation (malloc from a signal handler): it may
// call async-signal-safe functions, or return from the handler and then
// allocate normally.
//
// Owner token: the address of a constinit initial-exec thread_local (never
// zero, unique among live threads, and the same in a fork child for the
// forking thread). Taking it costs one TLS address computation.
//
// Thread-safety: as a spin lock. constinit, trivially destructible.
#ifndef STRATA_ALLOC_INTERNAL_ENGINE_LOCK_H_
#define STRATA_ALLOC_INTERNAL_ENGINE_LOCK_H_

#include <sched.h>

#include <atomic>
#include <cstdint>

#include "concurrency/base/macros.h"

namespace strata::internal {

extern constinit thread_local char tls_lock_token STRATA_INITIAL_EXEC;

STRATA_ALWAYS_INLINE std::uintptr_t LockToken() { return reinterpret_cast<std::uintptr_t>(&tls_lock_token); }

class STRATA_CAPABILITY("mutex") EngineLock {
 public:
  constexpr EngineLock() = default;
  EngineLock(const EngineLock&) = delete;
  EngineLock& operator=(const EngineLock&) = delete;

  void Lock() STRATA_ACQUIRE() {
    std::uintptr_t expected = 0;
    // Acquire pairs with the release store in Unlock().
    if (STRATA_PREDICT_TRUE(owner_.compare_exchange_strong(expected, LockToken(), std::memory_order_acquire,
                                                           std::memory_order_relaxed))) {
      return;
    }
    LockSlow();
  }
  void Unlock() STRATA_RELEASE() {
    // Pairs with the acquire CAS in Lock().
    owner_.store(0, std::memory_order_release);
  }
  bool HeldByCurrentThread() const { return owner_.load(std::memory_order_relaxed) == LockToken(); }
  bool IsLocked() const { return owner_.load(std::memory_order_relaxed) != 0; }

  // The fork protocol (see the header comment), on the forking thread.
  enum class ForkTake { kTaken, kSkipped, kBusy };
  ForkTake ForkTryAcquire(int attempts) {
    if (HeldByCurrentThread()) {
      fork_skipped_ = true;
      return ForkTake::kSkipped;
    }
    for (int i = 0; i < attempts; ++i) {
      std::uintptr_t expected = 0;
      if (owner_.load(std::memory_order_relaxed) == 0 &&
          owner_.compare_exchange_strong(expected, LockToken(), std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
        fork_skipped_ = false;
        return ForkTake::kTaken;
      }
      if (i < 64) {
        __builtin_ia32_pause();
      } else {
        sched_yield();
      }
    }
    return ForkTake::kBusy;
  }
  void ForkAbandon() STRATA_RELEASE() {
    if (!fork_skipped_) Unlock();
  }
  void ForkParent() STRATA_RELEASE() {
    if (!fork_skipped_) Unlock();
  }
  void ForkChild() STRATA_RELEASE() {
    if (!fork_skipped_) owner_.store(0, std::memory_order_relaxed);
  }

 private:
  STRATA_NOINLINE void LockSlow() {
    // Bounded exponential pause, then yield (2 cores, often more threads:
    // spinning against a preempted owner only burns its time slice).
    static constexpr int kMaxSpins = 64;
    int spins = 1;
    for (;;) {
      while (owner_.load(std::memory_order_relaxed) != 0) {
        if (spins <= kMaxSpins) {
          for (int i = 0; i < spins; ++i) __builtin_ia32_pause();
          spins <<= 1;
        } else {
          sched_yield();
        }
      }
      std::uintptr_t expected = 0;
      if (owner_.compare_exchange_weak(expected, LockToken(), std::memory_order_acquire,
                                       std::memory_order_relaxed)) {
        return;
      }
    }
  }

  std::atomic<std::uintptr_t> owner_{0};
  bool fork_skipped_ = false;  // written and read by the forking thread only
};

class STRATA_SCOPED_CAPABILITY EngineLockHolder {
 public:
  explicit EngineLockHolder(EngineLock* lock) STRATA_ACQUIRE(lock) : lock_(lock) { lock_->Lock(); }
  ~EngineLockHolder() STRATA_RELEASE() { lock_->Unlock(); }
  EngineLockHolder(const EngineLockHolder&) = delete;
  EngineLockHolder& operator=(const EngineLockHolder&) = delete;

 private:
  EngineLock* lock_;
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_ENGINE_LOCK_H_
