// alloc/internal/transfer_stack.h: a bounded lock-free LIFO of batch heads,
// the first tier of a central pool.
//
// Why LIFO: a batch pushed by a thread cache that overflowed is made of
// blocks that thread touched moments ago; the next thread cache that runs
// dry should get exactly those (still in cache) rather than the batch that
// waited longest (a FIFO ring hands out the coldest memory first, and cycles
// a workload through every batch the tier holds). tcmalloc's transfer cache
// is a LIFO for the same reason.
//
// Why not an intrusive Treiber stack of the batches themselves: a pop reads
// the `next` link inside the node it is about to take, and those nodes are
// free objects that another thread may have handed to a user meanwhile:
// harmless (the ABA tag makes the CAS fail) but a data race on user memory
// by the letter, which ThreadSanitizer rightly reports. Here the stack's
// nodes are its own slots (type-stable, never freed): a slot holds one
// batch head, its object count and the index of the slot below it. Two Treiber stacks of slot
// indices share the slots: `full_` (slots holding a batch) and `free_`
// (slots to reuse); slots never used yet are handed out by a counter, so
// the all-zero object is a valid empty stack (constinit). A head word packs
// a 40-bit tag bumped by every pop, the stack's depth (12 bits) and the
// top slot's index plus one (12 bits; 0: empty). No two states of a head
// share a word, so a stale CAS fails (ABA-safe unless exactly 2^40 pops
// happen while one thread stalls between its load and its CAS): a pop
// changes the tag, and pushes alone raise the depth. The tag of `full_`
// is also the number of values ever popped (Pops), which the central
// pools read to tell a flow through the stack from a pile-up.
//
// The slots live apart from the heads (TransferStack::Slots, passed to
// every call, always the same one for a given stack): the central pools
// keep their heads together, one or two lines per size class, and a class's
// slots in pages of their own that are touched only when the class is used
// (and then only the slots its batches take: freed slots are reused first),
// not interleaved with the heads.
//
// Hints: a slot also keeps up to kHints addresses beside its value (the
// central pools store the addresses of a batch's objects there). A popper
// gets them copied out, and can then start the loads of every object of a
// batch at once instead of finding each one through the link in the one
// before (a chain another core wrote last is a cache miss per object, one
// after the other). Only the slot's holder touches them (the pusher
// between taking a free slot and publishing it, the popper between taking
// it and freeing it), so they are plain memory ordered by the CASes.
//
// Cost: a push or a pop is two uncontended CASes (take a slot, publish it),
// once per batch of objects, plus the copy of its hints.
//
// Bound: a push fails when the stack holds its limit (the larger of the
// push's `limit` and the stack's own, set_limit; at most kCapacity). The
// check reads the depth before taking a slot, so racing pushes may pass
// it together: the bound is soft by at most the number of pushers, and
// never more than kCapacity (the slots).
//
// Contract: Push fails when the stack holds its limit (the caller takes
// its slow tier); Pop returns nullptr when no batch is held. Both are
// linearizable; HeldCount is exact when quiescent. Thread-safety: any
// number of threads. Progress: lock-free.
#ifndef STRATA_ALLOC_INTERNAL_TRANSFER_STACK_H_
#define STRATA_ALLOC_INTERNAL_TRANSFER_STACK_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"

namespace strata::internal {

template <typename T, std::uint32_t kCapacity, std::uint32_t kHints = 0>
class TransferStack {
  static constexpr int kIndexBits = 12;
  static_assert(kCapacity >= 1 && kCapacity < (1u << kIndexBits), "slot indices and depths are 12-bit");

  struct Slot {
    std::atomic<T*> value{nullptr};
    std::atomic<std::uint32_t> below{0};  // index + 1 of the slot below; 0: bottom
    std::atomic<std::uint32_t> count{0};  // the caller's count for `value`
    // The holder's alone (see Hints above).
    std::uint32_t hint_count{0};
    T* hint[kHints == 0 ? 1 : kHints]{};
  };

 public:
  // A stack's slots (all zero: unused). Every call on one stack must pass
  // the same Slots, and no other stack may use them.
  struct Slots {
    Slot slot[kCapacity];
  };

  constexpr TransferStack() = default;

  static constexpr std::uint32_t kMaxHints = kHints;

