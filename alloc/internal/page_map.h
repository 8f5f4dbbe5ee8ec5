// alloc/internal/page_map.h: address -> allocator metadata, in O(1).
//
// Two radix maps, both two levels deep over the 47-bit user address space,
// with leaves mapped on demand from the OS (zero pages cost nothing until
// written):
//   - ClassMap: one 32-bit entry per 64 KiB slice: the size class of the
//     small span covering it in the low 8 bits (0 for anything else: large
//     span, free, not ours) and, above them, the slice's owner: the owner
//     slot (remote_free.h) of the thread its objects were last handed to,
//     0 for none. The free fast path reads the entry with two dependent
//     loads and learns both the class and whether the block is the calling
//     thread's (one XOR with the thread's tag, thread_cache.h); the entry
//     doubles as the "is this pointer ours" check: a pointer strata never
//     returned has class 0 and leaves through the slow path. The owner is a
//     routing hint, never a correctness condition: any thread may hold any
//     free object of a class.
//   - SegmentMap: one pointer per 4 MiB chunk: the Segment that covers it,
//     nullptr when strata does not own the chunk. Used on slow paths.
// Why radix maps rather than masking the pointer to find a segment header:
// masking reads memory at an address derived from an arbitrary pointer, so
// an invalid free would fault or read garbage; the maps turn it into a
// clean error, and interior pointers of huge blocks still resolve.
//
// Thread-safety: lookups are lock-free (relaxed/acquire loads). Leaves are
// installed with a CAS and never freed. Classes are written only by the
// page heap under its lock, for memory no other thread can be using: a
// slice's class is set before its objects are published and cleared after
// the last one came back. Owners are rewritten while the span is in use (by
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
using SliceEntry = std::uint32_t;
inline constexpr int kOwnerShift = 8;
inline constexpr SliceEntry kClassMask = (SliceEntry{1} << kOwnerShift) - 1;
STRATA_ALWAYS_INLINE constexpr int EntryClass(SliceEntry e) { return static_cast<int>(e & kClassMask); }
STRATA_ALWAYS_INLINE constexpr std::uint32_t EntryOwner(SliceEntry e) { return e >> kOwnerShift; }

// One entry per slice: 2^31 slices, 2^15 root entries, 256 KiB leaves
// (zero pages until a slice of theirs is used: 4 KiB covers 64 MiB).
class ClassMap {
 public:
  constexpr ClassMap() = default;
  // The size class of the small span covering `addr` (0: none).
  STRATA_ALWAYS_INLINE int Get(std::uintptr_t addr) const { return EntryClass(map_.Get(addr)); }
  // Class and owner in one load.
  STRATA_ALWAYS_INLINE SliceEntry GetEntry(std::uintptr_t addr) const { return map_.Get(addr); }
  bool Ensure(std::uintptr_t addr, std::size_t size) { return map_.Ensure(addr, size); }
  // Sets the class of [addr, addr + size), with no owner.
  void Set(std::uintptr_t addr, std::size_t size, std::uint8_t size_class) { map_.Set(addr, size, size_class); }
  // Rewrites the owner of [addr, addr + size) (a span of class `size_class`).
  void SetOwner(std::uintptr_t addr, std::size_t size, int size_class, std::uint32_t owner) {
    map_.Set(addr, size, static_cast<SliceEntry>(size_class) | (owner << kOwnerShift));
  }
  // Replaces the entry of the slice of `addr` when it still is `expected`.
  bool CasEntry(std::uintptr_t addr, SliceEntry expected, SliceEntry desired) { return map_.Cas(addr, expected, desired); }
  std::size_t metadata_bytes() const { return map_.metadata_bytes(); }

 private:
  RadixMap<SliceEntry, kSliceShift, 16> map_;
};
// One pointer per segment: 2^25 chunks, 2^12 root entries, 64 KiB leaves.
using SegmentMap = RadixMap<Segment*, kSegmentShift, 13>;

extern constinit ClassMap g_class_map;
extern constinit SegmentMap g_segment_map;

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_PAGE_MAP_H_
