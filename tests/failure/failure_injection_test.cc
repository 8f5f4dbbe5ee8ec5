// tests/failure/failure_injection_test.cc: injected allocation failures
// (alloc/failure_injection.h) through the engine API, the std::pmr
// resources and the pools, on the calling thread only; the project's own
// code paths survive them without leaking; the sampler stays exact while
// injection forces the slow path. Engine API only, so it also runs under
// ASan and TSan.
#include <atomic>
#include <memory_resource>
#include <new>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/failure_injection.h"
#include "alloc/pmr.h"
#include "alloc/pool.h"
#include "alloc/stats.h"
#include "alloc/stats_report.h"
#include "alloc/strata.h"
#include "alloc/tracking/tracker.h"

namespace strata {
namespace {

std::int64_t LiveBytes() { return GetStats().live_bytes; }

TEST(FailureInjection, FailAfterLetsNAllocationsThroughThenFailsEveryOne) {
  const std::uint64_t before = InjectedAllocationFailures();
  std::vector<void*> ok;
  {
    ScopedFailureInjection scope({.fail_after = 5});
    for (int i = 0; i < 5; ++i) {
      void* p = Allocate(32 + i);
      ASSERT_NE(p, nullptr) << i;
      ok.push_back(p);
    }
    EXPECT_EQ(Allocate(32), nullptr);
    EXPECT_EQ(Allocate(1 << 20), nullptr);      // large
    EXPECT_EQ(Allocate(64 << 20), nullptr);     // huge
    EXPECT_EQ(AllocateAligned(100, 4096), nullptr);
    EXPECT_EQ(AllocateZeroed(1000, 1000), nullptr);  // a large zeroed block
    EXPECT_EQ(AllocateZeroed(10, 10), nullptr);
    // A realloc that must move fails and keeps the block.
    EXPECT_EQ(Reallocate(ok[0], 100000), nullptr);
    EXPECT_EQ(scope.injected(), 7u);
  }
  EXPECT_EQ(InjectedAllocationFailures(), before + 7);
  // Off again: everything succeeds, the old block is intact.
  void* p = Reallocate(ok[0], 100000);
  ASSERT_NE(p, nullptr);
  ok[0] = p;
  for (void* q : ok) Free(q);
}

TEST(FailureInjection, MinSizeSparesSmallRequests) {
  ScopedFailureInjection scope({.fail_after = 0, .min_size = 4096});
  void* small = Allocate(4095);
  EXPECT_NE(small, nullptr);
  EXPECT_EQ(Allocate(4096), nullptr);
  EXPECT_EQ(Allocate(100000), nullptr);
  EXPECT_EQ(scope.injected(), 2u);
  Free(small);
}

// The same seed fails the same allocations; the rate is about right.
std::vector<bool> Pattern(double rate, std::uint64_t seed, int n) {
  std::vector<bool> failed;
  ScopedFailureInjection scope({.rate = rate, .seed = seed});
  for (int i = 0; i < n; ++i) {
    void* p = Allocate(48);
    failed.push_back(p == nullptr);
    Free(p);
  }
  return failed;
}

TEST(FailureInjection, RateWithASeedIsReproducible) {
  const int n = 20000;
  const std::vector<bool> a = Pattern(0.1, 42, n);
  const std::vector<bool> b = Pattern(0.1, 42, n);
  const std::vector<bool> c = Pattern(0.1, 43, n);
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c);
  int failures = 0;
  for (bool f : a) failures += f ? 1 : 0;
  EXPECT_GT(failures, n / 10 - 300);
  EXPECT_LT(failures, n / 10 + 300);
  const std::vector<bool> none = Pattern(0, 1, 1000);
  const std::vector<bool> all = Pattern(1, 1, 1000);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_FALSE(none[i]);
    EXPECT_TRUE(all[i]);
  }
}

