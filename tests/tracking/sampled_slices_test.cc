// tests/tracking/sampled_slices_test.cc: sampled blocks of the bigger
// classes stay in the normal spans, and the slices that hold them
// (alloc/internal/sampled_slices.h).
#include "alloc/internal/sampled_slices.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/peak_tracker.h"
#include "alloc/tracking/sampled_records.h"
#include "alloc/tracking/tracker.h"
#include "tests/alloc/test_util.h"
#include "tests/hardening/child.h"

namespace strata::tracking {
namespace {

using internal::g_class_map;
using internal::kSliceSize;

using strata::testing::kScale;

std::uintptr_t Key(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }
std::uintptr_t SliceOf(const void* p) { return Key(p) & ~(kSliceSize - 1); }

constexpr std::size_t kBig = 8 << 10;  // an 8 KiB class: 8 blocks a slice

class SampleRateScope {
 public:
  explicit SampleRateScope(std::int64_t rate) {
    EnsureTrackingInstalled();
    SetTrackAll(false);
    SetSampleRate(rate);
  }
  ~SampleRateScope() { SetSampleRate(kDefaultSampleRate); }
};

// `n` blocks of `size` bytes that start in one slice (the others freed).
std::vector<void*> BlocksOfOneSlice(std::size_t size, std::size_t n) {
  std::vector<void*> all;
  std::vector<void*> out;
  for (int i = 0; i < 4096 && out.size() < n; ++i) {
    all.push_back(strata::Allocate(size));
    out.clear();
    const std::uintptr_t slice = SliceOf(all.back());
    for (void* p : all) {
      if (SliceOf(p) == slice && out.size() < n) out.push_back(p);
    }
  }
  for (void* p : all) {
    bool kept = false;
    for (void* q : out) kept |= q == p;
    if (!kept) strata::Free(p);
  }
  return out;
}

TEST(SampledSlices, OnlyTheBiggerClassesStayInPlace) {
  if (internal::kOwnerFreesBuilt) {
    for (int c = 1; c < internal::kNumClasses; ++c) EXPECT_FALSE(sampled_slices::InPlace(c));
    GTEST_SKIP() << "a build with owner frees keeps every sampled block in the tracked pools";
  }
  EXPECT_FALSE(sampled_slices::InPlace(internal::SizeToClass(64)));
  EXPECT_FALSE(sampled_slices::InPlace(internal::SizeToClass(sampled_slices::kMinInPlaceSize)));
  EXPECT_TRUE(sampled_slices::InPlace(internal::SizeToClass(sampled_slices::kMinInPlaceSize + 1)));
  EXPECT_TRUE(sampled_slices::InPlace(internal::SizeToClass(internal::kMaxSmallSize)));
}

// Where a sampled request goes by class, alignment and stride: its own
// class's next block for the bigger classes; a block of kSmallSampleClass
// for a smaller one with no alignment beyond 16 at the default stride; the
// tracked pools (0) for an aligned small request or a short stride.
TEST(SampledSlices, SmallRequestsTakeABlockOfTheSmallSampleClass) {
  if (internal::kOwnerFreesBuilt) GTEST_SKIP() << "a build with owner frees keeps every sampled block in the tracked pools";
  const int small = internal::SizeToClass(100);
  const int big = internal::SizeToClass(kBig);
  EXPECT_EQ(internal::ClassSize(sampled_slices::kSmallSampleClass), 4608u);
  {
    SampleRateScope rate(kDefaultSampleRate);
    EXPECT_EQ(sampled_slices::InPlaceClass(big, 0), big);
    EXPECT_EQ(sampled_slices::InPlaceClass(big, 4096), big);
    EXPECT_EQ(sampled_slices::InPlaceClass(small, 0), sampled_slices::kSmallSampleClass);
    EXPECT_EQ(sampled_slices::InPlaceClass(small, 16), sampled_slices::kSmallSampleClass);
    EXPECT_EQ(sampled_slices::InPlaceClass(small, 64), 0);
    EXPECT_EQ(sampled_slices::InPlaceClass(internal::SizeToClass(4096), 0), sampled_slices::kSmallSampleClass);
  }
  {
    SampleRateScope rate(sampled_slices::kMinSmallSampleRate - 1);
    EXPECT_EQ(sampled_slices::InPlaceClass(big, 0), big);
    EXPECT_EQ(sampled_slices::InPlaceClass(small, 0), 0);
  }
}

// The first of many 100-byte allocations the profiler samples at the
// default stride (about 20 expected in 10 MB); the others freed.
void* SampledSmallBlock(std::size_t size) {
  std::vector<void*> all;
  void* found = nullptr;
  LiveInfo live;
  for (std::size_t i = 0; i < (std::size_t{10} << 20) / size && found == nullptr; ++i) {
    void* p = strata::Allocate(size);
    if (FindLive(Key(p), &live)) {
      found = p;
    } else {
      all.push_back(p);
    }
  }
  for (void* p : all) strata::Free(p);
  return found;
}

// End to end at the default stride: a sampled 100-byte request is a block
// of kSmallSampleClass in a marked slice, recorded with its own size; a
// sized free naming its requested size is accepted (no report) and ends
// the record; a reallocation moves it, even within its block (the new block is judged as a new
// request, the old record ends); an aligned small request still takes the
// tracked pools.
TEST(SampledSlices, SampledSmallRequestsLiveInTheNormalSpans) {
  if (internal::kOwnerFreesBuilt) GTEST_SKIP() << "no sampling in place in this build";
  SampleRateScope rate(kDefaultSampleRate);
  const std::uint64_t marked_before = sampled_slices::MarkedBlocks();
  void* p = SampledSmallBlock(100);
  ASSERT_NE(p, nullptr) << "nothing sampled in 10 MB at a 512 KiB stride";
  const internal::BlockInfo info = internal::LookupBlock(Key(p));
  EXPECT_EQ(info.kind, internal::BlockKind::kSmall);
  EXPECT_EQ(info.size_class, sampled_slices::kSmallSampleClass);
  EXPECT_EQ(g_class_map.Get(Key(p)), 0);
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before + 1);
  LiveInfo live;
  ASSERT_TRUE(FindLive(Key(p), &live));
  EXPECT_EQ(live.flags, static_cast<std::uint32_t>(kSampled));
  EXPECT_EQ(live.size, 100u);
  std::memset(p, 7, 100);
  // 3000 bytes fit the block (and more than half of it): a block of the
  // class would stay.
  void* q = strata::Reallocate(p, 3000);
  ASSERT_NE(q, p) << "a sampled small request moves on realloc";
  EXPECT_EQ(static_cast<unsigned char*>(q)[99], 7);
  EXPECT_FALSE(FindLive(Key(p), &live)) << "the moved block's record stayed";
  if (FindLive(Key(q), &live)) EXPECT_EQ(live.size, 3000u);
  strata::Free(q);
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before);
  // Sized frees name the request's size, as for any block of its class
  // (a wrong size would be reported: the process would stop here).
  for (std::size_t size : {std::size_t{16}, std::size_t{100}, std::size_t{2000}, std::size_t{4096}}) {
    void* s = SampledSmallBlock(size);
    ASSERT_NE(s, nullptr) << size;
    ASSERT_EQ(internal::LookupBlock(Key(s)).size_class, sampled_slices::kSmallSampleClass) << size;
    strata::FreeSized(s, size);
    EXPECT_FALSE(FindLive(Key(s), &live)) << size;
  }
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before);
  // An aligned small request: the tracked pools.
  std::vector<void*> all;
  void* a = nullptr;
  for (int i = 0; i < 200000 && a == nullptr; ++i) {
    void* x = strata::AllocateAligned(64, 64);
    if (FindLive(Key(x), &live)) {
      a = x;
    } else {
      all.push_back(x);
    }
  }
  for (void* x : all) strata::Free(x);
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(internal::LookupBlock(Key(a)).kind, internal::BlockKind::kTrackedSmall);
  strata::FreeAlignedSized(a, 64, 64);
  EXPECT_FALSE(FindLive(Key(a), &live));
}

