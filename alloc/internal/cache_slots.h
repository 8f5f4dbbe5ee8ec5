// alloc/internal/cache_slots.h: the pointer arrays behind a thread cache's
// lists.
//
// A thread cache keeps the free blocks of each size class as an array of
// their addresses (a stack: the fast paths push and pop at its top), not
// as a chain linked through the blocks. Why: a cache never reads or writes
// the memory of the blocks it holds. A chain makes every pop load the
// popped block's link, and a block another thread freed (its core wrote
// the link last) is then a cache miss in series with the next pop; a
// thread that hands a batch on walks its blocks again to cut the chain.
// With arrays, blocks move between threads and the central pools as
// copies of addresses (a batch is a few lines of pointers), and a block's
// line is touched only by the program: the producer of a producer/consumer
// pair writes a line the consumer read, instead of reading its link first
// and then writing it (two coherence transfers per block instead of one).
//
// Layout: each thread takes one region of kRegionSlots pointers. Class c
// owns near slots [NearSlotOffset(c), + NearSlotCapacity(c)), packed with
// the other classes' (57 KiB for all), where its list starts: room for a
// refill (RefillBound) and for hardened mode's bounded list. A list allowed
// to grow longer moves once to the class's far slots, room for the
// longest list it may keep (the byte bounds of thread_cache.h and
// kMaxListLength). The region is address space reserved once (about
// 1.8 MiB); its pages are faulted in as lists use them, so a thread pays
// a few pages for the classes it caches a few blocks of, and 8 bytes per
// cached block beyond.
//
// Regions of exited threads are kept on a lock-free stack and reused by
// new threads (dirty: a list only reads slots below its top). They are
// never unmapped: a thread's region address stays valid for the process's
// life. A fork child inherits the regions of threads it does not have;
// they are lost to it (as those threads' cached blocks are).
//
// Thread-safety: AcquireSlotRegion and ReleaseSlotRegion may be called by
// any threads; a region belongs to one thread between the two calls.
// Nothing here allocates through malloc.
#ifndef STRATA_ALLOC_INTERNAL_CACHE_SLOTS_H_
#define STRATA_ALLOC_INTERNAL_CACHE_SLOTS_H_

#include <cstddef>
#include <cstdint>

#include "alloc/internal/size_classes.h"

