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
// Free-list links: a free object's first word links it into a thread cache
// list, a batch or a span's free list. In hardened mode (hardening.h) the
// link is stored encoded, XORed with a per-process secret and the address
// of the word holding it, so that an overwrite by a use-after-free or an
// overflow decodes to garbage that the pops detect; GetNext/SetNext hide
// the encoding. The fast paths (thread_cache.h) read and write the raw word:
// they only run when hardened mode is off, when the key is 0 and the
// encoding is the identity.
//
// Block bitmap: one bit per 16-byte granule of a normal segment, for the
// granule where a small block starts (so no division is needed to index
// it). Its meaning depends on the mode, fixed at process init:
//   normal mode:   "the block came back to its span" (central pool tier
//                  2), maintained under the pool's lock: the set bits are
//                  the span's free objects (there is no list), handed out
//                  again in address order; a block that comes back to the
//                  span while its bit is set was freed twice (detected at
//                  flush time).
//   hardened mode: "the block is allocated to the user", set and cleared
//                  with atomic RMWs on every allocation and free; a free of
//                  a block whose bit is clear is a double free (detected at
//                  once, from any thread).
// A span's bits are cleared by its central pool when its objects all come
// back, before it returns to the page heap (only the words over its
// objects: a tracked span of one block clears one word); the page heap
// hands spans out with clear bits.
//
// Thread-safety: a free span belongs to the page heap (its lock); a small
// span's object bookkeeping belongs to its class's central pool (its lock);
// a large span belongs to the user until freed. `slice_head` entries are
// written under the page heap lock and read by the owner of a span's
// objects, who cannot race with their rewriting (the span is in use).
#ifndef STRATA_ALLOC_INTERNAL_SPAN_H_
#define STRATA_ALLOC_INTERNAL_SPAN_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/size_classes.h"

