#include "alloc/fork/layer_fork_init.h"

#include <atomic>

namespace strata {
namespace {

constinit internal::ForkHandlerSet g_sets[kForkInitLayers] = {
    internal::ForkHandlerSet(internal::kMonitorForkHandlers),
    internal::ForkHandlerSet(internal::kPprofForkHandlers),
};
constinit std::atomic<void (*)(ForkInitLayer, ForkInitPoint)> g_observer{nullptr};

}  // namespace

namespace layer_fork_init {

void Observe(ForkInitLayer layer, ForkInitPoint point) {
  void (*fn)(ForkInitLayer, ForkInitPoint) = g_observer.load(std::memory_order_acquire);
  if (STRATA_PREDICT_FALSE(fn != nullptr)) fn(layer, point);
}

internal::ForkHandlerSet& HandlerSet(ForkInitLayer layer) { return g_sets[static_cast<int>(layer)]; }

}  // namespace layer_fork_init

void SetLayerForkInitObserverForTesting(void (*fn)(ForkInitLayer layer, ForkInitPoint point)) {
  g_observer.store(fn, std::memory_order_release);
}

std::uint64_t LayerForkPrepareRunsForTesting(ForkInitLayer layer) {
  return layer_fork_init::HandlerSet(layer).prepare_runs();
}

}  // namespace strata