TEST(FailureInjection, OnlyTheCallingThreadFails) {
  ScopedFailureInjection scope({.fail_after = 0});
  EXPECT_EQ(Allocate(64), nullptr);
  std::atomic<int> other_failures{0};
  std::thread([&] {
    for (int i = 0; i < 10000; ++i) {
      void* p = Allocate(64 + (i % 2000));
      if (p == nullptr) other_failures.fetch_add(1);
      Free(p);
    }
  }).join();
  EXPECT_EQ(other_failures.load(), 0);
  EXPECT_EQ(Allocate(64), nullptr);
}

TEST(FailureInjection, ScopesNestAndRestore) {
  ScopedFailureInjection outer({.fail_after = 1});
  void* p = Allocate(16);
  ASSERT_NE(p, nullptr);
  {
    ScopedFailureInjection inner({.fail_after = 2});
    void* a = Allocate(16);
    void* b = Allocate(16);
    EXPECT_NE(a, nullptr);
    EXPECT_NE(b, nullptr);
    EXPECT_EQ(Allocate(16), nullptr);
    EXPECT_EQ(inner.injected(), 1u);
    Free(a);
    Free(b);
  }
  // The outer scope again: its one allocation was used.
  EXPECT_EQ(Allocate(16), nullptr);
  EXPECT_EQ(outer.injected(), 1u);
  Free(p);
}

TEST(FailureInjection, StatsReportCountsInjectedFailures) {
  const std::uint64_t before = GetStats().injected_allocation_failures;
  {
    ScopedFailureInjection scope({.fail_after = 0});
    EXPECT_EQ(Allocate(10), nullptr);
    EXPECT_EQ(Allocate(10), nullptr);
  }
  EXPECT_EQ(GetStats().injected_allocation_failures, before + 2);
  EXPECT_NE(StatsReport(ReportFormat::kText).find("injected allocation failures"), std::string::npos);
  std::int64_t value = 0;
  ASSERT_TRUE(GetNumericProperty("strata.injected_allocation_failures", &value));
  EXPECT_EQ(value, static_cast<std::int64_t>(before + 2));
}

// --- The project's own code paths ---------------------------------------

// Runs `body` with every seed's failures, catching bad_alloc; the engine's
// live bytes come back to where they were.
template <typename Body>
int SurviveFailures(Body body) {
  int caught = 0;
  for (std::uint64_t seed = 1; seed <= 20; ++seed) {
    ScopedFailureInjection scope({.rate = 0.05, .seed = seed});
    try {
      body();
    } catch (const std::bad_alloc&) {
      ++caught;
    }
  }
  return caught;
}

TEST(FailureInjectionOnOwnCode, GlobalResourceThrowsBadAllocAndLeaksNothing) {
  const std::int64_t live = LiveBytes();
  std::pmr::memory_resource* r = pmr::GlobalResource();
  {
    ScopedFailureInjection scope({.fail_after = 0});
    EXPECT_THROW(r->allocate(100), std::bad_alloc);
    EXPECT_THROW(r->allocate(1 << 20, 64), std::bad_alloc);
  }
  const int caught = SurviveFailures([r] {
    std::pmr::vector<std::pmr::string> v(r);
    for (int i = 0; i < 2000; ++i) v.emplace_back(std::string(40 + i % 100, 'x'));
  });
  EXPECT_GT(caught, 10);
  EXPECT_EQ(LiveBytes(), live);
}

TEST(FailureInjectionOnOwnCode, PoolResourceSurvivesWithExactAccounting) {
  const std::int64_t live = LiveBytes();
  {
    pmr::PoolResource pool;
    {
      ScopedFailureInjection scope({.fail_after = 0});
      EXPECT_THROW(pool.allocate(100), std::bad_alloc);
    }
    const int caught = SurviveFailures([&pool] {
      std::pmr::map<int, std::pmr::string> m(&pool);
      for (int i = 0; i < 2000; ++i) m.emplace(i, std::pmr::string(30 + i % 200, 'y', &pool));
    });
    EXPECT_GT(caught, 10);
    // Every block the containers got back went back to the pool.
    EXPECT_EQ(pool.stats().live_bytes, 0);
    EXPECT_EQ(pool.stats().live_blocks, 0);
    // Still usable.
    void* p = pool.allocate(64);
    pool.deallocate(p, 64);
  }
  EXPECT_EQ(LiveBytes(), live);
}

