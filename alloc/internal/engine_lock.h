// alloc/internal/engine_lock.h: the engine's spin lock, owner-aware so that
// fork() is safe even from a signal handler.
//
// Why not concurrency/base's SpinLock: the engine registers pthread_atfork
// handlers that take every engine lock before fork() and release them after
// (so the child never inherits a lock held by a thread that does not exist
// there). If a signal handler calls fork() on a thread that was interrupted
// *inside* an engine critical section, a plain prepare handler would wait
// for a lock its own thread holds: a self-deadlock. EngineLock records its
// owner (a per-thread token), and the engine's fork handlers
// (thread_cache.cc) use it:
//   prepare  a lock held by this thread is skipped (the interrupted frame
//            owns it and releases it when the handler returns); the others
//            are taken with TryLockFor, all or none (below);
//   parent   Unlock() what the prepare took;
//   child    ResetAfterFork() what the prepare took (only this thread
//            exists); a lock the interrupted frame holds stays held and is
//            released by that frame, in the child as in the parent.
// Which locks the prepare took is recorded in a thread-local set, so the
// lock itself carries no fork state.
//
// Registration: the process init (EnsureProcessInit, thread_cache.cc)
// registers the handlers once, with the thread's signals blocked, before
// any thread may take an engine lock; a fork child whose parent was inside
// the init on another thread finishes it, registering the handlers only if
// the parent had not (glibc's list of them is inherited). In the one case
// the child cannot tell (the parent registered them while that fork ran
// its prepare handlers: in the child's list, not run for that fork) it
// registers them again, and they count their nesting on the forking
// thread: only the outermost prepare and the last parent/child handler act
// (fork_handler_set.h).
//
// LEAF LOCKS: no engine lock is ever taken while another is held (the
// registry, each central pool, each tracked pool, the page heap; the central
// pools drop their lock while the page heap hands them a span). So a thread
// that holds an engine lock never waits for another one: it always
// finishes its critical section, unless it is itself stuck in a signal
// handler. (With nesting -- a central pool lock held while waiting for the
// page heap lock -- a handler that interrupted the page heap's holder could
// never get that central pool's lock: a deadlock seen in
// tests/hardening/fork_test.)
//
// The prepare handler (thread_cache.cc) takes all locks in order, or none:
// when one stays busy it abandons those it took, backs off and retries.
// Why: glibc runs the prepare handlers of concurrent forks concurrently,
// and a plain fork that took lock B while waiting for lock A would wait
// forever if A's holder is a handler-fork that needs B. A thread that holds
// an engine lock (a handler-fork) tries longer and backs off less, so it
// wins.
// What no protocol can save: two threads, *each* interrupted inside an
// engine critical section, forking from handlers at the same time, each
// needing the lock the other's interrupted frame holds. After ~100 ms of
// back-off such a prepare stops waiting and forks without the lock: the
// parent goes on, the child inherits that lock held (it must only call
// async-signal-safe functions or exec: allocating there may hang). glibc's
// own malloc deadlocks in that case; POSIX 2024 no longer lists fork() as
// async-signal-safe and offers _Fork(), which runs no handlers.
//
// What the child may not do is re-enter the engine from inside the handler
// while the interrupted frame is mid-operation (that is malloc from a
// signal handler): it may call async-signal-safe functions, or return from
// the handler (the frame finishes and releases its lock) and then allocate
// normally.
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

  // Tries to take the lock `attempts` times (pausing, then yielding, in
  // between). For the fork handlers.
  bool TryLockFor(int attempts) STRATA_TRY_ACQUIRE(true) {
    for (int i = 0; i < attempts; ++i) {
      std::uintptr_t expected = 0;
      if (owner_.load(std::memory_order_relaxed) == 0 &&
          owner_.compare_exchange_strong(expected, LockToken(), std::memory_order_acquire,
                                         std::memory_order_relaxed)) {
        return true;
      }
      if (i < 64) {
        __builtin_ia32_pause();
      } else {
        sched_yield();
      }
    }
    return false;
  }
  // Only in a single-threaded fork child, for a lock the forking thread
  // took in the prepare handler.
  void ResetAfterFork() { owner_.store(0, std::memory_order_relaxed); }

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
