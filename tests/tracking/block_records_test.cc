// tests/tracking/block_records_test.cc: records of tracked small blocks kept
// at the block's place (alloc/tracking/block_records.h), on addresses no
// real block uses (the store takes any address; nothing is dereferenced
// but the records).
//
// - A record is found again from its block's address and class, for every
//   class, at the first and the last place of a tracked span.
// - State transitions: live -> parked -> live, live -> freed; a second end
//   of a record that is parked or freed is a double free; a record never
//   written is not.
// - Walks visit every live record of the runs of an array that were
//   handed out, once.
// - Many threads map the same fresh slices at once (one array each, the
//   same record for every thread); many threads race to end the same live
//   records (exactly one wins each), while walkers read every array.
// Run under TSan and ASan too.
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/size_classes.h"
#include "alloc/tracking/block_records.h"
#include "alloc/tracking/stack_table.h"

namespace strata::tracking {
namespace {

#if defined(STRATA_SANITIZER_BUILD)
constexpr int kScale = 10;
#else
constexpr int kScale = 1;
#endif

using internal::ClassSize;
using internal::kNumClasses;
using internal::kSliceSize;
using internal::SpanObjects;

// Fake slices, one range per test (never handed out by strata).
std::uintptr_t FakeSlice(int test, int i) {
  return std::uintptr_t{0x7c0000000000} + (static_cast<std::uintptr_t>(test) << 32) +
         static_cast<std::uintptr_t>(i) * kSliceSize;
}

StackEntry* SomeStack() {
  static StackEntry entry;
  return &entry;
}

// Counts the live records the walk gives for addresses in [lo, hi).
std::size_t WalkCount(std::uintptr_t lo, std::uintptr_t hi) {
  struct Ctx {
    std::uintptr_t lo, hi;
    std::size_t n;
  } ctx{lo, hi, 0};
  ForEachBlockRecord(
      [](const LiveInfo& info, void* arg) {
        auto* c = static_cast<Ctx*>(arg);
        if (info.ptr >= c->lo && info.ptr < c->hi) ++c->n;
      },
      &ctx);
  return ctx.n;
}

TEST(BlockRecords, EveryClassFindsItsRecordAtFirstAndLastPlace) {
  for (int c = 1; c < kNumClasses; ++c) {
    const std::uintptr_t slice = FakeSlice(1, c);
    const std::uint32_t objects = SpanObjects(c, true);
    const std::uintptr_t first = slice;
    const std::uintptr_t last = slice + static_cast<std::uintptr_t>(objects - 1) * ClassSize(c);
    BlockRecord* a = BlockRecordFor(first, c);
    BlockRecord* b = BlockRecordFor(last, c);
    ASSERT_NE(a, nullptr);
    ASSERT_NE(b, nullptr);
    EXPECT_EQ(b - a, static_cast<std::ptrdiff_t>(objects - 1)) << "class " << c;
    EXPECT_EQ(FindBlockRecord(first, c), a);
    EXPECT_EQ(FindBlockRecord(last, c), b);
    WriteBlockRecord(a, SomeStack(), 1, 7, kTracked, c);
    WriteBlockRecord(b, SomeStack(), 2, ClassSize(c), kSampled, c);
    LiveInfo seen[2] = {};
    struct Ctx {
      std::uintptr_t lo, hi;
      LiveInfo* seen;
      int n;
    } ctx{slice, slice + kSliceSize, seen, 0};
    ForEachBlockRecord(
        [](const LiveInfo& info, void* arg) {
          auto* x = static_cast<Ctx*>(arg);
          if (info.ptr >= x->lo && info.ptr < x->hi && x->n < 2) x->seen[x->n++] = info;
        },
        &ctx);
    ASSERT_EQ(ctx.n, objects == 1 ? 1 : 2) << "class " << c;
    // The walk gives the block's address, sizes and flags back.
    const LiveInfo& f = seen[0].ptr == first ? seen[0] : seen[1];
    EXPECT_EQ(f.ptr, first);
    EXPECT_EQ(f.usable, ClassSize(c));
    EXPECT_EQ(f.stack, SomeStack());
    if (objects > 1) {
      const LiveInfo& l = seen[0].ptr == last ? seen[0] : seen[1];
      EXPECT_EQ(l.ptr, last);
      EXPECT_EQ(l.size, ClassSize(c));
      EXPECT_EQ(l.flags, static_cast<std::uint32_t>(kSampled));
      EXPECT_EQ(l.time_ns, 2u);
    } else {
      EXPECT_EQ(f.size, ClassSize(c));  // the same record, written twice
    }
    bool double_free = false;
    EXPECT_NE(EndBlockRecord(a, false, &double_free), 0u);
    if (objects > 1) EXPECT_NE(EndBlockRecord(b, false, &double_free), 0u);
    EXPECT_EQ(WalkCount(slice, slice + kSliceSize), 0u);
  }
}

TEST(BlockRecords, StatesParkUnparkFreeAndDoubleFrees) {
  const int c = internal::SizeToClass(48);
  const std::uintptr_t p = FakeSlice(2, 0) + 5 * ClassSize(c);
  BlockRecord* r = BlockRecordFor(p, c);
  ASSERT_NE(r, nullptr);
  bool double_free = true;
  // Never written: not a double free, just no record.
  EXPECT_EQ(EndBlockRecord(r, true, &double_free), 0u);
  EXPECT_FALSE(double_free);

  WriteBlockRecord(r, SomeStack(), 10, 40, kTracked, c);
  EXPECT_TRUE(StateLive(r->state.load()));
  EXPECT_EQ(StateClass(r->state.load()), c);
  EXPECT_EQ(EndBlockRecord(r, true, &double_free), (static_cast<std::uint32_t>(c) << kStateClassShift) | kTracked);
  EXPECT_FALSE(StateLive(r->state.load()));
  EXPECT_EQ(WalkCount(p, p + 1), 0u);
  // A second free of a parked block.
  EXPECT_EQ(EndBlockRecord(r, false, &double_free), 0u);
  EXPECT_TRUE(double_free);
  // Unparked by a new allocation: live with the new fields.
  WriteBlockRecord(r, SomeStack(), 11, 33, kTracked, c);
  EXPECT_EQ(WalkCount(p, p + 1), 1u);
  EXPECT_EQ(r->size.load(), 33u);
  // Parked, then released to the pool: freed, its stack kept.
  double_free = false;
  EXPECT_NE(EndBlockRecord(r, true, &double_free), 0u);
  ReleaseParkedRecord(r);
  EXPECT_NE(r->state.load() & kFreed, 0u);
  EXPECT_EQ(r->state.load() & kParked, 0u);
  EXPECT_EQ(r->stack.load(), SomeStack());
  EXPECT_EQ(EndBlockRecord(r, false, &double_free), 0u);
  EXPECT_TRUE(double_free);
}

// Walks visit only the runs of an array whose records were handed out
// (BlockRecordFor): records at the ends of runs, in the first and the last
// run, and in a run of their own are each visited once; a freed one is
// not; every class's array, whatever its run length.
TEST(BlockRecords, WalksVisitEveryRecordOfTheWrittenRuns) {
  for (int c = 1; c < kNumClasses; ++c) {
    const std::uintptr_t slice = FakeSlice(4, c);
    const std::uint32_t n = SpanObjects(c, true);
    std::vector<std::uint32_t> indices = {0, n - 1, n / 2, n / 3};
    if (n > 64) indices.insert(indices.end(), {63, 64, 65, n - 64});
    std::sort(indices.begin(), indices.end());
    indices.erase(std::unique(indices.begin(), indices.end()), indices.end());
    for (std::uint32_t i : indices) {
      BlockRecord* r = BlockRecordFor(slice + i * ClassSize(c), c);
      ASSERT_NE(r, nullptr);
      WriteBlockRecord(r, SomeStack(), 1, 8, kSampled, c);
    }
    EXPECT_EQ(WalkCount(slice, slice + kSliceSize), indices.size()) << "class " << c;
    bool double_free = false;
    EndBlockRecord(FindBlockRecord(slice + indices[0] * ClassSize(c), c), false, &double_free);
    EXPECT_EQ(WalkCount(slice, slice + kSliceSize), indices.size() - 1) << "class " << c;
    for (std::size_t k = 1; k < indices.size(); ++k) {
      EndBlockRecord(FindBlockRecord(slice + indices[k] * ClassSize(c), c), false, &double_free);
    }
    EXPECT_EQ(WalkCount(slice, slice + kSliceSize), 0u);
  }
}

TEST(BlockRecordsStress, ConcurrentMappingEndingAndWalking) {
  constexpr int kThreads = 8;
  const int slices = 64 / kScale + 4;
  const int c = internal::SizeToClass(256);
  const std::uint32_t objects = SpanObjects(c, true);
  const std::size_t slices_before = BlockRecordSlices();
  std::vector<std::vector<BlockRecord*>> seen(kThreads, std::vector<BlockRecord*>(slices));
  std::atomic<int> ready{0};
  std::atomic<bool> stop{false};
  std::atomic<int> failures{0};
  // Phase 1: every thread maps every fresh slice at once.
  {
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        ready.fetch_add(1);
        while (ready.load() < kThreads) std::this_thread::yield();
        for (int i = 0; i < slices; ++i) {
          const int j = (i + t * 7) % slices;  // different orders
          seen[t][j] = BlockRecordFor(FakeSlice(3, j) + ClassSize(c), c);
        }
      });
    }
    for (auto& th : threads) th.join();
  }
  for (int i = 0; i < slices; ++i) {
    for (int t = 1; t < kThreads; ++t) ASSERT_EQ(seen[t][i], seen[0][i]) << "slice " << i;
  }
  EXPECT_EQ(BlockRecordSlices(), slices_before + static_cast<std::size_t>(slices));

  // Phase 2: rounds of records written live, then every thread ends each of
  // them at once (a double free race): exactly one end wins per record.
  // Walkers read all arrays meanwhile.
  std::vector<std::thread> walkers;
  for (int w = 0; w < 2; ++w) {
    walkers.emplace_back([&] {
      while (!stop.load()) {
        struct Ctx {
          int bad;
        } ctx{0};
        ForEachBlockRecord(
            [](const LiveInfo& info, void* arg) {
              if (info.stack == nullptr || info.usable == 0) ++static_cast<Ctx*>(arg)->bad;
            },
            &ctx);
        if (ctx.bad != 0) failures.fetch_add(1);
      }
    });
  }
  const int rounds = 60 / (kScale > 1 ? 3 : 1);
  const std::uint32_t per_round = objects < 64 ? objects : 64;
  for (int round = 0; round < rounds; ++round) {
    const std::uintptr_t slice = FakeSlice(3, round % slices);
    for (std::uint32_t i = 0; i < per_round; ++i) {
      WriteBlockRecord(BlockRecordFor(slice + i * ClassSize(c), c), SomeStack(), round, 100, kTracked, c);
    }
    std::atomic<int> wins{0};
    std::atomic<int> doubles{0};
    std::atomic<int> go{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        go.fetch_add(1);
        while (go.load() < kThreads) std::this_thread::yield();
        for (std::uint32_t i = 0; i < per_round; ++i) {
          bool double_free = false;
          if (EndBlockRecord(FindBlockRecord(slice + i * ClassSize(c), c), t % 2 == 0, &double_free) != 0) {
            wins.fetch_add(1);
          } else if (double_free) {
            doubles.fetch_add(1);
          }
        }
      });
    }
    for (auto& th : threads) th.join();
    EXPECT_EQ(wins.load(), static_cast<int>(per_round)) << "round " << round;
    EXPECT_EQ(doubles.load(), static_cast<int>(per_round) * (kThreads - 1)) << "round " << round;
    // Parked ones go back to the pool (their holder releases them).
    for (std::uint32_t i = 0; i < per_round; ++i) {
      BlockRecord* r = FindBlockRecord(slice + i * ClassSize(c), c);
      if ((r->state.load() & kParked) != 0) ReleaseParkedRecord(r);
    }
  }
  stop.store(true);
  for (auto& th : walkers) th.join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(WalkCount(FakeSlice(3, 0), FakeSlice(3, slices)), 0u);
}

}  // namespace
}  // namespace strata::tracking
