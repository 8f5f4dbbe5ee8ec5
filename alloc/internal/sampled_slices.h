// alloc/internal/sampled_slices.h: sampled small blocks kept in place, in
// the normal spans, and the slices that hold them.
//
// The heap profiler's sampled small blocks live in spans of their own (the
// tracked pools, central_pool.h), which the class map does not know, so
// that their frees reach the slow path. For the bigger classes that cost a
// sampled allocation a span to itself (a tracked span of such a class
// holds one to sixteen blocks: a page fault or two per sample), and the
// program its writes to memory apart from the blocks it recycles
// (bench/RESULTS.md, "Sampling cost"). So a sampled block of a class above
// kMinInPlaceSize is an ordinary block of its class, taken where the
// thread's next block of the class would have come from, and a sampled
// request of a smaller class takes a block of kSmallSampleClass (4608
// bytes; InPlaceClass) from the blocks the thread keeps for such samples,
// apart from its list of the class (thread_cache.h kSampleBlocks; else one
// from the central pool), to which its free gives it back (FreeInMarkedSlice
// says kWasSampled); only the 64 KiB slice the block starts in is marked:
//   - Mark: the slice's word counts it (and names it, in one of kSlots
//     slots); at the first, the slice's class map entry becomes 0, so that
//     every free of a block that starts in the slice (the sampled one and
//     its neighbours) takes the slow path (thread_cache.h: class 0 never
//     has room on a list).
//   - FreeSlow reads the word (Word, inline) of every block the class map
//     does not know; for a marked slice, FreeInMarkedSlice removes the
//     block's record (the tracking layer's on_sampled_free: in the record
//     of the slot that names it, alloc/tracking/sampled_records.h, or for a
//     block in no slot the live table) when the word names it (or may:
//     overflow), unmarks it (Unmark: at the last, the class comes back),
//     and the block is freed as any block of the class the word holds. A
//     neighbour's free takes the slow path's entry, the word's two loads
//     and a compare: some 60 instructions where a push is 16.
//   - A reader that saw the entry 0 and then the word of a slice unmarked
//     meanwhile (or the reverse) settles the class under the slice's lock
//     (SettledClass): the usable-size and realloc paths, and FreeSlow.
// Small classes are not marked in their own slices: a long-lived sampled
// block of a small class would send every free of a whole slice of a hot
// class to the slow path (a first version with every class in place ran
// mstress 13% more instructions than the tracked pools did). A slice of
// kSmallSampleClass holds 14 blocks. What a small request sampled this way
// sees (as tcmalloc's sampled small objects, which take a page each): its
// usable size is its block's (4608), a sized free may name any size up to
// kMinInPlaceSize (strata.cc accepts it for a block its slice's word may
// name), a reallocation always moves it (so that its record, kept with the
// request's size, never stands for a block grown in place), and it holds
// up to 4.5 KiB more than its class would: at strides of
// kMinSmallSampleRate and more, under 2% of the memory a sample stands for
// (shorter strides, and aligned small requests, keep the tracked pools).
// Per sample this saves the tracked pool's span and lock, the cold blocks
// of tracked spans and their page faults (bench/RESULTS.md).
//
// A double free of a sampled block kept in place is not detected (as for
// any untracked block in normal mode): its first free removed the record.
// Nor is a sized free of a sampled small request that names a wrong size
// up to kMinInPlaceSize.
//
// Only in a default build's normal mode while sampling (not leak checking,
// where every block is tracked, nor hardened mode, nor a build with owner
// frees, whose central pools rewrite class map entries of spans in use).
// The mark is the class map's only write outside the page heap; it is safe
// because the span is in use for as long as a block it counts is
// allocated: the slice is marked after its block was taken and unmarked
// before the block is freed, so the page heap (which writes the entries of
// spans it hands out and takes back) never races with it.
//
// One map holds what this module and the tracking layer keep per slice
// (SliceState: the word, the lock and the tracking layer's records of the
// slice's sampled blocks, alloc/tracking/sampled_records.h), so that a
// sample's mark, its record and its unmark find one line through one walk.
//
// Thread-safety: Mark, Unmark and SettledClass serialise per slice (the
// lock in the slice's state, on the word's line, held for a word update
// and a class map store); Word, Holds and Records are lock-free reads.
// Fork: a lock names the fork generation that took it, and a fork child
// (ForkChild raises the generation) takes over a lock that a thread of its
// parent held. Never allocates through malloc.
#ifndef STRATA_ALLOC_INTERNAL_SAMPLED_SLICES_H_
#define STRATA_ALLOC_INTERNAL_SAMPLED_SLICES_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/hooks.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/remote_free.h"
#include "alloc/internal/size_classes.h"
#include "concurrency/base/macros.h"

