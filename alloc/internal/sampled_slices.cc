#include "alloc/internal/sampled_slices.h"

#include <sched.h>

#include <atomic>

#include "alloc/internal/hooks.h"
#include "alloc/internal/page_map.h"
#include "concurrency/base/macros.h"

namespace strata::sampled_slices {

constinit detail::SliceStates detail::g_slices;

detail::SliceState* detail::SliceStates::Ensure(std::uintptr_t addr) {
  const std::uintptr_t key = addr >> internal::kSliceShift;
  if (key >= (std::uintptr_t{1} << kKeyBits)) return nullptr;
  std::atomic<Leaf*>& root = root_[key >> kLeafBits];
  if (root.load(std::memory_order_acquire) == nullptr) {
    auto* fresh = static_cast<Leaf*>(internal::page_map_detail::AllocateLeaf(sizeof(Leaf)));
    if (fresh == nullptr) return nullptr;
    Leaf* expected = nullptr;
    // Release publishes the zeroed leaf (pairs with Find's acquire). A lost
    // race leaves `fresh` unused: a rare small leak of address space, as
    // with the engine's radix maps.
    root.compare_exchange_strong(expected, fresh, std::memory_order_acq_rel);
  }
  return Find(addr);
}

namespace {

using internal::kSliceShift;
using internal::kSliceSize;

// A slice's word: how many sampled blocks start in it, which (so that the
// frees of its other blocks need not ask the tracking layer), and the
// class of its span (so that they need no span lookup either):
//   bits 0..47   kSlots slots of 8 bits, each 0 (empty) or a sampled
//                block's granule index in the slice plus one (granules of
//                512 bytes: every class kept in place is a multiple of
//                512, and spans start on slice boundaries);
//   bits 48..55  the class;
//   bits 56..62  the count;
//   bit 63       overflow: more than kSlots blocks were counted at once,
//                and not all of those in no slot are gone yet (the slots
//                do not name them all: every block of the slice may be a
//                sampled one).
// 0: the slice holds no sampled block. Six slots: the 4608-byte blocks of
// the small classes' samples, which a thread reuses first, share slices,
// and a sample in no slot costs a live table insert and removal (an epoch
// pin, a lock on the record free list: some 40 D1 misses) and a lookup at
// each free of its neighbours (with four slots, 273 of 12,587 samples on
// mstress: 0.8 misses and ~15 instructions an average sample).
constexpr int kSlotBits = 8;
constexpr int kClassShift = detail::kWordClassShift;
static_assert(kSlots * kSlotBits <= kClassShift);
constexpr std::uint64_t kSlotMask = (std::uint64_t{1} << kSlotBits) - 1;
constexpr std::uint64_t kSlotsMask = (std::uint64_t{1} << (kSlots * kSlotBits)) - 1;
constexpr int kCountShift = kClassShift + 8;
constexpr std::uint64_t kCountMask = (std::uint64_t{1} << (63 - kCountShift)) - 1;
constexpr std::uint64_t kOverflow = std::uint64_t{1} << 63;
constexpr int kGranuleShift = 9;
static_assert((kSliceSize >> kGranuleShift) < kSlotMask, "a slot holds any granule index plus one");
constexpr bool InPlaceBlocksStartOnGranules() {
  for (int c = 1; c < internal::kNumClasses; ++c) {
    if (internal::ClassSize(c) > kMinInPlaceSize && internal::ClassSize(c) % (std::size_t{1} << kGranuleShift) != 0) {
      return false;
    }
  }
  return true;
}
static_assert(InPlaceBlocksStartOnGranules(), "a block kept in place starts on a granule of its slice");
static_assert(internal::kNumClasses <= 256, "the class fits its byte");
static_assert(kSliceSize / (kMinInPlaceSize + 1) < kCountMask, "the count holds a slice's blocks");

constexpr std::uint64_t Count(std::uint64_t w) { return (w >> kCountShift) & kCountMask; }
constexpr std::uint64_t SlotValue(std::uintptr_t addr) { return ((addr & (kSliceSize - 1)) >> kGranuleShift) + 1; }

using detail::g_slices;
using detail::SliceState;

// The slice's lock, on the line of its word (a lock of a shared striped
// array was a cache miss per mark and unmark): 2 * the fork generation + 1
// while held. A holder of another generation was a thread of a parent
// process, gone in this fork child: its lock is taken over.
STRATA_ALWAYS_INLINE std::uint64_t LockValue() {
  return (std::uint64_t{internal::hooks_detail::g_modes.fork_generation.load(std::memory_order_relaxed)} << 1) | 1;
}

STRATA_NOINLINE void LockSlow(SliceState& s, std::uint64_t mine) {
  // Spins with a growing number of pauses, then yields the CPU (a holder
  // preempted on 2 cores: spinning would only burn its time slice).
  constexpr int kMaxSpins = 64;
  int spins = 1;
  std::uint64_t cur = s.lock.load(std::memory_order_relaxed);
  for (;;) {
    if (cur != mine) {
      // Free, or a parent's: acquire pairs with Unlock's release store.
      if (s.lock.compare_exchange_weak(cur, mine, std::memory_order_acquire, std::memory_order_relaxed)) return;
      continue;
    }
    if (spins <= kMaxSpins) {
      for (int i = 0; i < spins; ++i) __builtin_ia32_pause();
      spins <<= 1;
    } else {
      sched_yield();
    }
    cur = s.lock.load(std::memory_order_relaxed);
  }
}

STRATA_ALWAYS_INLINE void Lock(SliceState& s) {
  const std::uint64_t mine = LockValue();
  std::uint64_t free = 0;
  if (STRATA_PREDICT_TRUE(s.lock.compare_exchange_strong(free, mine, std::memory_order_acquire,
                                                         std::memory_order_relaxed))) {
    return;
  }
  LockSlow(s, mine);
}

STRATA_ALWAYS_INLINE void Unlock(SliceState& s) { s.lock.store(0, std::memory_order_release); }

// The first of the word `w`'s slots that holds `v` (0: the first empty
// one), or kNoSlot: the lowest zero byte of the slots xor v in every byte
// (the classic has-a-zero-byte test; a false hit can only come above a
// true one, and the lowest set bit is always a true one).
int FindSlot(std::uint64_t w, std::uint64_t v) {
  static_assert(kSlotBits == 8);
  constexpr std::uint64_t kOnes = kSlotsMask / 0xff;  // 0x01 in every slot's byte
  const std::uint64_t x = (w & kSlotsMask) ^ (v * kOnes);
  const std::uint64_t z = (x - kOnes) & ~x & (kOnes << 7);
  return z == 0 ? kNoSlot : __builtin_ctzll(z) / 8;
}

// How many of the word `w`'s slots name a block (the non-zero bytes).
int NamedBlocks(std::uint64_t w) {
  constexpr std::uint64_t kOnes = kSlotsMask / 0xff;
  const std::uint64_t x = w & kSlotsMask;
  // A byte's top bit: set when the byte is not zero.
  return __builtin_popcountll((((x & (kOnes * 0x7f)) + kOnes * 0x7f) | x) & (kOnes << 7));
}

// The slot of its slice's word `w` that names the block at `addr`, or
// kNoSlot.
int SlotOf(std::uint64_t w, std::uintptr_t addr) { return FindSlot(w, SlotValue(addr)); }

// Mark and Unmark, inlined into their callers on a sample's way (Sample,
// FreeInMarkedSlice): a call's saves and restores were some 20
// instructions a sample each way.
STRATA_ALWAYS_INLINE int MarkInline(std::uintptr_t addr, int size_class) {
  const std::uintptr_t slice = addr & ~(kSliceSize - 1);
  SliceState* state = g_slices.Find(slice);
  if (STRATA_PREDICT_FALSE(state == nullptr)) {
    state = g_slices.Ensure(slice);
    if (state == nullptr) return kMarkFailed;
  }
  Lock(*state);
  std::uint64_t w = state->word.load(std::memory_order_relaxed);
  const std::uint64_t n = Count(w);
  const int slot = FindSlot(w, 0);
  if (slot == kNoSlot) {
    w |= kOverflow;
  } else {
    w |= SlotValue(addr) << (slot * kSlotBits);
  }
  w = (w & ~(kCountMask << kCountShift) & ~(std::uint64_t{0xff} << kClassShift)) | ((n + 1) << kCountShift) |
      (static_cast<std::uint64_t>(size_class) << kClassShift);
  // Release: lock-free readers (Word) see a complete word.
  state->word.store(w, std::memory_order_release);
  if (n == 0) internal::g_class_map.Set(slice, kSliceSize, 0);
  Unlock(*state);
  return slot;
}

STRATA_ALWAYS_INLINE void UnmarkInline(std::uintptr_t addr, int size_class) {
  const std::uintptr_t slice = addr & ~(kSliceSize - 1);
  // Marked before: the state exists.
  SliceState* state = g_slices.Find(slice);
  if (STRATA_PREDICT_FALSE(state == nullptr)) return;
  Lock(*state);
  std::uint64_t w = state->word.load(std::memory_order_relaxed);
  const std::uint64_t n = Count(w);
  if (STRATA_PREDICT_TRUE(n > 0)) {
    if (n == 1) {
      w = 0;
      // Release (the class map's store): the slice's blocks are back on
      // the fast path.
      internal::g_class_map.Set(slice, kSliceSize, static_cast<std::uint8_t>(size_class));
    } else {
      if (const int slot = SlotOf(w, addr); slot != kNoSlot) w &= ~(kSlotMask << (slot * kSlotBits));
      w = (w & ~(kCountMask << kCountShift)) | ((n - 1) << kCountShift);
      // The last block counted in no slot is gone: the slots name every
      // block left, and the neighbours' frees stop asking the live table.
      if ((w & kOverflow) != 0 && NamedBlocks(w) == n - 1) w &= ~kOverflow;
    }
    state->word.store(w, std::memory_order_release);
  }
  Unlock(*state);
}

}  // namespace

int Mark(std::uintptr_t addr, int size_class) { return MarkInline(addr, size_class); }
void Unmark(std::uintptr_t addr, int size_class) { UnmarkInline(addr, size_class); }

void Sample(void* ptr, std::size_t requested, int size_class) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  const auto on_sampled_allocate = internal::SampledAllocateHook();
  if (on_sampled_allocate == nullptr) return;
  const int slot = MarkInline(addr, size_class);
  if (slot == kMarkFailed) return;
  // Marked first: the record is visible to readers only for a block whose
  // free will find it.
  if (!on_sampled_allocate(ptr, size_class, requested, slot, __builtin_frame_address(0))) {
    Unmark(addr, size_class);
  }
}

