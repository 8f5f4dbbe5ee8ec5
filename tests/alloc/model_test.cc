// A randomized model test: random allocate (random size and alignment),
// free and reallocate, checked against a reference model. Every block is
// filled with a pattern unique to it and verified before it is freed or
// resized, so overlapping blocks or corrupted bytes are caught; the model
// also checks that no two live blocks share an address range.
#include <cstdint>
#include <map>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/strata.h"
#include "tests/alloc/test_util.h"

namespace strata {
namespace {

using testing::Check;
using testing::Fill;
using testing::Rng;

struct Block {
  void* ptr;
  std::size_t size;
  std::uint64_t seed;
};

std::size_t RandomSize(Rng& rng) {
  switch (rng.Uniform(10)) {
    case 0: return rng.Uniform(17);
    case 1: case 2: case 3: return rng.Uniform(257);
    case 4: case 5: return rng.Uniform(4097);
    case 6: return rng.Uniform(70000);
    case 7: return rng.Uniform(300000);
    case 8: return rng.Uniform(1000);
    default: return rng.Uniform(1) == 0 && rng.Uniform(64) == 0 ? rng.Uniform(6u << 20) : rng.Uniform(128);
  }
}

// Checks no overlap of [p, p+n) with the live ranges in `ranges`.
bool Overlaps(const std::map<std::uintptr_t, std::size_t>& ranges, std::uintptr_t p, std::size_t n) {
  auto it = ranges.upper_bound(p);
  if (it != ranges.end() && it->first < p + (n ? n : 1)) return true;
  if (it != ranges.begin()) {
    --it;
    if (it->first + (it->second ? it->second : 1) > p) return true;
  }
  return false;
}

void RunModel(std::uint64_t seed, std::size_t ops) {
  Rng rng(seed);
  std::vector<Block> live;
  std::map<std::uintptr_t, std::size_t> ranges;
  std::uint64_t next_seed = 1;
  for (std::size_t op = 0; op < ops; ++op) {
    std::uint64_t r = rng.Uniform(100);
    if (live.empty() || r < 45) {
      std::size_t n = RandomSize(rng);
      void* p;
      if (rng.Uniform(8) == 0) {
        std::size_t align = std::size_t{1} << rng.Uniform(14);
        p = AllocateAligned(n, align);
        ASSERT_NE(p, nullptr);
        ASSERT_EQ(reinterpret_cast<std::uintptr_t>(p) % align, 0u);
      } else if (rng.Uniform(8) == 0) {
        p = AllocateZeroed(1, n);
        ASSERT_NE(p, nullptr);
        for (std::size_t i = 0; i < n; ++i) ASSERT_EQ(static_cast<unsigned char*>(p)[i], 0);
      } else {
        p = Allocate(n);
        ASSERT_NE(p, nullptr);
      }
      ASSERT_GE(UsableSize(p), n);
      auto addr = reinterpret_cast<std::uintptr_t>(p);
      ASSERT_FALSE(Overlaps(ranges, addr, UsableSize(p))) << "block handed out twice";
      ranges[addr] = UsableSize(p);
      Block b{p, n, next_seed++};
      Fill(p, n, b.seed);
      live.push_back(b);
    } else if (r < 85) {
      std::size_t i = rng.Uniform(live.size());
      Block b = live[i];
      ASSERT_TRUE(Check(b.ptr, b.size, b.seed)) << "corrupted block of " << b.size;
      ranges.erase(reinterpret_cast<std::uintptr_t>(b.ptr));
      if (rng.Uniform(2) == 0) {
        FreeSized(b.ptr, b.size);
      } else {
        Free(b.ptr);
      }
      live[i] = live.back();
      live.pop_back();
    } else {
      std::size_t i = rng.Uniform(live.size());
      Block& b = live[i];
      ASSERT_TRUE(Check(b.ptr, b.size, b.seed));
      std::size_t n = RandomSize(rng) + 1;
      ranges.erase(reinterpret_cast<std::uintptr_t>(b.ptr));
      void* q = Reallocate(b.ptr, n);
      ASSERT_NE(q, nullptr);
      std::size_t keep = b.size < n ? b.size : n;
      ASSERT_TRUE(Check(q, keep, b.seed)) << "realloc lost contents";
      auto addr = reinterpret_cast<std::uintptr_t>(q);
      ASSERT_FALSE(Overlaps(ranges, addr, UsableSize(q)));
      ranges[addr] = UsableSize(q);
      b.ptr = q;
      b.size = n;
      b.seed = next_seed++;
      Fill(q, n, b.seed);
    }
    // Keep the live set bounded so the test explores reuse.
    if (live.size() > 3000) {
      for (int k = 0; k < 1000; ++k) {
        Block b = live.back();
        ASSERT_TRUE(Check(b.ptr, b.size, b.seed));
        ranges.erase(reinterpret_cast<std::uintptr_t>(b.ptr));
        Free(b.ptr);
        live.pop_back();
      }
    }
  }
  for (const Block& b : live) {
    ASSERT_TRUE(Check(b.ptr, b.size, b.seed));
    Free(b.ptr);
  }
}

TEST(Model, RandomOperationsAgainstReference) {
  RunModel(1, 1'000'000 / testing::kScale);
}

TEST(Model, SecondSeedWithReleaseInBetween) {
  RunModel(2, 300'000 / testing::kScale);
  ReleaseMemory();
  RunModel(3, 300'000 / testing::kScale);
}

}  // namespace
}  // namespace strata
