// alloc/failure_injection.h: make allocations fail on purpose, to test a
// program's out-of-memory paths.
//
// Process-wide, from the environment (read when strata loads):
//   STRATA_FAIL_AFTER=N      the next N allocations succeed, every later
//                            one fails;
//   STRATA_FAIL_RATE=P       each allocation fails with probability P
//   STRATA_FAIL_SEED=S       (0 <= P <= 1), decided by a hash of S and the
//                            allocation's index, so a single-threaded run
//                            fails the same allocations every time;
//   STRATA_FAIL_MIN_SIZE=B   only requests of at least B bytes fail (and
//                            count towards N); smaller ones are untouched.
// On one thread, for tests: a ScopedFailureInjection injects failures into
// the calling thread's allocations while it lives (other threads are not
// affected); it replaces the environment's settings on that thread, and
// scopes nest.
//
// A failure follows each API's contract: malloc, calloc, realloc (the old
// block stays), aligned_alloc and posix_memalign return null (ENOMEM);
// operator new runs the std::new_handler and throws std::bad_alloc (the
// nothrow forms return null); the std::pmr resources' allocate throws
// std::bad_alloc; strata::Allocate and the rest of alloc/strata.h return
// null. The stats report counts injected failures
// ("strata.injected_allocation_failures",
// "injected allocation failures" in the text report).
//
// What is counted: every request that reaches strata's engine with a
// non-zero size. Zero-byte requests, a MonotonicArena's allocations from a
// chunk it already holds, a realloc that stays in place, and strata's own
// metadata never fail.
//
// Cost: none on the fast path when off. While armed, the affected threads'
// allocations take the engine's slow path (as with full tracking).
//
// Thread-safety: thread-safe; a ScopedFailureInjection must be destroyed
// on the thread that created it.
#ifndef STRATA_ALLOC_FAILURE_INJECTION_H_
#define STRATA_ALLOC_FAILURE_INJECTION_H_

#include <cstddef>
#include <cstdint>

#include "alloc/internal/failure_injection.h"

namespace strata {

struct FailureInjectionOptions {
  // Allocations that succeed before every later one fails (the default:
  // none fail this way).
  std::uint64_t fail_after = UINT64_MAX;
  // Probability that each allocation fails, in [0, 1], with its seed.
  double rate = 0;
  std::uint64_t seed = 0;
  // Only requests of at least this many bytes fail and count.
  std::size_t min_size = 0;
};

class ScopedFailureInjection {
 public:
  explicit ScopedFailureInjection(const FailureInjectionOptions& options);
  ~ScopedFailureInjection();
  ScopedFailureInjection(const ScopedFailureInjection&) = delete;
  ScopedFailureInjection& operator=(const ScopedFailureInjection&) = delete;

  // Failures injected on this thread by this scope so far.
  std::uint64_t injected() const;

 private:
  failure_injection::ThreadFailureScope outer_;
};

// Failures injected in this process so far (all threads, environment and
// scopes).
std::uint64_t InjectedAllocationFailures() noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_FAILURE_INJECTION_H_
