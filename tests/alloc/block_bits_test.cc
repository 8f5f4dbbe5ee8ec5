// The block bitmap across a span's lives (alloc/internal/span.h): a small
// span goes back to the page heap with the bits over its objects clear,
// and slices reused by another size class carry no stale bit (a stale bit
// would make a legitimate free look like a double free).
#include <cstdint>
#include <map>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/errors.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "alloc/strata.h"

namespace strata {
namespace {

using internal::BlockInfo;
using internal::LookupBlock;

int g_errors = 0;
void CountError(internal::ErrorKind, const void*, std::size_t, const char*) { ++g_errors; }

struct SpanRange {
  internal::Segment* segment;
  std::uintptr_t start;
  std::size_t bytes;
};

// Allocates `spans` spans' worth of `size`-byte blocks; returns the blocks
// and the spans they came from.
std::vector<void*> AllocateSpans(std::size_t size, int spans, std::map<std::uintptr_t, SpanRange>* ranges) {
  const int per_span = static_cast<int>(internal::ClassInfo(internal::SizeToClass(size)).objects);
  std::vector<void*> blocks;
  for (int i = 0; i < spans * per_span; ++i) {
    void* p = Allocate(size);
    EXPECT_NE(p, nullptr);
    blocks.push_back(p);
    const BlockInfo info = LookupBlock(reinterpret_cast<std::uintptr_t>(p));
    EXPECT_EQ(info.kind, internal::BlockKind::kSmall);
    (*ranges)[info.span->start()] = SpanRange{info.segment, info.span->start(), info.span->bytes()};
  }
  return blocks;
}

int SetBitsOver(const SpanRange& r) {
  int set = 0;
  const std::size_t first = (r.start - r.segment->base()) >> internal::kGranuleShift;
  const std::size_t granules = r.bytes >> internal::kGranuleShift;
  for (std::size_t w = first / 64; w < (first + granules) / 64; ++w) {
    set += __builtin_popcountll(r.segment->block_bits[w].load(std::memory_order_relaxed));
  }
  return set;
}

TEST(BlockBitsTest, ASpanReturnsToThePageHeapWithClearBits) {
  std::map<std::uintptr_t, SpanRange> ranges;
  std::thread([&] {
    std::vector<void*> blocks = AllocateSpans(48, 3, &ranges);
    for (void* p : blocks) Free(p);
    // Every block back to its span, every span back to the page heap.
    ReleaseMemory();
  }).join();
  ASSERT_GE(ranges.size(), 3u);
  for (const auto& [start, r] : ranges) {
    const BlockInfo info = LookupBlock(start);
    EXPECT_NE(info.kind, internal::BlockKind::kSmall) << "span at " << start << " still small";
    EXPECT_EQ(SetBitsOver(r), 0) << "span at " << start << " went back with block bits set";
  }
}

TEST(BlockBitsTest, SlicesReusedByAnotherClassReportNoDoubleFree) {
  internal::ErrorHook previous = internal::SetErrorHook(&CountError);
  g_errors = 0;
  std::thread([] {
    for (std::size_t size : {48, 80, 112, 160, 48, 208}) {
      std::map<std::uintptr_t, SpanRange> ranges;
      std::vector<void*> blocks = AllocateSpans(size, 4, &ranges);
      for (void* p : blocks) Free(p);
      // The flush and drain bring each block back to its span, where a set
      // bit is taken for a double free.
      ReleaseMemory();
    }
  }).join();
  EXPECT_EQ(g_errors, 0) << "a block freed once was reported";
  internal::SetErrorHook(previous);
}

}  // namespace
}  // namespace strata
