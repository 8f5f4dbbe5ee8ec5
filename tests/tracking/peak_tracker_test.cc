// tests/tracking/peak_tracker_test.cc: the peak snapshots behind the peak
// heap profile (alloc/tracking/peak_tracker.h): the margin bound on
// accuracy, exact in leak-checking mode (every block weighs its size), and
// snapshots racing allocations, frees and readers on many threads (also
// under TSan and ASan in CI).
#include "alloc/tracking/peak_tracker.h"

#include <atomic>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/strata.h"
#include "alloc/tracking/tracker.h"

namespace strata::tracking {
namespace {

struct SiteSum {
  double bytes = 0;
  double objects = 0;
  std::size_t sites = 0;
};

void Sum(const PeakSite& site, void* arg) {
  auto* s = static_cast<SiteSum*>(arg);
  s->bytes += site.inuse_bytes;
  s->objects += site.inuse_objects;
  ++s->sites;
}

SiteSum ReadSnapshot(PeakInfo* info) {
  SiteSum sum;
  EXPECT_TRUE(ReadPeakSnapshot(&Sum, &sum, info));
  return sum;
}

// Every allocation tracked: weights are exact sizes, so the snapshot must
// be within the margin of the true peak (64 MiB), never above it.
TEST(PeakTracker, SnapshotTrailsTheExactPeakByAtMostTheMargin) {
  SetTrackAll(true);
  ResetPeak();
  constexpr int kBlocks = 64;
  constexpr std::size_t kBlock = std::size_t{1} << 20;
  std::vector<void*> blocks;
  for (int i = 0; i < kBlocks; ++i) blocks.push_back(Allocate(kBlock));
  for (void* p : blocks) Free(p);
  blocks.clear();
  for (int i = 0; i < 8; ++i) blocks.push_back(Allocate(kBlock));
  PeakInfo info;
  SiteSum sum = ReadSnapshot(&info);
  for (void* p : blocks) Free(p);
  SetTrackAll(false);

  const double peak = static_cast<double>(kBlocks * kBlock);
  // Other tracked blocks of the process (gtest's) add a little.
  EXPECT_GE(sum.bytes, peak * 16 / 17 - 2 * kFlushBytes);
  EXPECT_LE(sum.bytes, peak + (4 << 20));
  EXPECT_NEAR(static_cast<double>(info.snapshot_bytes), sum.bytes, 1.0);
  EXPECT_GE(info.snapshots, 2u);
  EXPECT_GE(static_cast<double>(info.highest_estimate), peak - 2 * kFlushBytes);
  EXPECT_GE(sum.objects, kBlocks * 16.0 / 17.0 - 1);
  EXPECT_GE(sum.sites, 1u);
  EXPECT_FALSE(info.truncated);
}

// The least margin: 1 MiB when every allocation is tracked or the stride is
// short, four strides when sampling at longer strides (a sampled estimate
// moves a stride at a time).
TEST(PeakTracker, TheLeastMarginIsFourStridesWhenSampling) {
  struct Case {
    bool track_all;
    std::int64_t rate;
    std::int64_t margin;
  };
  for (const Case& c : {Case{true, kDefaultSampleRate, 1 << 20}, Case{false, 64 << 10, 1 << 20},
                        Case{false, 256 << 10, 1 << 20}, Case{false, kDefaultSampleRate, 2 << 20},
                        Case{false, 4 << 20, 16 << 20}}) {
    SetTrackAll(c.track_all);
    SetSampleRate(c.rate);
    ResetPeak();
    PeakInfo info;
    ReadSnapshot(&info);
    EXPECT_EQ(info.next_threshold - info.estimate, c.margin) << c.track_all << " " << c.rate;
  }
  SetTrackAll(false);
  SetSampleRate(kDefaultSampleRate);
  ResetPeak();
}

// A heap that never passes its first margin takes no snapshot.
TEST(PeakTracker, NoSnapshotBelowTheFirstMargin) {
  SetTrackAll(true);
  ResetPeak();
  std::vector<void*> blocks;
  for (int i = 0; i < 64; ++i) blocks.push_back(Allocate(4096));  // 256 KiB < 1 MiB
  PeakInfo info;
  SiteSum sum = ReadSnapshot(&info);
  for (void* p : blocks) Free(p);
  SetTrackAll(false);
  EXPECT_EQ(info.snapshots, 0u);
  EXPECT_EQ(sum.sites, 0u);
}

// Sampled weights: a block as large as the stride weighs size / (1 -
// 1/e); a tiny block weighs about the stride.
TEST(PeakTracker, SampledWeightsUnsampleAsTheProfileDoes) {
  double objects, bytes;
  RecordWeight(512 * 1024, kSampled, 512 * 1024, &objects, &bytes);
  EXPECT_NEAR(objects, 1.0 / (1.0 - 0.36787944117144233), 1e-9);
  EXPECT_NEAR(bytes, 512 * 1024 / (1.0 - 0.36787944117144233), 1e-3);
  RecordWeight(16, kSampled, 512 * 1024, &objects, &bytes);
  EXPECT_NEAR(bytes, 512 * 1024, 16.0);
  RecordWeight(1000, kTracked, 512 * 1024, &objects, &bytes);
  EXPECT_EQ(objects, 1.0);
  EXPECT_EQ(bytes, 1000.0);
  RecordWeight(1000, kSampled, 1, &objects, &bytes);
  EXPECT_EQ(bytes, 1000.0);
}

// The running estimate's cheap weight stays within 1% of the exact one,
// from tiny blocks to blocks far above the stride.
TEST(PeakTracker, ApproximateWeightIsWithinOnePercent) {
  for (std::int64_t rate : {std::int64_t{4096}, std::int64_t{512 * 1024}}) {
    for (double size = 1; size < 1e10; size *= 1.37) {
      double objects, exact;
      RecordWeight(static_cast<std::size_t>(size), kSampled, rate, &objects, &exact);
      const double approx = ApproxSampledBytes(static_cast<std::size_t>(size), rate);
      EXPECT_NEAR(approx / exact, 1.0, 0.01) << "size " << size << " rate " << rate;
    }
  }
}

// Many threads allocate and free tracked blocks (each a ramp up and down,
// so thresholds are crossed again and again) while a reader copies the
// snapshot out: no crash, no lost lock, a sane snapshot at the end.
TEST(PeakTracker, SnapshotsRaceAllocationsFreesAndReaders) {
  SetSampleRate(1);  // every allocation sampled (weight = size)
  ResetPeak();
  constexpr int kThreads = 4;
  std::atomic<bool> stop{false};
  std::atomic<int> reads{0};
  std::thread reader([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      PeakInfo info;
      SiteSum sum;
      if (ReadPeakSnapshot(&Sum, &sum, &info)) reads.fetch_add(1, std::memory_order_relaxed);
      EXPECT_LE(sum.sites, info.sites);
      std::this_thread::yield();
    }
  });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t] {
      std::vector<void*> blocks;
      for (int round = 0; round < 10; ++round) {
        for (int i = 0; i < 1000; ++i) blocks.push_back(Allocate(1024 + 64 * ((i + t) % 32)));
        for (void* p : blocks) Free(p);
        blocks.clear();
      }
    });
  }
  for (std::thread& t : threads) t.join();
  stop.store(true);
  reader.join();
  PeakInfo info;
  SiteSum sum = ReadSnapshot(&info);
  SetSampleRate(kDefaultSampleRate);
  EXPECT_GT(reads.load(), 0);
  EXPECT_GE(info.snapshots, 1u);
  // At most every thread's 1000 blocks of at most 3 KiB were live at once.
  EXPECT_LE(sum.bytes, kThreads * 1000.0 * 3072 + (4 << 20));
  EXPECT_GT(sum.bytes, 0.0);
}

}  // namespace
}  // namespace strata::tracking
