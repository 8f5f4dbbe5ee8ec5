// alloc/internal/page_map.h: address -> allocator metadata, in O(1).
//
// Two maps over the 47-bit user address space, mapped on demand from the
// OS (zero pages cost nothing until written):
//   - ClassMap: one entry per 64 KiB slice: the size class of the small
//     span covering it (0 for anything else: large span, free, not ours)
//     and, in a build with owner frees, above it the slice's owner: the
//     owner slot (remote_free.h) of the thread its objects were last handed
//     to, 0 for none. A flat array indexed by the slice number (one byte
//     per slice in a default build; four with owner frees), so the free
//     fast path reads the entry with a compare and one load; a two-level
//     radix map when the OS refuses the array's address space (ClassMap
//     below). With owner frees the fast path also learns whether the block
//     is the calling thread's (one XOR with the thread's tag,
//     thread_cache.h). The entry doubles as the "is this pointer ours"
//     check: a pointer strata never returned has class 0 and leaves
//     through the slow path. The owner is a routing hint, never a
//     correctness condition: any thread may hold any free object of a
//     class.
//   - SegmentMap: a two-level radix map, one pointer per 4 MiB chunk: the
//     Segment that covers it, nullptr when strata does not own the chunk.
//     Used on slow paths.
// Why radix maps rather than masking the pointer to find a segment header:
// masking reads memory at an address derived from an arbitrary pointer, so
// an invalid free would fault or read garbage; the maps turn it into a
// clean error, and interior pointers of huge blocks still resolve.
//
// Thread-safety: lookups are lock-free (relaxed/acquire loads). Leaves are
// installed with a CAS and never freed; the flat array is reserved once,
// before the first segment exists, and never freed. Classes are written by the
// page heap under its lock, for memory no other thread can be using: a
// slice's class is set before its objects are published and cleared after
// the last one came back; and, while the span is in use, by the marks of
// slices that hold sampled blocks (0 while marked, the class again after:
// sampled_slices.h, under the slice's lock). Owners are rewritten while the span is in use (by
// its central pool under the pool's lock, or by a CAS that adopts a slice
// whose owner exited); a reader sees the old owner or the new one, both
// valid hints, never a torn class.
#ifndef STRATA_ALLOC_INTERNAL_PAGE_MAP_H_
#define STRATA_ALLOC_INTERNAL_PAGE_MAP_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/size_classes.h"
#include "concurrency/base/macros.h"

namespace strata::internal {

struct Segment;

inline constexpr int kAddressBits = 47;

namespace page_map_detail {
// Allocates a zeroed leaf of `bytes` from the OS; nullptr on failure.
void* AllocateLeaf(std::size_t bytes) noexcept;
}  // namespace page_map_detail

// A two-level radix map from (addr >> kShift) to T, T zero-initialisable.
template <typename T, int kShift, int kLeafBits>
class RadixMap {
 public:
  static constexpr int kKeyBits = kAddressBits - kShift;
  static constexpr int kRootBits = kKeyBits - kLeafBits;
  static constexpr std::size_t kRootSize = std::size_t{1} << kRootBits;
  static constexpr std::size_t kLeafSize = std::size_t{1} << kLeafBits;

  struct Leaf {
    std::atomic<T> entries[kLeafSize];
  };

  constexpr RadixMap() = default;

  // Lookup for any address (also garbage): T{} when unmapped.
  STRATA_ALWAYS_INLINE T Get(std::uintptr_t addr) const {
    std::uintptr_t key = addr >> kShift;
    if (STRATA_PREDICT_FALSE(key >= (std::uintptr_t{1} << kKeyBits))) return T{};
    // Acquire pairs with the release CAS that installs a leaf.
    Leaf* leaf = root_[key >> kLeafBits].load(std::memory_order_acquire);
    if (leaf == nullptr) return T{};
    return leaf->entries[key & (kLeafSize - 1)].load(std::memory_order_acquire);
  }

  // Makes sure leaves exist for [addr, addr + size). False on OS failure.
  bool Ensure(std::uintptr_t addr, std::size_t size) {
    std::uintptr_t first = addr >> kShift;
    std::uintptr_t last = (addr + size - 1) >> kShift;
    for (std::uintptr_t r = first >> kLeafBits; r <= (last >> kLeafBits); ++r) {
      if (r >= kRootSize) return false;
      if (root_[r].load(std::memory_order_acquire) != nullptr) continue;
      auto* fresh = static_cast<Leaf*>(page_map_detail::AllocateLeaf(sizeof(Leaf)));
      if (fresh == nullptr) return false;
      Leaf* expected = nullptr;
      // Release publishes the zeroed leaf; pairs with the acquire in Get().
      if (!root_[r].compare_exchange_strong(expected, fresh, std::memory_order_acq_rel)) {
        // Another thread won; our leaf stays as a (rare) small leak of
        // address space, never reused: simpler than freeing OS memory here.
      }
      metadata_bytes_.fetch_add(sizeof(Leaf), std::memory_order_relaxed);
    }
    return true;
  }

