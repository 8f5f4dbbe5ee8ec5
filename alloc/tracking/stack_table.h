// alloc/tracking/stack_table.h: interned allocation stacks.
//
// Every tracked allocation refers to its call stack by pointer to one
// StackEntry, shared by all allocations from the same stack, so a live
// record stays small and a profile aggregates by site for free. Each entry
// also accumulates what was ever allocated from it (the alloc_* sample
// types of a heap profile).
//
// Contract: Intern() returns the entry for a stack, creating it on first
// sight; entries are never removed or moved (pointers stay valid for the
// life of the process). When the table is full, stacks share one overflow
// entry (depth 0), so nothing is lost from the totals. A stack is known
// by its hash (HashStack: 64 bits over every frame and the depth), its
// depth and its leaf frame (Find looks a stack up by these three alone,
// Intern creates it from its frames): the frames past the first are not compared
// again (that compare read a second line of the entry on every sample's
// lookup, some 40 instructions and a cache miss; two stacks that differ
// in some frame but share hash, depth and leaf would have to collide in
// 64 bits).
//
// Thread-safety: lock-free. Insertion is an open-addressing probe with one
// CAS per slot; entries come from the never-freed record arena and are fully
// written before the CAS publishes them. Never allocates through malloc.
#ifndef STRATA_ALLOC_TRACKING_STACK_TABLE_H_
#define STRATA_ALLOC_TRACKING_STACK_TABLE_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace strata::tracking {

inline constexpr int kMaxStackDepth = 40;

// Line-aligned, the counters beside the hash: a sample's lookup and count
// touch the entry's first lines only (its frames up to the sixth are in
// the first two), not a line of counters past the frames as well.
struct alignas(64) StackEntry {
  std::uint64_t hash;
  int depth;
  // Cumulative, unscaled: allocations recorded from this stack because
  // every allocation is tracked (alloc_*; reaching the entry in per-thread
  // batches, tracker.h FlushThreadSiteCounts) and because the sampler chose
  // them (sampled_alloc_*). CountsOf (peak_tracker.h) gives the totals.
  std::atomic<std::uint64_t> alloc_count{0};
  std::atomic<std::uint64_t> alloc_bytes{0};
  std::atomic<std::uint64_t> sampled_alloc_count{0};
  std::atomic<std::uint64_t> sampled_alloc_bytes{0};
  void* frames[kMaxStackDepth];  // return addresses, leaf first
};

// The hash Intern uses: HashStackStep over the frames from
// kStackHashSeed, then HashStackEnd with the depth.
inline constexpr std::uint64_t kStackHashSeed = 0xcbf29ce484222325ull;
inline std::uint64_t HashStackStep(std::uint64_t h, const void* frame) {
  return (h + reinterpret_cast<std::uintptr_t>(frame)) * 0x9E3779B97F4A7C15ull;
}
inline std::uint64_t HashStackEnd(std::uint64_t h, int depth) {
  h ^= static_cast<std::uint64_t>(depth) + (h >> 32);
  h *= 0xD6E8FEB86659FD93ull;
  return h ^ (h >> 29);
}
std::uint64_t HashStack(void* const* frames, int depth);

class StackTable {
 public:
  static constexpr std::size_t kSlots = std::size_t{1} << 16;
  constexpr StackTable() = default;

  StackEntry* Intern(void* const* frames, int depth);
  // The same, with `hash` == HashStack(frames, depth) computed by the caller
  // (the stack walk folds it in as it goes).
  StackEntry* Intern(void* const* frames, int depth, std::uint64_t hash);
  // The entry Intern would return for a stack of `depth` frames whose hash
  // is `hash` and whose leaf frame is `leaf` when that stack was interned
  // already, else nullptr (nothing is created: a walk that only hashes a
  // stack needs its frames only for a stack not seen before).
  StackEntry* Find(std::uint64_t hash, int depth, const void* leaf) const;
  // Calls fn for every entry (including the overflow entry when used).
  void ForEach(void (*fn)(StackEntry* entry, void* arg), void* arg);
  std::size_t size() const { return size_.load(std::memory_order_relaxed); }

 private:
  std::atomic<StackEntry*> slots_[kSlots] = {};
  std::atomic<std::size_t> size_{0};
  StackEntry overflow_{};
  std::atomic<bool> overflow_used_{false};
};

StackTable& GlobalStackTable();
// GlobalStackTable().Find(hash, depth, leaf) in one call (a sample's walk
// keeps nothing live across it: no spill to a cold line of the stack).
StackEntry* FindStack(std::uint64_t hash, int depth, const void* leaf);

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_STACK_TABLE_H_
