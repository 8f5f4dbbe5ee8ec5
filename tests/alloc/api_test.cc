// The public API's contract, one property per test.
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <cstring>
#include <set>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/errors.h"
#include "alloc/internal/size_classes.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/alloc/test_util.h"

namespace strata {
namespace {

using internal::kMaxSmallSize;
using testing::Check;
using testing::Fill;

TEST(Api, ZeroSizeGivesUniquePointers) {
  void* a = Allocate(0);
  void* b = Allocate(0);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_NE(a, b);
  EXPECT_GE(UsableSize(a), 1u);
  Free(a);
  Free(b);
}

TEST(Api, EverySizeIsUsableAlignedAndWritable) {
  std::vector<void*> blocks;
  for (std::size_t n = 1; n <= 64 * 1024; n += (n < 1024 ? 1 : 97)) {
    void* p = Allocate(n);
    ASSERT_NE(p, nullptr) << n;
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 16, 0u) << n;
    EXPECT_GE(UsableSize(p), n);
    EXPECT_EQ(UsableSize(p), GoodSize(n));
    EXPECT_TRUE(Owns(p));
    Fill(p, n, n);
    blocks.push_back(p);
  }
  std::size_t n = 1;
  for (void* p : blocks) {
    EXPECT_TRUE(Check(p, n, n)) << n;
    Free(p);
    n += (n < 1024 ? 1 : 97);
  }
}

TEST(Api, PowerOfTwoSizesUpToThePageAreNaturallyAligned) {
  for (std::size_t n = 16; n <= 4096; n *= 2) {
    std::vector<void*> v;
    for (int i = 0; i < 100; ++i) {
      void* p = Allocate(n);
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % n, 0u) << n;
      v.push_back(p);
    }
    for (void* p : v) Free(p);
  }
}

TEST(Api, LargeAndHugeBlocks) {
  for (std::size_t n : {kMaxSmallSize + 1, std::size_t{1} << 20, std::size_t{3} << 20,
                        std::size_t{5} << 20, std::size_t{64} << 20}) {
    auto* p = static_cast<unsigned char*>(Allocate(n));
    ASSERT_NE(p, nullptr) << n;
    EXPECT_GE(UsableSize(p), n);
    EXPECT_TRUE(Owns(p));
    EXPECT_FALSE(Owns(p + 16));
    p[0] = 1;
    p[n - 1] = 2;
    Free(p);
  }
}

TEST(Api, AlignedAllocationAtEveryPowerOfTwo) {
  for (std::size_t align = 1; align <= (std::size_t{16} << 20); align *= 2) {
    for (std::size_t n : {std::size_t{1}, std::size_t{24}, std::size_t{4000}, std::size_t{70000},
                          std::size_t{300000}, std::size_t{5} << 20}) {
      void* p = AllocateAligned(n, align);
      ASSERT_NE(p, nullptr) << n << " " << align;
      EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u) << n << " " << align;
      EXPECT_GE(UsableSize(p), n);
      std::memset(p, 0xab, n);
      Free(p);
    }
  }
  EXPECT_EQ(AllocateAligned(64, 3), nullptr);
  EXPECT_EQ(AllocateAligned(64, 0), nullptr);
  EXPECT_EQ(AllocateAligned(64, 48), nullptr);
}

TEST(Api, ZeroedMemoryIsZeroEvenWhenReused) {
  for (int round = 0; round < 3; ++round) {
    for (std::size_t n : {std::size_t{8}, std::size_t{100}, std::size_t{5000}, kMaxSmallSize,
                          std::size_t{1} << 20, std::size_t{6} << 20}) {
      void* dirty = Allocate(n);
      std::memset(dirty, 0xff, n);
      Free(dirty);
      auto* p = static_cast<unsigned char*>(AllocateZeroed(1, n));
      ASSERT_NE(p, nullptr);
      for (std::size_t i = 0; i < n; i += 1 + i / 64) ASSERT_EQ(p[i], 0) << n << " at " << i;
      ASSERT_EQ(p[n - 1], 0);
      Free(p);
    }
  }
}

TEST(Api, OverflowingAndHugeRequestsFail) {
  EXPECT_EQ(AllocateZeroed(SIZE_MAX / 2, 3), nullptr);
  EXPECT_EQ(AllocateZeroed(std::size_t{1} << 33, std::size_t{1} << 33), nullptr);
  EXPECT_EQ(Allocate(SIZE_MAX), nullptr);
  EXPECT_EQ(Allocate(SIZE_MAX - 4096), nullptr);
  EXPECT_EQ(Allocate(static_cast<std::size_t>(PTRDIFF_MAX)), nullptr);
  EXPECT_EQ(AllocateAligned(SIZE_MAX - 10, 64), nullptr);
  EXPECT_EQ(AllocateAligned(16, std::size_t{1} << 62), nullptr);
  void* p = Allocate(10);
  EXPECT_EQ(Reallocate(p, SIZE_MAX), nullptr);
  Free(p);  // the old block survived the failed realloc
}

