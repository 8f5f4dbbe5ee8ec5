// tests/pool/buffer_pool_test.cc: strata::BufferPool.
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <thread>
#include <utility>
#include <vector>

#include "alloc/pool.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace {

using strata::BufferPool;

TEST(BufferPoolTest, PicksTheSmallestFittingTier) {
  BufferPool pool;
  ASSERT_EQ(pool.tier_sizes().size(), 3u);
  BufferPool::Buffer a = pool.Get(100);
  EXPECT_EQ(a.size(), 100u);
  EXPECT_EQ(a.capacity(), 1024u);
  EXPECT_TRUE(a.pooled());
  EXPECT_EQ(pool.Get(1024).capacity(), 1024u);
  EXPECT_EQ(pool.Get(1025).capacity(), 64u << 10);
  EXPECT_EQ(pool.Get(64 << 10).capacity(), 64u << 10);
  EXPECT_EQ(pool.Get((64 << 10) + 1).capacity(), 1u << 20);
  EXPECT_EQ(pool.Get(0).capacity(), 1024u);
  BufferPool::Buffer big = pool.Get(3 << 20);
  EXPECT_FALSE(big.pooled());
  EXPECT_EQ(big.capacity(), 3u << 20);
  std::memset(big.data(), 7, big.size());
  EXPECT_EQ(pool.GetStats().oversize, 1u);
}

TEST(BufferPoolTest, ReusesCapacity) {
  BufferPool pool;
  std::byte* first;
  {
    BufferPool::Buffer b = pool.Get(500);
    first = b.data();
    std::memset(b.data(), 1, b.size());
  }
  BufferPool::Buffer again = pool.Get(900);
  EXPECT_EQ(again.data(), first);
  EXPECT_EQ(again.size(), 900u);
  const BufferPool::Stats s = pool.GetStats();
  EXPECT_EQ(s.hits, 1u);
  EXPECT_EQ(s.misses, 1u);
  EXPECT_EQ(s.tiers[0].hits, 1u);
  EXPECT_EQ(s.tiers[0].puts, 1u);
}

TEST(BufferPoolTest, ExplicitPutResizeAndMove) {
  BufferPool pool;
  BufferPool::Buffer a = pool.Get(10);
  EXPECT_TRUE(a.Resize(1024));
  EXPECT_FALSE(a.Resize(1025));
  EXPECT_EQ(a.size(), 1024u);
  EXPECT_EQ(a.bytes().size(), 1024u);
  BufferPool::Buffer b = std::move(a);
  EXPECT_EQ(a.data(), nullptr);
  EXPECT_EQ(b.size(), 1024u);
  pool.Put(std::move(b));
  EXPECT_EQ(b.data(), nullptr);
  EXPECT_EQ(pool.GetStats().tiers[0].puts, 1u);
}

TEST(BufferPoolTest, ConfigurableTiers) {
  BufferPool pool(BufferPool::Options{.tier_sizes = {4096, 0, 256, 4096, 1 << 16}});
  ASSERT_EQ(pool.tier_sizes().size(), 3u);
  EXPECT_EQ(pool.tier_sizes()[0], 256u);
  EXPECT_EQ(pool.tier_sizes()[1], 4096u);
  EXPECT_EQ(pool.Get(200).capacity(), 256u);
  EXPECT_EQ(pool.Get(300).capacity(), 4096u);
  EXPECT_FALSE(pool.Get((1 << 16) + 1).pooled());
}

TEST(BufferPoolTest, EachTierIsBounded) {
  const std::int64_t engine_before = strata::GetStats().live_bytes;
  {
    BufferPool pool(BufferPool::Options{.max_per_tier = 2, .per_thread = 1});
    std::vector<BufferPool::Buffer> held;
    for (int i = 0; i < 20; ++i) held.push_back(pool.Get(64 << 10));
    held.clear();  // returns 20 buffers: 1 + 2 are kept, the rest freed
    const BufferPool::Stats s = pool.GetStats();
    EXPECT_EQ(s.tiers[1].puts, 20u);
    EXPECT_GE(s.tiers[1].drops, 17u);
    EXPECT_LE(s.tiers[1].shared, 2u);
  }
  // Everything went back to the engine except this thread's small cache
  // record for the dead pool's tiers (freed at thread exit).
  strata::FlushThreadCache();
  EXPECT_LE(strata::GetStats().live_bytes, engine_before + 4096);
}

TEST(BufferPoolTest, EightThreads) {
  BufferPool pool;
  constexpr int kThreads = 8;
  std::atomic<int> corrupt{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<BufferPool::Buffer> held;
      for (int i = 0; i < 3000; ++i) {
        const std::size_t sizes[] = {16, 1000, 5000, 60000, 200000, 2 << 20};
        const std::size_t n = sizes[(i * 7 + t) % 6];
        BufferPool::Buffer b = pool.Get(n);
        const auto tag = static_cast<std::byte>(t * 16 + i % 16);
        std::memset(b.data(), static_cast<int>(tag), std::min<std::size_t>(n, 256));
        held.push_back(std::move(b));
        if (held.size() > 3) {
          for (auto& h : held) {
            const std::byte expect = h.data()[0];
            for (std::size_t k = 0; k < std::min<std::size_t>(h.size(), 256); ++k) {
              if (h.data()[k] != expect) corrupt.fetch_add(1);
            }
          }
          held.clear();
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(corrupt.load(), 0);
  const BufferPool::Stats s = pool.GetStats();
  EXPECT_GT(s.hits, s.misses);
  EXPECT_GT(s.oversize, 0u);
}

}  // namespace