namespace strata::sampled_slices {

namespace detail {
// Where a slice's word keeps its span's class (bits 48..55).
inline constexpr int kWordClassShift = 48;

// What is kept per slice (one line).
struct alignas(64) SliceState {
  // sampled_slices.cc says what a word holds; 0: the slice holds no
  // sampled block. Written under the lock; read lock-free.
  std::atomic<std::uint64_t> word{0};
  // The tracking layer's records of the slice's sampled blocks (null:
  // none yet); installed with a CAS, never changed after.
  std::atomic<void*> records{nullptr};
  // 0: free; else 2 * the fork generation that holds it + 1.
  std::atomic<std::uint64_t> lock{0};
  // The tracking layer's record of the block the word's first slot names
  // (StateOf; all zero: never recorded): a slice's first sampled
  // block, most samples' only one, is marked, recorded, ended and
  // unmarked on this one line.
  std::atomic<std::uint64_t> first_record[5] = {};
};
static_assert(sizeof(SliceState) == 64);

// Slice -> its state: 2^31 slices, 2^15 root entries, 4 MiB leaves (zero
// pages until a slice of theirs is written).
class SliceStates {
 public:
  static constexpr int kKeyBits = internal::kAddressBits - internal::kSliceShift;
  static constexpr int kLeafBits = 16;
  static constexpr std::size_t kLeafSize = std::size_t{1} << kLeafBits;
  static constexpr std::size_t kRootSize = std::size_t{1} << (kKeyBits - kLeafBits);
  struct Leaf {
    SliceState states[kLeafSize];
  };

  constexpr SliceStates() = default;

  // The state of the slice of `addr` (any address, also garbage); null when
  // its leaf was never made.
  STRATA_ALWAYS_INLINE SliceState* Find(std::uintptr_t addr) const {
    const std::uintptr_t key = addr >> internal::kSliceShift;
    if (STRATA_PREDICT_FALSE(key >= (std::uintptr_t{1} << kKeyBits))) return nullptr;
    // Acquire pairs with the release CAS that installs a leaf.
    Leaf* leaf = root_[key >> kLeafBits].load(std::memory_order_acquire);
    return leaf == nullptr ? nullptr : &leaf->states[key & (kLeafSize - 1)];
  }
  // The same, making its leaf first when needed; null when out of memory.
  SliceState* Ensure(std::uintptr_t addr);
  // Calls fn(state) for every state of every leaf made (statistics, tests).
  template <typename Fn>
  void ForEach(Fn fn) const {
    for (const auto& root : root_) {
      if (const Leaf* leaf = root.load(std::memory_order_acquire); leaf != nullptr) {
        for (const SliceState& state : leaf->states) fn(state);
      }
    }
  }

