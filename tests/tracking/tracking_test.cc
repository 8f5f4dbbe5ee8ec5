// The tracking layer: sampled and fully tracked allocations are recorded
// with their call stacks, removed when freed, and the live table stays
// consistent under many threads.
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/size_classes.h"
#include "alloc/internal/span.h"
#include "alloc/strata.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/symbolize.h"
#include "alloc/tracking/tracker.h"

// Outside namespace strata: the reports drop frames named strata::...
namespace user_code {
__attribute__((noinline)) void* AllocateFromKnownSite(std::size_t n) {
  void* p = strata::Allocate(n);
  asm volatile("" ::"r"(p) : "memory");
  return p;
}
// n allocations of `size` bytes, all from one stack.
__attribute__((noinline)) void AllocateManyFromOneSite(int n, std::size_t size, std::vector<void*>* out) {
  for (int i = 0; i < n; ++i) out->push_back(AllocateFromKnownSite(size));
  asm volatile("" ::: "memory");
}
}  // namespace user_code

namespace strata::tracking {
namespace {

using user_code::AllocateFromKnownSite;

#if defined(STRATA_SANITIZER_BUILD)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

class TrackAllScope {
 public:
  TrackAllScope() { SetTrackAll(true); }
  ~TrackAllScope() { SetTrackAll(false); }
};

TEST(Tracking, TrackAllRecordsEveryBlockWithItsSite) {
  EnsureTrackingInstalled();
  TrackAllScope scope;
  // Mode changes reach a thread at its next countdown crossing.
  strata::Free(strata::Allocate(16 << 20));
  void* p = AllocateFromKnownSite(100);
  void* big = AllocateFromKnownSite(1 << 20);
  LiveInfo info;
  ASSERT_TRUE(FindLive(reinterpret_cast<std::uintptr_t>(p), &info));
  EXPECT_EQ(info.size, 100u);
  EXPECT_EQ(strata::UsableSize(p), info.usable);
  EXPECT_GE(info.usable, 100u);
  EXPECT_EQ(info.flags & kTracked, static_cast<std::uint32_t>(kTracked));
  ASSERT_NE(info.stack, nullptr);
  int first = FirstUserFrame(info.stack->frames, info.stack->depth);

  char name[256];
  Symbolize(info.stack->frames[first], name, sizeof(name));
  EXPECT_NE(std::string(name).find("AllocateFromKnownSite"), std::string::npos) << name;
  ASSERT_TRUE(FindLive(reinterpret_cast<std::uintptr_t>(big), &info));

  EXPECT_EQ(info.size, std::size_t{1} << 20);
  EXPECT_TRUE(strata::Owns(p));
  strata::Free(p);
  strata::Free(big);
  EXPECT_FALSE(FindLive(reinterpret_cast<std::uintptr_t>(p), &info));
  EXPECT_FALSE(FindLive(reinterpret_cast<std::uintptr_t>(big), &info));
}

// Cumulative totals over every site (count, bytes).
std::pair<std::uint64_t, std::uint64_t> SiteTotals() {
  std::pair<std::uint64_t, std::uint64_t> t{0, 0};
  GlobalStackTable().ForEach(
      [](StackEntry* e, void* arg) {
        auto* sum = static_cast<std::pair<std::uint64_t, std::uint64_t>*>(arg);
        sum->first += e->alloc_count.load();
        sum->second += e->alloc_bytes.load();
      },
      &t);
  return t;
}

// The sites' cumulative totals count every tracked allocation: the calling
// thread's after FlushThreadSiteCounts, an exited thread's at once. (This
// test's process allocates through strata only here.)
TEST(Tracking, SiteTotalsCountEveryTrackedAllocation) {
  EnsureTrackingInstalled();
  TrackAllScope scope;
  strata::Free(strata::Allocate(16 << 20));
  std::vector<void*> v;
  v.reserve(2000);
  FlushThreadSiteCounts();
  const auto before = SiteTotals();
  // More than a batch (256), and a partial one.
  user_code::AllocateManyFromOneSite(1000, 100, &v);
  FlushThreadSiteCounts();
  auto after = SiteTotals();
  EXPECT_EQ(after.first - before.first, 1000u);
  EXPECT_EQ(after.second - before.second, 100000u);
  for (void* p : v) strata::Free(p);
  // Another thread's, without a flush: its exit adds them.
  std::thread([] {
    std::vector<void*> w;
    w.reserve(300);
    user_code::AllocateManyFromOneSite(300, 100, &w);
    for (void* p : w) strata::Free(p);
  }).join();
  after = SiteTotals();
  EXPECT_EQ(after.first - before.first, 1300u);
  EXPECT_EQ(after.second - before.second, 130000u);
}

TEST(Tracking, ReallocOfTrackedBlocksKeepsContents) {
  EnsureTrackingInstalled();
  TrackAllScope scope;
  strata::Free(strata::Allocate(16 << 20));
  auto* p = static_cast<char*>(strata::Allocate(10));
  std::memcpy(p, "123456789", 10);
  p = static_cast<char*>(strata::Reallocate(p, 5000));
  ASSERT_NE(p, nullptr);
  EXPECT_STREQ(p, "123456789");
  p = static_cast<char*>(strata::Reallocate(p, 500000));
  EXPECT_STREQ(p, "123456789");
  strata::Free(p);
}

// The record of a tracked block that realloc grows in place: same stack,
// time and flags, the new requested size, and the usable size the block
// now has (the leak checker scans a block up to its recorded usable size,
// so a stale one would hide the pointers stored in the grown part).
// Covered: a huge block grown within its 4 MiB chunks, a large block grown
// into a free neighbour; a realloc within the usable size keeps the record
// as it was. Hardened mode moves blocks on realloc: there the new block's
// record is checked.
void ExpectRecordAfterRealloc(void* old_ptr, const LiveInfo& before, void* now, std::size_t size) {
  ASSERT_NE(now, nullptr);
  LiveInfo info;
  ASSERT_TRUE(FindLive(reinterpret_cast<std::uintptr_t>(now), &info)) << size;
  EXPECT_EQ(info.size, size);
  EXPECT_EQ(info.usable, strata::UsableSize(now));
  if (internal::Hardened() || now != old_ptr) return;
  EXPECT_EQ(info.stack, before.stack);
  EXPECT_EQ(info.time_ns, before.time_ns);
  EXPECT_EQ(info.flags, before.flags);
}

LiveInfo RecordOf(void* p) {
  LiveInfo info{};
  EXPECT_TRUE(FindLive(reinterpret_cast<std::uintptr_t>(p), &info));
  return info;
}

TEST(Tracking, ReallocInPlaceKeepsTheRecordWithTheNewSizes) {
  EnsureTrackingInstalled();
  strata::ReleaseMemory();
  TrackAllScope scope;
  strata::Free(strata::Allocate(16 << 20));

  const std::size_t mib = std::size_t{1} << 20;
  void* huge = AllocateFromKnownSite(5 * mib);  // its mapping: 8 MiB
  LiveInfo before = RecordOf(huge);
  void* huge2 = strata::Reallocate(huge, 7 * mib);
  if (!internal::Hardened()) EXPECT_EQ(huge2, huge);
  ExpectRecordAfterRealloc(huge, before, huge2, 7 * mib);
  // Within the usable size: nothing changes.
  before = RecordOf(huge2);
  void* huge3 = strata::Reallocate(huge2, 6 * mib);
  if (!internal::Hardened()) {
    EXPECT_EQ(huge3, huge2);
    ExpectRecordAfterRealloc(huge2, before, huge3, 7 * mib);
  }

  void* a = AllocateFromKnownSite(512 * 1024);
  void* b = AllocateFromKnownSite(512 * 1024);
  const bool adjacent = static_cast<char*>(a) + 512 * 1024 == static_cast<char*>(b);
  strata::Free(b);
  before = RecordOf(a);
  void* a2 = strata::Reallocate(a, 900 * 1024);
  if (adjacent && !internal::Hardened()) EXPECT_EQ(a2, a) << "the free neighbour was not used";
  ExpectRecordAfterRealloc(a, before, a2, 900 * 1024);

  for (void* p : {huge3, a2}) {
    strata::Free(p);
    LiveInfo gone;
    EXPECT_FALSE(FindLive(reinterpret_cast<std::uintptr_t>(p), &gone));
  }
}

// Sampling: a sampled block grown in place stays sampled (the heap
// profile scales it by its new size).
TEST(Tracking, SampledBlockGrownInPlaceStaysSampled) {
  EnsureTrackingInstalled();
  SetSampleRate(1);  // every allocation is sampled
  strata::Free(strata::Allocate(16 << 20));
  const std::size_t mib = std::size_t{1} << 20;
  void* huge = AllocateFromKnownSite(5 * mib);
  LiveInfo before = RecordOf(huge);
  EXPECT_EQ(before.flags & kSampled, static_cast<std::uint32_t>(kSampled));
  void* huge2 = strata::Reallocate(huge, 7 * mib);
  if (!internal::Hardened()) EXPECT_EQ(huge2, huge);
  ExpectRecordAfterRealloc(huge, before, huge2, 7 * mib);
  EXPECT_EQ(RecordOf(huge2).flags & kSampled, static_cast<std::uint32_t>(kSampled));
  strata::Free(huge2);
  SetSampleRate(kDefaultSampleRate);
}

// A tracked block's span is the fewest slices that hold it, not its
// class's packing span (a 52 KiB class packs six objects in five slices):
// a sampled block pins its span among the page heap's normal spans. The
// span's tail past its objects is no block.
TEST(Tracking, TrackedBlocksTakeTheFewestSlices) {
  EnsureTrackingInstalled();
  TrackAllScope scope;
  strata::Free(strata::Allocate(16 << 20));
  for (std::size_t size : {std::size_t{2000}, std::size_t{24000}, std::size_t{53000}, std::size_t{100000},
                           std::size_t{250000}}) {
    const int c = internal::SizeToClass(size);
    const std::size_t class_size = internal::ClassSize(c);
    const std::size_t slices = (class_size + internal::kSliceSize - 1) / internal::kSliceSize;
    void* p = AllocateFromKnownSite(size);
    ASSERT_NE(p, nullptr);
    const auto addr = reinterpret_cast<std::uintptr_t>(p);
    const internal::BlockInfo info = internal::LookupBlock(addr);
    ASSERT_EQ(info.kind, internal::BlockKind::kTrackedSmall) << size;
    ASSERT_NE(info.span, nullptr);
    EXPECT_EQ(info.span->num_slices, slices) << size << " (class span: "
                                             << int{internal::ClassInfo(c).span_slices} << " slices)";
    EXPECT_EQ(info.start, addr);
    // The tail: past the last whole object of the span.
    const std::size_t objects = info.span->bytes() / class_size;
    const std::uintptr_t tail = info.span->start() + objects * class_size;
    if (tail < info.span->start() + info.span->bytes()) {
      EXPECT_EQ(internal::LookupBlock(tail).kind, internal::BlockKind::kNone) << size;
    }
    std::memset(p, 0x5a, size);
    strata::Free(p);
  }
}

TEST(Tracking, SamplingRecordsAboutOneSamplePerStride) {
  EnsureTrackingInstalled();
  SetSampleRate(64 * 1024);
  strata::Free(strata::Allocate(16 << 20));
  std::size_t before = LiveCount();
  std::vector<void*> v;
  // 64 MiB in 64-byte blocks: expect ~1024 samples.
  for (int i = 0; i < (1 << 20); ++i) v.push_back(strata::Allocate(64));
  std::size_t sampled = LiveCount() - before;
  EXPECT_GT(sampled, 700u);
  EXPECT_LT(sampled, 1400u);
  for (void* p : v) strata::Free(p);
  EXPECT_LE(LiveCount(), before + 5);
  SetSampleRate(kDefaultSampleRate);
}

// The tiers: a table with few records uses only the first (smallest) tier;
// inserts past its share go to the next tier; records are found and
// removed in whichever tier holds them, also after the first tier drained
// and takes inserts again.
TEST(LiveTableTiers, FewRecordsStayInTheFirstTierAndMoreSpillInOrder) {
  static LiveTable table;  // its own table (2.3 MiB of untouched buckets)
  const std::size_t first_share = LiveTable::kRecordsPerBucket << LiveTable::kTierLog2[0];
  auto key = [](std::size_t i) { return std::uintptr_t{0x7d0000000000} + i * 16; };
  auto insert = [&](std::size_t i) {
    return table.Insert(LiveInfo{key(i), i, 0, nullptr, 0, kSampled});
  };
  for (std::size_t i = 0; i < 100; ++i) ASSERT_TRUE(insert(i));
  EXPECT_EQ(table.tier_size(0), 100u);
  EXPECT_FALSE(table.tier_used(1));
  EXPECT_FALSE(table.tier_used(2));

  const std::size_t total = first_share + 500;
  for (std::size_t i = 100; i < total; ++i) ASSERT_TRUE(insert(i));
  EXPECT_EQ(table.tier_size(0), first_share);
  EXPECT_EQ(table.tier_size(1), 500u);
  EXPECT_FALSE(table.tier_used(2));
  EXPECT_EQ(table.size(), total);

  // Every record is found, with its own fields, whatever its tier.
  for (std::size_t i = 0; i < total; ++i) {
    LiveInfo out;
    ASSERT_TRUE(table.Find(key(i), &out)) << i;
    EXPECT_EQ(out.size, i);
  }
  std::size_t visited = 0;
  table.ForEach([](LiveRecord&, void* arg) { ++*static_cast<std::size_t*>(arg); }, &visited);
  EXPECT_EQ(visited, total);

  // Drain part of the first tier: new inserts go there again, the second
  // tier's records stay found.
  for (std::size_t i = 0; i < 1000; ++i) {
    LiveInfo out;
    ASSERT_TRUE(table.Remove(key(i), &out));
    EXPECT_EQ(out.ptr, key(i));
    EXPECT_FALSE(table.Find(key(i), &out));
  }
  for (std::size_t i = total; i < total + 1000; ++i) ASSERT_TRUE(insert(i));
  EXPECT_EQ(table.tier_size(0), first_share);
  EXPECT_EQ(table.tier_size(1), 500u);
  for (std::size_t i = 1000; i < total + 1000; ++i) {
    LiveInfo out;
    ASSERT_TRUE(table.Remove(key(i), &out)) << i;
    EXPECT_EQ(out.size, i);
  }
  EXPECT_EQ(table.size(), 0u);
  EXPECT_EQ(table.tier_size(0), 0u);
  EXPECT_EQ(table.tier_size(1), 0u);
}

// Many threads insert, find and remove concurrently; every key is found
// while live and gone after removal; the table ends as it began.
TEST(LiveTableStress, ConcurrentInsertRemoveFind) {
  LiveTable& table = GlobalLiveTable();
  std::size_t before = table.size();
  constexpr int kThreads = 10;
  const int ops = 200000 / kScale;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      std::vector<std::uintptr_t> mine;
      for (int i = 0; i < ops; ++i) {
        // Fake, unique, 16-aligned keys in a range no real block uses.
        std::uintptr_t key = (std::uintptr_t{0x7e0000000000} + (static_cast<std::uintptr_t>(t) << 32)) +
                             static_cast<std::uintptr_t>(i) * 16;
        LiveInfo info{key, static_cast<std::size_t>(i), 0, nullptr, 0, kTracked};
        if (!table.Insert(info)) failures.fetch_add(1);
        mine.push_back(key);
        if (i % 3 == 2) {
          // Remove a random earlier key of ours.
          std::size_t j = (static_cast<std::size_t>(i) * 7919u) % mine.size();
          LiveInfo out;
          if (!table.Remove(mine[j], &out) || out.ptr != mine[j]) failures.fetch_add(1);
          if (table.Find(mine[j], &out)) failures.fetch_add(1);
          mine[j] = mine.back();
          mine.pop_back();
        }
      }
      for (std::uintptr_t key : mine) {
        LiveInfo out;
        if (!table.Find(key, &out)) failures.fetch_add(1);
        if (!table.Remove(key, &out)) failures.fetch_add(1);
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(table.size(), before);
}

}  // namespace
}  // namespace strata::tracking