TEST(FailureInjectionOnOwnCode, MonotonicArenaFailsOnlyForNewChunks) {
  const std::int64_t live = LiveBytes();
  {
    pmr::MonotonicArena arena;
    void* first = arena.allocate(100);  // takes the first chunk
    ASSERT_NE(first, nullptr);
    {
      ScopedFailureInjection scope({.fail_after = 0});
      // From the chunk it holds: no engine allocation, no failure.
      EXPECT_NE(arena.allocate(100), nullptr);
      // A new chunk is needed: bad_alloc, and the arena stays consistent.
      EXPECT_THROW(arena.allocate(1 << 20), std::bad_alloc);
    }
    EXPECT_NE(arena.allocate(1 << 20), nullptr);
    const int caught = SurviveFailures([&arena] {
      std::pmr::vector<int> v(&arena);
      for (int i = 0; i < 100000; ++i) v.push_back(i);
      arena.Reset();
    });
    EXPECT_GT(caught, 0);
    arena.Reset();
  }
  EXPECT_EQ(LiveBytes(), live);
}

struct Session {
  std::string name = std::string(100, 's');
};

TEST(FailureInjectionOnOwnCode, PoolsThrowBadAllocAndStayUsable) {
  // On a thread of its own: a pool keeps a small per-thread record until
  // the thread exits, so the baseline is compared after the join.
  const std::int64_t live = LiveBytes();
  std::thread([] {
    ObjectPool<Session> sessions;
    BufferPool buffers;
    {
      ScopedFailureInjection scope({.fail_after = 0, .min_size = sizeof(Session)});
      EXPECT_THROW(sessions.Get(), std::bad_alloc);
      EXPECT_THROW(buffers.Get(3000), std::bad_alloc);
    }
    const int caught = SurviveFailures([&] {
      std::vector<ObjectPool<Session>::Handle> held;
      std::vector<BufferPool::Buffer> bufs;
      for (int i = 0; i < 300; ++i) {
        held.push_back(sessions.Get());
        bufs.push_back(buffers.Get(1000 + i * 100));
      }
    });
    EXPECT_GT(caught, 5);
    auto s = sessions.Get();
    EXPECT_EQ(s->name.size(), 100u);
    auto b = buffers.Get(3000);
    EXPECT_EQ(b.size(), 3000u);
  }).join();
  EXPECT_EQ(LiveBytes(), live);
}

// While a scope forces the slow path, the sampler takes the samples it
// would take anyway (about one per stride), not one per allocation.
TEST(FailureInjectionSampling, SamplingStaysExactWhileArmed) {
  tracking::EnsureTrackingInstalled();
  tracking::SetSampleRate(64 * 1024);
  const std::size_t before = tracking::LiveCount();
  std::vector<void*> v;
  {
    ScopedFailureInjection scope({.fail_after = UINT64_MAX - 1});  // armed, never fails
    // 64 MiB in 64-byte blocks: about 1024 samples.
    for (int i = 0; i < (1 << 20); ++i) v.push_back(Allocate(64));
    EXPECT_EQ(scope.injected(), 0u);
  }
  const std::size_t sampled = tracking::LiveCount() - before;
  EXPECT_GT(sampled, 700u);
  EXPECT_LT(sampled, 1400u);
  for (void* p : v) Free(p);
  tracking::SetSampleRate(tracking::kDefaultSampleRate);
}

}  // namespace
}  // namespace strata
