// tests/pmr/pool_resource_test.cc: strata::pmr::PoolResource.
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

using strata::pmr::PoolResource;
using strata::pmr::PoolResourceStats;

bool IsAligned(const void* p, std::size_t alignment) {
  return reinterpret_cast<std::uintptr_t>(p) % alignment == 0;
}

TEST(PoolResourceTest, CountsLiveBytesPeakAndBlocks) {
  PoolResource pool;
  void* a = pool.allocate(100);
  void* b = pool.allocate(300, 64);
  PoolResourceStats s = pool.stats();
  EXPECT_EQ(s.live_bytes, 400);
  EXPECT_EQ(s.live_blocks, 2);
  EXPECT_EQ(s.allocations, 2u);
  EXPECT_EQ(s.peak_live_bytes, 400);
  pool.deallocate(a, 100);
  s = pool.stats();
  EXPECT_EQ(s.live_bytes, 300);
  EXPECT_EQ(s.peak_live_bytes, 400);
  EXPECT_EQ(s.deallocations, 1u);
  void* c = pool.allocate(50);
  EXPECT_EQ(pool.stats().peak_live_bytes, 400);
  pool.deallocate(b, 300, 64);
  pool.deallocate(c, 50);
  s = pool.stats();
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_EQ(s.live_blocks, 0);
  EXPECT_EQ(s.allocations, 3u);
  EXPECT_EQ(s.deallocations, 3u);
}

TEST(PoolResourceTest, PeakIsExactForOneThreadAndALowerBoundForMany) {
  PoolResource pool;
  std::vector<void*> blocks;
  for (int i = 0; i < 1000; ++i) blocks.push_back(pool.allocate(1000));  // >> kFlushBytes
  for (int i = 0; i < 500; ++i) pool.deallocate(blocks[i], 1000);
  for (int i = 0; i < 100; ++i) blocks[i] = pool.allocate(1000);
  PoolResourceStats s = pool.stats();
  EXPECT_EQ(s.live_bytes, 600 * 1000);
  EXPECT_EQ(s.peak_live_bytes, 1000 * 1000);
  for (int i = 0; i < 100; ++i) pool.deallocate(blocks[i], 1000);
  for (int i = 500; i < 1000; ++i) pool.deallocate(blocks[i], 1000);
  EXPECT_EQ(pool.stats().live_bytes, 0);

  // Four threads hold 200 KB each at the same time: the true peak of a
  // fresh resource is 800 KB; the estimate is at least one thread's share
  // and never above the truth.
  PoolResource shared;
  constexpr int kThreads = 4;
  std::atomic<int> holding{0};
  std::atomic<int> released{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      std::vector<void*> mine;
      for (int i = 0; i < 200; ++i) mine.push_back(shared.allocate(1000));
      holding.fetch_add(1);
      while (holding.load() < kThreads) std::this_thread::yield();
      for (void* p : mine) shared.deallocate(p, 1000);
      released.fetch_add(1);
    });
  }
  for (auto& th : threads) th.join();
  s = shared.stats();
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_LE(s.peak_live_bytes, kThreads * 200 * 1000);
  EXPECT_GE(s.peak_live_bytes, 200 * 1000);
}

TEST(PoolResourceTest, HonoursEverySizeAndPowerOfTwoAlignment) {
  PoolResource pool;
  std::vector<std::pair<void*, std::pair<std::size_t, std::size_t>>> blocks;
  for (std::size_t alignment = 1; alignment <= (std::size_t{1} << 16); alignment <<= 1) {
    for (std::size_t size :
         {std::size_t{0}, std::size_t{1}, std::size_t{31}, std::size_t{100}, std::size_t{5000}}) {
      void* p = pool.allocate(size, alignment);
      EXPECT_TRUE(IsAligned(p, alignment)) << size << " @ " << alignment;
      std::memset(p, 0x5c, size);
      blocks.push_back({p, {size, alignment}});
    }
  }
  for (auto& [p, sa] : blocks) pool.deallocate(p, sa.first, sa.second);
  EXPECT_EQ(pool.stats().live_bytes, 0);
}