// The blocks of sampled small requests never pass through the thread's
// list of kSmallSampleClass (internal::kSampleBlocks): a freed one waits
// in the thread's sample blocks, and the next small sample takes it; the
// list's length and bound stay as they were, and the statistics count the
// kept block as cached.
TEST(SampledSlices, SampledSmallBlocksComeBackToTheThreadsSampleBlocks) {
  if (internal::kOwnerFreesBuilt) GTEST_SKIP() << "no sampling in place in this build";
  SampleRateScope rate(kDefaultSampleRate);
  internal::ThreadCache& tc = internal::CurrentThreadCache();
  const int c = sampled_slices::kSmallSampleClass;
  void* p = SampledSmallBlock(100);
  ASSERT_NE(p, nullptr) << "nothing sampled in 10 MB at a 512 KiB stride";
  ASSERT_EQ(internal::LookupBlock(Key(p)).size_class, c);
  internal::FreeList& list = tc.lists[c];
  const std::uint32_t length = internal::ListLength(list);
  const std::uint32_t max_length = internal::MaxLength(list);
  const std::uint32_t kept = tc.sample_block_count;
  const std::size_t cached_before = GetStats().size_classes[c - 1].thread_cache_bytes;
  strata::Free(p);
  EXPECT_EQ(internal::ListLength(list), length);
  EXPECT_EQ(internal::MaxLength(list), max_length);
  if (kept < internal::kSampleBlocks) {
    ASSERT_EQ(tc.sample_block_count, kept + 1);
    EXPECT_EQ(tc.sample_blocks[kept], p);
    EXPECT_EQ(GetStats().size_classes[c - 1].thread_cache_bytes, cached_before + internal::ClassSize(c));
    // The next small sample takes it back.
    void* q = SampledSmallBlock(200);
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q, p);
    EXPECT_EQ(tc.sample_block_count, kept);
    EXPECT_EQ(internal::ListLength(list), length);
    EXPECT_EQ(internal::MaxLength(list), max_length);
    strata::Free(q);
  }
  // More frees than the thread keeps: the rest go to the central pool.
  std::vector<void*> samples;
  for (std::uint32_t i = 0; i < internal::kSampleBlocks + 2; ++i) {
    void* s = SampledSmallBlock(64);
    ASSERT_NE(s, nullptr);
    samples.push_back(s);
  }
  for (void* s : samples) strata::Free(s);
  EXPECT_EQ(tc.sample_block_count, internal::kSampleBlocks);
  EXPECT_EQ(internal::ListLength(list), length);
  EXPECT_EQ(internal::MaxLength(list), max_length);
  // A flush hands them to the central pool too.
  strata::ReleaseMemory();
  EXPECT_EQ(tc.sample_block_count, 0u);
}

