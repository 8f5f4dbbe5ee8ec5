// alloc/internal/hooks.h: where the engine's slow paths call the
// observability layer (sampling heap profiler, leak checker).
//
// Contract: the fast paths never call or test anything here. Sampling and
// tracking reach the slow path through the thread cache's sample countdown
// and list limits (see thread_cache.h). HooksActive() is one relaxed load,
// tested only on slow paths.
//
// Thread-safety: all functions are thread-safe and never allocate through
// malloc.
#ifndef STRATA_ALLOC_INTERNAL_HOOKS_H_
#define STRATA_ALLOC_INTERNAL_HOOKS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace strata::internal {

extern std::atomic<bool> g_hooks_active;

inline bool HooksActive() { return g_hooks_active.load(std::memory_order_relaxed); }

// Reads STRATA_* settings for the profiler and leak checker (once).
void InitHooksFromEnvironment();

// A small block was handed out by a slow path while hooks are active.
void OnSmallAllocated(void* ptr, std::size_t size, int size_class);
// A small block is being freed on a slow path; true if the hook consumed
// the free (the engine must not touch the block).
bool OnSmallFreed(void* ptr, int size_class);
void OnLargeAllocated(void* ptr, std::size_t size);
void OnLargeFreed(void* ptr);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_HOOKS_H_
