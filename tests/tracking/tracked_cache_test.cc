// tests/tracking/tracked_cache_test.cc: full tracking's per-thread cache of
// tracked blocks (alloc/internal/tracked_cache.h) and the parked records
// behind it (records at the block's place, alloc/tracking/block_records.h).
//
// - A freed tracked block keeps its record, parked: not live (FindLive,
//   LiveCount, ForEachLive skip it), and the block handed out again from
//   the cache gets a live record with the new size and stack.
// - A double free of a cached block, or of one back in the pool, is
//   reported as a double free, with the block's allocation stack (normal
//   mode: the span checks cannot see a block sitting in a cache).
// - Many threads allocate, free locally and across threads, while walkers
//   read the records: every live block has exactly one live record, the
//   statistics count no cached block as live, and nothing leaks. Run under
//   TSan and ASan too.
#include <atomic>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/sampled_slices.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/tracked_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "alloc/tracking/block_records.h"
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

bool WalkSees(std::uintptr_t key) {
  struct Ctx {
    std::uintptr_t key;
    bool visited;
  } ctx{key, false};
  ForEachLive(
      [](const LiveInfo& r, void* arg) {
        auto* c = static_cast<Ctx*>(arg);
        if (r.ptr == c->key) c->visited = true;
      },
      &ctx);
  return ctx.visited;
}

TEST(TrackedCache, FreedBlockIsParkedAndReusedWithANewRecord) {
  TrackAllScope scope;
  void* p = user_code::AllocateAtCachedSite(100);
  LiveInfo info;
  ASSERT_TRUE(FindLive(Key(p), &info));
  EXPECT_EQ(info.size, 100u);
  EXPECT_EQ(info.usable, internal::ClassSize(internal::SizeToClass(100)));
  EXPECT_EQ(info.flags, static_cast<std::uint32_t>(kTracked));
  EXPECT_TRUE(WalkSees(Key(p)));
  const std::size_t parked_before = CountBlockRecords().parked;
  const std::size_t live_before = LiveCount();
  strata::Free(p);
  // Parked: not live, but still there.
  EXPECT_FALSE(FindLive(Key(p), &info));
  EXPECT_EQ(CountBlockRecords().parked, parked_before + 1);
  EXPECT_EQ(LiveCount(), live_before - 1);
  EXPECT_FALSE(WalkSees(Key(p))) << "a parked record was walked";
  // The same class comes back from the cache (last in, first out), with
  // a live record of the new request.
  void* q = strata::Allocate(99);
  EXPECT_EQ(q, p);
  ASSERT_TRUE(FindLive(Key(q), &info));
  EXPECT_EQ(info.size, 99u);
  EXPECT_EQ(CountBlockRecords().parked, parked_before);
  EXPECT_EQ(LiveCount(), live_before);
  // Its first word is not the cache's link (the leak checker would follow
  // it), nor its second the record's token.
  EXPECT_EQ(static_cast<void**>(q)[0], nullptr);
  EXPECT_EQ(static_cast<void**>(q)[1], nullptr);
  strata::Free(q);
}

// Every class, at its first and last place in a tracked span: the record
// found from the block's address is the block's (the walk gives back the
// same address and size).
TEST(TrackedCache, EveryClassFindsItsRecordByPlace) {
  TrackAllScope scope;
  for (int c = 1; c < internal::kNumClasses; ++c) {
    const std::size_t size = internal::ClassSize(c);
    const std::uint32_t objects = internal::SpanObjects(c, true);
    std::vector<void*> v;
    // Enough blocks to fill a tracked span (capped for the small classes).
    const std::uint32_t n = objects < 600 ? objects + 1 : 600;
    for (std::uint32_t i = 0; i < n; ++i) v.push_back(strata::Allocate(size - 1));
    for (void* p : v) {
      LiveInfo info;
      ASSERT_TRUE(FindLive(Key(p), &info)) << "class " << c;
      EXPECT_EQ(info.ptr, Key(p));
      EXPECT_EQ(info.size, size - 1);
      EXPECT_EQ(info.usable, size);
    }
    EXPECT_TRUE(WalkSees(Key(v.front())));
    EXPECT_TRUE(WalkSees(Key(v.back())));
    for (void* p : v) strata::Free(p);
    for (void* p : v) {
      LiveInfo info;
      EXPECT_FALSE(FindLive(Key(p), &info)) << "class " << c;
    }
  }
}

