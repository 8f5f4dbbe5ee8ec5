#include "alloc/internal/block_lookup.h"

#include <atomic>

#include "alloc/internal/page_map.h"

namespace strata::internal {

BlockInfo LookupBlock(std::uintptr_t addr) {
  BlockInfo info{BlockKind::kNone, 0, 0, 0, nullptr, nullptr, false};
  Segment* seg = g_segment_map.Get(addr);
  if (seg == nullptr) return info;
  info.segment = seg;
  if (seg->kind == SegmentKind::kHuge) {
    if (!std::atomic_ref<bool>(seg->huge_live).load(std::memory_order_relaxed)) {
      info.freed = addr >= seg->huge_ptr;
      return info;
    }
    if (addr < seg->huge_ptr) return info;
    info.kind = BlockKind::kHuge;
    info.start = seg->huge_ptr;
    info.usable = seg->huge_usable;
    return info;
  }
  if (addr - seg->base() < kSliceSize) return info;  // the segment header
  Span* span = seg->SpanOf(addr);
  info.span = span;
  switch (span->state) {
    case SpanState::kSmall: {
      int c = span->size_class;
      std::size_t size = ClassSize(c);
      std::uintptr_t offset = addr - span->start();
      std::uintptr_t index = BlockIndex(offset, c);
      if (index >= SpanObjects(c, span->tracked)) return info;  // the span's tail
      info.kind = span->tracked ? BlockKind::kTrackedSmall : BlockKind::kSmall;
      info.size_class = c;
      info.start = span->start() + index * size;
      info.usable = size;
      return info;
    }
    case SpanState::kLarge:
      if (addr < span->large_ptr) return info;
      info.kind = BlockKind::kLarge;
      info.start = span->large_ptr;
      info.usable = span->start() + span->bytes() - span->large_ptr;
      return info;
    case SpanState::kFree:
      info.freed = true;
      return info;
    default:
      return info;
  }
}

}  // namespace strata::internal
