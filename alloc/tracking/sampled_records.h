// alloc/tracking/sampled_records.h: the records of sampled blocks kept in
// place (alloc/internal/sampled_slices.h), one per slot of their slice.
//
// A sampled block of a bigger class stays in its normal span, and its
// slice's word names it in one of four slots (or, past four at once, in
// none: overflow). Its record sits in that slot's entry of the slice's
// record array, found from the slice (a radix map: two loads) and the slot
// the engine hands over: recording and ending a sampled block are a few
// stores and a CAS at a computed address, with no hash table and no epoch
// guard. A block named in no slot (overflow), or whose slice's array could
// not be mapped, keeps its record in the live table (live_table.h).
//
// A slice's array is made at its first sampled block (from a record arena,
// 144 bytes) and kept for the process's life (type stable); a slot's record
// is rewritten by the next block that takes the slot. The record's state
// word is the block records' (block_records.h: kSampled plus the class,
// kFreed once freed), and the block's address is kept beside it.
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

// The record of slot `slot` (0 <= slot < kSampledSlots) of the slice of
// `ptr`, mapping the slice's array at first use; null when it could not be
// mapped.
SampledRecord* SampledRecordFor(std::uintptr_t ptr, int slot);
// The same without mapping: null when the slice never had an array.
SampledRecord* FindSampledRecord(std::uintptr_t ptr, int slot);
// The live record of the block at `ptr` in any slot of its slice.
bool FindSampledLive(std::uintptr_t ptr, LiveInfo* out);

// Calls fn for each live record (a copy).
void ForEachSampledRecord(void (*fn)(const LiveInfo& info, void* arg), void* arg);

// Slices that have an array (statistics and tests).
std::size_t SampledRecordSlices();

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_SAMPLED_RECORDS_H_