namespace strata::internal {

// A free object's first word while it sits in a cache or pool.
struct FreeObject {
  FreeObject* next;  // next object in a list or batch (raw or encoded)
};

// The link key: 0 (identity encoding) unless hardened mode is on; set once
// at process init, before any free list exists.
extern constinit std::uintptr_t g_link_key;

STRATA_ALWAYS_INLINE std::uintptr_t LinkMask(const FreeObject* slot) {
  // Mixing in the slot address makes an encoded word valid at one address
  // only; rotating it keeps the secret's low bits in play for 16-byte
  // aligned slots.
  std::uintptr_t a = reinterpret_cast<std::uintptr_t>(slot);
  return g_link_key ^ ((a << 17) | (a >> 47));
}
// The raw link word. memcpy, not a member access: a misaligned pointer a
// user wrongly freed may sit in a list until a flush detects it, and the
// access must not be undefined meanwhile (same instruction on x86-64).
STRATA_ALWAYS_INLINE FreeObject* LoadLink(const void* o) {
  FreeObject* next;
  __builtin_memcpy(&next, o, sizeof(next));
  return next;
}
STRATA_ALWAYS_INLINE void StoreLink(void* o, FreeObject* next) { __builtin_memcpy(o, &next, sizeof(next)); }

STRATA_ALWAYS_INLINE FreeObject* GetNext(const FreeObject* o) {
  if (STRATA_PREDICT_TRUE(g_link_key == 0)) return LoadLink(o);
  return reinterpret_cast<FreeObject*>(reinterpret_cast<std::uintptr_t>(LoadLink(o)) ^ LinkMask(o));
}
STRATA_ALWAYS_INLINE void SetNext(FreeObject* o, FreeObject* next) {
  if (STRATA_PREDICT_TRUE(g_link_key == 0)) {
    StoreLink(o, next);
    return;
  }
  StoreLink(o, reinterpret_cast<FreeObject*>(reinterpret_cast<std::uintptr_t>(next) ^ LinkMask(o)));
}

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
  // Large spans, hardened mode: the allocation kind (AllocKind) and the
  // requested alignment (log2, 0 for <= 16).
  std::uint8_t alloc_kind;
  std::uint8_t align_log2;
  // Large spans, hardened mode: the alignment the allocation named
  // (hardening.h AlignCode: 0 for none; 16 or less is recorded too).
  std::uint8_t align_code;
  // Small spans, normal mode (central pool lock): the first position, in
  // the span's scan order over its part of the block bitmap (starting at
  // its colour's word, central_pool.cc ScanWord), whose word may hold a set
  // bit (a returned object); RemoveFromSpans scans from there.
  std::uint16_t scan_word;
  // Small spans (central pool lock):
  std::uint32_t allocated;  // objects outside the span (caches and users)
  std::uint32_t carved;     // objects ever carved from the bump region
  // The object the carving starts at (its colour): carving takes objects
  // carve_start, carve_start+1, ... and wraps to 0, so the k-th object
  // carved is object (carve_start + k) mod objects. Objects keep their
  // places (object i at i * size); only the order they are first handed
  // out in rotates. See CentralPool::Colour.
  std::uint32_t carve_start;
  // The owner slot (remote_free.h) whose thread objects were last handed
  // to from this span (0: none), mirrored in the class map's entries for
  // the span's slices. A routing hint for frees, see page_map.h.
  std::uint32_t owner;
  FreeObject* free_list;    // hardened mode: objects returned to the span
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

inline constexpr int kGranuleShift = 4;  // 16 bytes, the minimum alignment
inline constexpr std::size_t kBitmapWords = (kSegmentSize >> kGranuleShift) / 64;

struct Segment {
  SegmentKind kind;
  // Huge segments: the mapping and the block in it.
  std::size_t mapping_size;
  std::uintptr_t huge_ptr;
  std::size_t huge_size;        // requested size
  std::size_t huge_usable;      // bytes usable from huge_ptr
  bool tracked;                 // recorded by the tracking hooks
  // Huge segments: allocated to the user (false while cached for reuse;
  // written under the page heap lock, read lock-free by LookupBlock).
  bool huge_live;
  // Huge segments: the block lives in whole free segments of the arena's
  // regions, lent by the page heap when the OS refused a mapping (address
  // space exhausted, e.g. RLIMIT_AS); they go back to the page heap when
  // the block is freed, never cached, merged or unmapped.
  bool borrowed;
  std::uint8_t alloc_kind;      // hardened mode: AllocKind of the block
  std::uint8_t align_log2;      // requested alignment (log2, 0 for <= 16)
  std::uint8_t align_code;      // hardened mode: AlignCode of the alignment named
  std::uint64_t free_since_ns;  // while cached for reuse
  // Huge segments: bytes of the mapping counted as committed (what blocks
  // used of it; the chunk-rounded rest is address space only).
  std::size_t committed_in;
  Segment* next_cached;
  // Normal segments: slice -> index of the first slice of its span.
  std::uint8_t slice_head[kSlicesPerSegment];
  Span spans[kSlicesPerSegment];
  // Normal segments: the block bitmap (see the header comment). Its pages
  // are only touched when blocks come back to spans (normal mode) or on
  // every operation (hardened mode).
  std::atomic<std::uint64_t> block_bits[kBitmapWords];

  std::uintptr_t base() const { return reinterpret_cast<std::uintptr_t>(this); }
  Span* SpanOf(std::uintptr_t addr) {
    std::size_t slice = (addr - base()) >> kSliceShift;
    return &spans[slice_head[slice]];
  }
  // The bitmap word and bit of the block starting at `addr`.
  std::atomic<std::uint64_t>& BitWord(std::uintptr_t addr) {
    return block_bits[((addr - base()) >> kGranuleShift) / 64];
  }
  static std::uint64_t BitMask(std::uintptr_t addr) {
    return std::uint64_t{1} << (((addr >> kGranuleShift)) % 64);
  }
};

// Bytes of the header that normal mode touches (the bitmap's pages stay
// untouched until a block comes back to a span).
inline constexpr std::size_t kSegmentHeaderBytes = offsetof(Segment, block_bits);

static_assert(sizeof(Segment) <= kSliceSize, "segment header must fit in slice 0");

inline std::uintptr_t Span::start() const {
  return reinterpret_cast<std::uintptr_t>(segment) +
         (static_cast<std::uintptr_t>(first_slice) << kSliceShift);
}

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_SPAN_H_
