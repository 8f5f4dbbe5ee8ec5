#include "alloc/internal/hooks.h"

#include "alloc/internal/failure_injection.h"
#include "alloc/internal/thread_cache.h"
#include <bit>

namespace strata::internal {
namespace {

constinit std::atomic<const TrackingHooks*> g_hooks{nullptr};
constinit std::atomic<std::int64_t> g_sample_rate{0};
constinit std::atomic<bool> g_track_all{false};

}  // namespace

void InstallTrackingHooks(const TrackingHooks* hooks) {
  // Release: the hook table is initialised before a slow path can use it.
  g_hooks.store(hooks, std::memory_order_release);
}
const TrackingHooks* InstalledTrackingHooks() { return g_hooks.load(std::memory_order_acquire); }

// The calling thread picks a mode change up at once (others at their next
// countdown crossing; see hooks.h).
void RefreshCallingThread() {
  ThreadCache& tc = tls_cache;
  if (tc.state != CacheState::kActive) return;
  // Hardened mode keeps bytes_until_sample pinned (both fast paths must
  // miss: its free lists hold encoded links) and samples with a countdown
  // of its own.
  if (Hardened()) {
    tc.hardened_countdown = NextSampleCountdown();
  } else {
    tc.bytes_until_sample = NextSampleCountdown();
  }
}

void SetSampleRate(std::int64_t bytes) {
  g_sample_rate.store(bytes < 0 ? 0 : bytes, std::memory_order_relaxed);
  RefreshCallingThread();
}
std::int64_t SampleRate() { return g_sample_rate.load(std::memory_order_relaxed); }
void SetTrackAll(bool on) {
  g_track_all.store(on, std::memory_order_relaxed);
  RefreshCallingThread();
}
bool TrackAll() { return g_track_all.load(std::memory_order_relaxed); }

std::int64_t NextSampleCountdown() {
  if (TrackAll() || failure_injection::FailureInjectionForcesSlowPath()) return -1;
  return SampleStride();
}

std::int64_t SampleStride() {
  std::int64_t rate = SampleRate();
  if (rate <= 0 || InstalledTrackingHooks() == nullptr) return kIdleCountdown;
  if (rate == 1) return -1;
  // Exponentially distributed stride with mean `rate` (a Poisson process
  // over allocated bytes, as Go and tcmalloc sample), from a per-thread
  // xorshift generator.
  ThreadCache& tc = tls_cache;
  std::uint64_t x = tc.sample_rng != 0 ? tc.sample_rng
                                       : (reinterpret_cast<std::uintptr_t>(&tc) * 0x9E3779B97F4A7C15ull) | 1;
  x ^= x >> 12;
  x ^= x << 25;
  x ^= x >> 27;
  tc.sample_rng = x;
  double stride = StrideFromBits((x * 0x2545F4914F6CDD1Dull) >> 11) * static_cast<double>(rate);
  if (stride > 9e15) stride = 9e15;
  return static_cast<std::int64_t>(stride);
}

double StrideFromBits(std::uint64_t bits53) {
  // v = (bits53 + 1) / 2^53 in (0, 1]: uniform like 1 - u, and never 0.
  const double v = static_cast<double>(bits53 + 1) * (1.0 / 9007199254740992.0);
  const std::uint64_t b = std::bit_cast<std::uint64_t>(v);
  int e = static_cast<int>(b >> 52) - 1023;
  double m = std::bit_cast<double>((b & 0x000fffffffffffffull) | 0x3ff0000000000000ull);  // [1, 2)
  if (m > 1.4142135623730951) {
    m *= 0.5;
    ++e;
  }
  // ln(m) = 2 atanh(s), |s| < 0.172: the odd series to s^9 (next term
  // below 1e-9 of ln 2).
  const double s = (m - 1.0) / (m + 1.0);
  const double s2 = s * s;
  const double ln_m = 2.0 * s * (1.0 + s2 * (1.0 / 3 + s2 * (1.0 / 5 + s2 * (1.0 / 7 + s2 * (1.0 / 9)))));
  return -(static_cast<double>(e) * 0.6931471805599453 + ln_m);
}

}  // namespace strata::internal
