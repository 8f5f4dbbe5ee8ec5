// Thread caches keep block addresses, not chains (alloc/internal/cache_slots.h):
//   * BlocksMoveUntouched: blocks a thread frees, and the batches it hands
//     to the central pool's first tier, keep every byte the program wrote
//     until another thread allocates them (a chain through the blocks would
//     overwrite their first word);
//   * RegionsAreReused: threads that come and go (many at once) reuse the
//     slot regions of exited threads instead of mapping new ones;
//   * NoRegionStillServes: a thread whose region the OS refuses works one
//     block at a time, with exact statistics, and gets a region later.
#include <atomic>
#include <barrier>
#include <cstdint>
#include <cstring>
#include <set>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/cache_slots.h"
#include "alloc/stats.h"
#include "alloc/strata.h"

namespace strata {
namespace {

constexpr std::size_t kSize = 64;
constexpr int kBlocks = 1024;

unsigned char Pattern(std::uintptr_t addr, std::size_t i) {
  return static_cast<unsigned char>((addr >> 4) * 131 + i * 7 + 1);
}

void Fill(void* p) {
  auto* b = static_cast<unsigned char*>(p);
  for (std::size_t i = 0; i < kSize; ++i) b[i] = Pattern(reinterpret_cast<std::uintptr_t>(p), i);
}

// Bytes of `p` from `from` on that differ from Fill's pattern. Reads a
// freed block: its memory stays mapped (strata's spans), and nothing else
// runs meanwhile.
int Damaged(const void* p, std::size_t from = 0) {
  const auto* b = static_cast<const volatile unsigned char*>(p);
  int bad = 0;
  for (std::size_t i = from; i < kSize; ++i) bad += b[i] != Pattern(reinterpret_cast<std::uintptr_t>(p), i);
  return bad;
}

TEST(CacheSlots, BlocksMoveUntouched) {
  std::vector<void*> freed;
  std::thread([&] {
    // Warm the class up, so that the list has grown past a batch and its
    // overflow goes to the first tier as whole batches.
    std::vector<void*> warm;
    for (int i = 0; i < kBlocks; ++i) warm.push_back(Allocate(kSize));
    for (void* p : warm) Free(p);
    for (int i = 0; i < kBlocks; ++i) freed.push_back(Allocate(kSize));
    for (void* p : freed) Fill(p);
    for (void* p : freed) Free(p);
    // In this thread's list or in the first tier's batches: untouched.
    int damaged = 0;
    for (void* p : freed) damaged += Damaged(p) != 0;
    EXPECT_EQ(damaged, 0) << "of " << kBlocks << " freed blocks";
    // The thread's exit flushes its list; whole batches stay in the first
    // tier as addresses.
  }).join();
  // Another thread takes the batches back.
  std::thread([&] {
    const std::set<void*> mine(freed.begin(), freed.end());
    std::vector<void*> got;
    int reused = 0;
    int intact = 0;
    int beyond_link = 0;  // damaged past the first word
    for (int i = 0; i < kBlocks; ++i) {
      void* p = Allocate(kSize);
      got.push_back(p);
      if (mine.count(p) == 0) continue;
      ++reused;
      intact += Damaged(p) == 0;
      beyond_link += Damaged(p, sizeof(void*)) != 0;
    }
    // Whole batches came through the first tier as addresses: at least one
    // (a batch of a 64-byte class is 128 blocks) arrived untouched. The
    // list's last partial batch went to the spans at the thread's exit,
    // which link blocks through their first word, and nothing else.
    EXPECT_GE(intact, 128) << "of " << reused << " blocks reused from the other thread";
    EXPECT_EQ(beyond_link, 0) << "of " << reused << " blocks reused from the other thread";
    for (void* p : got) Free(p);
  }).join();
}

TEST(CacheSlots, RegionsAreReused) {
  constexpr int kThreads = 8;
  constexpr int kRounds = 40;
  std::atomic<int> errors{0};
  // Each round runs kThreads threads that all hold their regions at once
  // (they wait for each other before exiting), then exit together: their
  // regions go back on the idle stack concurrently and the next round's
  // threads take them concurrently.
  auto round = [&] {
    std::barrier all(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<void*> v;
        for (int i = 0; i < 200; ++i) {
          void* p = Allocate(16 + static_cast<std::size_t>((i * 37 + t) % 900));
          if (p == nullptr) errors.fetch_add(1);
          v.push_back(p);
        }
        for (void* p : v) Free(p);
        all.arrive_and_wait();
      });
    }
    for (auto& th : threads) th.join();
  };
  Free(Allocate(16));  // this thread has its region too
  round();
  const std::uint64_t mapped = internal::SlotRegionsMapped();
  EXPECT_GE(mapped, static_cast<std::uint64_t>(kThreads));
  for (int r = 0; r < kRounds; ++r) round();
  EXPECT_EQ(errors.load(), 0);
  // Every round's threads found the regions the previous round's left.
  EXPECT_EQ(internal::SlotRegionsMapped(), mapped);
  // Only this (the main) thread holds one now.
  EXPECT_EQ(internal::SlotRegionsIdle(), internal::SlotRegionsMapped() - 1);
}

TEST(CacheSlots, NoRegionStillServes) {
  FlushThreadCache();
  std::thread([] {
    internal::FailSlotRegionsForTesting(1u << 30);
    const Stats before = GetStats();
    std::vector<void*> v;
    for (int i = 0; i < 3000; ++i) {
      void* p = Allocate(kSize);
      ASSERT_NE(p, nullptr);
      Fill(p);
      v.push_back(p);
    }
    std::set<void*> distinct(v.begin(), v.end());
    EXPECT_EQ(distinct.size(), v.size());
    const Stats during = GetStats();
    EXPECT_EQ(during.live_objects - before.live_objects, 3000);
    int damaged = 0;
    for (void* p : v) damaged += Damaged(p) != 0;
    EXPECT_EQ(damaged, 0);
    for (void* p : v) Free(p);
    // Nothing was cached: every block went back to the central pool.
    const Stats after = GetStats();
    EXPECT_EQ(after.live_objects, before.live_objects);
    const std::uint64_t mapped = internal::SlotRegionsMapped();
    internal::FailSlotRegionsForTesting(0);
    // The next slow path attaches a region (an idle one, or a new one).
    for (int i = 0; i < 3000; ++i) v[static_cast<std::size_t>(i)] = Allocate(kSize);
    for (void* p : v) Free(p);
    EXPECT_GE(GetStats().thread_cache_bytes, kSize);
    EXPECT_LE(internal::SlotRegionsMapped(), mapped + 1);
  }).join();
}

}  // namespace
}  // namespace strata