// A mark takes the slice off the class map until its last sampled block is
// unmarked; more sampled blocks than the slice word names (overflow) still
// count exactly. The slice's other blocks are freed through the slow path
// meanwhile and come back as blocks of their class.
TEST(SampledSlices, MarksCountPerSliceAndTheClassComesBackAtTheLast) {
  SampleRateScope rate(0);
  using sampled_slices::kSlots;
  // 4608-byte blocks: 14 a slice, room for kSlots + 4.
  const int c = sampled_slices::kSmallSampleClass;
  const std::size_t size = internal::ClassSize(c);
  static_assert(kSlots + 4 <= internal::kSliceSize / 4608);
  std::vector<void*> v = BlocksOfOneSlice(size, kSlots + 4);
  ASSERT_EQ(v.size(), static_cast<std::size_t>(kSlots + 4));
  const std::uintptr_t slice = SliceOf(v[0]);
  ASSERT_EQ(g_class_map.Get(slice), c);
  const std::uint64_t marked_before = sampled_slices::MarkedBlocks();
  // Two more marked than the word's slots: the first kSlots take the
  // word's slots in order; the others none.
  for (int i = 0; i < kSlots + 2; ++i) {
    ASSERT_EQ(sampled_slices::Mark(Key(v[i]), c), i < kSlots ? i : sampled_slices::kNoSlot) << i;
  }
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before + kSlots + 2);
  EXPECT_EQ(g_class_map.Get(slice), 0);
  void* const neighbour = v[kSlots + 3];
  EXPECT_TRUE(sampled_slices::Holds(Key(neighbour)));
  // A neighbour's free: the slow path frees it as a block of the class
  // (UsableSize and the free see a live block, no report).
  EXPECT_EQ(strata::UsableSize(neighbour), size);
  strata::Free(neighbour);
  void* again = strata::Allocate(size);
  EXPECT_EQ(again, neighbour) << "the freed neighbour went to the thread's list";
  strata::Free(again);
  // A slot an unmark frees is taken by the next mark (the overflow stays).
  sampled_slices::Unmark(Key(v[1]), c);
  EXPECT_EQ(sampled_slices::Mark(Key(v[kSlots + 2]), c), 1);
  sampled_slices::Unmark(Key(v[kSlots + 2]), c);
  for (int i = kSlots + 1; i >= 1; --i) {
    if (i != 1) sampled_slices::Unmark(Key(v[i]), c);
    EXPECT_EQ(g_class_map.Get(slice), 0) << "unmarked too early, " << i << " left";
    // The overflow lasts while a block counted in no slot is marked
    // (v[kSlots] and v[kSlots + 1]), and no longer.
    EXPECT_EQ(sampled_slices::MayName(sampled_slices::Word(slice), Key(neighbour)), i > kSlots) << i;
  }
  sampled_slices::Unmark(Key(v[0]), c);
  EXPECT_EQ(g_class_map.Get(slice), c);
  EXPECT_FALSE(sampled_slices::Holds(Key(v[0])));
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before);
  for (int i = 0; i < kSlots + 3; ++i) strata::Free(v[i]);
}

