// Tests for concurrency/sharded_counter.h.
#include "concurrency/sharded_counter.h"

#include <atomic>
#include <cstdint>
#include <new>
#include <thread>
#include <type_traits>
#include <vector>

#include "gtest/gtest.h"
#include "tests/concurrency/test_util.h"

namespace strata {
namespace {

static_assert(std::is_trivially_destructible_v<ShardedCounter>);
static_assert(std::is_trivially_destructible_v<ShardedCounterArray<128>>);
static_assert(alignof(ShardedCounterArray<4>::Slot) == kCacheLineSize);

constinit ShardedCounter g_counter;               // must compile: constinit
constinit ShardedCounterArray<8> g_counter_array;  // must compile: constinit

TEST(ShardedCounterTest, SingleThread) {
  ShardedCounter c;
  EXPECT_EQ(c.Sum(), 0);
  EXPECT_EQ(c.SlotCount(), 0u);
  c.Add(5);
  c.Increment();
  c.Decrement();
  c.Add(-2);
  EXPECT_EQ(c.Sum(), 3);
  EXPECT_EQ(c.SlotCount(), 1u);
  g_counter.Add(7);
  EXPECT_EQ(g_counter.Sum(), 7);
}

TEST(ShardedCounterTest, ArrayCountersAreIndependent) {
  ShardedCounterArray<64> c;
  for (std::size_t i = 0; i < 64; ++i) c.Add(i, static_cast<std::int64_t>(i) * 3);
  c.Increment(10);
  std::int64_t all[64];
  c.SumAll(all);
  for (std::size_t i = 0; i < 64; ++i) {
    EXPECT_EQ(all[i], static_cast<std::int64_t>(i) * 3 + (i == 10)) << i;
    EXPECT_EQ(c.Sum(i), all[i]) << i;
  }
  g_counter_array.Add(3, 1);
  EXPECT_EQ(g_counter_array.Sum(3), 1);
}

TEST(ShardedCounterTest, CurrentSlotIsStablePerThreadAndDistinctAcrossThreads) {
  ShardedCounterArray<2> c;
  auto* mine = c.CurrentSlot();
  ASSERT_NE(mine, nullptr);
  EXPECT_EQ(c.CurrentSlot(), mine);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(mine) % kCacheLineSize, 0u);
  ShardedCounterArray<2>::Slot* other = nullptr;
  std::atomic<bool> release{false};
  std::thread t([&] {
    other = c.CurrentSlot();
    other->Add(1, 4);
    while (!release.load()) std::this_thread::yield();
  });
  while (c.SlotCount() < 2) std::this_thread::yield();
  mine->Add(1, 1);
  release = true;
  t.join();
  EXPECT_NE(other, mine);
  EXPECT_EQ(c.Sum(1), 5);
}

// The exactness guarantee: after join, the sum is exact, with many more
// threads than cores.
TEST(ShardedCounterStressTest, SumsAreExactAfterJoin) {
  constexpr int kThreads = 8;
  constexpr std::size_t kCounters = 16;
  const std::int64_t iters = testing::Scaled(4000000);
  ShardedCounterArray<kCounters> c;
  testing::StartGate gate;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      gate.Wait();
      for (std::int64_t i = 0; i < iters; ++i) {
        c.Add(static_cast<std::size_t>(i) % kCounters, 1);
        if ((i & 1023) == 0) c.Add(kCounters - 1, t);  // some larger deltas
      }
    });
  }
  gate.Release();
  for (auto& t : threads) t.join();
  std::int64_t all[kCounters];
  c.SumAll(all);
  std::int64_t extra = 0;
  for (int t = 0; t < kThreads; ++t) extra += t * ((iters + 1023) / 1024);
  for (std::size_t i = 0; i < kCounters; ++i) {
    const auto n = static_cast<std::int64_t>(kCounters);
    std::int64_t expect = iters / n + (static_cast<std::int64_t>(i) < iters % n);
    expect *= kThreads;
    if (i == kCounters - 1) expect += extra;
    EXPECT_EQ(all[i], expect) << i;
  }
}

// Readers running concurrently with increment-only writers see a sum that
// never decreases and never exceeds what was added.
TEST(ShardedCounterStressTest, ConcurrentReadsAreMonotonicForIncrements) {
  constexpr int kWriters = 6;
  const std::int64_t iters = testing::Scaled(1000000);
  ShardedCounter c;
  std::atomic<bool> stop{false};
  std::atomic<int> errors{0};
  std::thread reader([&] {
    std::int64_t last = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      std::int64_t s = c.Sum();
      if (s < last || s > kWriters * iters) errors.fetch_add(1);
      last = s;
    }
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < kWriters; ++t) {
    writers.emplace_back([&] {
      for (std::int64_t i = 0; i < iters; ++i) c.Increment();
    });
  }
  for (auto& t : writers) t.join();
  stop = true;
  reader.join();
  EXPECT_EQ(errors.load(), 0);
  EXPECT_EQ(c.Sum(), kWriters * iters);
}

// Slots of exited threads are reused, and their values keep counting.
TEST(ShardedCounterTest, SlotsAreReusedAfterThreadExitAndValuesKept) {
  ShardedCounter c;
  for (int round = 0; round < 20; ++round) {
    std::thread t([&] { c.Add(10); });
    t.join();
  }
  EXPECT_EQ(c.Sum(), 200);
  EXPECT_EQ(c.SlotCount(), 1u);  // one thread at a time: one slot
  // Concurrent threads need distinct slots; afterwards they are all free.
  std::vector<std::thread> threads;
  std::atomic<int> arrived{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      c.Add(1);
      arrived.fetch_add(1);
      while (arrived.load() < 4) std::this_thread::yield();
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(c.SlotCount(), 4u);
  EXPECT_EQ(c.Sum(), 204);
}

// A counter destroyed and a new one built at the same address must not
// inherit the old slots through a thread's lookup cache.
TEST(ShardedCounterTest, NewCounterAtTheSameAddressStartsAtZero) {
  alignas(ShardedCounter) unsigned char storage[sizeof(ShardedCounter)];
  for (int round = 0; round < 5; ++round) {
    auto* c = new (storage) ShardedCounter();
    EXPECT_EQ(c->Sum(), 0) << round;
    c->Add(round + 1);
    EXPECT_EQ(c->Sum(), round + 1) << round;
    c->~ShardedCounter();
  }
}

// More live counters than lookup-cache entries: every Add still lands in
// this thread's own slot of the right counter.
TEST(ShardedCounterTest, ManyCountersBeyondTheLookupCache) {
  constexpr int kCounters = 100;
  auto* counters = new ShardedCounter[kCounters];
  for (int round = 0; round < 3; ++round) {
    for (int i = 0; i < kCounters; ++i) counters[i].Add(i);
  }
  for (int i = 0; i < kCounters; ++i) {
    EXPECT_EQ(counters[i].Sum(), 3 * i) << i;
    EXPECT_EQ(counters[i].SlotCount(), 1u) << i;
  }
  delete[] counters;
}

}  // namespace
}  // namespace strata
