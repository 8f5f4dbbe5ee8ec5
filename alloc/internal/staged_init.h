// alloc/internal/staged_init.h: a one-time, process-wide init, run in
// steps, that a fork child finishes when its parent forked in the middle of
// it. Used by the engine's process init (EnsureProcessInit, thread_cache.cc)
// and the tracking layer's (alloc/tracking/tracker.cc).
//
// The state is one word: not started, done, or running: Running(pid, step),
// the process whose thread runs the init and the step it has reached. A
// fork child inherits the word but not the thread running the init (a fork
// from another thread's signal handler, or plain code racing the init);
// finding another process's pid there, a thread of the child takes the init
// over at that step instead of waiting forever. So each step must be safe
// to redo from its start in a child (its effects before the next Reached
// are either redone or, like a pthread_atfork registration, recorded in
// state the child inherits: fork_handler_set.h).
//
// Contract:
// - Ensure() returns once the init is done: it starts it (as step 0), waits
//   for the thread of this process that runs it, or takes over another
//   process's unfinished run at its step. On the thread running it (the
//   init reentered: its pthread_atfork may allocate) it returns at once.
//   Done() is one acquire load: the caller's fast path.
// - The run function is called with the step to start from and runs the
//   remaining steps, calling Reached(pid, step) before each later step.
// - The run function runs with all of its thread's signals blocked: no
//   handler runs on that thread inside the init (a handler that forked
//   inside a pthread_atfork call would wait forever for glibc's atfork
//   lock, which its own thread holds; one that forked elsewhere in the init
//   would leave the child an init that its only thread is in the middle
//   of). Signals sent meanwhile are delivered when the mask is restored,
//   after the init is done. So the run function must not start threads
//   (they would inherit the mask) or wait for other threads (they may be
//   waiting for the init).
//
// Thread-safety: every member is thread-safe. Objects are constinit
// globals (no constructor runs).
#ifndef STRATA_ALLOC_INTERNAL_STAGED_INIT_H_
#define STRATA_ALLOC_INTERNAL_STAGED_INIT_H_

#include <atomic>
#include <cstdint>

#include "concurrency/base/macros.h"

namespace strata::internal {

class StagedInit {
 public:
  // Runs the init from `from_step` (0: the start) as process `pid`.
  using RunFn = void (*)(std::uint64_t pid, int from_step);

  constexpr explicit StagedInit(RunFn run) : run_(run) {}
  StagedInit(const StagedInit&) = delete;
  StagedInit& operator=(const StagedInit&) = delete;

  // Acquire: pairs with the release store of the done state, so whatever
  // the init wrote is visible to a caller that finds it done.
  STRATA_ALWAYS_INLINE bool Done() const { return state_.load(std::memory_order_acquire) == kDone; }

  // See the contract. True when this call ran the init (from its start,
  // or from the step where another process left it).
  bool Ensure();

  // From the run function, before it starts `step`.
  void Reached(std::uint64_t pid, int step) { state_.store(Running(pid, step), std::memory_order_release); }

  // Steps are 0 .. kMaxStep.
  static constexpr int kMaxStep = 255;

 private:
  static constexpr std::uint64_t kNotStarted = 0;
  static constexpr std::uint64_t kDone = 1;
  static constexpr int kStepBits = 8;
  // pid >= 1: never kNotStarted or kDone.
  static constexpr std::uint64_t Running(std::uint64_t pid, int step) {
    return pid << kStepBits | static_cast<std::uint64_t>(step);
  }

  void Run(std::uint64_t pid, int step);

  std::atomic<std::uint64_t> state_{kNotStarted};
  const RunFn run_;
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_STAGED_INIT_H_
