// tests/alloc/class_map_test.cc: the class map's two forms
// (alloc/internal/page_map.h). Each test runs in a forked child with a
// fresh engine (the parent never calls strata), so the child's first
// allocation chooses the form:
//   - the flat array, in a process with address space to spare;
//   - the two-level radix map, when RLIMIT_AS leaves less than the flat
//     array needs (2 GiB; 8 GiB with owner frees).
// In both, every block strata hands out maps to its class, large blocks and
// addresses strata never handed out (also garbage above the 47-bit user
// space) map to 0, and a multi-threaded churn whose blocks are freed by
// other threads (each free looks its block up) ends with exact statistics.
#include <sys/resource.h>

#include <atomic>
#include <cstdio>
#include <cstdint>
#include <cstdlib>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/block_lookup.h"
#include "alloc/internal/hardening.h"
#include "alloc/internal/page_map.h"
#include "alloc/internal/size_classes.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "concurrency/base/macros.h"
#include "tests/hardening/child.h"
#include "tests/hardening/util.h"

namespace strata {
namespace {

using internal::g_class_map;

std::uintptr_t Addr(const void* p) { return reinterpret_cast<std::uintptr_t>(p); }

// The class map's class for block `p` of `size` bytes: its size class, or
// 0 for a large block or a sampled one (tracked spans are not in the map).
// In hardened mode a block also holds its trailer (canary and recorded
// size), so the class is the engine's hardened class for the request.
int ExpectedClass(void* p, std::size_t size) {
  if (size > internal::kMaxSmallSize) return 0;
  if (internal::LookupBlock(Addr(p)).kind == internal::BlockKind::kTrackedSmall) return 0;
  if (internal::Hardened()) return internal::HardenedClass(size, 0);
  return internal::SizeToClass(size);
}

// Blocks of mixed sizes (about 100 MiB in all), allocated by kThreads
// threads; each thread then frees the blocks its neighbour allocated.
// Returns the blocks whose class was wrong plus a million per failed
// allocation.
int Churn() {
  constexpr int kThreads = 4;
  constexpr int kBlocks = 10000;
  std::vector<std::vector<void*>> blocks(kThreads);
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      unsigned x = 12345u + static_cast<unsigned>(t);
      for (int i = 0; i < kBlocks; ++i) {
        x = x * 1103515245u + 12345u;
        const std::size_t size = (x >> 8) % 16 == 0 ? 1 + (x >> 12) % 300000 : 1 + (x >> 12) % 2048;
        void* p = Allocate(size);
        if (p == nullptr) {
          bad.fetch_add(1000000);
          continue;
        }
        if (g_class_map.Get(Addr(p)) != ExpectedClass(p, size)) bad.fetch_add(1);
        blocks[t].push_back(p);
      }
    });
  }
  for (auto& th : threads) th.join();
  threads.clear();
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (void* p : blocks[(t + 1) % kThreads]) Free(p);
    });
  }
  for (auto& th : threads) th.join();
  return bad.load();
}

// The checks; returns 0 or the number of the first that failed.
int CheckClassMap(bool expect_flat) {
  const Stats before = GetStats();
  std::vector<void*> small;
  for (std::size_t size : {1, 16, 17, 100, 512, 1000, 1024, 1025, 4096, 40000, 262144}) {
    void* p = Allocate(size);
    if (p == nullptr) return 1;
    if (g_class_map.Get(Addr(p)) != ExpectedClass(p, size)) return 2;
    small.push_back(p);
  }
  if (g_class_map.flat() != expect_flat) return 3;
  void* large = Allocate(std::size_t{1} << 20);
  void* huge = Allocate(std::size_t{64} << 20);
  if (large == nullptr || huge == nullptr) return 4;
  if (g_class_map.GetEntry(Addr(large)) != 0 || g_class_map.GetEntry(Addr(huge)) != 0) return 5;
  int local = 0;
  const std::uintptr_t never[] = {0,
                                  1,
                                  4096,
                                  Addr(&local),
                                  reinterpret_cast<std::uintptr_t>(&CheckClassMap),
                                  std::uintptr_t{1} << 47,
                                  (std::uintptr_t{1} << 47) + 12345,
                                  std::uintptr_t{1} << 63,
                                  UINTPTR_MAX,
                                  UINTPTR_MAX - 4095};
  for (std::uintptr_t a : never) {
    if (g_class_map.GetEntry(a) != 0) return 6;
  }
  const int churn = Churn();
  if (churn != 0) {
    std::fprintf(stderr, "churn: %d allocations failed, %d wrong classes\n", churn / 1000000, churn % 1000000);
    return 7;
  }
  for (void* p : small) Free(p);
  Free(large);
  Free(huge);
  const Stats after = GetStats();
  if (after.live_bytes != before.live_bytes) return 8;
  // The map's memory: a few pages of the flat array (4 KiB per 256 MiB of
  // heap), or a few radix leaves.
  const std::size_t meta = g_class_map.metadata_bytes();
  if (meta == 0 || meta > (std::size_t{8} << 20)) return 9;
  return 0;
}

TEST(ClassMapTest, FlatFormMapsEveryBlock) {
  const testing::ChildResult r = testing::RunInChild([] { _exit(CheckClassMap(/*expect_flat=*/true)); });
  ASSERT_TRUE(r.exited) << r.Describe();
  EXPECT_EQ(r.exit_code, 0) << "check " << r.exit_code << " failed; " << r.Describe();
}

TEST(ClassMapTest, RadixFormWhenAddressSpaceIsCapped) {
#if defined(STRATA_ASAN) || defined(STRATA_TSAN)
  GTEST_SKIP() << "RLIMIT_AS cannot work under ASan or TSan (terabytes of shadow address space)";
#endif
  const testing::ChildResult r = testing::RunInChild([] {
    // Room for the heap this test uses, not for the flat array.
    rlimit limit;
    limit.rlim_cur = limit.rlim_max = testing::VirtualSize() + (std::size_t{1} << 30);
    if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(90);
    _exit(CheckClassMap(/*expect_flat=*/false));
  });
  ASSERT_TRUE(r.exited) << r.Describe();
  EXPECT_EQ(r.exit_code, 0) << "check " << r.exit_code << " failed; " << r.Describe();
}

}  // namespace
}  // namespace strata