// End to end: a sampled block of a bigger class is a normal block of its
// class (LookupBlock kSmall), recorded (sampled), in a marked slice; its
// usable size, an in-place realloc and a moving one behave as for any
// block; its free removes the record and gives the class back.
TEST(SampledSlices, SampledBlocksLiveInTheNormalSpans) {
  if (!sampled_slices::InPlace(internal::SizeToClass(kBig))) GTEST_SKIP() << "no sampling in place in this build";
  SampleRateScope rate(1);  // every allocation sampled
  const int c = internal::SizeToClass(kBig);
  const std::uint64_t marked_before = sampled_slices::MarkedBlocks();
  void* p = strata::Allocate(kBig - 100);
  const internal::BlockInfo info = internal::LookupBlock(Key(p));
  EXPECT_EQ(info.kind, internal::BlockKind::kSmall);
  EXPECT_EQ(info.size_class, c);
  EXPECT_EQ(g_class_map.Get(Key(p)), 0);
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before + 1);
  LiveInfo live;
  ASSERT_TRUE(FindLive(Key(p), &live));
  EXPECT_EQ(live.flags, static_cast<std::uint32_t>(kSampled));
  EXPECT_EQ(live.size, kBig - 100);
  EXPECT_EQ(live.usable, internal::ClassSize(c));
  EXPECT_EQ(strata::UsableSize(p), internal::ClassSize(c));
  std::memset(p, 7, kBig - 100);
  EXPECT_EQ(strata::Reallocate(p, kBig), p) << "within its class: kept in place";
  EXPECT_TRUE(FindLive(Key(p), &live));
  void* q = strata::Reallocate(p, 3 * kBig);
  ASSERT_NE(q, p);
  EXPECT_EQ(static_cast<unsigned char*>(q)[kBig - 101], 7);
  EXPECT_FALSE(FindLive(Key(p), &live)) << "the moved block's record stayed";
  ASSERT_TRUE(FindLive(Key(q), &live));
  EXPECT_EQ(live.size, 3 * kBig);
  strata::Free(q);
  EXPECT_FALSE(FindLive(Key(q), &live));
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before);
  // Sized and aligned frees of a sampled block take the same road.
  void* s = strata::Allocate(kBig);
  void* a = strata::AllocateAligned(kBig, 4096);
  ASSERT_TRUE(FindLive(Key(s), &live));
  ASSERT_TRUE(FindLive(Key(a), &live));
  strata::FreeSized(s, kBig);
  strata::FreeAlignedSized(a, kBig, 4096);
  EXPECT_FALSE(FindLive(Key(s), &live));
  EXPECT_FALSE(FindLive(Key(a), &live));
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before);
}

// Records: a sampled block named by a slot of its slice's word has its
// record in that slot (sampled_records.h), one in no slot (a fifth at
// once) in the live table; both are found, walked and ended by the free.
// How many records of the blocks `v` a walk of the live records visits.
int LiveVisits(const std::vector<void*>& v) {
  struct Seen {
    const std::vector<void*>* v;
    int n;
  } seen{&v, 0};
  ForEachLive(
      [](const LiveInfo& r, void* arg) {
        auto* s = static_cast<Seen*>(arg);
        for (void* p : *s->v) s->n += r.ptr == Key(p);
      },
      &seen);
  return seen.n;
}

