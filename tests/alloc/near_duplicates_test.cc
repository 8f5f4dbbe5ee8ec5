// tests/alloc/near_duplicates_test.cc: the batch double-free check
// (alloc/internal/near_duplicates.h) finds every repeated address within
// its window, at every position and batch length (the vector loop and the
// scalar rest both), and nothing else: not a repeat one step beyond the
// window, not two addresses that share one 32-bit half.
#include "alloc/internal/near_duplicates.h"

#include <cstdint>
#include <vector>

#include <gtest/gtest.h>

namespace strata::internal {
namespace {

struct Block {};

// n distinct 16-byte-aligned addresses that all share their high 32 bits
// (as the blocks of one batch usually do).
std::vector<Block*> Distinct(std::uint32_t n, std::uint64_t high) {
  std::vector<Block*> v(n);
  for (std::uint32_t k = 0; k < n; ++k) {
    v[k] = reinterpret_cast<Block*>((high << 32) | (std::uint64_t{k} * 16 + 0x1000));
  }
  return v;
}

TEST(NearDuplicatesTest, NoneInDistinctAddresses) {
  for (std::uint32_t n = 0; n <= 300; ++n) {
    std::vector<Block*> v = Distinct(n, 0x7f00);
    EXPECT_FALSE(HasNearDuplicate(v.data(), n)) << "n=" << n;
  }
}

TEST(NearDuplicatesTest, FindsEveryRepeatWithinTheWindow) {
  for (std::uint32_t n : {2u, 3u, 5u, 6u, 7u, 8u, 9u, 16u, 17u, 64u, 255u, 256u}) {
    for (std::uint32_t i = 0; i < n; ++i) {
      for (std::uint32_t d = 1; d <= kDuplicateWindow && i + d < n; ++d) {
        std::vector<Block*> v = Distinct(n, 0x7f00);
        v[i + d] = v[i];
        EXPECT_TRUE(HasNearDuplicate(v.data(), n)) << "n=" << n << " i=" << i << " d=" << d;
      }
    }
  }
}

TEST(NearDuplicatesTest, IgnoresRepeatsBeyondTheWindow) {
  for (std::uint32_t n : {6u, 7u, 8u, 64u, 256u}) {
    for (std::uint32_t i = 0; i + kDuplicateWindow + 1 < n; ++i) {
      std::vector<Block*> v = Distinct(n, 0x7f00);
      v[i + kDuplicateWindow + 1] = v[i];
      EXPECT_FALSE(HasNearDuplicate(v.data(), n)) << "n=" << n << " i=" << i;
    }
  }
}

TEST(NearDuplicatesTest, HalfEqualAddressesAreNotRepeats) {
  // Same low 32 bits, different high ones; and the reverse.
  for (std::uint32_t n : {6u, 9u, 64u, 256u}) {
    for (std::uint32_t i = 0; i + 1 < n; ++i) {
      std::vector<Block*> v = Distinct(n, 0x7f00);
      const auto a = reinterpret_cast<std::uint64_t>(v[i]);
      v[i + 1] = reinterpret_cast<Block*>(a + (std::uint64_t{1} << 32));
      EXPECT_FALSE(HasNearDuplicate(v.data(), n)) << "low half, n=" << n << " i=" << i;
      v[i + 1] = reinterpret_cast<Block*>((a & ~std::uint64_t{0xffffffff}) | 0xfff0);
      EXPECT_FALSE(HasNearDuplicate(v.data(), n)) << "high half, n=" << n << " i=" << i;
    }
  }
}

}  // namespace
}  // namespace strata::internal
