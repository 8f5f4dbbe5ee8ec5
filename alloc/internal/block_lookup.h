// alloc/internal/block_lookup.h: what block, if any, an address falls in.
//
// Contract: LookupBlock(addr) classifies any address (also garbage) without
// faulting: it only reads the page maps and the metadata of segments strata
// owns. For an address inside a block it returns the block's start and
// usable size; whether that block is currently allocated is not known here
// (the thread caches and central pools do not mark free objects), which is
// why the callers that need liveness (the leak checker) pair it with their
// own record of live blocks. (Hardened mode keeps liveness of small blocks
// in the block bitmap, span.h.)
//
// Thread-safety: lock-free reads. The result describes a snapshot: a span
// may be freed and reused concurrently unless the caller owns the block.
#ifndef STRATA_ALLOC_INTERNAL_BLOCK_LOOKUP_H_
#define STRATA_ALLOC_INTERNAL_BLOCK_LOOKUP_H_

#include <cstddef>
#include <cstdint>

#include "alloc/internal/span.h"

namespace strata::internal {

enum class BlockKind : std::uint8_t {
  kNone,         // not in memory strata hands out
  kSmall,        // a block of a size class (cached pools)
  kTrackedSmall, // a block of a size class from a tracked pool
  kLarge,        // a page run in a normal segment
  kHuge,         // a block with its own mapping
};

struct BlockInfo {
  BlockKind kind;
  int size_class;        // small kinds
  std::uintptr_t start;  // start of the block containing addr
  std::size_t usable;    // usable bytes from start
  Segment* segment;
  Span* span;            // nullptr for huge blocks
  // kNone only: the address lies in memory strata manages that is free
  // right now (a free span, a cached huge block): a free of it is a double
  // free (or a free of a pointer into freed memory).
  bool freed;
};

BlockInfo LookupBlock(std::uintptr_t addr);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_BLOCK_LOOKUP_H_
