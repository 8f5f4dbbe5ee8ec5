// alloc/tracking/live_table.h: the table of tracked live allocations.
//
// A lock-free hash table keyed by block address. Buckets are
// Harris-Michael ordered-by-insertion linked lists. Removal first marks the
// victim's `next` link (logical deletion: the low bit), then unlinks it with
// a CAS on its predecessor; any traversal that meets a marked node helps
// unlink it. The thread whose CAS physically unlinks a node retires it
// through epoch-based reclamation (concurrency/epoch), so readers that are
// traversing the bucket (a concurrent remover, the heap profile writer, the
// leak checker's walk) never touch reused memory. Retired records go back
// to a free list from which Insert takes them.
//
// Tiers: the buckets form kTiers fixed arrays of growing size (4096,
// 32768, 262144 buckets). An insert goes to the first tier holding fewer
// than twice its bucket count of records, so a sampling profile (usually
// hundreds to a few thousand live records) touches only the first tier's
// 32 KiB, while leak checking (every allocation) spreads over the larger
// tiers as it needs them: the untouched pages of a tier cost no memory, and
// one array of the largest size would have every page touched by the
// first few thousand inserts (hashing spreads them). Records never move
// between tiers; a lookup probes the tiers in order (one bucket each; the
// larger tiers only once they have been used).
//
// Since small tracked blocks keep their records at the block's place
// (block_records.h) and sampled ones in their slices' arrays
// (sampled_records.h), this table holds, when leak checking, every block
// of more than 256 KiB, and the few sampled blocks that found no place in
// an array (a slice's overflow, an array that could not be mapped).
//
// Contract: keys are unique (a block address is inserted when the block is
// handed out and removed when it is freed, before it can be handed out
// again). Records never move while linked. ForEach visits every record
// linked for the whole walk; records inserted or removed meanwhile may or
// may not be visited.
//
// Thread-safety: Insert, Remove, Find, Resize and ForEach are lock-free with
// respect to each other (the record free list takes a spin lock, only on
// allocation and reclamation of records). Never allocates through malloc.
#ifndef STRATA_ALLOC_TRACKING_LIVE_TABLE_H_
#define STRATA_ALLOC_TRACKING_LIVE_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/tracking/stack_table.h"
#include "concurrency/base/spin_lock.h"

namespace strata::tracking {

enum RecordFlags : std::uint32_t {
  kSampled = 1,  // chosen by the sampler (its weight is the stride)
  kTracked = 2,  // recorded because every allocation is (leak checking)
  kParked = 4,   // small blocks: free, in a thread's tracked cache (block_records.h)
};

struct LiveRecord {
  std::atomic<std::uintptr_t> next{0};  // next record; low bit = deleted
  std::uintptr_t ptr = 0;
  // Requested and usable bytes; atomic because a realloc that grows the
  // block in place updates them (Resize) while readers may be walking.
  std::atomic<std::size_t> size{0};
  std::atomic<std::size_t> usable{0};
  StackEntry* stack = nullptr;
  std::uint64_t time_ns = 0;  // when allocated (monotonic)
  std::uint32_t flags = 0;    // RecordFlags
  LiveRecord* free_next = nullptr;
};

// A copy of a record's fields, for readers outside an epoch guard.
struct LiveInfo {
  std::uintptr_t ptr;
  std::size_t size;
  std::size_t usable;
  StackEntry* stack;
  std::uint64_t time_ns;
  std::uint32_t flags;
};

class LiveTable {
 public:
  static constexpr int kTiers = 3;
  // log2 of each tier's bucket count.
  static constexpr int kTierLog2[kTiers] = {12, 15, 18};
  // Records a tier takes (per bucket) before inserts move to the next.
  static constexpr std::size_t kRecordsPerBucket = 2;

  constexpr LiveTable() = default;

  // Records a live block; false when no record memory could be mapped.
  bool Insert(const LiveInfo& info);
  // Removes the record of `ptr`; fills *out and returns true if found.
  bool Remove(std::uintptr_t ptr, LiveInfo* out);
  // Looks `ptr` up; fills *out and returns true if found live.
  bool Find(std::uintptr_t ptr, LiveInfo* out);
  // The block at `ptr` was grown in place: its record takes the new
  // requested and usable sizes (stack, time and flags stay). False when
  // `ptr` has no record.
  bool Resize(std::uintptr_t ptr, std::size_t size, std::size_t usable);
  // Calls fn for each linked record, under an epoch guard: fn must not
  // block for long, and may read (not keep or write) the record.
  void ForEach(void (*fn)(LiveRecord& record, void* arg), void* arg);

  // Live records.
  std::size_t size() const {
    std::size_t n = 0;
    for (const Tier& tier : tiers_) n += tier.size.load(std::memory_order_relaxed);
    return n;
  }
  // Records linked in tier `t` (for tests and statistics).
  std::size_t tier_size(int t) const { return tiers_[t].size.load(std::memory_order_relaxed); }
  // Whether tier `t` has ever taken an insert (its buckets may be touched).
  bool tier_used(int t) const { return tiers_[t].used.load(std::memory_order_relaxed); }

 private:
  static constexpr std::size_t kTotalBuckets = (std::size_t{1} << kTierLog2[0]) +
                                               (std::size_t{1} << kTierLog2[1]) +
                                               (std::size_t{1} << kTierLog2[2]);
  struct Tier {
    std::atomic<std::size_t> size{0};
    // Set (release) before the tier's first insert; lookups skip a tier
    // that was never used.
    std::atomic<bool> used{false};
  };

  // The bucket of `key` in tier `t`.
  std::atomic<std::uintptr_t>& BucketFor(int t, std::uintptr_t key);
  // Finds `key` in its bucket of tier `t`, unlinking marked nodes on the
  // way. On return *prev_link is the link that points to the result (or the
  // list end).
  LiveRecord* Search(int t, std::uintptr_t key, std::atomic<std::uintptr_t>** prev_link);
  // Finds `key` in any tier; *tier is where.
  LiveRecord* SearchAll(std::uintptr_t key, int* tier, std::atomic<std::uintptr_t>** prev_link);
  LiveRecord* NewRecord();

  Tier tiers_[kTiers];
  // The tiers' buckets, one after the other (tier 0 first).
  std::atomic<std::uintptr_t> buckets_[kTotalBuckets] = {};
};

LiveTable& GlobalLiveTable();

// A copy of a linked record's fields.
LiveInfo SnapshotRecord(const LiveRecord& r);

// Returns a retired record to the free list (EBR deleter).
void RecycleRecord(void* record, void* ctx);

// fork(): the record free list's lock is held across fork() and released
// (parent) or reset (child), so a child never inherits it locked.
void LiveTableForkPrepare();
void LiveTableForkParent();
void LiveTableForkChild();

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_LIVE_TABLE_H_
