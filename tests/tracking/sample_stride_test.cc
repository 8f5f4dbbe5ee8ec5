// tests/tracking/sample_stride_test.cc: the sampling stride's draw
// (alloc/internal/hooks.h StrideFromBits) agrees with the precise -ln(1-u)
// (concurrency/base/fast_math.h) and is exponential with mean 1.
#include <cmath>
#include <cstdint>

#include <gtest/gtest.h>

#include "alloc/internal/hooks.h"
#include "concurrency/base/fast_math.h"

namespace strata::internal {
namespace {

TEST(SampleStride, AgreesWithThePreciseLogEverywhere) {
  // v = (k + 1) / 2^53 = 1 - u with u = (2^53 - 1 - k) / 2^53.
  std::uint64_t x = 0x9E3779B97F4A7C15ull;
  double worst = 0;
  for (int i = 0; i < 200000; ++i) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    std::uint64_t k = (x * 0x2545F4914F6CDD1Dull) >> 11;
    if (i < 64) k = (std::uint64_t{1} << 53) - 1 - static_cast<std::uint64_t>(i);  // v near 1
    if (i >= 64 && i < 128) k = static_cast<std::uint64_t>(i - 64);              // v near 0
    const double u = static_cast<double>((std::uint64_t{1} << 53) - 1 - k) / 9007199254740992.0;
    const double precise = base::NegLogOneMinus(u);
    const double fast = StrideFromBits(k);
    const double err = std::fabs(fast - precise);
    if (err > worst) worst = err;
    ASSERT_LE(err, 1e-8 * (1 + precise)) << "k " << k;
  }
  std::printf("worst absolute difference %.3g\n", worst);
}

TEST(SampleStride, ExponentialWithMeanOne) {
  std::uint64_t x = 12345;
  const int n = 1000000;
  double sum = 0, sum2 = 0;
  int above_ln2 = 0;
  for (int i = 0; i < n; ++i) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    const double s = StrideFromBits((x * 0x2545F4914F6CDD1Dull) >> 11);
    ASSERT_GE(s, 0.0);
    sum += s;
    sum2 += s * s;
    if (s > 0.6931471805599453) ++above_ln2;  // the median of Exp(1)
  }
  const double mean = sum / n;
  EXPECT_NEAR(mean, 1.0, 0.005);
  EXPECT_NEAR(sum2 / n - mean * mean, 1.0, 0.02);  // variance 1
  EXPECT_NEAR(static_cast<double>(above_ln2) / n, 0.5, 0.002);
}

}  // namespace
}  // namespace strata::internal
