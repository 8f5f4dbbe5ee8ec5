// alloc/internal/failure_injection.h: injected allocation failures, so that
// programs can test their out-of-memory paths (the public API is
// alloc/failure_injection.h).
//
// How it stays off the fast path: while injection is armed (by the
// environment, or on a thread by a ScopedFailureInjection),
// NextSampleCountdown() (hooks.cc) hands the affected threads a negative
// sample countdown, as full tracking does, so every allocation with a
// non-zero size reaches AllocateSlow (thread_cache.cc), whose first step
// asks InjectFailure() whether this one fails. Nothing is tested on the
// fast path; when injection is off the engine runs exactly as without this
// module. Hardened mode takes the slow path anyway (its countdown stays its
// own).
//
// Sampling stays exact while injection is armed: the thread's real sample
// countdown is kept here and InjectFailure sets the engine's countdown so
// that the engine samples exactly the allocations that cross it.
//
// Modes (settings: alloc/failure_injection.h):
//   fail_after N   the first N allocations (at or above min_size) succeed,
//                  every later one fails;
//   rate P, seed S each allocation fails with probability P, decided by a
//                  hash of S and the allocation's index in the process (or
//                  in the scope), so a single-threaded run is reproducible.
// Allocations below min_size neither fail nor count. A failure returns
// nullptr from the engine; each API turns it into its own contract (errno
// ENOMEM, std::bad_alloc or the new_handler, nullptr).
//
// Code layout: namespace strata::failure_injection is not one of the
// engine's (alloc/libstrata_order.txt), so a process that never arms
// injection never maps this code; what the engine runs every time (the
// armed test) is inline here.
//
// Thread-safety: thread-safe. The process-wide settings are written once at
// load time (STRATA_FAIL_*); a thread's scoped settings are its own.
#ifndef STRATA_ALLOC_INTERNAL_FAILURE_INJECTION_H_
#define STRATA_ALLOC_INTERNAL_FAILURE_INJECTION_H_

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/internal/thread_cache.h"
#include "concurrency/base/macros.h"

namespace strata::failure_injection {

struct FailureSettings {
  // Allocations that succeed before every later one fails (UINT64_MAX:
  // none fail this way).
  std::uint64_t fail_after = UINT64_MAX;
  double rate = 0;         // probability in [0, 1]
  std::uint64_t seed = 0;  // for `rate`
  std::size_t min_size = 0;
};

// True while some thread may have injection armed (the environment's, or a
// scope's): one relaxed load, for the slow paths.
extern constinit std::atomic<int> g_failure_armed;

// Whether the calling thread's allocations are to reach InjectFailure
// (false in hardened mode, whose slow path is taken anyway). Inline: the
// engine asks at every countdown crossing, and this module's code (laid
// out with the rarely run code, alloc/libstrata_order.txt) runs only when
// injection is armed.
bool ForcesSlowPathArmed();
STRATA_ALWAYS_INLINE bool FailureInjectionForcesSlowPath() {
  return STRATA_PREDICT_FALSE(g_failure_armed.load(std::memory_order_relaxed) != 0) && ForcesSlowPathArmed();
}

// Called first by AllocateSlow when g_failure_armed: true when this
// allocation of `size` bytes is to fail (counted). Otherwise sets the
// thread's sample countdown so that the engine samples this allocation
// exactly when the real countdown crosses.
bool InjectFailure(internal::ThreadCache& tc, std::size_t size);

STRATA_ALWAYS_INLINE bool MaybeInjectFailure(internal::ThreadCache& tc, std::size_t size) {
  return STRATA_PREDICT_FALSE(g_failure_armed.load(std::memory_order_relaxed) != 0) && InjectFailure(tc, size);
}

// Failures injected so far (process-wide; for the stats report).
std::uint64_t InjectedFailures();

// The calling thread's scope (alloc/failure_injection.h).
struct ThreadFailureScope {
  bool scoped = false;  // false: the thread follows the environment's settings
  FailureSettings settings;
  std::uint64_t allocations = 0;  // counted in the scope so far
  std::uint64_t injected = 0;     // failed in the scope so far
};
// Installs `scope` as the calling thread's and returns the one it replaces
// (so scopes nest: the destructor puts the outer one back).
ThreadFailureScope ExchangeThreadFailureScope(const ThreadFailureScope& scope);
// Failures injected on this thread by its current scope.
std::uint64_t ThreadInjectedFailures();

// Parses the environment (STRATA_FAIL_AFTER, STRATA_FAIL_RATE,
// STRATA_FAIL_SEED, STRATA_FAIL_MIN_SIZE) into *settings; false when none
// is set. A malformed value is reported on stderr and ignored (as unset).
bool ParseFailureEnvironment(FailureSettings* settings);

}  // namespace strata::failure_injection

#endif  // STRATA_ALLOC_INTERNAL_FAILURE_INJECTION_H_