  // Pushes `value` with a count the stack keeps beside it (the central
  // pools store how many objects a batch holds), and `n_hints` addresses
  // from `hints` (more than kHints: none are kept). Fails when the stack
  // holds its limit (see Bound above): the larger of `limit` and the
  // stack's own (set_limit), at most kCapacity. Slots are reused before
  // fresh ones are taken.
  bool Push(Slots& slots, T* value, std::uint32_t count = 0, T* const* hints = nullptr,
            std::uint32_t n_hints = 0, std::uint32_t limit = kCapacity) {
    if (hints == nullptr || n_hints > kHints) n_hints = 0;
    const std::uint32_t own = limit_.load(std::memory_order_relaxed);
    if (own > limit) limit = own;
    if (Depth(full_.load(std::memory_order_relaxed)) >= limit) return false;  // full
    std::uint32_t slot = PopSlot(slots, free_, n_hints);
    if (slot == kNoSlot) {
      slot = FreshSlot();
      if (slot == kNoSlot) return false;  // every slot holds a value
    }
    slots.slot[slot].value.store(value, std::memory_order_relaxed);
    slots.slot[slot].count.store(count, std::memory_order_relaxed);
    if constexpr (kHints > 0) {
      for (std::uint32_t i = 0; i < n_hints; ++i) slots.slot[slot].hint[i] = hints[i];
      slots.slot[slot].hint_count = n_hints;
    }
    // PushSlot's release CAS publishes `value` and `count` to the popper's
    // acquire.
    PushSlot(slots, full_, slot);
    return true;
  }

  // Pops the value pushed last (nullptr when none) and, when `count` is
  // given, the count pushed with it; when `hints` is given (room for
  // kHints), the hints pushed with it, and their number in `n_hints`.
  // `expect_hints`: how many hints the caller expects (the lines of the
  // slot that hold them are fetched early; more are still copied).
  T* Pop(Slots& slots, std::uint32_t* count = nullptr, T** hints = nullptr, std::uint32_t* n_hints = nullptr,
         std::uint32_t expect_hints = kHints) {
    std::uint32_t slot = PopSlot(slots, full_, hints != nullptr ? expect_hints : 0);
    if (slot == kNoSlot) return nullptr;
    T* value = slots.slot[slot].value.load(std::memory_order_relaxed);
    if (count != nullptr) *count = slots.slot[slot].count.load(std::memory_order_relaxed);
    if constexpr (kHints > 0) {
      if (hints != nullptr) {
        const std::uint32_t n = slots.slot[slot].hint_count;
        for (std::uint32_t i = 0; i < n; ++i) hints[i] = slots.slot[slot].hint[i];
        *n_hints = n;
      }
    }
    // A free slot counts nothing (HeldCount).
    slots.slot[slot].count.store(0, std::memory_order_relaxed);
    PushSlot(slots, free_, slot);
    return value;
  }

  // The sum of the counts of the values held: exact when no push or pop
  // runs, else an estimate (a value being pushed or popped may be counted
  // or not). Reads only the slots ever used.
  std::uint64_t HeldCount(const Slots& slots) const {
    const std::uint32_t used = fresh_.load(std::memory_order_relaxed);
    std::uint64_t sum = 0;
    for (std::uint32_t i = 0; i < used; ++i) sum += slots.slot[i].count.load(std::memory_order_relaxed);
    return sum;
  }

  // Slots ever used (a bound on what the stack held at once); for tests.
  std::uint32_t slots_used() const { return fresh_.load(std::memory_order_relaxed); }

  // Values held (exact when quiescent).
  std::uint32_t depth() const { return Depth(full_.load(std::memory_order_relaxed)); }
  // Values ever popped (modulo 2^40), and the pops since an earlier
  // reading `mark` of pops() (exact across the wrap).
  std::uint64_t pops() const { return Tag(full_.load(std::memory_order_relaxed)); }
  static std::uint64_t PopsSince(std::uint64_t now, std::uint64_t mark) { return (now - mark) & kTagMask; }
  // The stack's own limit (0: none; see Push). Any thread may set it.
  std::uint32_t limit() const { return limit_.load(std::memory_order_relaxed); }
  // Limits past kCapacity are kCapacity.
  void set_limit(std::uint32_t limit) { limit_.store(Clamp(limit), std::memory_order_relaxed); }
  // Sets the limit to `limit` if it is still `expected`; true when it was.
  bool CompareAndSetLimit(std::uint32_t expected, std::uint32_t limit) {
    return limit_.compare_exchange_strong(expected, Clamp(limit), std::memory_order_relaxed);
  }
  // Sets the limit, returning the one before.
  std::uint32_t ExchangeLimit(std::uint32_t limit) { return limit_.exchange(Clamp(limit), std::memory_order_relaxed); }

