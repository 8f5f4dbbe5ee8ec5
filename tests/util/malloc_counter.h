// tests/util/malloc_counter.h: counts malloc-family calls, for tests that
// prove a code path never calls malloc.
//
// Linking //tests/util:malloc_counter interposes malloc, free, calloc,
// realloc, memalign, aligned_alloc, posix_memalign, valloc and pvalloc in
// the test binary (forwarding to glibc's __libc_* entry points). Calls are
// counted per thread while t_malloc_armed is set, and process-wide while
// g_malloc_armed is set. Not for sanitizer builds (they own malloc).
#ifndef STRATA_TESTS_UTIL_MALLOC_COUNTER_H_
#define STRATA_TESTS_UTIL_MALLOC_COUNTER_H_

#include <atomic>

namespace strata::testing {

extern thread_local bool t_malloc_armed;
extern thread_local long t_malloc_calls;
extern std::atomic<bool> g_malloc_armed;
extern std::atomic<long> g_malloc_calls;

}  // namespace strata::testing

#endif  // STRATA_TESTS_UTIL_MALLOC_COUNTER_H_
