// tests/profile/scratch_arena_test.cc: ScratchArena and ArenaVector.
#include "alloc/profile/scratch_arena.h"

#include <cstdint>
#include <cstring>

#include "gtest/gtest.h"

namespace strata::profile {
namespace {

bool AllZero(const void* p, std::size_t n) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; ++i) {
    if (b[i] != 0) return false;
  }
  return true;
}

TEST(ScratchArenaTest, AllocationsAreAlignedZeroedAndDisjoint) {
  ScratchArena arena;
  char* prev_end = nullptr;
  for (std::size_t align : {1, 2, 8, 16, 64, 4096}) {
    for (std::size_t size : {0, 1, 7, 100, 5000}) {
      auto* p = static_cast<char*>(arena.Allocate(size, align));
      ASSERT_NE(p, nullptr);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u);
      EXPECT_TRUE(AllZero(p, size));
      std::memset(p, 0xab, size);
      if (prev_end != nullptr && arena.chunk_count() == 1) {
        EXPECT_GE(p, prev_end);
      }
      prev_end = p + size;
    }
  }
  EXPECT_GT(arena.bytes_used(), 0u);
  EXPECT_GE(arena.bytes_reserved(), arena.bytes_used());
}

TEST(ScratchArenaTest, RejectsBadAlignment) {
  ScratchArena arena;
  EXPECT_EQ(arena.Allocate(8, 3), nullptr);
  EXPECT_EQ(arena.Allocate(8, 0), nullptr);
  EXPECT_EQ(arena.Allocate(8, std::size_t{1} << 20), nullptr);
}

TEST(ScratchArenaTest, HugeRequestFailsCleanly) {
  ScratchArena arena;
  EXPECT_EQ(arena.Allocate(SIZE_MAX - 8), nullptr);
  EXPECT_EQ(arena.AllocateArray<std::uint64_t>(SIZE_MAX / 4), nullptr);
  // Still usable afterwards.
  EXPECT_NE(arena.Allocate(64), nullptr);
}

TEST(ScratchArenaTest, GrowsInChunksAndLargeRequestsGetTheirOwn) {
  ScratchArena arena;
  ASSERT_NE(arena.Allocate(100), nullptr);
  EXPECT_EQ(arena.chunk_count(), 1u);
  const std::size_t big = ScratchArena::kMaxChunkBytes * 2;
  auto* p = static_cast<char*>(arena.Allocate(big));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(AllZero(p, 4096));
  p[big - 1] = 1;  // the whole block is mapped
  EXPECT_EQ(arena.chunk_count(), 2u);
  EXPECT_GE(arena.bytes_reserved(), big);
}

TEST(ScratchArenaTest, ReallocateExtendsInPlaceWhenNewest) {
  ScratchArena arena;
  auto* p = static_cast<char*>(arena.Allocate(64));
  std::memset(p, 7, 64);
  auto* q = static_cast<char*>(arena.Reallocate(p, 64, 4096));
  EXPECT_EQ(p, q);
  EXPECT_TRUE(AllZero(q + 64, 4096 - 64));
  EXPECT_EQ(q[63], 7);
  // Not the newest block any more: moves and copies.
  ASSERT_NE(arena.Allocate(16), nullptr);
  auto* r = static_cast<char*>(arena.Reallocate(q, 4096, 8192));
  ASSERT_NE(r, nullptr);
  EXPECT_NE(r, q);
  EXPECT_EQ(r[0], 7);
  EXPECT_EQ(r[63], 7);
  EXPECT_TRUE(AllZero(r + 64, 8192 - 64));
  // Shrinking returns the block unchanged.
  EXPECT_EQ(arena.Reallocate(r, 8192, 10), r);
}

TEST(ScratchArenaTest, ReleaseUnmapsAndArenaIsReusable) {
  ScratchArena arena;
  for (int i = 0; i < 100; ++i) ASSERT_NE(arena.Allocate(100000), nullptr);
  EXPECT_GT(arena.chunk_count(), 1u);
  arena.Release();
  EXPECT_EQ(arena.chunk_count(), 0u);
  EXPECT_EQ(arena.bytes_reserved(), 0u);
  auto* p = static_cast<char*>(arena.Allocate(32));
  ASSERT_NE(p, nullptr);
  EXPECT_TRUE(AllZero(p, 32));
}

TEST(ArenaVectorTest, PushAppendResize) {
  ScratchArena arena;
  ArenaVector<std::uint64_t> v(&arena);
  EXPECT_TRUE(v.empty());
  for (std::uint64_t i = 0; i < 100000; ++i) ASSERT_TRUE(v.PushBack(i * 3));
  ASSERT_EQ(v.size(), 100000u);
  for (std::uint64_t i = 0; i < v.size(); ++i) ASSERT_EQ(v[i], i * 3);
  const std::uint64_t extra[3] = {1, 2, 3};
  ASSERT_TRUE(v.Append(extra, 3));
  EXPECT_EQ(v[100002], 3u);
  ASSERT_TRUE(v.Resize(10));
  ASSERT_TRUE(v.Resize(20));  // regrown elements are zero
  for (std::size_t i = 10; i < 20; ++i) EXPECT_EQ(v[i], 0u);
  EXPECT_EQ(v[9], 27u);
}

TEST(ArenaVectorTest, TwoVectorsInterleavedKeepTheirData) {
  ScratchArena arena;
  ArenaVector<int> a(&arena);
  ArenaVector<int> b(&arena);
  for (int i = 0; i < 50000; ++i) {
    ASSERT_TRUE(a.PushBack(i));
    ASSERT_TRUE(b.PushBack(-i));
  }
  for (int i = 0; i < 50000; ++i) {
    ASSERT_EQ(a[static_cast<std::size_t>(i)], i);
    ASSERT_EQ(b[static_cast<std::size_t>(i)], -i);
  }
}

}  // namespace
}  // namespace strata::profile
