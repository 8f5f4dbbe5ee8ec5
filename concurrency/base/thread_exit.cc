#include "concurrency/base/thread_exit.h"

#include <pthread.h>
#include <sched.h>

#include <atomic>

#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"

namespace strata {

namespace {

// How many times one call of the key destructor drains the list before it
// leaves the rest to glibc's next destructor iteration. Hooks that
// re-register themselves forever are cut off here and by glibc's own limit
// (PTHREAD_DESTRUCTOR_ITERATIONS), so a thread always finishes exiting.
constexpr int kExitRounds = 4;

enum KeyState : int { kKeyUninit = 0, kKeyCreating = 1, kKeyReady = 2, kKeyFailed = 3 };

constinit std::atomic<int> g_key_state{kKeyUninit};
// Written once by the creator before it publishes kKeyReady.
constinit pthread_key_t g_key = 0;

// All per-thread state is trivially destructible (no __cxa_thread_atexit).
struct ThreadState {
  ThreadExitHook* head;     // registered, not yet run (LIFO)
  ThreadExitHook* pending;  // taken by the running destructor, not yet run
  bool armed;               // the key's value is non-null for this thread
  bool running;             // inside OnThreadExit
};
constinit thread_local ThreadState t_state STRATA_INITIAL_EXEC = {nullptr, nullptr, false, false};

void OnThreadExit(void*) noexcept;

STRATA_NOINLINE bool CreateKeySlow() noexcept {
  int expected = kKeyUninit;
  // Acquire on failure pairs with the creator's release store below.
  if (g_key_state.compare_exchange_strong(expected, kKeyCreating, std::memory_order_acquire,
                                          std::memory_order_acquire)) {
    pthread_key_t key;
    int rc = pthread_key_create(&key, &OnThreadExit);
    if (rc != 0) {
      raw::Log("thread_exit: pthread_key_create failed; thread exit hooks will not run");
      // Release: pairs with the acquire loads in Key()/here.
      g_key_state.store(kKeyFailed, std::memory_order_release);
      return false;
    }
    g_key = key;
    if (key >= 32) {
      raw::Log("thread_exit: pthread key >= 32; pthread_setspecific may allocate once per thread");
    }
    // Release: publishes g_key; pairs with the acquire loads of g_key_state.
    g_key_state.store(kKeyReady, std::memory_order_release);
    return true;
  }
  // Someone else is creating the key: wait for it (happens at most once,
  // normally never, since a load-time constructor creates the key).
  while (expected == kKeyCreating) {
    sched_yield();
    // Acquire: pairs with the creator's release store.
    expected = g_key_state.load(std::memory_order_acquire);
  }
  return expected == kKeyReady;
}

// Returns true and sets *key once the key exists.
STRATA_ALWAYS_INLINE bool GetKey(pthread_key_t* key) noexcept {
  // Acquire: pairs with the release store of kKeyReady, making g_key visible.
  int state = g_key_state.load(std::memory_order_acquire);
  if (STRATA_PREDICT_FALSE(state != kKeyReady)) {
    if (state == kKeyFailed || !CreateKeySlow()) return false;
  }
  *key = g_key;
  return true;
}

// Makes glibc call OnThreadExit for this thread.
void Arm(ThreadState& s) noexcept {
  pthread_key_t key;
  if (!GetKey(&key)) return;
  // Set before the call: if the key is >= 32 pthread_setspecific may calloc,
  // which may re-enter strata and register another hook; that call must not
  // recurse into pthread_setspecific.
  s.armed = true;
  // Any non-null value makes glibc run the destructor; use the state itself.
  pthread_setspecific(key, &s);
}

bool Contains(const ThreadExitHook* list, const ThreadExitHook* hook) noexcept {
  for (; list != nullptr; list = list->next) {
    if (list == hook) return true;
  }
  return false;
}

void OnThreadExit(void*) noexcept {
  ThreadState& s = t_state;
  s.armed = false;  // glibc cleared the value before calling us
  s.running = true;
  for (int round = 0; round < kExitRounds && s.head != nullptr; ++round) {
    s.pending = s.head;
    s.head = nullptr;
    while (s.pending != nullptr) {
      ThreadExitHook* hook = s.pending;
      s.pending = hook->next;
      hook->next = nullptr;  // unlinked: fn may re-register or hand it off
      hook->fn(hook->arg);
    }
  }
  s.running = false;
  // Hooks registered during the last round: let glibc's next destructor
  // iteration (if any remains) run them.
  if (s.head != nullptr) Arm(s);
}

// Create the key while the process is still starting, so that it is one of
// the first keys (hence < 32) and so no thread ever waits for its creation.
__attribute__((constructor(101))) void CreateKeyAtLoad() {
  pthread_key_t key;
  (void)GetKey(&key);
}

}  // namespace

void RegisterThreadExitHook(ThreadExitHook* hook) noexcept {
  STRATA_DCHECK(hook != nullptr && hook->fn != nullptr, "null hook");
  ThreadState& s = t_state;
  if (Contains(s.head, hook) || Contains(s.pending, hook)) return;
  hook->next = s.head;
  s.head = hook;
  // While OnThreadExit runs it drains s.head itself (and re-arms on exit).
  if (!s.armed && !s.running) Arm(s);
}

unsigned ThreadExitKeyForTesting() noexcept {
  pthread_key_t key = 0;
  if (!GetKey(&key)) return ~0u;
  return static_cast<unsigned>(key);
}

int RegisteredThreadExitHooksForTesting() noexcept {
  int n = 0;
  for (const ThreadExitHook* h = t_state.head; h != nullptr; h = h->next) ++n;
  return n;
}

}  // namespace strata