  // Sets entries for [addr, addr + size); leaves must exist (Ensure).
  void Set(std::uintptr_t addr, std::size_t size, T value) {
    std::uintptr_t first = addr >> kShift;
    std::uintptr_t last = (addr + size - 1) >> kShift;
    for (std::uintptr_t k = first; k <= last; ++k) {
      Leaf* leaf = root_[k >> kLeafBits].load(std::memory_order_acquire);
      // Release: the metadata the entry points to is initialised before
      // another thread can find it through Get().
      leaf->entries[k & (kLeafSize - 1)].store(value, std::memory_order_release);
    }
  }

  // The entry of `addr`, null when its leaf does not exist (Ensure).
  STRATA_ALWAYS_INLINE std::atomic<T>* EntryFor(std::uintptr_t addr) {
    std::uintptr_t key = addr >> kShift;
    if (STRATA_PREDICT_FALSE(key >= (std::uintptr_t{1} << kKeyBits))) return nullptr;
    Leaf* leaf = root_[key >> kLeafBits].load(std::memory_order_acquire);
    return leaf == nullptr ? nullptr : &leaf->entries[key & (kLeafSize - 1)];
  }

  // Replaces the entry of `addr` (its leaf must exist) when it is `expected`.
  bool Cas(std::uintptr_t addr, T expected, T desired) {
    std::uintptr_t k = addr >> kShift;
    Leaf* leaf = root_[k >> kLeafBits].load(std::memory_order_acquire);
    if (leaf == nullptr) return false;
    return leaf->entries[k & (kLeafSize - 1)].compare_exchange_strong(expected, desired, std::memory_order_acq_rel);
  }

  std::size_t metadata_bytes() const { return metadata_bytes_.load(std::memory_order_relaxed); }

 private:
  std::atomic<Leaf*> root_[kRootSize] = {};
  std::atomic<std::size_t> metadata_bytes_{0};
};

// A class map entry: class | owner << kOwnerShift.
// (A machine word, though its values fit 32 bits: lookups of both map
// forms then meet in one register with no zero-extension step.)
using SliceEntry = std::uintptr_t;
inline constexpr int kOwnerShift = 8;
inline constexpr SliceEntry kClassMask = (SliceEntry{1} << kOwnerShift) - 1;
STRATA_ALWAYS_INLINE constexpr int EntryClass(SliceEntry e) { return static_cast<int>(e & kClassMask); }
STRATA_ALWAYS_INLINE constexpr std::uint32_t EntryOwner(SliceEntry e) { return e >> kOwnerShift; }

// The flat class map's storage for one slice: the class alone (one byte)
// in a default build, class and owner in a build with owner frees.
#if defined(STRATA_OWNER_FREES_BUILD)
using SliceCell = std::uint32_t;
#else
using SliceCell = std::uint8_t;
#endif

// One entry per 64 KiB slice of the 47-bit address space (2^31 slices).
//
// Primary form: a flat array indexed by addr >> kSliceShift, reserved from
// the OS at the first Ensure (2 GiB of address space in a default build, 8
// GiB with owner frees; MAP_NORESERVE, so pages are committed only where
// slices are used: one 4 KiB page covers 256 MiB of heap, 64 MiB with owner
// frees). A lookup is a shift, a compare with the array's bound and one
// load: the free fast path's whole "is it ours, which class" step.
// Fallback form: when the OS refuses the reservation (address space capped
// by RLIMIT_AS, strict overcommit), the two-level radix map above; the
// flat bound stays 0, so a lookup's compare fails and takes the radix map
// on its (inline, call-free) second branch. Before the first Ensure both
// forms are empty and every lookup returns 0.
class ClassMap {
 public:
  static constexpr std::uintptr_t kSlices = std::uintptr_t{1} << (kAddressBits - kSliceShift);
  static constexpr std::size_t kFlatBytes = kSlices * sizeof(SliceCell);

