// alloc/tracking/sampled_records.h: the records of sampled blocks kept in
// place (alloc/internal/sampled_slices.h), one per slot of their slice.
//
// A sampled block of a bigger class stays in its normal span, and its
// slice's word names it in one of six slots (or, past six at once, in
// none: overflow). Its record sits in that slot's entry of the slice's
// record array, or for slot 0 (a slice's first sampled block, most
// samples' only one) in the slice's state itself, beside its word
// (sampled_slices.h StateOf: the line the mark and unmark read), found
// from the slice and the slot the engine hands over: recording and ending
// a sampled block are a few stores and a CAS at a computed address, with
// no hash table and no epoch guard. A block named in no slot (overflow), or whose slice's array could
// not be mapped, keeps its record in the live table (live_table.h).
//
// A sampled large or huge block (a span or mapping of its own, which starts
// on a slice boundary) keeps its record in the array of the slice it
// starts in too, in the array's large record (no slice holds a large block
// and small ones at once): its allocation and free are a radix lookup and
// a few stores, where the live table took a hash insert, an epoch-guarded
// removal and a lock on its record free list (bench/RESULTS.md, "Sampling
// cost"). Tracked large blocks of leak checking, and a sampled one whose
// array could not be mapped, stay in the live table.
//
// A slice's array is made at its first sampled block (from a record arena,
// 256 bytes) and kept for the process's life (type stable); a slot's record
// is rewritten by the next block that takes the slot. The record's state
// word is the block records' (block_records.h: kSampled plus the class,
// kFreed once freed; class 0 for the large record), and the block's address
// is kept beside it (the large record's is the slice's; its requested and
// usable sizes are kept whole beside it).
//
// Readers (ForEachSampledRecord, FindSampledRecord) read the state
// (acquire), then the fields: a record rewritten during a walk may be seen
// with the fields of the slot's previous block, as with the block records.
// A block live for the whole walk is visited once.
//
// Thread-safety: all functions are lock-free (arrays are installed with a
// CAS) and never allocate through malloc.
#ifndef STRATA_ALLOC_TRACKING_SAMPLED_RECORDS_H_
#define STRATA_ALLOC_TRACKING_SAMPLED_RECORDS_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/sampled_slices.h"
#include "alloc/tracking/block_records.h"
#include "alloc/tracking/live_table.h"

namespace strata::tracking {

inline constexpr int kSampledSlots = sampled_slices::kSlots;

struct SampledRecord {
  BlockRecord record;
  std::atomic<std::uintptr_t> ptr{0};  // the block (written before the state)
};

// A sampled large or huge block's record: its state word is record.state
// (class 0), its sizes are `size` and `usable` (record.size is not read).
struct SampledLargeRecord {
  BlockRecord record;
  std::atomic<std::size_t> size{0};    // requested bytes
  std::atomic<std::size_t> usable{0};  // usable bytes (a realloc in place grows both)
};

// The large record of the slice that the block at `ptr` (a large or huge
// block, on a slice boundary) starts, mapping the slice's array at first
// use; null when it could not be mapped.
SampledLargeRecord* SampledLargeRecordFor(std::uintptr_t ptr);
// The live large record of the block at `ptr` (null: none).
SampledLargeRecord* FindSampledLarge(std::uintptr_t ptr);

// The record of slot `slot` (0 <= slot < kSampledSlots) of the slice of
// `ptr`, mapping the slice's array at first use; null when it could not be
// mapped.
SampledRecord* SampledRecordFor(std::uintptr_t ptr, int slot);
// The same without mapping: null when the slice never had an array.
SampledRecord* FindSampledRecord(std::uintptr_t ptr, int slot);
// The live record of the block at `ptr` in any slot of its slice, or its
// large record.
bool FindSampledLive(std::uintptr_t ptr, LiveInfo* out);

// Calls fn for each live record (a copy).
void ForEachSampledRecord(void (*fn)(const LiveInfo& info, void* arg), void* arg);

// Slices that have an array (statistics and tests).
std::size_t SampledRecordSlices();

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_SAMPLED_RECORDS_H_
