// alloc/internal/tracked_cache.h: full tracking's per-thread cache of
// tracked small blocks.
//
// When every allocation is tracked (leak checking), every small allocation
// and free reaches the slow path (hooks.h). Without this cache each one
// moved a single object to or from its class's tracked central pool, under
// the pool's lock. With it:
//   - a free parks the block's record (TrackingHooks::on_small_free with
//     park: the record stays, marked free) and pushes the block on the
//     calling thread's tracked list of its class, the record's token in
//     the block's second word;
//   - an allocation pops that list and hands the token to
//     on_small_allocate, which records the new allocation in place (for a
//     block fresh from the central pool there is no token: the tracking
//     layer finds the record from the block's address);
//   - lists refill from, and overflow to, the tracked central pool a batch
//     at a time; blocks that leave a list for the pool release their
//     parked record (on_small_release) first.
// A double free of a cached block (its record parked) or of a block back
// in the pool (its record freed) is caught (reported as kDoubleFree, and
// the block is left alone). A block without a record (its record could
// not be mapped) goes back to the pool, whose span checks catch a second
// free.
//
// Each list holds at most kTrackedCacheBytes (and kTrackedCacheObjects)
// when every allocation is tracked: enough for a container's teardown to
// come back whole (churn's overflows to the pool cost it 16% more
// instructions with 64 KiB / 64 objects), at most 256 KiB per class a
// thread used, in leak-checking mode only. Sampled blocks (the heap
// profiler's) that sampled_slices.h does not keep in the normal spans
// (aligned requests of the classes up to 4 KiB, any of them at strides
// under sampled_slices::kMinSmallSampleRate, every one in a build with
// owner frees) use the same lists with a small bound: a freed sampled block waits for the thread's
// next sample of its class (at most kSampledCacheObjects per class: 98
// KiB per thread at most over all those classes), which then takes no
// pool lock, and a sample finding its list empty takes one block from the
// pool (no batch). A thread's lists go back to the pool when it exits.
// Up to kTrackedCacheSlots threads at a time have a cache; others take the
// uncached path.
//
// Code layout: namespace strata::tracked_cache is not one of the engine's
// (alloc/libstrata_order.txt): a program that tracks nothing (sampling off,
// no leak checking) never maps this code.
//
// Thread-safety: the lists are the calling thread's own. TrackedCachedObjects
// reads every thread's list lengths (relaxed) for statistics. Never
// allocates through malloc.
#ifndef STRATA_ALLOC_INTERNAL_TRACKED_CACHE_H_
#define STRATA_ALLOC_INTERNAL_TRACKED_CACHE_H_

#include <cstddef>
#include <cstdint>

namespace strata::tracked_cache {

inline constexpr std::size_t kTrackedCacheBytes = 256 << 10;
inline constexpr std::uint32_t kTrackedCacheObjects = 1024;
inline constexpr int kTrackedCacheSlots = 1024;
inline constexpr std::uint32_t kSampledCacheObjects = 2;

// A tracked small block of class `size_class` for a request of `size`
// bytes, recorded by the tracking hooks (`sampled`: chosen by the sampler;
// else every allocation is tracked). Null when out of memory.
void* TrackedCacheAllocate(std::size_t size, int size_class, bool sampled);

// Frees `ptr`, the start of a tracked small block of class `size_class`
// (BlockKind::kTrackedSmall).
void TrackedCacheFree(void* ptr, int size_class);

// Objects of class `size_class` sitting in all threads' tracked caches
// (free, though the tracked pool counts them as handed out).
std::uint64_t TrackedCachedObjects(int size_class);

}  // namespace strata::tracked_cache

#endif  // STRATA_ALLOC_INTERNAL_TRACKED_CACHE_H_
