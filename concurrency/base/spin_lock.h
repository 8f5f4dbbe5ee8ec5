// concurrency/base/spin_lock.h: a test-and-test-and-set spin lock with
// bounded exponential backoff, then yielding.
//
// Contract: for short, rare critical sections on slow paths (refills from
// the OS, one-time init). constinit-constructible and trivially
// destructible, so it can guard globals used before main() and after exit.
// Never allocates. Thread-safe. Not recursive. Safe to re-initialise in a
// fork child with ResetAfterFork() (the child has one thread).
#ifndef STRATA_CONCURRENCY_BASE_SPIN_LOCK_H_
#define STRATA_CONCURRENCY_BASE_SPIN_LOCK_H_

#include <sched.h>

#include <atomic>

#include "concurrency/base/macros.h"

namespace strata {

class STRATA_CAPABILITY("mutex") SpinLock {
 public:
  constexpr SpinLock() = default;
  SpinLock(const SpinLock&) = delete;
  SpinLock& operator=(const SpinLock&) = delete;

  void Lock() STRATA_ACQUIRE() {
    // Fast path: one exchange. Pairs with the release store in Unlock().
    if (STRATA_PREDICT_TRUE(!locked_.exchange(true, std::memory_order_acquire))) return;
    LockSlow();
  }
  bool TryLock() STRATA_TRY_ACQUIRE(true) {
    // Relaxed test first (no cache-line steal when held); the acquire
    // exchange pairs with the release store in Unlock().
    return !locked_.load(std::memory_order_relaxed) &&
           !locked_.exchange(true, std::memory_order_acquire);
  }
  void Unlock() STRATA_RELEASE() {
    // Pairs with the acquire exchange in Lock()/TryLock().
    locked_.store(false, std::memory_order_release);
  }
  bool IsLocked() const { return locked_.load(std::memory_order_relaxed); }

  // Only in a single-threaded fork child: forget an owner that no longer
  // exists.
  void ResetAfterFork() { locked_.store(false, std::memory_order_relaxed); }

 private:
  STRATA_NOINLINE void LockSlow() {
    // Spins with a growing number of pauses (at most kMaxSpins), then yields
    // the CPU: on 2 cores with 8 threads the owner is often preempted, and
    // spinning against a preempted owner only burns its time slice.
    static constexpr int kMaxSpins = 64;
    int spins = 1;
    for (;;) {
      // Relaxed: only a hint to stop spinning; the exchange decides.
      while (locked_.load(std::memory_order_relaxed)) {
        if (spins <= kMaxSpins) {
          for (int i = 0; i < spins; ++i) __builtin_ia32_pause();
          spins <<= 1;
        } else {
          sched_yield();
        }
      }
      // Acquire: pairs with the release store in Unlock().
      if (!locked_.exchange(true, std::memory_order_acquire)) return;
    }
  }

  std::atomic<bool> locked_{false};
};

// RAII holder.
class STRATA_SCOPED_CAPABILITY SpinLockHolder {
 public:
  explicit SpinLockHolder(SpinLock* lock) STRATA_ACQUIRE(lock) : lock_(lock) { lock_->Lock(); }
  ~SpinLockHolder() STRATA_RELEASE() { lock_->Unlock(); }
  SpinLockHolder(const SpinLockHolder&) = delete;
  SpinLockHolder& operator=(const SpinLockHolder&) = delete;

 private:
  SpinLock* lock_;
};

}  // namespace strata

#endif  // STRATA_CONCURRENCY_BASE_SPIN_LOCK_H_
