// tests/monitor/hard_limit_test.cc: the hard memory limit. Several threads
// allocate small, large and huge blocks until the engine returns nullptr:
// no crash, committed memory never beyond the limit; after everything is
// freed, allocation succeeds again.
#include <atomic>
#include <cstdint>
#include <cstring>
#include <thread>
#include <vector>

#include "alloc/monitor.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kLimitHeadroom = 64 * kMiB;
constexpr int kThreads = 4;
// Sizes of the three paths: a size class, a multi-slice span, and a block
// too big for a 4 MiB segment (its own mapping).
constexpr std::size_t kSizes[3] = {1024, 512 * 1024, 6 * kMiB};
// Bounds the loop even if the limit did not work (64 MiB of 1 KiB blocks
// is 65536 blocks; this is far above).
constexpr int kMaxRounds = 1 << 20;

struct Result {
  std::vector<void*> blocks;
  std::size_t failures[3] = {0, 0, 0};
  std::size_t successes[3] = {0, 0, 0};
};

// Allocates the three kinds in turn until each one failed in a round.
void FillUntilRefused(Result* r) {
  r->blocks.reserve(1 << 17);
  bool failed[3] = {false, false, false};
  for (int round = 0; round < kMaxRounds && !(failed[0] && failed[1] && failed[2]); ++round) {
    for (int k = 0; k < 3; ++k) {
      if (failed[k]) continue;
      void* p = Allocate(kSizes[k]);
      if (p == nullptr) {
        failed[k] = true;
        ++r->failures[k];
        continue;
      }
      std::memset(p, 0x3c, 256);  // touch it: real memory, not just accounting
      r->blocks.push_back(p);
      ++r->successes[k];
    }
  }
}

class HardLimitTest : public ::testing::Test {
 protected:
  void TearDown() override { SetHardMemoryLimit(0); }
};

TEST_F(HardLimitTest, AllocationsFailWithNullptrThenRecoverAfterFree) {
  ReleaseMemory();
  const std::size_t limit = GetStats().committed_bytes + kLimitHeadroom;
  SetHardMemoryLimit(limit);
  EXPECT_EQ(HardMemoryLimit(), limit);

  Result results[kThreads];
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) threads.emplace_back(FillUntilRefused, &results[t]);
    for (auto& th : threads) th.join();
  }
  std::size_t failures[3] = {0, 0, 0};
  std::size_t successes[3] = {0, 0, 0};
  for (const Result& r : results) {
    for (int k = 0; k < 3; ++k) {
      failures[k] += r.failures[k];
      successes[k] += r.successes[k];
    }
  }
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(failures[k], static_cast<std::size_t>(kThreads)) << "kind " << k << " was refused in every thread";
    EXPECT_GT(successes[k], 0u) << "kind " << k;
  }
  const Stats full = GetStats();
  EXPECT_LE(full.committed_bytes, limit);
  EXPECT_GE(full.committed_bytes, limit - 16 * kMiB) << "the limit, not something else, stopped us";

  // The other entry points fail cleanly too.
  EXPECT_EQ(Allocate(2 * kLimitHeadroom), nullptr);
  EXPECT_EQ(AllocateZeroed(1, 8 * kMiB), nullptr);
  EXPECT_EQ(AllocateAligned(8 * kMiB, 1 * kMiB), nullptr);
  // A block to grow (a thread that started late may have got none).
  void* keep = nullptr;
  for (const Result& r : results) {
    if (!r.blocks.empty()) keep = r.blocks.back();
  }
  ASSERT_NE(keep, nullptr);
  EXPECT_EQ(Reallocate(keep, 16 * kMiB), nullptr) << "the old block stays";
  EXPECT_TRUE(Owns(keep));

  // Free everything, from other threads than the allocating ones.
  for (Result& r : results) {
    for (void* p : r.blocks) Free(p);
    r.blocks.clear();
  }

  // Allocation works again, on every path and in new threads.
  std::atomic<int> ok{0};
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&ok] {
        void* p[3];
        for (int k = 0; k < 3; ++k) p[k] = Allocate(kSizes[k]);
        if (p[0] != nullptr && p[1] != nullptr && p[2] != nullptr) ok.fetch_add(1);
        for (void* q : p) Free(q);
      });
    }
    for (auto& th : threads) th.join();
  }
  EXPECT_EQ(ok.load(), kThreads);
  // Up to the limit again (a fresh 48 MiB of huge blocks fits in 64 MiB).
  std::vector<void*> again;
  for (int i = 0; i < 8; ++i) {
    void* p = Allocate(kSizes[2]);
    ASSERT_NE(p, nullptr) << i;
    again.push_back(p);
  }
  for (void* p : again) Free(p);
  EXPECT_LE(GetStats().committed_bytes, limit);

  // Lifting the limit lifts the failures.
  SetHardMemoryLimit(0);
  void* big = Allocate(2 * kLimitHeadroom);
  ASSERT_NE(big, nullptr);
  Free(big);
}

TEST_F(HardLimitTest, LimitBelowCommittedRefusesNewMemoryOnly) {
  ReleaseMemory();  // no cached huge block to reuse
  std::vector<void*> blocks;
  for (int i = 0; i < 8; ++i) blocks.push_back(Allocate(kSizes[1]));
  const std::size_t committed = GetStats().committed_bytes;
  SetHardMemoryLimit(committed / 2);
  EXPECT_EQ(Allocate(kSizes[2]), nullptr) << "needs new memory";
  // Freed memory is reused without committing more.
  Free(blocks.back());
  blocks.pop_back();
  void* p = Allocate(kSizes[1]);
  EXPECT_NE(p, nullptr) << "a free committed span needs no new memory";
  if (p != nullptr) blocks.push_back(p);
  for (void* q : blocks) Free(q);
}

}  // namespace
}  // namespace strata
