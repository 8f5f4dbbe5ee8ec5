// tests/alloc/address_runs_test.cc: CountAddressRuns
// (alloc/internal/address_runs.h) counts the runs of neighbouring blocks of
// a batch exactly: ascending and descending neighbours alike, at every
// batch length and break position (the vector loop and the scalar rest
// both), and nothing that is not a neighbour: not a difference whose low
// 32 bits alone equal the stride, not another multiple of it.
#include "alloc/internal/address_runs.h"

#include <cstdint>
#include <random>
#include <vector>

#include <gtest/gtest.h>

namespace strata::internal {
namespace {

struct Block {};

Block* At(std::uint64_t address) { return reinterpret_cast<Block*>(address); }

// The definition, written plainly.
std::uint32_t Reference(const std::vector<Block*>& v, std::uint64_t stride) {
  if (v.empty()) return 0;
  std::uint32_t runs = 1;
  for (std::size_t i = 1; i < v.size(); ++i) {
    const std::uint64_t a = reinterpret_cast<std::uint64_t>(v[i - 1]);
    const std::uint64_t b = reinterpret_cast<std::uint64_t>(v[i]);
    if (b != a + stride && a != b + stride) ++runs;
  }
  return runs;
}

TEST(AddressRunsTest, OneRunUpOrDown) {
  for (std::uint32_t n = 1; n <= 300; ++n) {
    std::vector<Block*> up(n), down(n);
    for (std::uint32_t k = 0; k < n; ++k) {
      up[k] = At(0x7f0012340000 + std::uint64_t{k} * 64);
      down[k] = At(0x7f0012340000 + std::uint64_t{n - k} * 64);
    }
    EXPECT_EQ(CountAddressRuns(up.data(), n, 64), 1u) << "n=" << n;
    EXPECT_EQ(CountAddressRuns(down.data(), n, 64), 1u) << "n=" << n;
  }
  EXPECT_EQ(CountAddressRuns<Block>(nullptr, 0, 64), 0u);
}

TEST(AddressRunsTest, EveryBreakPositionCounts) {
  for (std::uint32_t n : {2u, 3u, 4u, 5u, 16u, 17u, 255u, 256u}) {
    for (std::uint32_t cut = 1; cut < n; ++cut) {
      // Two runs: [0, cut) ascending, then [cut, n) ascending far away.
      std::vector<Block*> v(n);
      for (std::uint32_t k = 0; k < n; ++k) {
        v[k] = At((k < cut ? 0x7f0000100000 : 0x7f0000900000) + std::uint64_t{k} * 48);
      }
      EXPECT_EQ(CountAddressRuns(v.data(), n, 48), 2u) << "n=" << n << " cut=" << cut;
      // The second run descending, and starting next to the first one's
      // last block in the other direction: still a break.
      for (std::uint32_t k = cut; k < n; ++k) v[k] = At(0x7f0000100000 + std::uint64_t{cut} * 48 + std::uint64_t{n - k} * 48 + 48);
      EXPECT_EQ(CountAddressRuns(v.data(), n, 48), Reference(v, 48)) << "n=" << n << " cut=" << cut;
    }
  }
}

TEST(AddressRunsTest, OnlyTrueNeighboursJoin) {
  const std::uint64_t base = 0x7f0000100000;
  // The low 32 bits of the difference equal the stride, the high ones do not.
  std::vector<Block*> v = {At(base), At(base + (std::uint64_t{1} << 32) + 64), At(base + (std::uint64_t{2} << 32) + 128)};
  EXPECT_EQ(CountAddressRuns(v.data(), 3, 64), 3u);
  // The high 32 bits of the difference equal those of -stride, the low
  // ones not.
  v = {At(base), At(base - (std::uint64_t{1} << 32) + 5), At(base - (std::uint64_t{2} << 32) + 10)};
  EXPECT_EQ(CountAddressRuns(v.data(), 3, 64), 3u);
  // Two strides apart, or the same address: not neighbours.
  v = {At(base), At(base + 128), At(base + 128), At(base + 64)};
  EXPECT_EQ(CountAddressRuns(v.data(), 4, 64), 3u);
}

TEST(AddressRunsTest, MatchesTheDefinitionOnRandomBatches) {
  std::mt19937_64 rng(42);
  for (int round = 0; round < 2000; ++round) {
    const std::uint32_t n = static_cast<std::uint32_t>(rng() % 300);
    const std::uint64_t stride = 16 * (1 + rng() % 64);
    std::vector<Block*> v(n);
    std::uint64_t at = 0x7f0000000000 + (rng() % 4096) * stride;
    for (std::uint32_t k = 0; k < n; ++k) {
      switch (rng() % 4) {
        case 0: at += stride; break;
        case 1: at -= stride; break;
        case 2: at += stride * (2 + rng() % 100); break;
        default: at = 0x7f0000000000 + (rng() % 100000) * stride; break;
      }
      v[k] = At(at);
    }
    ASSERT_EQ(CountAddressRuns(v.data(), n, stride), Reference(v, stride)) << "round=" << round;
  }
}

}  // namespace
}  // namespace strata::internal
