// tests/concurrency/fast_math_test.cc: the libm-free log and exp
// (concurrency/base/fast_math.h) against libm over their whole domains,
// including the edges: tiny arguments (where a naive 1 - e^-x cancels),
// subnormals, the switch points between series and range reduction, and
// the saturating ends.
#include "concurrency/base/fast_math.h"

#include <cmath>
#include <cstdint>
#include <limits>

#include "gtest/gtest.h"

namespace strata::base {
namespace {

double RelErr(double got, double want) {
  if (want == 0.0) return std::fabs(got);
  return std::fabs(got - want) / std::fabs(want);
}

TEST(FastMath, LogPositiveMatchesLibm) {
  // Log-spaced over the normal range, plus subnormals.
  for (double x = 1e-300; x < 1e300; x *= 1.0137) {
    ASSERT_LT(RelErr(LogPositive(x), std::log(x)), 1e-13) << x;
  }
  const double sub = std::numeric_limits<double>::denorm_min() * 12345.0;
  EXPECT_LT(RelErr(LogPositive(sub), std::log(sub)), 1e-13);
  EXPECT_EQ(LogPositive(1.0), 0.0);
  // Around 1, absolute error matters (ln x is near 0).
  for (double x = 0.9; x < 1.1; x += 1e-4) ASSERT_LT(std::fabs(LogPositive(x) - std::log(x)), 1e-15) << x;
}

TEST(FastMath, NegLogOneMinusMatchesLibm) {
  for (double u = 0.0; u < 1.0; u += 1.0 / 4099.0) {
    ASSERT_LT(RelErr(NegLogOneMinus(u), -std::log1p(-u)), 1e-13) << u;
  }
  for (double u = 1e-18; u < 0.3; u *= 1.7) {
    ASSERT_LT(RelErr(NegLogOneMinus(u), -std::log1p(-u)), 1e-13) << u;
  }
  // The largest u below 1 that a 53-bit uniform draw produces.
  const double top = 1.0 - 1.0 / 9007199254740992.0;
  EXPECT_LT(RelErr(NegLogOneMinus(top), -std::log1p(-top)), 1e-13);
  EXPECT_EQ(NegLogOneMinus(0.0), 0.0);
  EXPECT_GE(NegLogOneMinus(1.0), 1e300);
}

TEST(FastMath, OneMinusExpNegMatchesLibm) {
  for (double x = 1e-300; x < 800.0; x *= 1.0173) {
    ASSERT_LT(RelErr(OneMinusExpNeg(x), -std::expm1(-x)), 1e-13) << x;
  }
  for (double x = 0.0; x < 40.0; x += 1.0 / 1024.0) {
    ASSERT_LT(RelErr(OneMinusExpNeg(x), -std::expm1(-x)), 1e-13) << x;
  }
  EXPECT_EQ(OneMinusExpNeg(0.0), 0.0);
  EXPECT_EQ(OneMinusExpNeg(-1.0), 0.0);
}

TEST(FastMath, ExpNonPositiveMatchesLibm) {
  for (double x = 0.0; x > -708.0; x -= 0.01731) {
    ASSERT_LT(RelErr(ExpNonPositive(x), std::exp(x)), 1e-13) << x;
  }
  EXPECT_EQ(ExpNonPositive(0.0), 1.0);
  EXPECT_EQ(ExpNonPositive(-1000.0), 0.0);
}

}  // namespace
}  // namespace strata::base