namespace strata::internal {

// Per-list bounds, shared with thread_cache.h (which explains them).
inline constexpr std::uint32_t kMaxListLength = 32768;
inline constexpr std::size_t kSmallListClassBytes = 1024;
inline constexpr std::size_t kMaxSmallListBytes = std::size_t{1} << 20;
inline constexpr std::size_t kMaxListBytes = std::size_t{256} << 10;
inline constexpr std::size_t ListByteBound(std::size_t class_size) {
  return class_size <= kSmallListClassBytes ? kMaxSmallListBytes : kMaxListBytes;
}

namespace cache_slots_detail {

// The longest list class c may keep (max_length), from its byte bound.
constexpr std::uint32_t MaxListLength(int c) {
  const std::size_t size = ClassInfo(c).size;
  std::size_t n = ListByteBound(size) / size;
  if (n > kMaxListLength) n = kMaxListLength;
  if (n < 1) n = 1;
  return static_cast<std::uint32_t>(n);
}

// Objects per run of a class that starts and ends on a 64-byte line.
constexpr std::uint32_t LineRun(int c) {
  const std::size_t size = ClassInfo(c).size;
  std::uint32_t k = 1;
  while ((k * size) % 64 != 0 && k < 64) ++k;
  return k;
}

}  // namespace cache_slots_detail

// The most objects one refill of class c may bring: a whole first-tier
// batch, or a carve of up to a batch that ends on a line boundary and
// keeps kCarveSeparation (256) bytes from the previous carve on both
// sides (central_pool.h), which the pool clamps to this bound.
constexpr std::uint32_t RefillBound(int c) {
  if (c == 0) return 0;
  const std::uint32_t size = ClassInfo(c).size;
  return ClassInfo(c).batch + 2 * ((256 + size - 1) / size) + cache_slots_detail::LineRun(c) + 2;
}

namespace cache_slots_detail {

constexpr std::uint32_t ComputeMaxRefill() {
  std::uint32_t m = 0;
  for (int c = 1; c < kNumClasses; ++c) m = RefillBound(c) > m ? RefillBound(c) : m;
  return m;
}

// A list starts in its class's near slots, packed with the other classes'
// (a thread that caches a few blocks of many classes uses a few pages, not
// a page per class): room for a refill and for hardened mode's two
// batches, plus the push that overflows a list. A list allowed to grow
// past them moves, once, to its far slots: room for the longest list the
// class may keep (MaxListLength) and that push.
constexpr std::uint32_t NearCapacity(int c) {
  if (c == 0) return 0;
  const std::uint32_t refill = RefillBound(c);
  const std::uint32_t hardened = 2 * ClassInfo(c).batch;
  return (refill > hardened ? refill : hardened) + 1;
}

constexpr std::uint32_t FarCapacity(int c) {
  if (c == 0) return 0;
  const std::uint32_t n = MaxListLength(c) + 1;
  return n > NearCapacity(c) ? n : NearCapacity(c);
}

// Slot 0..7 of a region: its link while it waits for reuse (one line).
inline constexpr std::uint32_t kHeaderSlots = 8;

struct Layout {
  std::uint32_t near_offset[kNumClasses];
  std::uint32_t far_offset[kNumClasses];
  std::uint32_t total;
};

constexpr Layout ComputeLayout() {
  Layout l{};
  std::uint32_t at = kHeaderSlots;
  for (int c = 0; c < kNumClasses; ++c) {
    l.near_offset[c] = at;
    at += NearCapacity(c);
  }
  // The far slots start on a page (512 slots).
  at = (at + 511) / 512 * 512;
  for (int c = 0; c < kNumClasses; ++c) {
    l.far_offset[c] = at;
    at += FarCapacity(c);
  }
  l.total = at;
  return l;
}

inline constexpr Layout kLayout = ComputeLayout();

}  // namespace cache_slots_detail

// The most objects any refill may bring (buffers on the stack).
inline constexpr std::uint32_t kMaxRefillObjects = cache_slots_detail::ComputeMaxRefill();

// Slots in one region, and the region's bytes (whole pages).
inline constexpr std::uint32_t kRegionSlots = cache_slots_detail::kLayout.total;
inline constexpr std::size_t kRegionBytes = (std::size_t{kRegionSlots} * sizeof(void*) + 4095) / 4096 * 4096;

// Where class c's near and far slots start in a region, and how many each
// has.
constexpr std::uint32_t NearSlotOffset(int c) { return cache_slots_detail::kLayout.near_offset[c]; }
constexpr std::uint32_t NearSlotCapacity(int c) { return cache_slots_detail::NearCapacity(c); }
constexpr std::uint32_t FarSlotOffset(int c) { return cache_slots_detail::kLayout.far_offset[c]; }
constexpr std::uint32_t FarSlotCapacity(int c) { return cache_slots_detail::FarCapacity(c); }

// A region for the calling thread's cache (a reused one when an exited
// thread left one), or nullptr when the OS refuses the memory.
void** AcquireSlotRegion();
// Gives a region back for another thread (its contents are dropped).
void ReleaseSlotRegion(void** region);

// Regions ever mapped, and those waiting for reuse (statistics, tests).
std::uint64_t SlotRegionsMapped();
std::uint64_t SlotRegionsIdle();

// For tests: the next `count` AcquireSlotRegion calls fail as if the OS
// refused the memory (an idle region is not reused either).
void FailSlotRegionsForTesting(std::uint32_t count);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_CACHE_SLOTS_H_