TEST(SampledSlices, SlotsHoldTheRecordsAndOverflowTakesTheLiveTable) {
  if (!sampled_slices::InPlace(internal::SizeToClass(kBig))) GTEST_SKIP() << "no sampling in place in this build";
  std::vector<void*> v;
  std::uintptr_t slice = 0;
  {
    SampleRateScope rate(1);  // every allocation sampled
    // kSlots + 1 blocks of one slice (the others freed at once).
    std::vector<void*> other;
    while (v.size() < sampled_slices::kSlots + 1u && other.size() < 4096) {
      void* p = strata::Allocate(kBig);
      if (slice == 0) slice = SliceOf(p);
      (SliceOf(p) == slice ? v : other).push_back(p);
    }
    for (void* p : other) strata::Free(p);
  }
  constexpr int kBlocks = sampled_slices::kSlots + 1;
  ASSERT_EQ(v.size(), static_cast<std::size_t>(kBlocks));
  LiveInfo live;
  for (int i = 0; i < kBlocks; ++i) {
    ASSERT_TRUE(FindLive(Key(v[i]), &live)) << i;
    EXPECT_EQ(live.flags, static_cast<std::uint32_t>(kSampled));
    EXPECT_EQ(FindSampledLive(Key(v[i]), &live), i < kBlocks - 1) << i;
    EXPECT_EQ(GlobalLiveTable().Find(Key(v[i]), &live), i == kBlocks - 1) << i;
  }
  EXPECT_EQ(LiveVisits(v), kBlocks) << "each visited once";
  for (void* p : v) {
    strata::Free(p);
    EXPECT_FALSE(FindLive(Key(p), &live));
  }
  EXPECT_FALSE(sampled_slices::Holds(slice));
}

// Sampled large and huge blocks keep their records in the array of the
// slice they start in, not in the live table: found, walked once, resized
// in place, ended at their free. Tracked ones of leak checking stay in the
// live table.
TEST(SampledSlices, LargeSamplesKeepTheirRecordsInTheirSlicesArray) {
  const std::size_t mib = std::size_t{1} << 20;
  const std::size_t sizes[] = {300 << 10, 3 * mib, 9 * mib};
  std::vector<void*> v;
  {
    SampleRateScope rate(1);  // every allocation sampled
    strata::Free(strata::Allocate(16 << 20));
    for (std::size_t size : sizes) v.push_back(strata::Allocate(size));
  }
  LiveInfo live;
  for (std::size_t i = 0; i < v.size(); ++i) {
    const internal::BlockInfo block = internal::LookupBlock(Key(v[i]));
    ASSERT_TRUE(block.kind == internal::BlockKind::kLarge || block.kind == internal::BlockKind::kHuge) << i;
    ASSERT_TRUE(FindLive(Key(v[i]), &live)) << i;
    EXPECT_EQ(live.ptr, Key(v[i]));
    EXPECT_EQ(live.flags, static_cast<std::uint32_t>(kSampled));
    EXPECT_EQ(live.size, sizes[i]);
    EXPECT_EQ(live.usable, block.usable);
    ASSERT_NE(live.stack, nullptr);
    EXPECT_TRUE(FindSampledLive(Key(v[i]), &live)) << i;
    EXPECT_FALSE(GlobalLiveTable().Find(Key(v[i]), &live)) << i;
  }
  EXPECT_EQ(LiveVisits(v), 3) << "each visited once";
  // Within its usable size: the record keeps its sizes (hooks.h); grown in
  // place: the new ones.
  void* grown = strata::Reallocate(v[2], 10 * mib);
  if (grown == v[2]) {
    ASSERT_TRUE(FindSampledLive(Key(grown), &live));
    EXPECT_EQ(live.size, 10 * mib);
    EXPECT_EQ(live.usable, internal::LookupBlock(Key(grown)).usable);
  }
  v[2] = grown;
  for (void* p : v) {
    strata::Free(p);
    EXPECT_FALSE(FindLive(Key(p), &live));
    EXPECT_FALSE(FindSampledLive(Key(p), &live));
  }
  // Leak checking: the live table.
  SetTrackAll(true);
  strata::Free(strata::Allocate(16 << 20));
  void* tracked = strata::Allocate(300 << 10);
  EXPECT_TRUE(GlobalLiveTable().Find(Key(tracked), &live));
  EXPECT_FALSE(FindSampledLive(Key(tracked), &live));
  strata::Free(tracked);
  EXPECT_FALSE(FindLive(Key(tracked), &live));
  SetTrackAll(false);
}

