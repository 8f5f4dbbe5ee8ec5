// alloc/internal/size_classes.h: the size-class table.
//
// Classes: 16..128 in steps of 16 (8 classes), then 8 classes per power of
// two (steps of 1/8 of the lower power) up to kMaxSmallSize = 256 KiB.
// Class 0 is reserved ("not a small block"). Properties, checked below by
// static_asserts over every size:
//   - every class size is a multiple of 16 (16-byte alignment of blocks);
//   - internal waste is at most 12.5% of the request above 128 bytes;
//   - power-of-two classes up to 64 KiB are naturally aligned because spans
//     start on 64 KiB boundaries and blocks sit at multiples of the size;
//   - SizeToClass is monotonic and ClassSize(SizeToClass(n)) >= n.
// Each class also names its span length (in 64 KiB slices) and the batch
// of objects moved between a thread cache and the central pool.
//
// Thread-safety: constants only.
#ifndef STRATA_ALLOC_INTERNAL_SIZE_CLASSES_H_
#define STRATA_ALLOC_INTERNAL_SIZE_CLASSES_H_

#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"

namespace strata::internal {

// Memory layout constants. A slice is the page-heap unit; a segment is the
// unit reserved from the OS and registered in the page maps.
inline constexpr int kSliceShift = 16;                    // 64 KiB slices
inline constexpr std::size_t kSliceSize = std::size_t{1} << kSliceShift;
inline constexpr int kSegmentShift = 22;                  // 4 MiB segments
inline constexpr std::size_t kSegmentSize = std::size_t{1} << kSegmentShift;
inline constexpr int kSlicesPerSegment = 1 << (kSegmentShift - kSliceShift);

inline constexpr std::size_t kMaxSmallSize = 256 * 1024;
inline constexpr int kNumClasses = 1 + 8 + 8 * 11;       // 97, class 0 unused
inline constexpr std::size_t kSmallLookupMax = 1024;

// Objects moved per batch between cache and central pool: at most 64 KiB
// worth (kBatchBytes) and at least 2; 32 objects for classes of 512 bytes
// and more, and for the smaller classes as many as fill kSmallBatchBytes
// (up to kMaxBatch: 256 objects of 16-64 bytes, 128 of 128 bytes, 64 of
// 256 bytes). A batch that moves between threads costs a few cross-core
// line transfers of its own whatever its size (the transfer stack's two
// heads, on each side, and CASes that contend there); 32 objects of 64
// bytes left those fixed costs a third of a producer/consumer hand-off's
// allocator time, and 128 still half of the transfer stack's (bench/
// RESULTS.md, "Bigger batches for small classes" and "Prefetching the
// next block").
inline constexpr std::size_t kBatchBytes = 64 * 1024;
inline constexpr std::size_t kSmallBatchBytes = 16 * 1024;
inline constexpr int kBatchObjects = 32;
inline constexpr int kMaxBatch = 256;
// Every span holds at least this many objects, so that a span can serve at
// least one batch on its own (big classes use multi-slice spans).
inline constexpr int kMinObjectsPerSpan = 4;
// Classes above this size take the shortest span that wastes at most 1/8
// (often a single object) and move one object per batch: a long-lived
// object then pins only its own pages, not those of three free neighbours.
inline constexpr std::size_t kFewObjectsAbove = 32 * 1024;

struct SizeClassInfo {
  std::uint32_t size;        // block size in bytes
  std::uint16_t batch;       // objects per batch
  std::uint8_t span_slices;  // span length in slices
  std::uint32_t objects;     // objects per span
};

namespace size_class_detail {

constexpr std::uint32_t ComputeClassSize(int cls) {
  if (cls <= 8) return static_cast<std::uint32_t>(cls * 16);
  int k = cls - 9;                 // 0..87
  int lg = 7 + k / 8;              // doubling 2^lg .. 2^(lg+1)
  int j = k % 8 + 1;               // 1..8
  return (1u << lg) + static_cast<std::uint32_t>(j) * (1u << (lg - 3));
}

constexpr SizeClassInfo ComputeInfo(int cls) {
  if (cls == 0) return {0, 0, 0, 0};
  std::uint32_t size = ComputeClassSize(cls);
  std::size_t batch = kBatchBytes / size;
  if (batch > kBatchObjects) batch = kBatchObjects;
  if (kSmallBatchBytes / size > batch) batch = kSmallBatchBytes / size;
  if (batch > kMaxBatch) batch = kMaxBatch;
  const int min_objects = size > kFewObjectsAbove ? 1 : kMinObjectsPerSpan;
  if (batch < 2) batch = size > kFewObjectsAbove ? 1 : 2;
  // Smallest span that holds min_objects objects with at most 1/8 of the
  // span lost to the tail.
  int slices = 1;
  for (; slices < kSlicesPerSegment / 2; ++slices) {
    std::size_t bytes = static_cast<std::size_t>(slices) * kSliceSize;
    std::size_t n = bytes / size;
    if (n >= static_cast<std::size_t>(min_objects) && (bytes - n * size) * 8 <= bytes) break;
  }
  std::uint32_t objects = static_cast<std::uint32_t>(slices * kSliceSize / size);
  return {size, static_cast<std::uint16_t>(batch), static_cast<std::uint8_t>(slices), objects};
}

}  // namespace size_class_detail

// The class of every request size up to kSmallLookupMax, indexed by the
// size itself (1 KiB: no rounding step on the fast path). A struct, so
// that a copy can live elsewhere (thread_cache.h keeps one per thread).
struct SmallClassLookup {
  std::uint8_t cls[kSmallLookupMax + 1];
};

namespace size_class_detail {

struct Table {
  SizeClassInfo info[kNumClasses];
  SmallClassLookup small;
};

constexpr Table ComputeTable() {
  Table t{};
  for (int c = 0; c < kNumClasses; ++c) t.info[c] = ComputeInfo(c);
  for (std::size_t n = 0; n <= kSmallLookupMax; ++n) {
    int c = 1;
    while (t.info[c].size < n) ++c;
    t.small.cls[n] = static_cast<std::uint8_t>(c);
  }
  return t;
}

}  // namespace size_class_detail

inline constexpr size_class_detail::Table kSizeClassTable = size_class_detail::ComputeTable();

constexpr std::size_t ClassSize(int cls) { return kSizeClassTable.info[cls].size; }
constexpr const SizeClassInfo& ClassInfo(int cls) { return kSizeClassTable.info[cls]; }

// Size class of a request of `size` bytes; requires size <= kMaxSmallSize.
STRATA_ALWAYS_INLINE constexpr int SizeToClass(std::size_t size) {
  if (STRATA_PREDICT_TRUE(size <= kSmallLookupMax)) return kSizeClassTable.small.cls[size];
  std::size_t m = size - 1;
  int lg = 63 - __builtin_clzll(m);
  return (lg - 7) * 8 + 1 + static_cast<int>(m >> (lg - 3));
}


// The smallest class at least `size` bytes whose blocks are `alignment`
// aligned, 0 if none. Blocks sit at multiples of the class size from a
// 64 KiB-aligned span start, so a class size that is a multiple of the
// alignment gives aligned blocks. One table lookup (aligned allocation is
// on a fast path: posix_memalign, aligned new): for each class and each
// power-of-two alignment up to a slice, the first class from it upward
// whose size is a multiple of the alignment.
namespace size_class_detail {
inline constexpr int kMaxAlignShift = kSliceShift;  // alignments up to 64 KiB
struct AlignedTable {
  std::uint8_t cls[kNumClasses][kMaxAlignShift + 1];
};
constexpr AlignedTable ComputeAlignedTable() {
  AlignedTable t{};
  for (int c = 1; c < kNumClasses; ++c) {
    for (int a = 0; a <= kMaxAlignShift; ++a) {
      const std::size_t alignment = std::size_t{1} << a;
      int found = 0;
      for (int k = c; k < kNumClasses; ++k) {
        if (kSizeClassTable.info[k].size % alignment == 0) {
          found = k;
          break;
        }
      }
      t.cls[c][a] = static_cast<std::uint8_t>(found);
    }
  }
  return t;
}
}  // namespace size_class_detail
inline constexpr size_class_detail::AlignedTable kAlignedClassTable = size_class_detail::ComputeAlignedTable();

// `alignment` must be a power of two.
STRATA_ALWAYS_INLINE constexpr int AlignedClass(std::size_t size, std::size_t alignment) {
  std::size_t n = size < alignment ? alignment : size;
  if (n > kMaxSmallSize || alignment > kSliceSize) return 0;
  return kAlignedClassTable.cls[SizeToClass(n)][__builtin_ctzll(alignment)];
}

// Division by a class size without a divide instruction (slow paths that
// map an address to its block index: lookups, checks): for offsets below
// 2^22 (a span is at most 32 slices = 2 MiB) and sizes up to 2^18,
// (offset * m) >> 40 with m = floor(2^40 / size) + 1 is exact: the error
// term offset * (m - 2^40/size) / 2^40 < 2^-18 stays below 1/size.
namespace size_class_detail {
struct DivTable {
  std::uint64_t magic[kNumClasses];
};
constexpr DivTable ComputeDivTable() {
  DivTable t{};
  for (int c = 1; c < kNumClasses; ++c) t.magic[c] = (std::uint64_t{1} << 40) / kSizeClassTable.info[c].size + 1;
  return t;
}
}  // namespace size_class_detail
inline constexpr size_class_detail::DivTable kDivTable = size_class_detail::ComputeDivTable();

// offset / ClassSize(size_class), for offset < 2^22.
STRATA_ALWAYS_INLINE constexpr std::uint64_t BlockIndex(std::uint64_t offset, int size_class) {
  return (offset * kDivTable.magic[size_class]) >> 40;
}

namespace size_class_detail {
constexpr bool CheckBlockIndex() {
  for (int c = 1; c < kNumClasses; ++c) {
    std::uint64_t size = kSizeClassTable.info[c].size;
    std::uint64_t span = std::uint64_t{kSizeClassTable.info[c].span_slices} << kSliceShift;
    // Every block boundary and the byte before it, over the whole span.
    for (std::uint64_t i = 1; i * size < span + size; ++i) {
      if (BlockIndex(i * size, c) != i || BlockIndex(i * size - 1, c) != i - 1) return false;
    }
  }
  return true;
}
}  // namespace size_class_detail
static_assert(size_class_detail::CheckBlockIndex(), "BlockIndex must be exact");

// Sized free (normal mode): FreeSized(p, n) on a block of class c accepts
// n in [low, low + width] = [range[c].low, ClassSize(c)]: every size that
// maps to c, plus the sizes an in-place Reallocate may leave in the
// block (it keeps a block when shrinking by less than half). One entry of
// 8 bytes per class, one subtraction and one compare.
namespace size_class_detail {
struct SizedFreeRange {
  std::uint32_t low;
  std::uint32_t width;  // ClassSize(c) - low
};
struct SizedFreeTable {
  SizedFreeRange range[kNumClasses];
};
constexpr SizedFreeTable ComputeSizedFreeTable() {
  SizedFreeTable t{};
  for (int c = 1; c < kNumClasses; ++c) {
    std::uint32_t size = kSizeClassTable.info[c].size;
    std::uint32_t prev = c == 1 ? 0 : kSizeClassTable.info[c - 1].size + 1;
    std::uint32_t half = (size + 1) / 2;
    const std::uint32_t low = c == 1 ? 0 : (prev < half ? prev : half);
    t.range[c] = {low, size - low};
  }
  return t;
}
}  // namespace size_class_detail

inline constexpr size_class_detail::SizedFreeTable kSizedFreeTable =
    size_class_detail::ComputeSizedFreeTable();

STRATA_ALWAYS_INLINE constexpr bool SizedFreeMatches(int size_class, std::size_t size) {
  const size_class_detail::SizedFreeRange r = kSizedFreeTable.range[static_cast<std::uint32_t>(size_class)];
  return size - r.low <= r.width;
}

// Reallocate keeps a small block of class `size_class` in place for a new
// size of `new_size` (<= kMaxSmallSize or not) when the size still maps to
// the class, or the block shrinks by less than half (copying to a smaller
// class would save little). The realloc fast path and strata::Reallocate
// share this rule.
STRATA_ALWAYS_INLINE constexpr bool SmallBlockKeepsPlace(int size_class, std::size_t new_size) {
  const std::size_t size = ClassSize(size_class);
  return new_size <= size && (new_size >= size / 2 || SizeToClass(new_size) == size_class);
}

// Normal mode's acceptance of an over-aligned free of a small block: the
// block at `addr` has class `size_class`, `alignment` (a power of two above
// 16) divides both the address and the class size (so the class is one an
// aligned allocation could have picked for it), and a claimed size, when
// the caller passes one, maps to this very class at this alignment. A free
// that fails the test is not necessarily wrong: it takes the slow path,
// which decides and reports.
STRATA_ALWAYS_INLINE constexpr bool AlignedFreeMatches(int size_class, std::uintptr_t addr, std::size_t alignment) {
  return ((addr | ClassSize(size_class)) & (alignment - 1)) == 0;
}
STRATA_ALWAYS_INLINE constexpr bool AlignedSizedFreeMatches(int size_class, std::uintptr_t addr, std::size_t size,
                                                            std::size_t alignment) {
  return AlignedFreeMatches(size_class, addr, alignment) && AlignedClass(size, alignment) == size_class;
}

namespace size_class_detail {

constexpr bool CheckAllSizes() {
  int prev = 1;
  for (std::size_t n = 0; n <= kMaxSmallSize; ++n) {
    int c = SizeToClass(n);
    if (c < 1 || c >= kNumClasses) return false;
    std::size_t s = ClassSize(c);
    if (s < n) return false;                       // round trip
    if (c > 1 && ClassSize(c - 1) >= n && n > 0) return false;  // tightest class
    if (c < prev) return false;                    // monotonic
    if (n > 128 && (s - n) * 8 > n) return false;  // waste <= 12.5%
    prev = c;
  }
  return true;
}

constexpr bool CheckClasses() {
  for (int c = 1; c < kNumClasses; ++c) {
    const SizeClassInfo& i = ClassInfo(c);
    if (i.size % 16 != 0) return false;
    if (c > 1 && i.size <= ClassInfo(c - 1).size) return false;
    if (i.objects < (i.size > kFewObjectsAbove ? 1u : static_cast<std::uint32_t>(kMinObjectsPerSpan)) || i.objects > 4096) return false;
    if (i.batch < 1 || i.batch > i.objects || (i.batch < 2 && i.size <= kFewObjectsAbove)) return false;
  }
  return ClassInfo(kNumClasses - 1).size == kMaxSmallSize;
}

}  // namespace size_class_detail

static_assert(size_class_detail::CheckClasses(), "size class table is inconsistent");

// Spans of the tracked pools (sampled or leak-checked blocks, handed out one
// at a time): the fewest slices that hold one object, not the class's
// packing-efficient span. A sampled block's span is pinned while the block
// lives, among the normal spans of the page heap; a class's 5-slice span
// there (to hold six 53 KiB objects with little tail) breaks up free runs
// that normal spans need, and a one-slice span fits the holes they leave.
struct TrackedSpanInfo {
  std::uint8_t slices;
  std::uint32_t objects;
};

namespace size_class_detail {
struct TrackedTable {
  TrackedSpanInfo info[kNumClasses];
};
constexpr TrackedTable ComputeTrackedTable() {
  TrackedTable t{};
  for (int c = 1; c < kNumClasses; ++c) {
    const std::size_t size = kSizeClassTable.info[c].size;
    const std::size_t slices = (size + kSliceSize - 1) / kSliceSize;
    t.info[c] = {static_cast<std::uint8_t>(slices), static_cast<std::uint32_t>(slices * kSliceSize / size)};
  }
  return t;
}
constexpr bool CheckTrackedTable(const TrackedTable& t) {
  for (int c = 1; c < kNumClasses; ++c) {
    if (t.info[c].objects < 1 || t.info[c].slices > kSizeClassTable.info[c].span_slices) return false;
  }
  return true;
}
}  // namespace size_class_detail
inline constexpr size_class_detail::TrackedTable kTrackedSpanTable = size_class_detail::ComputeTrackedTable();
static_assert(size_class_detail::CheckTrackedTable(kTrackedSpanTable), "tracked span table is inconsistent");

// Slices and objects of a span of class `size_class` (tracked: of a
// tracked pool).
STRATA_ALWAYS_INLINE constexpr std::uint32_t SpanSlices(int size_class, bool tracked) {
  return tracked ? kTrackedSpanTable.info[size_class].slices : kSizeClassTable.info[size_class].span_slices;
}
STRATA_ALWAYS_INLINE constexpr std::uint32_t SpanObjects(int size_class, bool tracked) {
  return tracked ? kTrackedSpanTable.info[size_class].objects : kSizeClassTable.info[size_class].objects;
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_SIZE_CLASSES_H_
