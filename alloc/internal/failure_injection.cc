#include "alloc/internal/failure_injection.h"

#include <stdlib.h>

#include "alloc/internal/hardening.h"
#include "alloc/internal/hooks.h"
#include "concurrency/base/raw_log.h"

namespace strata::failure_injection {

constinit std::atomic<int> g_failure_armed{0};

namespace {

// The environment's settings (written before main, by the load-time
// constructor below, then only read).
constinit FailureSettings g_env_settings{};
constinit bool g_env_armed = false;
constinit std::atomic<std::uint64_t> g_env_allocations{0};  // counted ones
constinit std::atomic<std::uint64_t> g_injected{0};

struct ThreadFailures {
  ThreadFailureScope scope;
  // The real sample countdown while injection forces the slow path.
  bool countdown_valid;
  std::int64_t countdown;
};
constinit thread_local ThreadFailures tls_failures STRATA_INITIAL_EXEC = {};

// splitmix64: the decision for allocation `index` under `seed`.
std::uint64_t Mix(std::uint64_t seed, std::uint64_t index) {
  std::uint64_t z = seed + (index + 1) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

bool Decide(const FailureSettings& s, std::uint64_t index) {
  if (index >= s.fail_after) return true;
  if (s.rate <= 0) return false;
  if (s.rate >= 1) return true;
  // The top 53 bits as a uniform double in [0, 1).
  const double u = static_cast<double>(Mix(s.seed, index) >> 11) * (1.0 / 9007199254740992.0);
  return u < s.rate;
}

// Keeps the sampler exact (see the header): the engine's countdown is set
// so that its subtraction of `size` crosses zero exactly when the real
// countdown does.
void KeepSampling(internal::ThreadCache& tc, ThreadFailures& t, std::size_t size) {
  if (tc.state != internal::CacheState::kActive || internal::Hardened() || internal::TrackAll()) return;
  if (!t.countdown_valid) {
    t.countdown = internal::SampleStride();
    t.countdown_valid = true;
  }
  t.countdown -= static_cast<std::int64_t>(size);
  const auto s = static_cast<std::int64_t>(size);
  if (t.countdown < 0) {
    t.countdown = internal::SampleStride();
    tc.bytes_until_sample = s - 1;  // crosses: sampled
  } else {
    tc.bytes_until_sample = s;  // lands on 0: not sampled, the next one misses again
  }
}

bool ParseU64(const char* name, const char* s, std::uint64_t* out) {
  std::uint64_t v = 0;
  const char* p = s;
  for (; *p >= '0' && *p <= '9'; ++p) v = v * 10 + static_cast<std::uint64_t>(*p - '0');
  if (p == s || *p != '\0') {
    raw::Buffer b;
    b.Str("strata: ").Str(name).Str("=").Str(s).Str(": not a non-negative integer; ignored\n");
    b.WriteTo(2);
    return false;
  }
  *out = v;
  return true;
}

// A probability: "0.01", "1e-3", "0", "1" (strtod does not allocate).
bool ParseRate(const char* s, double* out) {
  char* end = nullptr;
  const double v = strtod(s, &end);
  if (end == s || *end != '\0' || !(v >= 0 && v <= 1)) {
    raw::Buffer b;
    b.Str("strata: STRATA_FAIL_RATE=").Str(s).Str(": not a probability in [0, 1]; ignored\n");
    b.WriteTo(2);
    return false;
  }
  *out = v;
  return true;
}

// Arms the environment's settings when the library loads, before main.
// The getenv tests are inline here (the constructor is laid out with the
// engine's start-up code): the parser runs only when a variable is set.
__attribute__((constructor)) void ArmFromEnvironment() {
  if (getenv("STRATA_FAIL_AFTER") == nullptr && getenv("STRATA_FAIL_RATE") == nullptr) return;
  FailureSettings s;
  if (!ParseFailureEnvironment(&s)) return;
  g_env_settings = s;
  g_env_armed = true;
  g_failure_armed.fetch_add(1, std::memory_order_release);
}

}  // namespace

bool ParseFailureEnvironment(FailureSettings* settings) {
  bool any = false;
  std::uint64_t v = 0;
  if (const char* s = getenv("STRATA_FAIL_AFTER"); s != nullptr && *s != '\0' && ParseU64("STRATA_FAIL_AFTER", s, &v)) {
    settings->fail_after = v;
    any = true;
  }
  double rate = 0;
  if (const char* s = getenv("STRATA_FAIL_RATE"); s != nullptr && *s != '\0' && ParseRate(s, &rate)) {
    settings->rate = rate;
    any = any || rate > 0;
  }
  if (const char* s = getenv("STRATA_FAIL_SEED"); s != nullptr && *s != '\0' && ParseU64("STRATA_FAIL_SEED", s, &v)) {
    settings->seed = v;
  }
  if (const char* s = getenv("STRATA_FAIL_MIN_SIZE"); s != nullptr && *s != '\0' &&
      ParseU64("STRATA_FAIL_MIN_SIZE", s, &v)) {
    settings->min_size = static_cast<std::size_t>(v);
  }
  return any;
}

bool ForcesSlowPathArmed() {
  if (internal::Hardened()) return false;
  return g_env_armed || tls_failures.scope.scoped;
}

bool InjectFailure(internal::ThreadCache& tc, std::size_t size) {
  ThreadFailures& t = tls_failures;
  bool fail = false;
  // A scope on this thread replaces the environment's settings for it.
  ThreadFailureScope& scope = t.scope;
  if (scope.scoped) {
    if (size >= scope.settings.min_size && Decide(scope.settings, scope.allocations++)) {
      fail = true;
      ++scope.injected;
    }
  } else if (g_env_armed) {
    if (size >= g_env_settings.min_size &&
        Decide(g_env_settings, g_env_allocations.fetch_add(1, std::memory_order_relaxed))) {
      fail = true;
    }
  }
  if (fail) {
    g_injected.fetch_add(1, std::memory_order_relaxed);
    return true;
  }
  if (scope.scoped || g_env_armed) KeepSampling(tc, t, size);
  return false;
}

std::uint64_t InjectedFailures() { return g_injected.load(std::memory_order_relaxed); }

ThreadFailureScope ExchangeThreadFailureScope(const ThreadFailureScope& scope) {
  ThreadFailures& t = tls_failures;
  const ThreadFailureScope previous = t.scope;
  if (scope.scoped && !previous.scoped) g_failure_armed.fetch_add(1, std::memory_order_relaxed);
  if (!scope.scoped && previous.scoped) g_failure_armed.fetch_sub(1, std::memory_order_relaxed);
  t.scope = scope;
  // The thread's next allocation takes the countdown that fits the new
  // state (forced slow path, or a fresh sampling stride).
  t.countdown_valid = false;
  internal::ThreadCache& tc = internal::CurrentThreadCache();
  if (tc.state == internal::CacheState::kActive && !internal::Hardened()) {
    tc.bytes_until_sample = internal::NextSampleCountdown();
  }
  return previous;
}

std::uint64_t ThreadInjectedFailures() { return tls_failures.scope.injected; }

}  // namespace strata::failure_injection