struct Estimate {
  double bytes = 0;
  std::int64_t rate = 0;
  std::size_t lo = 0, hi = 0;  // the blocks' size range
};

// The profile's unsampling of blocks sampled in place is as for any sample:
// 64 MiB of 8 KiB blocks at a 128 KiB stride (~500 samples) come out
// within 15% (about three standard deviations).
TEST(SampledSlices, TheProfileEstimatesBlocksSampledInPlace) {
  if (!sampled_slices::InPlace(internal::SizeToClass(kBig))) GTEST_SKIP() << "no sampling in place in this build";
  constexpr std::int64_t kRate = 128 << 10;
  SampleRateScope rate(kRate);
  std::vector<void*> v;
  const std::size_t n = (std::size_t{64} << 20) / kBig;
  for (std::size_t i = 0; i < n; ++i) v.push_back(strata::Allocate(kBig - 8));
  Estimate e{0, kRate, kBig - 8, kBig - 8};
  ForEachLive(
      [](const LiveInfo& r, void* arg) {
        auto* e = static_cast<Estimate*>(arg);
        if (r.size < e->lo || r.size > e->hi) return;
        double objects, bytes;
        RecordWeight(r.size, r.flags, e->rate, &objects, &bytes);
        e->bytes += bytes;
      },
      &e);
  const double truth = static_cast<double>(n * (kBig - 8));
  EXPECT_NEAR(e.bytes / truth, 1.0, 0.15);
  for (void* p : v) strata::Free(p);
}

// Many threads sample big blocks and free their own and each other's
// (slices marked and unmarked under every interleaving of frees of sampled
// blocks and of their neighbours): no false report, every record and mark
// gone at the end, every slice's class back.
TEST(SampledSlicesStress, ConcurrentSamplesAndCrossThreadFrees) {
  if (!sampled_slices::InPlace(internal::SizeToClass(kBig))) GTEST_SKIP() << "no sampling in place in this build";
  SampleRateScope rate(64 << 10);
  const std::uint64_t marked_before = sampled_slices::MarkedBlocks();
  const std::size_t live_before = LiveCount();
  constexpr int kThreads = 4;
  const int rounds = static_cast<int>(20000 / kScale);
  std::mutex mu;
  std::vector<void*> shared;
  // Slices the blocks started in (a fixed array: a vector's buffer could
  // be a sampled block itself, live in one of them at the check).
  static std::uintptr_t slices[kThreads * 256];
  std::size_t slice_count = 0;
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::uint64_t x = 0x9E3779B97F4A7C15ull * static_cast<std::uint64_t>(t + 1);
      std::vector<void*> mine;
      std::vector<std::uintptr_t> seen;
      for (int i = 0; i < rounds; ++i) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        const std::size_t size = 4097 + x % (60 << 10);
        void* p = strata::Allocate(size);
        ASSERT_NE(p, nullptr);
        static_cast<char*>(p)[size - 1] = 1;
        if (seen.size() < 256) seen.push_back(SliceOf(p));
        if (x % 3 == 0) {
          std::lock_guard<std::mutex> lock(mu);
          shared.push_back(p);
        } else {
          mine.push_back(p);
        }
        if (mine.size() > 64) {
          strata::Free(mine[x % mine.size()]);
          mine[x % mine.size()] = mine.back();
          mine.pop_back();
        }
        if (x % 5 == 0) {
          void* other = nullptr;
          {
            std::lock_guard<std::mutex> lock(mu);
            if (!shared.empty()) {
              other = shared.back();
              shared.pop_back();
            }
          }
          strata::Free(other);
        }
      }
      for (void* p : mine) strata::Free(p);
      std::lock_guard<std::mutex> lock(mu);
      for (std::uintptr_t s : seen) slices[slice_count++] = s;
      done.fetch_add(1);
    });
  }
  for (std::thread& th : threads) th.join();
  for (void* p : shared) strata::Free(p);
  shared.clear();
  shared.shrink_to_fit();
  threads.clear();
  threads.shrink_to_fit();
  ASSERT_EQ(done.load(), kThreads);
  EXPECT_EQ(sampled_slices::MarkedBlocks(), marked_before);
  EXPECT_LE(LiveCount(), live_before);
  for (std::size_t i = 0; i < slice_count; ++i) {
    EXPECT_FALSE(sampled_slices::Holds(slices[i])) << "a slice stayed marked";
  }
}