// Runs `body` in a child in normal mode: it must abort with a double free
// report that names the block's allocation stack.
void ExpectDoubleFreeReportWithStack(void (*body)()) {
  strata::testing::ChildResult r = strata::testing::RunInChild(body, strata::testing::Mode::kNormal);
  ASSERT_TRUE(r.Aborted()) << r.Describe();
  EXPECT_NE(r.err.find("strata: double free: pointer 0x"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("allocated (tracked block of 100 bytes, since freed)"), std::string::npos) << r.Describe();
  EXPECT_NE(r.err.find("user_code::AllocateAtCachedSite"), std::string::npos) << r.Describe();
}

TEST(TrackedCache, DoubleFreeOfACachedBlockIsReportedWithItsStack) {
  ExpectDoubleFreeReportWithStack([] {
    TrackAllScope scope;
    void* p = user_code::AllocateAtCachedSite(100);
    strata::Free(p);
    strata::Free(p);
  });
}

// A block that went back to the pool keeps its freed record: a second free
// is reported at once, with the stack that allocated it.
TEST(TrackedCache, DoubleFreeOfAPooledBlockIsReportedWithItsStack) {
  ExpectDoubleFreeReportWithStack([] {
    TrackAllScope scope;
    void* p = nullptr;
    std::thread([&p] { p = user_code::AllocateAtCachedSite(100); }).join();
    // Freed on another thread, whose cache goes back to the pool at exit.
    std::thread([p] { strata::Free(p); }).join();
    strata::Free(p);
  });
}

// Sampling: a freed sampled block of a class up to 4 KiB waits in the
// thread's list for the next sample of its class (a live sampled record
// again, no pool lock), within the small sampled bound; more go back to
// the pool.
TEST(TrackedCache, SampledBlocksAreReusedWithinTheSampledBound) {
  EnsureTrackingInstalled();
  SetTrackAll(false);
  SetSampleRate(1);  // every allocation sampled
  strata::Free(strata::Allocate(16 << 20));
  const int c = internal::SizeToClass(3000);
  std::thread([c] {
    void* p = user_code::AllocateAtCachedSite(3000);
    LiveInfo info;
    ASSERT_TRUE(FindLive(Key(p), &info));
    EXPECT_EQ(info.flags, static_cast<std::uint32_t>(kSampled));
    const std::uint64_t cached_before = tracked_cache::TrackedCachedObjects(c);
    strata::Free(p);
    EXPECT_FALSE(FindLive(Key(p), &info));
    EXPECT_EQ(tracked_cache::TrackedCachedObjects(c), cached_before + 1);
    void* q = strata::Allocate(2900);
    EXPECT_EQ(q, p) << "the next sample of the class takes the cached block";
    ASSERT_TRUE(FindLive(Key(q), &info));
    EXPECT_EQ(info.size, 2900u);
    EXPECT_EQ(info.flags, static_cast<std::uint32_t>(kSampled));
    EXPECT_EQ(tracked_cache::TrackedCachedObjects(c), cached_before);
    strata::Free(q);
    // The bound: at most kSampledCacheObjects of a class stay.
    std::vector<void*> v;
    for (int i = 0; i < 10; ++i) v.push_back(strata::Allocate(3000));
    for (void* x : v) strata::Free(x);
    EXPECT_LE(tracked_cache::TrackedCachedObjects(c), cached_before + tracked_cache::kSampledCacheObjects);
    // Bigger classes are sampled in place (sampled_slices.h; not in a build
    // with owner frees): no tracked block, nothing cached.
    const int big = internal::SizeToClass(200 << 10);
    const std::uint64_t big_before = tracked_cache::TrackedCachedObjects(big);
    v.clear();
    for (int i = 0; i < 6; ++i) v.push_back(strata::Allocate(200 << 10));
    for (void* x : v) {
      EXPECT_EQ(internal::LookupBlock(Key(x)).kind, sampled_slices::InPlace(big) ? internal::BlockKind::kSmall
                                                                                : internal::BlockKind::kTrackedSmall);
      ASSERT_TRUE(FindLive(Key(x), &info));
      strata::Free(x);
      EXPECT_FALSE(FindLive(Key(x), &info));
    }
    if (sampled_slices::InPlace(big)) EXPECT_EQ(tracked_cache::TrackedCachedObjects(big), big_before);
  }).join();
  SetSampleRate(kDefaultSampleRate);
}

// A list that overflows gives blocks back to the pool, which release their
// parked records; a thread's lists go back when it exits.
TEST(TrackedCache, OverflowAndThreadExitReturnBlocksWithoutRecords) {
  TrackAllScope scope;
  const int c = internal::SizeToClass(64);
  const std::size_t parked_before = CountBlockRecords().parked;  // this thread's cache
  const std::uint64_t cached_before = tracked_cache::TrackedCachedObjects(c);
  std::thread([&] {
    std::vector<void*> v;
    // More than a list holds: the frees overflow to the pool.
    for (std::uint32_t i = 0; i < 3 * tracked_cache::kTrackedCacheObjects; ++i) v.push_back(strata::Allocate(64));
    for (void* p : v) strata::Free(p);
    const std::uint64_t cached = tracked_cache::TrackedCachedObjects(c) - cached_before;
    EXPECT_LE(cached, tracked_cache::kTrackedCacheObjects + 1);
    EXPECT_GT(cached, 0u);
    EXPECT_GE(CountBlockRecords().parked, parked_before + cached / 2);
  }).join();
  EXPECT_EQ(tracked_cache::TrackedCachedObjects(c), cached_before) << "an exited thread's list stayed";
  EXPECT_EQ(CountBlockRecords().parked, parked_before);
}

// Many threads: local and cross-thread frees of tracked blocks, in many
// classes, while two walkers read the records. Every block is live while
// its owner holds it; afterwards the records and the statistics are as
// before.
TEST(TrackedCacheStress, ManyThreadsKeepOneLiveRecordPerBlock) {
  TrackAllScope scope;
  const std::size_t live_before = CountBlockRecords().live;
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
        if (!FindLive(Key(p), &info) || info.size != size) failures.fetch_add(1);
        mine.push_back(p);
        if ((x >> 20) % 3 == 0 && !mine.empty()) {
          std::size_t j = (x >> 24) % mine.size();
          void* q = mine[j];
          mine[j] = mine.back();
          mine.pop_back();
          if ((x >> 30) % 2 == 0) {
            strata::Free(q);
            if (FindLive(Key(q), &info)) {
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
        ForEachLive(
            [](const LiveInfo& r, void* arg) {
              // A walker reads a record's fields while its block may be
              // freed and reused (parked and unparked).
              if (r.size > (std::size_t{1} << 40) || r.stack == nullptr) {
                ++*static_cast<std::size_t*>(arg);
              }
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
  EXPECT_EQ(CountBlockRecords().live, live_before);
  std::uint64_t cached = 0;
  for (int c = 1; c < internal::kNumClasses; ++c) cached += tracked_cache::TrackedCachedObjects(c);
  EXPECT_LE(CountBlockRecords().parked, cached);
}

}  // namespace
}  // namespace strata::tracking
