// tests/fuzz/page_heap_fuzz.cc: the page heap (bump arena of segments, span
// free lists, huge mappings, decay) driven by random sequences of large and
// huge allocations at random alignments, small spans, frees, purges and
// releases, on a page heap of its own. Checked: blocks are aligned, do not
// overlap, are described exactly by LookupBlock, memory said to be zeroed
// reads zero; small spans are registered in the class map and unregistered
// when freed; a second free of a block is refused; the heap's live-bytes
// counter matches the model; everything freed leaves no live bytes.
#include <cstdint>
#include <cstring>
#include <iterator>
#include <map>
#include <vector>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/page_heap.h"
#include "alloc/internal/page_map.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using namespace strata::internal;

constinit PageHeap g_heap;

struct Live {
  std::uintptr_t start;
  std::size_t usable;
  bool small;
  Span* span;
  Segment* segment;
};

constexpr std::size_t kMaxLiveBytes = std::size_t{384} << 20;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  strata::fuzz::Input in(data, size);
  std::vector<Live> live;
  std::map<std::uintptr_t, std::size_t> ranges;
  std::size_t live_bytes = 0, large_bytes = 0;
  g_heap.set_decay_ns(in.Byte() % 2 == 0 ? 0 : 1'000'000'000);
  const std::size_t large_before = g_heap.Stats().large_live_bytes;
  auto add_range = [&](std::uintptr_t start, std::size_t n) {
    auto next = ranges.lower_bound(start);
    if (next != ranges.end()) FUZZ_CHECK(next->first >= start + n);
    if (next != ranges.begin()) FUZZ_CHECK(std::prev(next)->first + std::prev(next)->second <= start);
    ranges[start] = n;
  };
  for (int op = 0; op < 300 && !in.empty(); ++op) {
    switch (in.Byte() % 6) {
      case 0:
      case 1: {
        if (live_bytes > kMaxLiveBytes) break;
        std::size_t n = kMaxSmallSize + 1 + in.Take<std::uint32_t>() % (std::size_t{24} << 20);
        std::size_t align = in.Byte() % 3 == 0 ? std::size_t{1} << (4 + in.Below(21)) : 16;
        bool zeroed = false;
        void* p = g_heap.AllocLarge(n, align, &zeroed);
        FUZZ_CHECK(p != nullptr);
        auto addr = reinterpret_cast<std::uintptr_t>(p);
        FUZZ_CHECK(addr % align == 0 && addr % kSliceSize == 0);
        BlockInfo info = LookupBlock(addr);
        FUZZ_CHECK(info.kind == BlockKind::kLarge || info.kind == BlockKind::kHuge);
        FUZZ_CHECK(info.start == addr && info.usable >= n);
        FUZZ_CHECK(LookupBlock(addr + n - 1).start == addr);  // interior resolves
        auto* b = static_cast<unsigned char*>(p);
        if (zeroed) FUZZ_CHECK(b[0] == 0 && b[n - 1] == 0 && b[n / 2] == 0);
        b[0] = b[n - 1] = 1;
        add_range(addr, info.usable);
        live.push_back({addr, info.usable, false, info.span, info.segment});
        live_bytes += info.usable;
        large_bytes += info.kind == BlockKind::kHuge ? info.segment->huge_usable : info.span->bytes();
        break;
      }
      case 2: {
        int c = 1 + static_cast<int>(in.Below(kNumClasses - 1));
        Span* span = g_heap.AllocSmallSpan(c, false);
        FUZZ_CHECK(span != nullptr);
        std::uintptr_t start = span->start();
        FUZZ_CHECK(start % kSliceSize == 0 && span->state == SpanState::kSmall && span->size_class == c);
        for (std::size_t off = 0; off < span->bytes(); off += kSliceSize) FUZZ_CHECK(g_class_map.Get(start + off) == c);
        add_range(start, span->bytes());
        live.push_back({start, span->bytes(), true, span, span->segment});
        live_bytes += span->bytes();
        break;
      }
      case 3:
      case 4: {
        if (live.empty()) break;
        std::size_t j = in.Below(static_cast<std::uint32_t>(live.size()));
        Live l = live[j];
        live[j] = live.back();
        live.pop_back();
        ranges.erase(l.start);
        live_bytes -= l.usable;
        if (l.small) {
          g_heap.FreeSmallSpan(l.span);
          FUZZ_CHECK(g_class_map.Get(l.start) == 0);
        } else {
          BlockInfo info = LookupBlock(l.start);
          FUZZ_CHECK(info.start == l.start);
          large_bytes -= info.kind == BlockKind::kHuge ? info.segment->huge_usable : info.span->bytes();
          bool huge = info.kind == BlockKind::kHuge;
          FUZZ_CHECK(g_heap.FreeLarge(info.segment, info.span));
          // A second free of a span is refused (a freed huge block's header
          // may already be unmapped: not touched again).
          if (!huge) FUZZ_CHECK(!g_heap.FreeLarge(info.segment, info.span));
          BlockInfo after = LookupBlock(l.start);
          FUZZ_CHECK(after.kind == BlockKind::kNone || after.start != l.start);
        }
        break;
      }
      default:
        if (in.Byte() % 2 == 0) {
          g_heap.ReleaseAll();
        } else {
          g_heap.MaybePurge();
        }
        break;
    }
    FUZZ_CHECK(g_heap.Stats().large_live_bytes == large_before + large_bytes);
  }
  for (const Live& l : live) {
    if (l.small) {
      g_heap.FreeSmallSpan(l.span);
    } else {
      BlockInfo info = LookupBlock(l.start);
      FUZZ_CHECK(g_heap.FreeLarge(info.segment, info.span));
    }
  }
  g_heap.ReleaseAll();
  FUZZ_CHECK(g_heap.Stats().large_live_bytes == large_before);
  return 0;
}
