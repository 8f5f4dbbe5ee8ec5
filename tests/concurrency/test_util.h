// tests/concurrency/test_util.h: helpers shared by the concurrency tests.
//
// Stress tests size their work with Scaled(n): the full count on normal
// builds, a quarter under sanitizers (TSan runs contended atomics 5-20x
// slower), times the optional STRATA_STRESS_SCALE factor from the
// environment (e.g. STRATA_STRESS_SCALE=10 for a long soak).
#ifndef STRATA_TESTS_CONCURRENCY_TEST_UTIL_H_
#define STRATA_TESTS_CONCURRENCY_TEST_UTIL_H_

#include <sched.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>

#include "concurrency/base/macros.h"

namespace strata::testing {

#if defined(STRATA_SANITIZER_BUILD) || defined(STRATA_TSAN) || defined(STRATA_ASAN)
inline constexpr bool kSanitizerBuild = true;
#else
inline constexpr bool kSanitizerBuild = false;
#endif

inline std::int64_t Scaled(std::int64_t n) {
  double scale = kSanitizerBuild ? 0.25 : 1.0;
  if (const char* env = std::getenv("STRATA_STRESS_SCALE")) {
    double f = std::atof(env);
    if (f > 0) scale *= f;
  }
  const auto scaled = static_cast<std::int64_t>(static_cast<double>(n) * scale);
  return scaled < 1 ? 1 : scaled;
}

// A reusable start line: threads call Wait(); the test calls Release() once
// all are created, so they start contending at the same time.
class StartGate {
 public:
  void Wait() const {
    // Acquire: pairs with Release().
    while (!open_.load(std::memory_order_acquire)) sched_yield();
  }
  void Release() {
    // Release: pairs with Wait().
    open_.store(true, std::memory_order_release);
  }

 private:
  std::atomic<bool> open_{false};
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_CONCURRENCY_TEST_UTIL_H_