 private:
  static constexpr std::uint32_t kNoSlot = 0xffffffffu;

  static constexpr std::uint64_t kIndexMask = (std::uint64_t{1} << kIndexBits) - 1;
  static constexpr std::uint64_t kTagMask = (std::uint64_t{1} << (64 - 2 * kIndexBits)) - 1;
  static constexpr std::uint32_t Clamp(std::uint32_t limit) { return limit < kCapacity ? limit : kCapacity; }
  static constexpr std::uint64_t Pack(std::uint64_t tag, std::uint64_t depth, std::uint64_t top) {
    return (tag << (2 * kIndexBits)) | (depth << kIndexBits) | top;
  }
  static constexpr std::uint32_t Top(std::uint64_t h) { return static_cast<std::uint32_t>(h & kIndexMask); }
  static constexpr std::uint32_t Depth(std::uint64_t h) {
    return static_cast<std::uint32_t>((h >> kIndexBits) & kIndexMask);
  }
  static constexpr std::uint64_t Tag(std::uint64_t h) { return h >> (2 * kIndexBits); }

  // `n_hints`: the hints the taker will read or write next (the slot's
  // lines up to them are prefetched).
  static std::uint32_t PopSlot(Slots& slots, std::atomic<std::uint64_t>& head, std::uint32_t n_hints) {
    // Acquire (also on CAS failure, which reloads `h`) pairs with the
    // release CAS that pushed the slot: its `below` and `value` are visible.
    std::uint64_t h = head.load(std::memory_order_acquire);
    for (;;) {
      const std::uint32_t top = Top(h);
      if (top == 0) return kNoSlot;
      // The taker of a slot reads or writes its hints next: their lines
      // start coming now, beside the load of `below` (a slot another core
      // used last is a miss per line, and would otherwise cost one miss
      // for `below` and then another for the hints). Harmless when stale.
      PrefetchSlotLines(slots, top - 1, n_hints);
      // May be stale if the slot was popped and reused meanwhile; the tag
      // then differs and the CAS fails.
      std::uint32_t below = slots.slot[top - 1].below.load(std::memory_order_relaxed);
      if (head.compare_exchange_weak(h, Pack(Tag(h) + 1, Depth(h) - 1, below), std::memory_order_acquire,
                                     std::memory_order_acquire)) {
        return top - 1;
      }
    }
  }

  // Prefetches, for writing, `slot`'s lines up to its first `n_hints` hints.
  static void PrefetchSlotLines(Slots& slots, std::uint32_t slot, std::uint32_t n_hints) {
    if constexpr (kHints > 0) {
      const auto at = reinterpret_cast<std::uintptr_t>(&slots.slot[slot]);
      const std::uint32_t n = n_hints < kHints ? n_hints : kHints;
      const std::uintptr_t end = reinterpret_cast<std::uintptr_t>(&slots.slot[slot].hint[0]) + n * sizeof(T*);
      for (std::uintptr_t line = at & ~(std::uintptr_t{kCacheLineSize} - 1); line < end; line += kCacheLineSize) {
        STRATA_PREFETCH_FOR_WRITE(reinterpret_cast<const void*>(line));
      }
    }
  }

  static void PushSlot(Slots& slots, std::atomic<std::uint64_t>& head, std::uint32_t slot) {
    std::uint64_t h = head.load(std::memory_order_relaxed);
    for (;;) {
      slots.slot[slot].below.store(Top(h), std::memory_order_relaxed);
      if (head.compare_exchange_weak(h, Pack(Tag(h), Depth(h) + 1, slot + 1), std::memory_order_release,
                                     std::memory_order_relaxed)) {
        return;
      }
    }
  }

  std::uint32_t FreshSlot() {
    std::uint32_t n = fresh_.load(std::memory_order_relaxed);
    while (n < kCapacity) {
      if (fresh_.compare_exchange_weak(n, n + 1, std::memory_order_relaxed)) return n;
    }
    return kNoSlot;
  }

  alignas(kCacheLineSize) std::atomic<std::uint64_t> full_{0};
  std::atomic<std::uint64_t> free_{0};
  std::atomic<std::uint32_t> fresh_{0};
  std::atomic<std::uint32_t> limit_{0};
};

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_TRANSFER_STACK_H_