TEST(Api, ReallocatePreservesContentsAcrossClassesAndTiers) {
  std::size_t sizes[] = {1, 17, 100, 1000, 5000, 70000, kMaxSmallSize, 600000, 5u << 20, 9u << 20, 100, 3};
  void* p = Allocate(1);
  static_cast<unsigned char*>(p)[0] = 42;
  std::size_t have = 1;
  for (std::size_t n : sizes) {
    void* q = Reallocate(p, n);
    ASSERT_NE(q, nullptr);
    std::size_t keep = have < n ? have : n;
    ASSERT_TRUE(Check(q, keep, 99) || keep == 1) << n;
    Fill(q, n, 99);
    have = n;
    p = q;
  }
  EXPECT_EQ(Reallocate(p, 0), nullptr);  // frees, as glibc
  void* fresh = Reallocate(nullptr, 40);
  ASSERT_NE(fresh, nullptr);
  Free(fresh);
}

TEST(Api, ReallocateInPlaceWithinTheClass) {
  void* p = Allocate(100);
  std::size_t usable = UsableSize(p);
  EXPECT_EQ(Reallocate(p, usable), p);
  EXPECT_EQ(Reallocate(p, usable - 5), p);
  Free(p);
}

TEST(Api, FreeNullAndSizedFrees) {
  Free(nullptr);
  void* p = Allocate(48);
  FreeSized(p, 48);
  p = AllocateAligned(100, 256);
  FreeAlignedSized(p, 100, 256);
}

TEST(Api, OwnsRejectsForeignPointers) {
  int local = 0;
  static int global = 0;
  EXPECT_FALSE(Owns(&local));
  EXPECT_FALSE(Owns(&global));
  EXPECT_FALSE(Owns(nullptr));
  auto* p = static_cast<char*>(Allocate(64));
  EXPECT_TRUE(Owns(p));
  EXPECT_FALSE(Owns(p + 8));
  Free(p);
}

std::vector<std::string>* g_errors;
void RecordError(internal::ErrorKind, const void*, std::size_t, const char* line) {
  g_errors->push_back(line);
}

TEST(Api, InvalidFreesAreReportedNotCorrupting) {
  std::vector<std::string> errors;
  g_errors = &errors;
  auto old = internal::SetErrorHook(&RecordError);
  int local = 0;
  Free(&local);
  auto* big = static_cast<char*>(Allocate(1 << 20));
  Free(big + 4096);
  Free(big);
  Free(big);  // double free of a large block
  auto* huge = static_cast<char*>(Allocate(16 << 20));
  Free(huge + 64);
  Free(huge);
  internal::SetErrorHook(old);
  ASSERT_EQ(errors.size(), 4u);
  EXPECT_NE(errors[0].find("strata: invalid free (pointer not allocated by strata): pointer 0x"), std::string::npos) << errors[0];
  EXPECT_NE(errors[1].find("interior pointer"), std::string::npos) << errors[1];
  EXPECT_NE(errors[2].find("double free"), std::string::npos) << errors[2];
  EXPECT_NE(errors[3].find("interior pointer"), std::string::npos) << errors[3];
  // The allocator still works.
  void* p = Allocate(1 << 20);
  ASSERT_NE(p, nullptr);
  Free(p);
}

TEST(Api, StatsCountAllocationsAndLiveBytes) {
  Stats before = GetStats();
  std::vector<void*> v;
  for (int i = 0; i < 1000; ++i) v.push_back(Allocate(64));
  void* big = Allocate(1 << 20);
  Stats during = GetStats();
  EXPECT_GE(during.allocations - before.allocations, 1001u);
  EXPECT_GE(during.live_bytes - before.live_bytes, 1000 * 64 + (1 << 20));
  EXPECT_GE(during.threads_with_cache, 1u);
  EXPECT_GE(during.peak_live_bytes, during.live_bytes);
  for (void* p : v) Free(p);
  Free(big);
  FlushThreadCache();
  Stats after = GetStats();
  EXPECT_LE(after.live_bytes, before.live_bytes + 4096);
  EXPECT_GE(after.frees - before.frees, 1001u);
}

}  // namespace
}  // namespace strata
