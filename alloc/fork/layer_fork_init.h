// alloc/fork/layer_fork_init.h: the one-time registration of a diagnostics
// layer's fork handlers (the memory monitor's, alloc/monitor.cc; the pprof
// endpoint's, alloc/pprof_http.cc), safe against a fork during it as the
// engine's and the tracking layer's inits are.
//
// A layer calls LayerForkInit<Layer>::Ensure() at the top of every entry
// point that takes one of its locks, so its handlers are in glibc's list
// before any of its locks is ever held: a fork at any later moment runs
// them (the child handler forgets locks held by threads the child does not
// have). The registration is a StagedInit (internal/staged_init.h) of one
// step with a ForkHandlerSet (internal/fork_handler_set.h):
//   - it runs with its thread's signals blocked, so no handler forks on
//     that thread inside pthread_atfork (which would wait forever for
//     glibc's atfork lock, held by its own thread);
//   - a fork child whose parent was inside it on another thread (the child
//     has none of the layer's locks held: no entry point got past Ensure)
//     takes it over, and registers the handlers unless they are in its
//     inherited list already;
//   - registered while a fork ran its prepare handlers, they are in that
//     child's list without having run, so the child registers them again:
//     they act once per fork anyway.
//
// `Layer` is a type with `static constexpr ForkInitLayer kLayer` and
// `static void Prepare(), Parent(), Child()`: the handler bodies, each run
// once per fork.
//
// Thread-safety: thread-safe; Ensure's fast path is one acquire load.
#ifndef STRATA_ALLOC_FORK_LAYER_FORK_INIT_H_
#define STRATA_ALLOC_FORK_LAYER_FORK_INIT_H_

#include <pthread.h>

#include <cstdint>

#include "alloc/internal/fork_handler_set.h"
#include "alloc/internal/staged_init.h"
#include "concurrency/base/macros.h"

namespace strata {

enum class ForkInitLayer : int { kMonitor, kPprof };
inline constexpr int kForkInitLayers = 2;

// Where a layer's start stands when the test observer is called.
enum class ForkInitPoint : int {
  kForkHandlers,            // the one-time init, before the layer's fork handlers
  kForkHandlersRegistered,  // pthread_atfork returned (this run registered them)
  kStart,                   // the layer's start, after the init (the monitor:
                            // its control lock held, the thread about to be created)
};

// For tests: `fn` (nullptr: none) is called at each point above, on the
// thread that reached it (in a fork child that took the init over, on
// that child's thread). It must not allocate through strata.
void SetLayerForkInitObserverForTesting(void (*fn)(ForkInitLayer layer, ForkInitPoint point));
// How many times the layer's prepare handler ran in this process (a child
// inherits the count): one per fork once registered once.
std::uint64_t LayerForkPrepareRunsForTesting(ForkInitLayer layer);

namespace layer_fork_init {
// Calls the test observer, if any.
void Observe(ForkInitLayer layer, ForkInitPoint point);
// The layer's handler set (one nesting slot per layer).
internal::ForkHandlerSet& HandlerSet(ForkInitLayer layer);
}  // namespace layer_fork_init

template <typename Layer>
class LayerForkInit {
 public:
  // Returns once the layer's fork handlers are registered in this process.
  static void Ensure() {
    if (STRATA_PREDICT_TRUE(init_.Done())) return;
    init_.Ensure();
  }

 private:
  static internal::ForkHandlerSet& Set() { return layer_fork_init::HandlerSet(Layer::kLayer); }
  static void PrepareHandler() {
    if (Set().EnterPrepare()) Layer::Prepare();
  }
  static void ParentHandler() {
    if (Set().Leave()) Layer::Parent();
  }
  static void ChildHandler() {
    if (Set().Leave()) Layer::Child();
  }
  // The one step (a child that takes it over starts here again).
  static void Run(std::uint64_t /*pid*/, int /*step*/) {
    layer_fork_init::Observe(Layer::kLayer, ForkInitPoint::kForkHandlers);
    if (Set().registered()) return;
    pthread_atfork(&PrepareHandler, &ParentHandler, &ChildHandler);
    layer_fork_init::Observe(Layer::kLayer, ForkInitPoint::kForkHandlersRegistered);
    Set().MarkRegistered();
  }

  static constinit inline internal::StagedInit init_{&Run};
};

}  // namespace strata

#endif  // STRATA_ALLOC_FORK_LAYER_FORK_INIT_H_
