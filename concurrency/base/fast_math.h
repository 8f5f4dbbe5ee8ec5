// concurrency/base/fast_math.h: the two transcendental functions the
// allocator needs, without libm.
//
// Why: strata draws exponentially distributed sampling strides (-ln(1-u))
// and un-samples heap profiles (1 - e^-x). Calling libm's log/expm1 for
// that faults libm's code and lookup tables (about 240 KiB) into every
// process that preloads strata; these header-only versions cost nothing
// until called and touch no tables.
//
// Contract:
//   NegLogOneMinus(u) = -ln(1 - u) for u in [0, 1); +infinity-like large
//     value (1e300) for u >= 1. Relative error below 1e-13.
//   OneMinusExpNeg(x) = 1 - e^-x for x >= 0 (0 for x <= 0). Relative
//     error below 1e-13, including for tiny x (series, no cancellation).
//
// Thread-safety: pure functions; no state, no allocation, no errno.
#ifndef STRATA_CONCURRENCY_BASE_FAST_MATH_H_
#define STRATA_CONCURRENCY_BASE_FAST_MATH_H_

#include <bit>
#include <cstdint>

namespace strata::base {

inline constexpr double kLn2 = 0.693147180559945309417232121458176568;

// ln(x) for finite x > 0: x = m * 2^e with m in [sqrt(1/2), sqrt(2)),
// ln(m) = 2 atanh(s), s = (m - 1) / (m + 1), |s| < 0.172, odd series to
// s^21 (truncation below 1e-17).
inline double LogPositive(double x) {
  std::uint64_t bits = std::bit_cast<std::uint64_t>(x);
  int e = static_cast<int>((bits >> 52) & 0x7ff);
  if (e == 0) {  // subnormal: scale into the normal range first
    x *= 18014398509481984.0;  // 2^54
    bits = std::bit_cast<std::uint64_t>(x);
    e = static_cast<int>((bits >> 52) & 0x7ff) - 54;
  }
  e -= 1023;
  double m = std::bit_cast<double>((bits & 0x000fffffffffffffull) | 0x3ff0000000000000ull);  // [1, 2)
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  double series = 1.0 / 21.0;
  for (int k = 19; k >= 1; k -= 2) series = series * s2 + 1.0 / k;
  return static_cast<double>(e) * kLn2 + 2.0 * s * series;
}

// e^x for x <= 0 (underflows to 0 below -708): x = k ln2 + r, |r| <= ln2/2,
// Taylor series of e^r to r^16 (truncation below 1e-17), times 2^k.
inline double ExpNonPositive(double x) {
  if (x < -708.0) return 0.0;
  const double kf = static_cast<double>(static_cast<std::int64_t>(x / kLn2 - 0.5));  // round to nearest
  const double r = x - kf * kLn2;
  double series = 1.0;
  for (int k = 16; k >= 1; --k) series = 1.0 + series * r / k;
  const std::int64_t k = static_cast<std::int64_t>(kf);
  return series * std::bit_cast<double>(static_cast<std::uint64_t>(k + 1023) << 52);
}

inline double NegLogOneMinus(double u) {
  if (!(u < 1.0)) return 1e300;
  if (u <= 0.0) return 0.0;
  const double w = 1.0 - u;  // rounded: for small u, its low bits are lost
  if (w == 1.0) return u;     // u below 2^-54: -ln(1-u) = u to the last bit
  // The rounding is undone by the exact ratio of what was asked (-u) to
  // what w holds (w - 1, exact): -ln(1-u) = -ln(w) * u / (1 - w) (the
  // log1p identity; no series in u, whose terms fall slowly near 1/4).
  return LogPositive(w) * u / (w - 1.0);
}

inline double OneMinusExpNeg(double x) {
  if (!(x > 0.0)) return 0.0;
  if (x < 0.5) {
    // x - x^2/2! + x^3/3! - ...: no cancellation for tiny x.
    double term = x, sum = 0.0;
    for (int k = 1; k <= 40; ++k) {
      sum += term;
      term *= -x / (k + 1);
    }
    return sum;
  }
  return 1.0 - ExpNonPositive(-x);
}

}  // namespace strata::base

#endif  // STRATA_CONCURRENCY_BASE_FAST_MATH_H_
