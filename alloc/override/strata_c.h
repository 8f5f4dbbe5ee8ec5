/* alloc/override/strata_c.h: a tiny C API that the malloc override exports,
 * so that a program (or test) can prove strata is the allocator it runs on,
 * including when strata arrives by LD_PRELOAD and the program was built
 * without it.
 *
 * Use: linked (malloc = "//alloc:malloc" or --custom_malloc), call the
 * functions directly. Preloaded, look them up at run time:
 *     uint64_t (*fn)(void) =
 *         (uint64_t (*)(void))dlsym(RTLD_DEFAULT, "strata_stats_allocations");
 * A null `fn` means strata is not the process's allocator.
 *
 * Environment: with STRATA_PRELOAD_CHECK=1 the override writes
 *     strata: pid=<pid> allocations=<n> frees=<n> live_bytes=<n>
 * to stderr when the process exits normally (a shared-object destructor; no
 * output after _exit or a crash). With STRATA_PRELOAD_CHECK=/abs/path the
 * same line is appended to that file instead, which suits programs whose
 * stderr is compared or that run many child processes (git).
 *
 * Thread-safety: every function is thread-safe, never allocates, and may be
 * called at any time (the counters are strata::GetStats()'s: approximate
 * while other threads run). */
#ifndef STRATA_ALLOC_OVERRIDE_STRATA_C_H_
#define STRATA_ALLOC_OVERRIDE_STRATA_C_H_

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Cumulative number of blocks strata handed out (all entry points). */
uint64_t strata_stats_allocations(void);
/* Cumulative number of blocks returned to strata. */
uint64_t strata_stats_frees(void);
/* Usable bytes of live blocks. */
int64_t strata_stats_live_bytes(void);
/* strata::ReleaseMemory(): bytes returned to the OS. */
size_t strata_release_memory(void);

#ifdef __cplusplus
} /* extern "C" */
#endif

#endif /* STRATA_ALLOC_OVERRIDE_STRATA_C_H_ */
