#include "alloc/internal/fork_handler_set.h"

#include "concurrency/base/macros.h"

namespace strata::internal {
namespace {

// Handlers of the running fork entered and not yet left on this thread,
// per set.
constinit thread_local int tls_depth[kNumForkHandlerSlots] STRATA_INITIAL_EXEC = {};

}  // namespace

bool ForkHandlerSet::EnterPrepare() {
  prepare_runs_.fetch_add(1, std::memory_order_relaxed);
  if (!registered_.load(std::memory_order_relaxed)) registered_.store(true, std::memory_order_relaxed);
  return tls_depth[slot_]++ == 0;
}

bool ForkHandlerSet::Leave() { return --tls_depth[slot_] == 0; }

}  // namespace strata::internal
