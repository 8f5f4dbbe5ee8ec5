// concurrency/base/macros.h: compiler hints shared by every layer.
//
// Contract: macros only, no state. Safe to include anywhere, including code
// that runs inside malloc.
#ifndef STRATA_CONCURRENCY_BASE_MACROS_H_
#define STRATA_CONCURRENCY_BASE_MACROS_H_

#include <cstddef>

#define STRATA_PREDICT_TRUE(x) (__builtin_expect(!!(x), 1))
#define STRATA_PREDICT_FALSE(x) (__builtin_expect(!!(x), 0))
#define STRATA_ALWAYS_INLINE inline __attribute__((always_inline))
#define STRATA_NOINLINE __attribute__((noinline))
#define STRATA_COLD __attribute__((cold, noinline))
#define STRATA_EXPORT __attribute__((visibility("default")))
#define STRATA_INITIAL_EXEC __attribute__((tls_model("initial-exec")))
// Keeps the compiler from carrying memory values across this point in
// registers (no instruction). A fast path's miss branch uses it before it
// gives back what the fast path took in memory, so that the compiler takes
// it with one read-modify-write instead of keeping the old value alive.
#define STRATA_COMPILER_BARRIER() asm volatile("" ::: "memory")

// Starts fetching the line at `p` for writing (no fault for any address;
// no instruction's result depends on it). GCC lowers a write prefetch to
// a read one (PREFETCHT0) unless built for PRFCHW, and a line fetched
// shared must be fetched again, for ownership, when it is written: this
// emits PREFETCHW (a no-op where unsupported).
#if defined(__x86_64__) && !defined(__PRFCHW__)
#define STRATA_PREFETCH_FOR_WRITE(p) asm volatile("prefetchw %0" : : "m"(*static_cast<const char*>(p)))
#else
#define STRATA_PREFETCH_FOR_WRITE(p) __builtin_prefetch((p), 1, 3)
#endif

#if defined(__SANITIZE_THREAD__)
#define STRATA_TSAN 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define STRATA_TSAN 1
#endif
#endif

#if defined(__SANITIZE_ADDRESS__)
#define STRATA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define STRATA_ASAN 1
#endif
#endif

// Clang thread-safety annotations; no-ops on GCC.
#if defined(__clang__)
#define STRATA_THREAD_ANNOTATION(x) __attribute__((x))
#else
#define STRATA_THREAD_ANNOTATION(x)
#endif
#define STRATA_CAPABILITY(x) STRATA_THREAD_ANNOTATION(capability(x))
#define STRATA_GUARDED_BY(x) STRATA_THREAD_ANNOTATION(guarded_by(x))
#define STRATA_ACQUIRE(...) STRATA_THREAD_ANNOTATION(acquire_capability(__VA_ARGS__))
#define STRATA_RELEASE(...) STRATA_THREAD_ANNOTATION(release_capability(__VA_ARGS__))
#define STRATA_TRY_ACQUIRE(...) STRATA_THREAD_ANNOTATION(try_acquire_capability(__VA_ARGS__))
#define STRATA_SCOPED_CAPABILITY STRATA_THREAD_ANNOTATION(scoped_lockable)
#define STRATA_EXCLUDES(...) STRATA_THREAD_ANNOTATION(locks_excluded(__VA_ARGS__))
#define STRATA_REQUIRES(...) STRATA_THREAD_ANNOTATION(requires_capability(__VA_ARGS__))
#define STRATA_NO_THREAD_SAFETY_ANALYSIS STRATA_THREAD_ANNOTATION(no_thread_safety_analysis)

namespace strata {

// Destructive-interference size used for padding shared, written data.
// 128 rather than 64 on x86-64: the L2 adjacent-line prefetcher pulls cache
// lines in 128-byte pairs, so two hot objects 64 bytes apart still contend.
inline constexpr std::size_t kCacheLineSize = 128;

}  // namespace strata

#endif  // STRATA_CONCURRENCY_BASE_MACROS_H_
