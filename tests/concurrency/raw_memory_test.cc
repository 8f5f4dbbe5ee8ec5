// Tests for concurrency/base/raw_memory.h.
#include "concurrency/base/raw_memory.h"

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "tests/concurrency/test_util.h"

namespace strata {
namespace {

static_assert(std::is_trivially_destructible_v<RawRecordArena>);
constinit RawRecordArena g_test_arena;  // must compile: constinit

bool AllZero(const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  return std::all_of(b, b + n, [](unsigned char c) { return c == 0; });
}

TEST(RawMapTest, ReturnsZeroedPageAlignedWritableMemory) {
  const std::size_t page = RawPageSize();
  EXPECT_EQ(page & (page - 1), 0u);
  void* p = RawMap(3 * page + 1);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % page, 0u);
  EXPECT_TRUE(AllZero(p, 3 * page + 1));
  std::memset(p, 0xab, 4 * page);  // rounded up to whole pages
  RawUnmap(p, 3 * page + 1);
}

TEST(RawMapTest, ZeroBytesAndFailureReturnNull) {
  EXPECT_EQ(RawMap(0), nullptr);
  // More than the address space: mmap fails, RawMap reports nullptr (not
  // MAP_FAILED).
  EXPECT_EQ(RawMap(std::size_t{1} << 62), nullptr);
  RawUnmap(nullptr, 4096);  // no-op
}

TEST(RawRecordArenaTest, HonoursAlignmentAndZeroes) {
  RawRecordArena arena;
  EXPECT_EQ(arena.BytesMapped(), 0u);
  for (std::size_t align : {1, 2, 8, 16, 64, 128, 256, 4096}) {
    for (std::size_t size : {1, 7, 24, 100, 1000}) {
      void* p = arena.Allocate(size, align);
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << align;
      EXPECT_TRUE(AllZero(p, size));
      std::memset(p, 0xff, size);
    }
  }
  EXPECT_EQ(arena.Allocate(0, 8), nullptr);
  EXPECT_GE(arena.BytesMapped(), RawRecordArena::kChunkBytes);
}

TEST(RawRecordArenaTest, RecordsDoNotOverlapAndChunksRollOver) {
  RawRecordArena arena;
  std::vector<std::pair<std::uintptr_t, std::size_t>> ranges;
  // ~5 chunks' worth of odd-sized records.
  std::size_t total = 0;
  for (int i = 0; total < 5 * RawRecordArena::kChunkBytes; ++i) {
    std::size_t size = 40 + (i * 37) % 300;
    void* p = arena.Allocate(size, 8);
    ASSERT_NE(p, nullptr);
    ranges.emplace_back(reinterpret_cast<std::uintptr_t>(p), size);
    total += size;
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i) {
    EXPECT_LE(ranges[i - 1].first + ranges[i - 1].second, ranges[i].first);
  }
  EXPECT_GE(arena.BytesMapped(), 5 * RawRecordArena::kChunkBytes);
}

TEST(RawRecordArenaTest, LargeRequestsGetTheirOwnMapping) {
  RawRecordArena arena;
  const std::size_t big = RawRecordArena::kChunkBytes * 2 + 5;
  void* p = arena.Allocate(big, 64);
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(AllZero(p, big));
  std::memset(p, 1, big);
  EXPECT_GE(arena.BytesMapped(), big);
  void* small = g_test_arena.Allocate(16, 16);
  EXPECT_NE(small, nullptr);
}

// Many threads allocate concurrently; each writes its id into its records
// and checks them afterwards: an overlap (two threads handed the same
// bytes) shows up as a foreign id.
TEST(RawRecordArenaTest, ConcurrentAllocationsAreDisjoint) {
  constexpr int kThreads = 8;
  const int per_thread = static_cast<int>(testing::Scaled(20000));
  RawRecordArena arena;
  std::atomic<int> corrupt{0};
  testing::StartGate gate;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::uint32_t*> mine;
      mine.reserve(per_thread);
      gate.Wait();
      for (int i = 0; i < per_thread; ++i) {
        const std::size_t words = 2 + (i % 13);
        auto* p = static_cast<std::uint32_t*>(arena.Allocate(words * 4, 8));
        if (p == nullptr) {
          corrupt.fetch_add(1);
          return;
        }
        if (!AllZero(p, words * 4)) corrupt.fetch_add(1);
        p[0] = static_cast<std::uint32_t>(words);
        for (std::size_t w = 1; w < words; ++w) p[w] = static_cast<std::uint32_t>(t);
        mine.push_back(p);
      }
      for (std::uint32_t* p : mine) {
        for (std::size_t w = 1; w < p[0]; ++w) {
          if (p[w] != static_cast<std::uint32_t>(t)) corrupt.fetch_add(1);
        }
      }
    });
  }
  gate.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(corrupt.load(), 0);
}

TEST(RawRecordArenaTest, GlobalArenaIsUsable) {
  void* p = GlobalRecordArena().Allocate(64, 64);
  ASSERT_NE(p, nullptr);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 64, 0u);
  EXPECT_GT(GlobalRecordArena().BytesMapped(), 0u);
}

}  // namespace
}  // namespace strata
