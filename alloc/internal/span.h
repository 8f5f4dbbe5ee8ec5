// alloc/internal/span.h: the vocabulary of the page heap.
//
//   segment  4 MiB, 4 MiB-aligned, reserved from the OS by the arena. Slice 0
//            holds the Segment header; slices 1..63 are handed out as spans.
//            A huge segment instead holds one block larger than a normal
//            segment can (its header also sits in its first slice).
//   slice    64 KiB, the page-heap unit.
//   span     a run of slices in one segment, described by the Span record of
//            its first slice. A span is free (in the page heap), small
//            (carved into objects of one size class, owned by that class's
//            central pool) or large (one block of more than kMaxSmallSize).
//
// Thread-safety: a free span belongs to the page heap (its lock); a small
// span's object bookkeeping belongs to its class's central pool (its lock);
// a large span belongs to the user until freed. `slice_head` entries are
// written under the page heap lock and read by the owner of a span's
// objects, who cannot race with their rewriting (the span is in use).
#ifndef STRATA_ALLOC_INTERNAL_SPAN_H_
#define STRATA_ALLOC_INTERNAL_SPAN_H_

#include <cstddef>
#include <cstdint>

#include "alloc/internal/size_classes.h"

namespace strata::internal {

// A free object's first word while it sits in a cache or pool.
struct FreeObject {
  FreeObject* next;  // next object in a list or batch
};

enum class SpanState : std::uint8_t { kUnused = 0, kFree, kSmall, kLarge };

struct Segment;

struct Span {
  // Intrusive list links (page heap free lists, central partial lists).
  Span* next;
  Span* prev;
  Segment* segment;
  std::uint16_t first_slice;
  std::uint16_t num_slices;
  SpanState state;
  std::uint8_t size_class;
  bool committed;   // some pages may be committed (not decommitted)
  bool zeroed;      // every byte is known to be zero (fresh or decommitted)
  bool in_partial;  // on its central pool's partial list
  bool tracked;     // small: from a tracked pool; large: recorded by hooks
  // Small spans (central pool lock):
  std::uint32_t allocated;  // objects outside the span (caches and users)
  std::uint32_t carved;     // objects ever carved from the bump region
  FreeObject* free_list;    // objects returned to the span
  // Large spans: requested size and the user pointer (it may be offset from
  // the span start by an alignment).
  std::size_t large_size;
  std::uintptr_t large_ptr;
  // Free spans: when the span became free (ns, monotonic), for decay.
  std::uint64_t free_since_ns;

  std::uintptr_t start() const;
  std::size_t bytes() const { return static_cast<std::size_t>(num_slices) << kSliceShift; }
};

enum class SegmentKind : std::uint32_t { kNormal = 1, kHuge = 2 };

struct Segment {
  SegmentKind kind;
  // Huge segments: the mapping and the block in it.
  std::size_t mapping_size;
  std::uintptr_t huge_ptr;
  std::size_t huge_size;        // requested size
  std::size_t huge_usable;      // bytes usable from huge_ptr
  bool tracked;                 // recorded by the tracking hooks
  std::uint64_t free_since_ns;  // while cached for reuse
  Segment* next_cached;
  // Normal segments: slice -> index of the first slice of its span.
  std::uint8_t slice_head[kSlicesPerSegment];
  Span spans[kSlicesPerSegment];

  std::uintptr_t base() const { return reinterpret_cast<std::uintptr_t>(this); }
  Span* SpanOf(std::uintptr_t addr) {
    std::size_t slice = (addr - base()) >> kSliceShift;
    return &spans[slice_head[slice]];
  }
};

static_assert(sizeof(Segment) <= kSliceSize, "segment header must fit in slice 0");

inline std::uintptr_t Span::start() const {
  return reinterpret_cast<std::uintptr_t>(segment) +
         (static_cast<std::uintptr_t>(first_slice) << kSliceShift);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_SPAN_H_