// A slice marked and unmarked over and over while other threads free and
// take back its other blocks: a free that read the class map while the
// slice was marked and the slice's word after it was unmarked is still a
// free of a live block (no double-free report), as are usable-size and
// realloc lookups.
TEST(SampledSlicesStress, NeighboursFreedWhileTheSliceIsUnmarked) {
  SampleRateScope rate(0);
  const int c = internal::SizeToClass(kBig);
  std::vector<void*> v = BlocksOfOneSlice(kBig, 3);
  ASSERT_EQ(v.size(), 3u);
  std::atomic<bool> stop{false};
  const int rounds = static_cast<int>(200000 / kScale);
  std::thread marker([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      ASSERT_EQ(sampled_slices::Mark(Key(v[0]), c), 0);
      sampled_slices::Unmark(Key(v[0]), c);
    }
  });
  std::vector<std::thread> freers;
  for (int t = 1; t <= 2; ++t) {
    freers.emplace_back([&, t] {
      // The thread's list of the class in use first (a thread's first
      // frees of a class it never allocated go back to the central pool),
      // with room for a push (a push that overflows the list hands blocks
      // to the central pool, where the other thread may take them).
      std::vector<void*> warm;
      for (int i = 0; i < 16; ++i) warm.push_back(strata::Allocate(kBig));
      for (void* w : warm) strata::Free(w);
      warm.clear();
      for (int i = 0; i < 4; ++i) warm.push_back(strata::Allocate(kBig));
      void* p = v[static_cast<std::size_t>(t)];
      for (int i = 0; i < rounds; ++i) {
        ASSERT_EQ(strata::UsableSize(p), internal::ClassSize(c));
        strata::Free(p);
        // The thread's list is LIFO: the block comes straight back.
        void* q = strata::Allocate(kBig);
        ASSERT_EQ(q, p);
      }
      for (void* w : warm) strata::Free(w);
    });
  }
  for (std::thread& th : freers) th.join();
  stop.store(true);
  marker.join();
  EXPECT_EQ(g_class_map.Get(Key(v[0])), c);
  for (void* p : v) strata::Free(p);
}

// A fork child takes over a slice's lock that a thread of its parent held
// at the fork (ForkChild raises the generation the locks name): it frees a
// sampled block of that slice (Unmark takes the lock) and samples again.
// Without the takeover it would wait for a thread it does not have, until
// the deadline kills it.
TEST(SampledSlicesFork, AChildTakesOverASliceLockItsParentHeld) {
  if (!sampled_slices::InPlace(internal::SizeToClass(kBig))) GTEST_SKIP() << "no sampling in place in this build";
  void* p = nullptr;
  {
    SampleRateScope rate(1);  // every allocation sampled
    p = strata::Allocate(kBig);
  }
  ASSERT_TRUE(sampled_slices::Holds(Key(p)));
  std::atomic<int> step{0};
  std::thread holder([&] {
    sampled_slices::HoldLockForTesting(Key(p));
    step.store(1);
    while (step.load() != 2) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    sampled_slices::ReleaseLockForTesting(Key(p));
  });
  while (step.load() != 1) std::this_thread::yield();
  const strata::testing::ChildResult r = strata::testing::RunInChild(
      [p] {
        SetSampleRate(1);
        strata::Free(p);
        void* q = strata::Allocate(kBig);
        if (!sampled_slices::Holds(Key(q))) _exit(2);
        strata::Free(q);
      },
      strata::testing::Mode::kInherit, 10000);
  step.store(2);
  holder.join();
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
  strata::Free(p);
  EXPECT_FALSE(sampled_slices::Holds(Key(p)));
}

}  // namespace
}  // namespace strata::tracking
