#include "alloc/tracking/stack_table.h"

#include <cstring>
#include <new>

#include "concurrency/base/raw_memory.h"

namespace strata::tracking {
namespace {

// An entry is the stack's when its 64-bit hash, its depth and its leaf
// frame match (the header says why no more of the frames are compared).
bool SameStack(const StackEntry* e, std::uint64_t hash, int depth, const void* leaf) {
  return e->hash == hash && e->depth == depth && (depth == 0 || e->frames[0] == leaf);
}

constinit StackTable g_stack_table;

}  // namespace

StackTable& GlobalStackTable() { return g_stack_table; }

StackEntry* FindStack(std::uint64_t hash, int depth, const void* leaf) { return g_stack_table.Find(hash, depth, leaf); }

// Every allocation of full tracking hashes its stack: one multiply-add per
// frame (the chain's latency, 4 cycles a frame), one mix at the end.
std::uint64_t HashStack(void* const* frames, int depth) {
  std::uint64_t h = kStackHashSeed;
  for (int i = 0; i < depth; ++i) h = HashStackStep(h, frames[i]);
  return HashStackEnd(h, depth);
}

StackEntry* StackTable::Intern(void* const* frames, int depth) {
  if (depth > kMaxStackDepth) depth = kMaxStackDepth;
  if (depth < 0) depth = 0;
  return Intern(frames, depth, HashStack(frames, depth));
}

StackEntry* StackTable::Intern(void* const* frames, int depth, std::uint64_t hash) {
  StackEntry* fresh = nullptr;
  // Probe at most a quarter of the table: beyond that the table is
  // effectively full and stacks share the overflow entry.
  for (std::size_t i = 0; i < kSlots / 4; ++i) {
    std::atomic<StackEntry*>& slot = slots_[(hash + i) & (kSlots - 1)];
    // Acquire pairs with the release CAS that published the entry.
    StackEntry* e = slot.load(std::memory_order_acquire);
    if (e == nullptr) {
      if (fresh == nullptr) {
        void* mem = GlobalRecordArena().Allocate(sizeof(StackEntry), alignof(StackEntry));
        if (mem == nullptr) break;
        fresh = new (mem) StackEntry();
        fresh->hash = hash;
        fresh->depth = depth;
        std::memcpy(fresh->frames, frames, sizeof(void*) * static_cast<std::size_t>(depth));
      }
      // Release publishes the fully written entry.
      if (slot.compare_exchange_strong(e, fresh, std::memory_order_acq_rel, std::memory_order_acquire)) {
        size_.fetch_add(1, std::memory_order_relaxed);
        return fresh;
      }
      // Lost the race: `e` is now the winner's entry; check it below.
    }
    if (SameStack(e, hash, depth, depth == 0 ? nullptr : frames[0])) {
      // `fresh` (if any) stays unused in the arena: a rare, bounded waste.
      return e;
    }
  }
  overflow_used_.store(true, std::memory_order_relaxed);
  return &overflow_;
}

StackEntry* StackTable::Find(std::uint64_t hash, int depth, const void* leaf) const {
  // Intern's probe: the stack is in the first slot from its hash that
  // holds it or is empty (slots are never emptied).
  for (std::size_t i = 0; i < kSlots / 4; ++i) {
    // Acquire pairs with Intern's release CAS.
    const StackEntry* e = slots_[(hash + i) & (kSlots - 1)].load(std::memory_order_acquire);
    if (e == nullptr) return nullptr;
    if (SameStack(e, hash, depth, leaf)) return const_cast<StackEntry*>(e);
  }
  return nullptr;  // full: Intern gives the overflow entry
}

void StackTable::ForEach(void (*fn)(StackEntry* entry, void* arg), void* arg) {
  for (auto& slot : slots_) {
    StackEntry* e = slot.load(std::memory_order_acquire);
    if (e != nullptr) fn(e, arg);
  }
  if (overflow_used_.load(std::memory_order_relaxed)) fn(&overflow_, arg);
}

}  // namespace strata::tracking