int FreeInMarkedSlice(void* ptr, std::uint64_t w) {
  const auto addr = reinterpret_cast<std::uintptr_t>(ptr);
  const int size_class = WordClass(w);
  // The slice's other blocks: no question to the tracking layer. (A
  // sampled block's own mark happened before it was handed out, hence
  // before its free: its slot, or the overflow bit, is seen.)
  const int slot = SlotOf(w, addr);
  if (slot != kNoSlot || (w & kOverflow) != 0) {
    const auto on_sampled_free = internal::SampledFreeHook();
    if (on_sampled_free != nullptr && on_sampled_free(ptr, size_class, slot)) {
      UnmarkInline(addr, size_class);
      return size_class | kWasSampled;
    }
  }
  return size_class;
}

bool MayName(std::uint64_t w, std::uintptr_t addr) { return SlotOf(w, addr) != kNoSlot || (w & kOverflow) != 0; }

int SettledClass(std::uintptr_t addr) {
  SliceState* state = g_slices.Find(addr);
  // Never marked: the class map alone says.
  if (state == nullptr) return internal::g_class_map.Get(addr);
  Lock(*state);
  const std::uint64_t w = state->word.load(std::memory_order_relaxed);
  const int c = w != 0 ? WordClass(w) : internal::g_class_map.Get(addr);
  Unlock(*state);
  return c;
}

std::uint64_t MarkedBlocks() {
  std::uint64_t n = 0;
  g_slices.ForEach([&n](const SliceState& s) { n += Count(s.word.load(std::memory_order_relaxed)); });
  return n;
}

bool EnsureState(std::uintptr_t addr) { return g_slices.Ensure(addr) != nullptr; }

bool InstallRecords(std::uintptr_t addr, void* expected, void* desired) {
  SliceState* state = g_slices.Ensure(addr);
  // Release: the records are complete before a reader finds them.
  return state != nullptr &&
         state->records.compare_exchange_strong(expected, desired, std::memory_order_acq_rel, std::memory_order_relaxed);
}

void ForkChild() {
  // The child's only thread: a lock some other thread of the parent held
  // names the old generation now.
  auto& generation = internal::hooks_detail::g_modes.fork_generation;
  generation.store(generation.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
}

void HoldLockForTesting(std::uintptr_t addr) { Lock(*g_slices.Find(addr)); }
void ReleaseLockForTesting(std::uintptr_t addr) { Unlock(*g_slices.Find(addr)); }

}  // namespace strata::sampled_slices
