#include "alloc/internal/hooks.h"

#include "alloc/internal/thread_cache.h"

namespace strata::internal {

constinit std::atomic<bool> g_hooks_active{false};

void InitHooksFromEnvironment() {}
void OnSmallAllocated(void*, std::size_t, int) {}
bool OnSmallFreed(void*, int) { return false; }
void OnLargeAllocated(void*, std::size_t) {}
void OnLargeFreed(void*) {}

std::int64_t NextSampleCountdown() { return std::int64_t{1} << 62; }

}  // namespace strata::internal