  constexpr ClassMap() = default;
  // The size class of the small span covering `addr` (0: none).
  STRATA_ALWAYS_INLINE int Get(std::uintptr_t addr) const { return EntryClass(GetEntry(addr)); }
  // Class and owner in one load.
  STRATA_ALWAYS_INLINE SliceEntry GetEntry(std::uintptr_t addr) const {
    const std::uintptr_t key = addr >> kSliceShift;
    if (STRATA_PREDICT_TRUE(InFlat(key))) {
      // Acquire pairs with the release store of Set (metadata before entry).
      return std::atomic_ref<SliceCell>(flat_base_[key]).load(std::memory_order_acquire);
    }
    return radix_.Get(addr);
  }
  // Makes sure entries exist for [addr, addr + size): reserves the flat
  // array on first use (or settles on the radix map). False on OS failure.
  // Callers serialise (the page heap's lock).
  bool Ensure(std::uintptr_t addr, std::size_t size);
  // Sets the class of [addr, addr + size), with no owner.
  void Set(std::uintptr_t addr, std::size_t size, std::uint8_t size_class) { Store(addr, size, size_class); }
  // Rewrites the owner of [addr, addr + size) (a span of class `size_class`).
  void SetOwner(std::uintptr_t addr, std::size_t size, int size_class, std::uint32_t owner) {
    Store(addr, size, static_cast<SliceEntry>(size_class) | (owner << kOwnerShift));
  }
  // Replaces the entry of the slice of `addr` when it still is `expected`.
  bool CasEntry(std::uintptr_t addr, SliceEntry expected, SliceEntry desired) {
    SliceCell* cells = Flat();
    if (cells == nullptr) return radix_.Cas(addr, expected, desired);
    auto want = static_cast<SliceCell>(expected);
    if (want != expected) return false;
    return std::atomic_ref<SliceCell>(cells[addr >> kSliceShift])
        .compare_exchange_strong(want, static_cast<SliceCell>(desired), std::memory_order_acq_rel);
  }
  // Bytes of map memory in use: the flat array's pages that cover ensured
  // slices, or the radix map's leaves.
  std::size_t metadata_bytes() const {
    return flat_bytes_.load(std::memory_order_relaxed) + radix_.metadata_bytes();
  }
  // True when lookups use the flat array (false before the first Ensure
  // and in the fallback form).
  bool flat() const { return Flat() != nullptr; }
  // The flat array's addresses, [begin, end) (both 0 without it): strata's
  // own metadata, which a scan of memory for pointers skips (reading its
  // untouched pages would only map zero pages; valgrind reports the
  // mapping as part of [heap]).
  std::uintptr_t flat_begin() const { return reinterpret_cast<std::uintptr_t>(Flat()); }
  std::uintptr_t flat_end() const { return Flat() != nullptr ? flat_begin() + kFlatBytes : 0; }

 private:
  static constexpr std::size_t kFlatPages = kFlatBytes / 4096;
  // The flat array's bound in slices: 0 until the array is reserved, then
  // kSlices for the process's life; the base is stored before it, once.
  // Read with a plain load outside ThreadSanitizer builds, so that the
  // fast path's compare takes it straight from memory (one instruction; an
  // atomic load, or a compiler fence after it, costs a register move). The
  // one store happens while the first segment is made, at the process's
  // first allocation: before any block exists, hence before any valid
  // pointer reaches a lookup, and in practice before a second thread
  // exists. (Only a garbage pointer freed by another thread during that
  // first allocation could see the bound without the base.)
  STRATA_ALWAYS_INLINE bool InFlat(std::uintptr_t key) const {
#if defined(STRATA_TSAN)
    return key < std::atomic_ref<const std::uintptr_t>(flat_limit_).load(std::memory_order_acquire);
#else
    return key < flat_limit_;
#endif
  }
  SliceCell* Flat() const { return InFlat(0) ? flat_base_ : nullptr; }
  void Store(std::uintptr_t addr, std::size_t size, SliceEntry value) {
    SliceCell* cells = Flat();
    if (cells == nullptr) {
      radix_.Set(addr, size, value);
      return;
    }
    const std::uintptr_t first = addr >> kSliceShift;
    const std::uintptr_t last = (addr + size - 1) >> kSliceShift;
    for (std::uintptr_t k = first; k <= last; ++k) {
      std::atomic_ref<SliceCell>(cells[k]).store(static_cast<SliceCell>(value), std::memory_order_release);
    }
  }

  SliceCell* flat_base_ = nullptr;
  std::uintptr_t flat_limit_ = 0;
  // The OS refused the flat array: the radix map serves for good. Written
  // and read under the callers' lock (Ensure).
  bool radix_chosen_ = false;
  std::atomic<std::size_t> flat_bytes_{0};
  // One bit per 4 KiB page of the flat array: set once a slice it covers
  // was ensured (for metadata_bytes).
  std::atomic<std::uint64_t> flat_pages_[kFlatPages / 64] = {};
  RadixMap<std::uint32_t, kSliceShift, 16> radix_;
};
// One pointer per segment: 2^25 chunks, 2^12 root entries, 64 KiB leaves.
using SegmentMap = RadixMap<Segment*, kSegmentShift, 13>;

extern constinit ClassMap g_class_map;
extern constinit SegmentMap g_segment_map;

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_PAGE_MAP_H_
