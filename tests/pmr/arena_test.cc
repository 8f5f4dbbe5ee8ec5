// tests/pmr/arena_test.cc: strata::pmr::MonotonicArena and
// ConcurrentMonotonicArena.
#include <algorithm>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory_resource>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "alloc/pmr.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace {

using strata::pmr::ArenaOptions;
using strata::pmr::ConcurrentMonotonicArena;
using strata::pmr::MonotonicArena;

bool IsAligned(const void* p, std::size_t alignment) {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

template <typename Arena>
class ArenaTest : public ::testing::Test {};
using ArenaTypes = ::testing::Types<MonotonicArena, ConcurrentMonotonicArena>;
TYPED_TEST_SUITE(ArenaTest, ArenaTypes);

TYPED_TEST(ArenaTest, BumpsThroughAChunk) {
  TypeParam arena;
  char* a = static_cast<char*>(arena.allocate(10, 1));
  char* b = static_cast<char*>(arena.allocate(10, 1));
  EXPECT_EQ(b, a + 10);
  void* c = arena.allocate(0, 1);
  void* d = arena.allocate(0, 1);
  EXPECT_NE(c, d);             // even zero-size requests get distinct pointers
  arena.deallocate(a, 10, 1);  // a no-op
  char* e = static_cast<char*>(arena.allocate(4, 1));
  EXPECT_NE(e, a);
  EXPECT_EQ(arena.stats().chunks, 1u);
}

TYPED_TEST(ArenaTest, HonoursEverySizeAndPowerOfTwoAlignment) {
  TypeParam arena;
  struct Block {
    unsigned char* p;
    std::size_t size;
    unsigned char tag;
  };
  std::vector<Block> blocks;
  unsigned char tag = 1;
  for (int round = 0; round < 3; ++round) {
    for (std::size_t alignment = 1; alignment <= (std::size_t{1} << 16); alignment <<= 1) {
      for (std::size_t size : {std::size_t{1}, std::size_t{3}, std::size_t{48}, std::size_t{1000},
                               std::size_t{70000}}) {
        auto* p = static_cast<unsigned char*>(arena.allocate(size, alignment));
        ASSERT_TRUE(IsAligned(p, alignment)) << size << " @ " << alignment;
        std::memset(p, tag, size);
        blocks.push_back({p, size, tag});
        tag = static_cast<unsigned char>(tag % 250 + 1);
      }
    }
  }
  // No block overlaps another: every byte still holds its tag.
  for (const Block& b : blocks) {
    for (std::size_t i = 0; i < b.size; ++i) ASSERT_EQ(b.p[i], b.tag);
  }
}

TYPED_TEST(ArenaTest, ChunksGrowGeometrically) {
  TypeParam arena(ArenaOptions{.initial_chunk_size = 1024, .max_chunk_size = 16384});
  for (int i = 0; i < 2000; ++i) arena.allocate(64, 8);  // 128000 bytes
  const strata::pmr::ArenaStats s = arena.stats();
  // 1 + 2 + 4 + 8 + 16 + 16 ... KiB: far fewer chunks than with a fixed size.
  EXPECT_GE(s.chunk_bytes, 128000u);
  EXPECT_LE(s.chunks, 13u);
  EXPECT_GE(s.allocated_bytes, 128000u);
}

TYPED_TEST(ArenaTest, LargeRequestGetsItsOwnChunk) {
  TypeParam arena(ArenaOptions{.initial_chunk_size = 4096});
  char* small = static_cast<char*>(arena.allocate(16, 16));
  void* big = arena.allocate(1 << 20, 64);
  EXPECT_TRUE(IsAligned(big, 64));
  std::memset(big, 1, 1 << 20);
  char* small2 = static_cast<char*>(arena.allocate(16, 16));
  EXPECT_EQ(small2, small + 16);  // the bump chunk was kept
  EXPECT_EQ(arena.stats().chunks, 2u);
}

TYPED_TEST(ArenaTest, ResetFreesEverything) {
  const std::int64_t engine_before = strata::GetStats().live_bytes;
  TypeParam arena;
  for (int i = 0; i < 10000; ++i) (void)arena.allocate(static_cast<std::size_t>(1 + i % 300), 8);
  (void)arena.allocate(5 << 20, 4096);
  EXPECT_GT(arena.stats().chunks, 1u);
  arena.Reset();
  EXPECT_EQ(arena.stats().chunks, 0u);
  EXPECT_EQ(arena.stats().chunk_bytes, 0u);
  EXPECT_EQ(arena.stats().allocated_bytes, 0u);
  strata::FlushThreadCache();
  EXPECT_EQ(strata::GetStats().live_bytes, engine_before);
  // Usable after Reset.
  void* p = arena.allocate(100, 8);
  std::memset(p, 0, 100);
}

TYPED_TEST(ArenaTest, InitialBufferIsUsedFirst) {
  alignas(64) static unsigned char buffer[8192];
  TypeParam arena(buffer, sizeof(buffer));
  auto in_buffer = [&](void* p) {
    return static_cast<unsigned char*>(p) >= buffer &&
           static_cast<unsigned char*>(p) < buffer + sizeof(buffer);
  };
  void* a = arena.allocate(1000, 8);
  EXPECT_TRUE(in_buffer(a));
  EXPECT_EQ(arena.stats().chunks, 0u);
  for (int i = 0; i < 20; ++i) (void)arena.allocate(1000, 8);
  EXPECT_GE(arena.stats().chunks, 1u);  // spilled into engine chunks
  arena.Reset();
  void* b = arena.allocate(1000, 8);
  EXPECT_TRUE(in_buffer(b));  // back to the buffer after Reset
}

TYPED_TEST(ArenaTest, IsEqualIsIdentity) {
  TypeParam a;
  TypeParam b;
  EXPECT_TRUE(a.is_equal(a));
  EXPECT_FALSE(a.is_equal(b));
}

TYPED_TEST(ArenaTest, ThrowsOnImpossibleRequests) {
  TypeParam arena;
  EXPECT_THROW((void)arena.allocate(SIZE_MAX - 16, 8), std::bad_alloc);
  EXPECT_THROW((void)arena.allocate(std::size_t{1} << 62, 8), std::bad_alloc);
  void* p = arena.allocate(8, 8);  // unaffected
  EXPECT_NE(p, nullptr);
}

TYPED_TEST(ArenaTest, PmrContainers) {
  TypeParam arena;
  std::pmr::vector<std::pmr::string> v(&arena);
  std::pmr::map<int, std::pmr::string> m(&arena);
  std::pmr::unordered_map<int, int> u(&arena);
  for (int i = 0; i < 5000; ++i) {
    v.emplace_back(std::string(40, static_cast<char>('a' + i % 26)));
    m.emplace(i, v.back());
    u[i] = i * 3;
  }
  for (int i = 0; i < 5000; ++i) {
    ASSERT_EQ(m[i][0], static_cast<char>('a' + i % 26));
    ASSERT_EQ(u[i], i * 3);
  }
}

TEST(ConcurrentMonotonicArenaTest, ManyThreadsNeverOverlap) {
  ConcurrentMonotonicArena arena(ArenaOptions{.initial_chunk_size = 4096});
  constexpr int kThreads = 8;
  constexpr int kBlocks = 4000;
  struct Block {
    std::uint32_t* p;
    std::uint32_t words;
  };
  std::vector<std::vector<Block>> blocks(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBlocks; ++i) {
        const std::uint32_t words = 1 + static_cast<std::uint32_t>((i * 7 + t) % 64);
        const std::size_t alignment = std::size_t{4} << ((i + t) % 6);
        auto* p = static_cast<std::uint32_t*>(arena.allocate(words * 4, alignment));
        ASSERT_TRUE(IsAligned(p, alignment));
        const std::uint32_t tag = static_cast<std::uint32_t>(t * kBlocks + i);
        for (std::uint32_t w = 0; w < words; ++w) p[w] = tag;
        blocks[t].push_back({p, words});
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    for (int i = 0; i < kBlocks; ++i) {
      const Block& b = blocks[t][i];
      const std::uint32_t tag = static_cast<std::uint32_t>(t * kBlocks + i);
      for (std::uint32_t w = 0; w < b.words; ++w) ASSERT_EQ(b.p[w], tag);
    }
  }
  EXPECT_GT(arena.stats().chunks, 1u);
}

TEST(ConcurrentMonotonicArenaTest, SharedPmrContainersPerThread) {
  ConcurrentMonotonicArena arena;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&arena, t] {
      std::pmr::vector<int> v(&arena);
      std::pmr::map<int, std::pmr::string> m(&arena);
      for (int i = 0; i < 2000; ++i) {
        v.push_back(i + t);
        m.emplace(i, std::pmr::string(24, static_cast<char>('a' + t), &arena));
      }
      for (int i = 0; i < 2000; ++i) {
        ASSERT_EQ(v[i], i + t);
        ASSERT_EQ(m[i][23], static_cast<char>('a' + t));
      }
    });
  }
  for (auto& th : threads) th.join();
  arena.Reset();
  EXPECT_EQ(arena.stats().chunks, 0u);
}

TEST(MonotonicArenaTest, CountsAllocatedBytesExactly) {
  MonotonicArena arena;
  (void)arena.allocate(10, 1);
  (void)arena.allocate(20, 8);
  (void)arena.allocate(5000, 16);
  EXPECT_EQ(arena.stats().allocated_bytes, 5030u);
}

}  // namespace
