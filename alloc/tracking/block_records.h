// alloc/tracking/block_records.h: the records of tracked small blocks, kept
// at each block's place in its tracked span.
//
// A tracked small block (sampled, or every block when leak checking) lives
// in a span of a tracked pool (central_pool.h): one 64 KiB slice for the
// classes up to 64 KiB, and above that the fewest slices that hold one
// block (size_classes.h kTrackedSpanTable), where the block sits alone at
// the span's start. So the block at offset o of its slice, of class c, is
// block BlockIndex(o, c) of that slice (0 for the big classes), and its
// record is that entry of the slice's record array. Each slice that ever
// held a tracked block has an array with a record per block of its tracked
// span (one for the big classes, up to kRecordsPerSlice), carved from a
// record arena at first use (a slice that later takes a class with more
// blocks gets a bigger one) and found through a radix map keyed by the
// slice (two loads). Arrays are never freed nor used for anything else
// (type stable): a record is at a computed address, so recording, freeing,
// parking and unparking a block need no hash lookup and no epoch guard, and
// a freed block's record keeps its stack for error reports (a double free
// names where the block was allocated).
//
// State word: RecordFlags (live: kSampled or kTracked; kParked: free in a
// thread's tracked cache, tracked_cache.h; kFreed: freed, its stack kept)
// plus the block's class (bits 8..15). 0: never recorded.
//   Record:  the thread that holds the block (fresh from its pool or its
//            cache) writes the fields, then the state (release).
//   Free, Park: a CAS from a live state (acq_rel), so that of two threads
//            freeing one block at once (a double free) one wins; a state
//            that is parked or freed already is a double free.
//   Release: a parked block leaves its cache for the pool (its holder
//            writes kFreed).
// A block whose slice array could not be mapped has no record (the caller
// counts a record failure); an array mapped later starts that block's
// record at 0 (never recorded), so its free is not taken for a double free.
//
// Readers (ForEach, Find) read the state (acquire), then the fields: a
// record rewritten during a walk may be seen with fields of the block's
// previous allocation, as with the live table (live_table.h). A block live
// for the whole walk is visited once.
//
// Thread-safety: all functions are lock-free (slice arrays are installed
// with a CAS) and never allocate through malloc.
#ifndef STRATA_ALLOC_TRACKING_BLOCK_RECORDS_H_
#define STRATA_ALLOC_TRACKING_BLOCK_RECORDS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/size_classes.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/stack_table.h"
#include "concurrency/base/macros.h"

namespace strata::tracking {

// kParked and kSampled/kTracked come from live_table.h (RecordFlags).
inline constexpr std::uint32_t kFreed = 8;
inline constexpr std::uint32_t kLiveFlags = kSampled | kTracked;
inline constexpr int kStateClassShift = 8;

struct BlockRecord {
  std::atomic<StackEntry*> stack{nullptr};
  std::atomic<std::uint64_t> time_ns{0};
  std::atomic<std::uint32_t> size{0};  // requested bytes (at most kMaxSmallSize)
  std::atomic<std::uint32_t> state{0};
};
static_assert(sizeof(BlockRecord) == 24);

// The most blocks a tracked span holds (class 16 in one slice).
inline constexpr std::uint32_t kRecordsPerSlice = internal::kSliceSize / 16;

STRATA_ALWAYS_INLINE constexpr bool StateLive(std::uint32_t state) {
  return (state & kLiveFlags) != 0 && (state & (kParked | kFreed)) == 0;
}
STRATA_ALWAYS_INLINE constexpr int StateClass(std::uint32_t state) {
  return static_cast<int>((state >> kStateClassShift) & 0xff);
}

// The record of the tracked small block at `ptr` (its start) of class
// `size_class`, mapping the slice's array at first use; null when it could
// not be mapped.
BlockRecord* BlockRecordFor(std::uintptr_t ptr, int size_class);
// The same without mapping: null when the slice never had a record array.
BlockRecord* FindBlockRecord(std::uintptr_t ptr, int size_class);

// Records an allocation in `r` (its holder only).
STRATA_ALWAYS_INLINE void WriteBlockRecord(BlockRecord* r, StackEntry* stack, std::uint64_t time_ns,
                                           std::size_t size, std::uint32_t flags, int size_class) {
  r->stack.store(stack, std::memory_order_relaxed);
  r->time_ns.store(time_ns, std::memory_order_relaxed);
  r->size.store(static_cast<std::uint32_t>(size), std::memory_order_relaxed);
  // Release: a reader that sees the record live sees its fields.
  r->state.store(flags | (static_cast<std::uint32_t>(size_class) << kStateClassShift), std::memory_order_release);
}

// A free of the block of `r`: its live state becomes kParked (park) or
// kFreed. Returns the state it had (live), or 0 with *double_free set when
// it was parked or freed already, or 0 with it clear when it was never
// recorded.
STRATA_ALWAYS_INLINE std::uint32_t EndBlockRecord(BlockRecord* r, bool park, bool* double_free) {
  std::uint32_t state = r->state.load(std::memory_order_relaxed);
  const std::uint32_t end = park ? kParked : kFreed;
  do {
    if (!StateLive(state)) {
      *double_free = state != 0;
      return 0;
    }
    // acq_rel: pairs with the state's other writers (and readers' acquire).
  } while (!r->state.compare_exchange_weak(state, state | end, std::memory_order_acq_rel, std::memory_order_relaxed));
  return state;
}

// A parked record's block leaves its cache for the pool (its holder only).
STRATA_ALWAYS_INLINE void ReleaseParkedRecord(BlockRecord* r) {
  const std::uint32_t state = r->state.load(std::memory_order_relaxed);
  r->state.store((state & ~kParked) | kFreed, std::memory_order_release);
}

// A copy of the record `r` of the block at `ptr` (its state as read).
LiveInfo BlockRecordInfo(const BlockRecord& r, std::uintptr_t ptr, std::uint32_t state);

// Calls fn for each live record (a copy), slice by slice.
void ForEachBlockRecord(void (*fn)(const LiveInfo& info, void* arg), void* arg);

// Slices that have a record array (statistics and tests).
std::size_t BlockRecordSlices();

// Records by state, counted by a walk of every array (tests and
// statistics; approximate while other threads allocate and free).
struct BlockRecordCounts {
  std::size_t live;
  std::size_t parked;
  std::size_t freed;
};
BlockRecordCounts CountBlockRecords();

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_BLOCK_RECORDS_H_
