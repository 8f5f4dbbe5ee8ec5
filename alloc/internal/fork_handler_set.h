// alloc/internal/fork_handler_set.h: one set of pthread_atfork handlers
// (prepare, parent, child) that a one-time init (staged_init.h) registers
// once, and that act once per fork even when registered twice.
//
// glibc's list of handlers is inherited by a fork child, so a child that
// takes over its parent's unfinished init must not register them again:
// registered() says whether they are in the list. It is set by the init
// after pthread_atfork returns (MarkRegistered) and by the prepare handler
// (EnterPrepare), which runs only once they are registered, so a child
// whose parent forked right after the registration, before the init's own
// record, knows it too. The one case a child cannot tell: the parent
// registered them while that very fork ran its prepare handlers (glibc
// then runs none of them for that fork, but the child's list has them).
// The child registers them a second time, and the handlers count their
// nesting on the forking thread: glibc runs prepare #2, prepare #1, then
// parent or child #1, #2; only the outermost prepare (EnterPrepare true)
// and the last parent or child handler (Leave true) act.
//
// Use, in each handler of the set, first thing:
//   void Prepare() { if (!set.EnterPrepare()) return; ... }
//   void Parent()  { if (!set.Leave()) return; ... }
//   void Child()   { if (!set.Leave()) return; ... }
// and in the init's step:
//   if (!set.registered()) { pthread_atfork(...); set.MarkRegistered(); }
//
// Thread-safety: thread-safe; the nesting count is per thread (fork
// handlers run on the forking thread), one per slot.
#ifndef STRATA_ALLOC_INTERNAL_FORK_HANDLER_SET_H_
#define STRATA_ALLOC_INTERNAL_FORK_HANDLER_SET_H_

#include <atomic>
#include <cstdint>

namespace strata::internal {

// One slot per set in the process (each has its own nesting count). The
// monitor's and the pprof endpoint's: alloc/fork/layer_fork_init.h.
enum ForkHandlerSlot : int {
  kEngineForkHandlers,
  kTrackingForkHandlers,
  kMonitorForkHandlers,
  kPprofForkHandlers,
  kNumForkHandlerSlots
};

class ForkHandlerSet {
 public:
  constexpr explicit ForkHandlerSet(ForkHandlerSlot slot) : slot_(slot) {}
  ForkHandlerSet(const ForkHandlerSet&) = delete;
  ForkHandlerSet& operator=(const ForkHandlerSet&) = delete;

  bool registered() const { return registered_.load(std::memory_order_acquire); }
  void MarkRegistered() { registered_.store(true, std::memory_order_release); }

  // Counts the run and records the registration; true when this is the
  // outermost prepare of the set on this thread (it acts).
  bool EnterPrepare();
  // True when this is the last parent or child handler of the set for
  // this fork on this thread (it acts).
  bool Leave();

  // Runs of the prepare handler in this process (a child inherits the
  // count): one per fork once the set is registered once.
  std::uint64_t prepare_runs() const { return prepare_runs_.load(std::memory_order_relaxed); }

 private:
  std::atomic<bool> registered_{false};
  std::atomic<std::uint64_t> prepare_runs_{0};
  const ForkHandlerSlot slot_;
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_FORK_HANDLER_SET_H_
