// tests/tracking/tracked_cache_test.cc: full tracking's per-thread cache of
// tracked blocks (alloc/internal/tracked_cache.h) and the live table's
// parked records behind it.
//
// - A freed tracked block keeps its record, parked: not live (Find, size,
//   ForEach skip it), and the block handed out again from the cache gets a
//   live record with the new size and stack.
// - A double free of a cached block is reported as a double free, with the
//   block's allocation stack (normal mode: the span checks cannot see a
//   block sitting in a cache).
// - Many threads allocate, free locally and across threads, while walkers
//   read the table: every live block has exactly one live record, the
//   statistics count no cached block as live, and nothing leaks. Run under
//   TSan and ASan too.
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/size_classes.h"
#include "alloc/internal/tracked_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/tracker.h"
#include "tests/hardening/child.h"

namespace user_code {
__attribute__((noinline)) void* AllocateAtCachedSite(std::size_t n) {
  void* p = strata::Allocate(n);
  asm volatile("" ::"r"(p) : "memory");
  return p;
}
}  // namespace user_code

namespace strata::tracking {
namespace {

#if defined(STRATA_SANITIZER_BUILD)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

class TrackAllScope {
 public:
  TrackAllScope() {
    EnsureTrackingInstalled();
    SetTrackAll(true);
    // Mode changes reach a thread at its next countdown crossing.
    strata::Free(strata::Allocate(16 << 20));
  }
  ~TrackAllScope() { SetTrackAll(false); }
};

std::uintptr_t Key(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

TEST(TrackedCache, FreedBlockIsParkedAndReusedWithANewRecord) {
  TrackAllScope scope;
  LiveTable& table = GlobalLiveTable();
  void* p = user_code::AllocateAtCachedSite(100);
  LiveInfo info;
  ASSERT_TRUE(table.Find(Key(p), &info));
  EXPECT_EQ(info.size, 100u);
  const std::size_t parked_before = table.parked();
  strata::Free(p);
  // Parked: not live, but still there.
  EXPECT_FALSE(table.Find(Key(p), &info));
  ASSERT_TRUE(table.FindAny(Key(p), &info));
  EXPECT_NE(info.flags & kParked, 0u);
  EXPECT_EQ(table.parked(), parked_before + 1);
  bool visited = false;
  struct Ctx {
    std::uintptr_t key;
    bool* visited;
  } ctx{Key(p), &visited};
  table.ForEach(
      [](LiveRecord& r, void* arg) {
        auto* c = static_cast<Ctx*>(arg);
        if (r.ptr == c->key) *c->visited = true;
      },
      &ctx);
  EXPECT_FALSE(visited) << "a parked record was walked";
  // The same class comes back from the cache (last in, first out), with
  // a live record of the new request.
  void* q = strata::Allocate(99);
  EXPECT_EQ(q, p);
  ASSERT_TRUE(table.Find(Key(q), &info));
  EXPECT_EQ(info.size, 99u);
  EXPECT_EQ(info.flags & kParked, 0u);
  EXPECT_EQ(table.parked(), parked_before);
  // Its first word is not the cache's link (the leak checker would follow it).
  EXPECT_EQ(*static_cast<void**>(q), nullptr);
  strata::Free(q);
}

TEST(TrackedCache, DoubleFreeOfACachedBlockIsReportedWithItsStack) {
  using strata::testing::ChildResult;
  using strata::testing::Mode;
  ChildResult r = strata::testing::RunInChild(
      [] {
        TrackAllScope scope;
        void* p = user_code::AllocateAtCachedSite(100);
        strata::Free(p);
        strata::Free(p);
      },
      Mode::kNormal);
  ASSERT_TRUE(r.Aborted()) << r.Describe();
  EXPECT_NE(r.err.find("strata: double free: pointer 0x"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("allocated (tracked block of 100 bytes, since freed)"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("user_code::AllocateAtCachedSite"), std::string::npos) << r.Describe();
}

// A list that overflows gives blocks back to the pool, which lose their
// records; a thread's lists go back when it exits.
TEST(TrackedCache, OverflowAndThreadExitReturnBlocksWithoutRecords) {
  TrackAllScope scope;
  LiveTable& table = GlobalLiveTable();
  const int c = internal::SizeToClass(64);
  const std::size_t parked_before = table.parked();  // this thread's cache
  const std::uint64_t cached_before = tracked_cache::TrackedCachedObjects(c);
  std::thread([&] {
    std::vector<void*> v;
    // More than a list holds: the frees overflow to the pool.
    for (std::uint32_t i = 0; i < 3 * tracked_cache::kTrackedCacheObjects; ++i) v.push_back(strata::Allocate(64));
    for (void* p : v) strata::Free(p);
    const std::uint64_t cached = tracked_cache::TrackedCachedObjects(c) - cached_before;
    EXPECT_LE(cached, tracked_cache::kTrackedCacheObjects + 1);
    EXPECT_GT(cached, 0u);
    EXPECT_GE(table.parked(), parked_before + cached / 2);
  }).join();
  EXPECT_EQ(tracked_cache::TrackedCachedObjects(c), cached_before) << "an exited thread's list stayed";
  EXPECT_EQ(table.parked(), parked_before);
}

// Many threads: local and cross-thread frees of tracked blocks, in many
// classes, while two walkers read the table. Every block is live in the
// table while its owner holds it; afterwards the table and the statistics
// are as before.
TEST(TrackedCacheStress, ManyThreadsKeepOneLiveRecordPerBlock) {
  TrackAllScope scope;
  LiveTable& table = GlobalLiveTable();
  const std::size_t live_before = table.size();
  constexpr int kThreads = 8;
  const int rounds = 20000 / kScale;
  std::atomic<int> failures{0};
  std::atomic<bool> stop{false};
  // Blocks handed from one thread to the next, freed there.
  std::mutex mu;
  std::vector<void*> handoff;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(t + 1);
      std::vector<void*> mine;
      for (int i = 0; i < rounds; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const std::size_t size = 8 + (x % 2000);
        auto* p = static_cast<unsigned char*>(strata::Allocate(size));
        if (p == nullptr) {
          failures.fetch_add(1);
          continue;
        }
        p[0] = static_cast<unsigned char>(t);
        p[size - 1] = static_cast<unsigned char>(t);
        LiveInfo info;
        if (!table.Find(Key(p), &info) || info.size != size) failures.fetch_add(1);
        mine.push_back(p);
        if ((x >> 20) % 3 == 0 && !mine.empty()) {
          std::size_t j = (x >> 24) % mine.size();
          void* q = mine[j];
          mine[j] = mine.back();
          mine.pop_back();
          if ((x >> 30) % 2 == 0) {
            strata::Free(q);
            if (table.Find(Key(q), &info)) {
              // Only another thread's new block may have its address now.
              if (info.size == 0) failures.fetch_add(1);
            }
          } else {
            std::lock_guard<std::mutex> lock(mu);
            handoff.push_back(q);
          }
        }
        if (i % 64 == 0) {
          std::vector<void*> theirs;
          {
            std::lock_guard<std::mutex> lock(mu);
            theirs.swap(handoff);
          }
          for (void* q : theirs) strata::Free(q);
        }
      }
      for (void* p : mine) strata::Free(p);
    });
  }
  std::vector<std::thread> walkers;
  for (int w = 0; w < 2; ++w) {
    walkers.emplace_back([&] {
      while (!stop.load()) {
        std::size_t n = 0;
        table.ForEach(
            [](LiveRecord& r, void* arg) {
              // A walker reads a record's fields while its block may be
              // freed and reused (parked and unparked).
              if (r.size.load(std::memory_order_relaxed) > (std::size_t{1} << 40)) ++*static_cast<std::size_t*>(arg);
            },
            &n);
        if (n != 0) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  stop.store(true);
  for (auto& th : walkers) th.join();
  for (void* q : handoff) strata::Free(q);
  EXPECT_EQ(failures.load(), 0);
  // The worker threads exited: their caches went back, parked records and
  // all. What this thread's cache holds is parked (blocks it freed) or
  // fresh from the pool (no record), never live.
  EXPECT_EQ(table.size(), live_before);
  std::uint64_t cached = 0;
  for (int c = 1; c < internal::kNumClasses; ++c) cached += tracked_cache::TrackedCachedObjects(c);
  EXPECT_LE(table.parked(), cached);
}

}  // namespace
}  // namespace strata::tracking
