// tests/alloc/realloc_in_place_test.cc: Reallocate grows large and huge
// blocks in place when the space after them is free, keeps every byte,
// accounts the growth, and moves the block when the space is taken.
// Hardened mode (--config=hardened) moves instead (its blocks carry
// canaries sized to the request): there only the contents are checked.
#include <cstdint>
#include <cstring>

#include <gtest/gtest.h>

#include "alloc/internal/hardening.h"
#include "alloc/stats.h"
#include "alloc/strata.h"

namespace strata {
namespace {

constexpr std::size_t kKiB = 1024;
constexpr std::size_t kMiB = 1024 * kKiB;

void Fill(void* p, std::size_t n, unsigned seed) {
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < n; i += 4096) b[i] = static_cast<unsigned char>(seed + i / 4096);
  b[n - 1] = static_cast<unsigned char>(seed ^ 0x5a);
}

bool Check(const void* p, std::size_t n, unsigned seed) {
  const auto* b = static_cast<const unsigned char*>(p);
  for (std::size_t i = 0; i < n; i += 4096) {
    if (b[i] != static_cast<unsigned char>(seed + i / 4096)) return false;
  }
  return b[n - 1] == static_cast<unsigned char>(seed ^ 0x5a);
}

// A huge block's mapping is whole 4 MiB chunks: growing within them never
// moves the block.
TEST(ReallocInPlace, HugeBlockGrowsWithinItsChunks) {
  ReleaseMemory();
  const std::size_t first = 5 * kMiB;  // mapping: 8 MiB
  void* p = Allocate(first);
  ASSERT_NE(p, nullptr);
  Fill(p, first, 3);
  const Stats before = GetStats();
  void* q = Reallocate(p, 7 * kMiB);
  ASSERT_NE(q, nullptr);
  if (!internal::Hardened()) ASSERT_EQ(q, p);
  EXPECT_TRUE(Check(q, first, 3));
  EXPECT_GE(UsableSize(q), 7 * kMiB);
  // The growth is counted: live large bytes grow by about 2 MiB.
  const Stats after = GetStats();
  EXPECT_GE(after.large_live_bytes, before.large_live_bytes + 2 * kMiB - 64 * kKiB);
  std::memset(static_cast<char*>(q) + first, 0x77, 2 * kMiB);
  Free(q);
}

// A large block (a span in a segment) grows into the free span after it.
TEST(ReallocInPlace, LargeBlockGrowsIntoFreeNeighbour) {
  ReleaseMemory();
  // Two neighbours in a fresh segment; freeing the second leaves free
  // space right after the first.
  void* a = Allocate(512 * kKiB);
  void* b = Allocate(512 * kKiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Fill(a, 512 * kKiB, 9);
  const bool adjacent = static_cast<char*>(a) + 512 * kKiB == static_cast<char*>(b);
  Free(b);
  void* c = Reallocate(a, 900 * kKiB);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(Check(c, 512 * kKiB, 9));
  if (adjacent && !internal::Hardened()) EXPECT_EQ(c, a) << "the free neighbour was not used";
  EXPECT_GE(UsableSize(c), 900 * kKiB);
  std::memset(static_cast<char*>(c) + 512 * kKiB, 1, 388 * kKiB);
  Free(c);
}

// When the space after the block is in use, the block moves and keeps its
// contents; the neighbour is untouched.
TEST(ReallocInPlace, MovesWhenTheNeighbourIsLive) {
  ReleaseMemory();
  void* a = Allocate(512 * kKiB);
  void* b = Allocate(512 * kKiB);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  Fill(a, 512 * kKiB, 1);
  Fill(b, 512 * kKiB, 2);
  void* c = Reallocate(a, 2 * kMiB);
  ASSERT_NE(c, nullptr);
  EXPECT_TRUE(Check(c, 512 * kKiB, 1));
  EXPECT_TRUE(Check(b, 512 * kKiB, 2));
  std::memset(static_cast<char*>(c) + 512 * kKiB, 3, 1536 * kKiB);
  EXPECT_TRUE(Check(b, 512 * kKiB, 2));
  Free(c);
  Free(b);
}

// A growth loop (the realloc_growth pattern) keeps its data at every step,
// from a small block through large spans to huge mappings, and leaves no
// live bytes behind.
TEST(ReallocInPlace, GrowthLoopKeepsData) {
  ReleaseMemory();
  const Stats base = GetStats();
  std::size_t n = 100 * kKiB;
  auto* p = static_cast<unsigned char*>(Allocate(n));
  ASSERT_NE(p, nullptr);
  for (std::size_t i = 0; i < n; ++i) p[i] = static_cast<unsigned char>(i * 7);
  while (n < 24 * kMiB) {
    std::size_t next = n + n / 2;
    auto* q = static_cast<unsigned char*>(Reallocate(p, next));
    ASSERT_NE(q, nullptr);
    for (std::size_t i = 0; i < n; i += 997) ASSERT_EQ(q[i], static_cast<unsigned char>(i * 7)) << n;
    ASSERT_EQ(q[n - 1], static_cast<unsigned char>((n - 1) * 7));
    for (std::size_t i = n; i < next; ++i) q[i] = static_cast<unsigned char>(i * 7);
    p = q;
    n = next;
  }
  Free(p);
  FlushThreadCache();
  EXPECT_EQ(GetStats().live_bytes, base.live_bytes);
}

}  // namespace
}  // namespace strata