 private:
  std::atomic<Leaf*> root_[kRootSize] = {};
};
extern constinit SliceStates g_slices;
}  // namespace detail

// Classes above this size keep their sampled blocks in place; a sampled
// request of a smaller class takes a block of kSmallSampleClass, at
// sampling strides of kMinSmallSampleRate and more.
inline constexpr std::size_t kMinInPlaceSize = 4096;
// The smallest class above kMinInPlaceSize (4608 bytes: a multiple of 512).
inline constexpr int kSmallSampleClass = internal::SizeToClass(kMinInPlaceSize + 1);
static_assert(internal::ClassSize(kSmallSampleClass) > kMinInPlaceSize &&
              internal::ClassSize(kSmallSampleClass - 1) <= kMinInPlaceSize);
// A sampled small block stands for about a stride of the program's memory
// and takes up to 4.5 KiB more than its class would: under 2% of the heap
// from this stride on (0.9% at the default 512 KiB). Below it (down to the
// tests' stride of 1, which samples everything) small samples keep the
// tracked pools.
inline constexpr std::int64_t kMinSmallSampleRate = 256 << 10;

// Whether a sampled block of class `size_class` is kept in place (never
// in a build with owner frees).
constexpr bool InPlace(int size_class) {
  return !internal::kOwnerFreesBuilt && internal::ClassSize(size_class) > kMinInPlaceSize;
}

// The class whose block a sampled request of class `size_class` with
// `alignment` (0, or what the caller named) takes in place: its own when
// InPlace; kSmallSampleClass for a smaller class when the request needs no
// more than the 16 bytes every block has and the stride is at least
// kMinSmallSampleRate; else 0 (the tracked pools: an aligned small request,
// a short stride, or a build with owner frees).
inline int InPlaceClass(int size_class, std::size_t alignment) {
  if (internal::kOwnerFreesBuilt) return 0;
  if (InPlace(size_class)) return size_class;
  return alignment <= 16 && internal::SampleRateInline() >= kMinSmallSampleRate ? kSmallSampleClass : 0;
}

// Mark's answer besides a slot (0..kSlots-1) of the slice's word that
// names the block: counted in no slot (more sampled blocks at once than
// slots), or not counted at all (the word's map could not be mapped).
inline constexpr int kSlots = 6;
inline constexpr int kNoSlot = -1;
inline constexpr int kMarkFailed = -2;

// Counts the sampled block at `addr` (a small block of class `size_class`
// the calling thread was just handed) in its slice, marking the slice at
// the first; returns the slot that names it, kNoSlot or kMarkFailed
// (nothing changed).
int Mark(std::uintptr_t addr, int size_class);

// Takes a sampled block at `addr` of class `size_class` out of its slice's
// count (before the block is freed); at the last, the slice's class comes
// back.
void Unmark(std::uintptr_t addr, int size_class);

// Records the sampled block `ptr` (a small block of class `size_class`,
// InPlaceClass of the request's, for a request of `requested` bytes, just
// taken by the calling thread)
// and marks its slice. A block that cannot be recorded stays a plain one.
void Sample(void* ptr, std::size_t requested, int size_class);

// The word of the slice of `addr`: non-zero while the slice holds sampled
// blocks. Inline (two loads) so that the engine's slow free of a block the
// class map does not know (large blocks, mostly) asks it without reaching
// this module's code, which a program that samples nothing never maps.
STRATA_ALWAYS_INLINE std::uint64_t Word(std::uintptr_t addr) {
  const detail::SliceState* s = detail::g_slices.Find(addr);
  return s == nullptr ? 0 : s->word.load(std::memory_order_acquire);
}

// Before `ptr` is freed, when the class map said 0 for it and its slice's
// word was `word` (non-zero: marked): removes its record and unmarks it
// when it is a sampled block, and returns the slice's class (the caller
// frees it as a block of that class, as the fast path would have: no
// further check), with kWasSampled set when it was a sampled block (the
// engine keeps the blocks of kSmallSampleClass samples apart, thread_cache.h
// kSampleBlocks).
inline constexpr int kWasSampled = 0x100;
static_assert(internal::kNumClasses <= kWasSampled);
int FreeInMarkedSlice(void* ptr, std::uint64_t word);

// The class of the blocks of a marked slice whose word is `word` (non-zero:
// Word's answer), which its span holds (sampled_slices.cc says what a word
// holds).
STRATA_ALWAYS_INLINE int WordClass(std::uint64_t word) {
  return static_cast<int>((word >> detail::kWordClassShift) & 0xff);
}

// True when the slice of `addr` holds sampled blocks (its class map entry
// is 0 for that reason).
STRATA_ALWAYS_INLINE bool Holds(std::uintptr_t addr) { return Word(addr) != 0; }

// Whether the word `word` of a marked slice names the block at `addr` as
// one of its sampled blocks, or may (overflow: any of its blocks may be
// one). For the checks of sized frees and the moves of reallocations of
// sampled blocks (alloc/strata.cc).
bool MayName(std::uint64_t word, std::uintptr_t addr);

// The class of the slice of `addr`, read under the slice's lock, where
// its mark and the class map agree: for a small block whose class map
// entry was read as 0 while its slice was being marked or unmarked (a
// lock-free reader may see the entry and the slice's word from either
// side of a change). 0: the slice is neither marked nor a small span's.
int SettledClass(std::uintptr_t addr);

// Sampled blocks counted in all slices, by a walk of every state
// (statistics, tests: it reads 4 MiB per 4 GiB of address space that held
// a sampled block).
std::uint64_t MarkedBlocks();

// The tracking layer's records of the slice of `addr` (acquire: what was
// installed is complete), or null.
STRATA_ALWAYS_INLINE void* Records(std::uintptr_t addr) {
  const detail::SliceState* s = detail::g_slices.Find(addr);
  return s == nullptr ? nullptr : s->records.load(std::memory_order_acquire);
}
// For the tracking layer, which keeps its records of the slice's sampled
// blocks in `records` and `first_record` (kFirstRecordBytes, 8-aligned,
// zero until written): the state of the slice of `addr`, or null when it
// has none (EnsureState). One walk for both.
inline constexpr std::size_t kFirstRecordBytes = sizeof(detail::SliceState::first_record);
STRATA_ALWAYS_INLINE detail::SliceState* StateOf(std::uintptr_t addr) { return detail::g_slices.Find(addr); }
// Makes the state of the slice of `addr` exist; false when out of memory.
bool EnsureState(std::uintptr_t addr);

// Installs `desired` as the records of the slice of `addr` when they are
// `expected` (release); false when they were not, or when the slice's
// state could not be mapped.
bool InstallRecords(std::uintptr_t addr, void* expected, void* desired);

// fork() child: the locks may have been held by threads that are gone
// (raises the fork generation: such locks are taken over).
void ForkChild();

// Tests: takes the lock of the slice of `addr` (marked before), and gives
// it back.
void HoldLockForTesting(std::uintptr_t addr);
void ReleaseLockForTesting(std::uintptr_t addr);

}  // namespace strata::sampled_slices

#endif  // STRATA_ALLOC_INTERNAL_SAMPLED_SLICES_H_