TEST(PoolResourceTest, IsEqualIsIdentity) {
  PoolResource a;
  PoolResource b;
  EXPECT_TRUE(a.is_equal(a));
  EXPECT_FALSE(a.is_equal(b));
  EXPECT_FALSE(a.is_equal(*strata::pmr::GlobalResource()));
}

TEST(PoolResourceTest, ReleaseReturnsEverythingToTheEngine) {
  PoolResource pool;
  const std::int64_t engine_before = strata::GetStats().live_bytes;
  for (int i = 0; i < 1000; ++i)
    (void)pool.allocate(static_cast<std::size_t>(1 + i * 13 % 9000), 8);
  for (int i = 0; i < 10; ++i) (void)pool.allocate(1 << 20, 4096);
  EXPECT_GT(strata::GetStats().live_bytes, engine_before);
  EXPECT_EQ(pool.stats().live_blocks, 1010);
  pool.release();
  const PoolResourceStats s = pool.stats();
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_EQ(s.live_blocks, 0);
  EXPECT_EQ(s.deallocations, 1010u);
  strata::FlushThreadCache();
  EXPECT_EQ(strata::GetStats().live_bytes, engine_before);
  // Usable again after release.
  void* p = pool.allocate(10);
  pool.deallocate(p, 10);
}

TEST(PoolResourceTest, DestructorReleasesOutstandingBlocks) {
  const std::int64_t engine_before = strata::GetStats().live_bytes;
  {
    PoolResource pool;
    for (int i = 0; i < 100; ++i) (void)pool.allocate(1000);
  }
  EXPECT_EQ(strata::GetStats().live_bytes, engine_before);
}

TEST(PoolResourceTest, LimitRefusesOnlyTheOffendingAllocation) {
  PoolResource pool(PoolResource::Options{.byte_limit = 1000});
  EXPECT_EQ(pool.byte_limit(), 1000u);
  void* a = pool.allocate(600);
  EXPECT_THROW((void)pool.allocate(500), std::bad_alloc);
  PoolResourceStats s = pool.stats();
  EXPECT_EQ(s.live_bytes, 600);
  EXPECT_EQ(s.live_blocks, 1);
  EXPECT_EQ(s.allocations, 1u);
  EXPECT_EQ(s.limit_failures, 1u);
  void* b = pool.allocate(400);  // exactly up to the limit
  EXPECT_THROW((void)pool.allocate(1), std::bad_alloc);
  pool.deallocate(a, 600);
  void* c = pool.allocate(600);
  s = pool.stats();
  EXPECT_EQ(s.live_bytes, 1000);
  EXPECT_EQ(s.peak_live_bytes, 1000);
  EXPECT_EQ(s.limit_failures, 2u);
  pool.deallocate(b, 400);
  pool.deallocate(c, 600);
  EXPECT_THROW((void)pool.allocate(1001), std::bad_alloc);
  EXPECT_THROW((void)pool.allocate(SIZE_MAX), std::bad_alloc);
}

TEST(PoolResourceTest, UnlimitedHugeRequestThrows) {
  PoolResource pool;
  EXPECT_THROW((void)pool.allocate(SIZE_MAX - 8), std::bad_alloc);
  EXPECT_THROW((void)pool.allocate(std::size_t{1} << 60, 4096), std::bad_alloc);
  EXPECT_EQ(pool.stats().live_bytes, 0);
}

