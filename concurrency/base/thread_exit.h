// concurrency/base/thread_exit.h: per-thread exit hooks that never allocate.
//
// Purpose: code inside malloc needs to run cleanup when a thread exits
// (flush a thread cache, release a per-thread record, hand over garbage),
// but C++ thread_local destructors register through __cxa_thread_atexit,
// which calls calloc. Instead, strata keeps ONE process-wide pthread key
// whose destructor runs every hook the exiting thread registered.
//
// Contract:
//   - RegisterThreadExitHook(hook) links the caller-owned `hook` into the
//     calling thread's list. Storage stays with the caller (typically inside
//     a constinit thread_local struct or an immortal per-thread record) and
//     must stay valid until the hook has run. Registering a hook that is
//     already in the calling thread's list is a no-op.
//   - At thread exit, hooks run on the exiting thread in reverse order of
//     registration (last registered runs first). Before hook->fn is called
//     the hook is unlinked and hook->next is reset to nullptr, so fn may
//     re-register it, or hand the hook's owner to another thread at once.
//   - A hook (or another key's destructor, or a later C++ TLS destructor that
//     calls malloc) may register hooks while the thread is exiting: they run
//     in the same exit, either in the current pass of our destructor (up to
//     kExitRounds rounds) or, if registered after it returned, in one of
//     the later destructor iterations glibc performs (at most
//     PTHREAD_DESTRUCTOR_ITERATIONS = 4 in total). A hook registered after
//     the last iteration never runs: callers must tolerate that (strata's
//     per-thread records then simply stay owned by the dead thread).
//   - Under TSan, a hook that runs in glibc's LAST destructor iterations
//     runs after TSan has already finished the thread (TSan's own key
//     destructor defers itself to a late iteration), so TSan does not order
//     its accesses before pthread_join(); hooks registered in the first
//     round(s) are unaffected.
//   - Hooks do not run for the main thread when the process ends through
//     exit() or a return from main() (POSIX runs key destructors only on
//     pthread_exit() and thread return), nor in threads killed by _exit().
//   - Never allocates: the key is created once, lazily and thread-safely
//     (and eagerly from a load-time constructor, so it is one of the first
//     keys of the process). glibc stores the values of keys < 32
//     (PTHREAD_KEY_2NDLEVEL_SIZE) inline in the thread descriptor, so
//     pthread_setspecific on such a key never calls calloc. Should the key
//     still come out >= 32 (a program that created 32 keys before strata was
//     loaded), the first pthread_setspecific of each thread may calloc once;
//     the code is re-entrancy-safe against that (the per-thread "armed" flag
//     is set before the call), and ThreadExitKeyForTesting() exposes the key.
//
// Thread-safety: RegisterThreadExitHook touches only the calling thread's
// state (plus the one-time key creation, which is thread-safe).
//
// Invariants:
//   - The calling thread's list is a LIFO singly linked list through
//     ThreadExitHook::next, terminated by nullptr.
//   - Whenever the list is non-empty outside our own destructor, the key's
//     value for the thread is non-null (so glibc calls the destructor).
#ifndef STRATA_CONCURRENCY_BASE_THREAD_EXIT_H_
#define STRATA_CONCURRENCY_BASE_THREAD_EXIT_H_

namespace strata {

struct ThreadExitHook {
  void (*fn)(void* arg);
  void* arg;
  ThreadExitHook* next;
};

// Links `hook` into the calling thread's exit list (no-op if it is already
// there). `hook->fn` must be non-null.
void RegisterThreadExitHook(ThreadExitHook* hook) noexcept;

// The pthread key behind the hooks (created on first call). For tests and
// diagnostics: strata expects it to be < 32.
unsigned ThreadExitKeyForTesting() noexcept;

// Number of hooks currently registered by the calling thread (walks the
// list). For tests.
int RegisteredThreadExitHooksForTesting() noexcept;

}  // namespace strata

#endif  // STRATA_CONCURRENCY_BASE_THREAD_EXIT_H_