TEST(PoolResourceTest, ContainersOnManyThreads) {
  PoolResource pool;
  constexpr int kThreads = 8;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&pool, t] {
      for (int round = 0; round < 5; ++round) {
        std::pmr::vector<int> v(&pool);
        std::pmr::string s(&pool);
        std::pmr::map<int, std::pmr::string> m(&pool);
        std::pmr::unordered_map<int, std::pmr::string> u(&pool);
        for (int i = 0; i < 1000; ++i) {
          v.push_back(i * t);
          s += static_cast<char>('a' + (i + t) % 26);
          m.emplace(i, std::pmr::string(20 + i % 40, 'm', &pool));
          u.emplace(i, std::pmr::string(30, static_cast<char>('0' + t), &pool));
        }
        for (int i = 0; i < 1000; ++i) {
          ASSERT_EQ(v[i], i * t);
          ASSERT_EQ(s[i], static_cast<char>('a' + (i + t) % 26));
          ASSERT_EQ(m[i].size(), static_cast<std::size_t>(20 + i % 40));
          ASSERT_EQ(u[i][0], static_cast<char>('0' + t));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  const PoolResourceStats s = pool.stats();
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_EQ(s.live_blocks, 0);
  EXPECT_EQ(s.allocations, s.deallocations);
  EXPECT_GT(s.peak_live_bytes, 0);
}

TEST(PoolResourceTest, BlocksFreedOnAnotherThread) {
  PoolResource pool;
  constexpr int kBlocks = 5000;
  std::vector<void*> blocks(kBlocks);
  std::thread producer([&] {
    for (int i = 0; i < kBlocks; ++i) {
      blocks[i] = pool.allocate(static_cast<std::size_t>(16 + i % 500), 16);
      std::memset(blocks[i], i & 0xff, 16);
    }
  });
  producer.join();
  std::vector<std::thread> consumers;
  for (int t = 0; t < 4; ++t) {
    consumers.emplace_back([&, t] {
      for (int i = t; i < kBlocks; i += 4) {
        ASSERT_EQ(static_cast<unsigned char*>(blocks[i])[0], i & 0xff);
        pool.deallocate(blocks[i], static_cast<std::size_t>(16 + i % 500), 16);
      }
    });
  }
  for (auto& th : consumers) th.join();
  EXPECT_EQ(pool.stats().live_blocks, 0);
  EXPECT_EQ(pool.stats().live_bytes, 0);
}

TEST(PoolResourceTest, LimitHoldsUnderConcurrency) {
  constexpr std::size_t kLimit = 1 << 20;
  constexpr std::size_t kBlock = 64 << 10;  // 16 blocks fit
  constexpr int kThreads = 8;
  PoolResource pool(PoolResource::Options{.byte_limit = kLimit});
  std::atomic<int> refused{0};
  std::atomic<int> started{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      started.fetch_add(1);
      while (started.load() < kThreads) std::this_thread::yield();
      std::vector<void*> held;
      for (int i = 0; i < 400; ++i) {
        try {
          held.push_back(pool.allocate(kBlock));
        } catch (const std::bad_alloc&) {
          refused.fetch_add(1);
        }
        if (held.size() > 5 || (i % 7 == 0 && !held.empty())) {
          pool.deallocate(held.back(), kBlock);
          held.pop_back();
        }
      }
      for (void* p : held) pool.deallocate(p, kBlock);
    });
  }
  for (auto& th : threads) th.join();
  PoolResourceStats s = pool.stats();
  EXPECT_LE(s.peak_live_bytes, static_cast<std::int64_t>(kLimit));
  EXPECT_EQ(s.live_bytes, 0);
  EXPECT_EQ(s.limit_failures, static_cast<std::uint64_t>(refused.load()));
  // Exactly 16 blocks fit, whatever happened before.
  std::vector<void*> all;
  for (int i = 0; i < 16; ++i) all.push_back(pool.allocate(kBlock));
  EXPECT_THROW((void)pool.allocate(kBlock), std::bad_alloc);
  for (void* p : all) pool.deallocate(p, kBlock);
}

TEST(PoolResourceTest, ReleaseAfterThreadsFinished) {
  PoolResource pool;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&pool] {
      for (int i = 0; i < 500; ++i) (void)pool.allocate(static_cast<std::size_t>(8 + i), 32);
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(pool.stats().live_blocks, 4000);
  pool.release();
  EXPECT_EQ(pool.stats().live_blocks, 0);
  EXPECT_EQ(pool.stats().live_bytes, 0);
}

}  // namespace
