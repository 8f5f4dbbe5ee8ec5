#include "alloc/internal/hooks.h"

#include "alloc/internal/failure_injection.h"
#include "alloc/internal/thread_cache.h"

namespace strata::internal {

constinit hooks_detail::Modes hooks_detail::g_modes;

namespace {
constexpr const double (&kValues)[16] = hooks_detail::kSampleConstantValues;
}  // namespace
alignas(64) constinit const double hooks_detail::kSampleConstants[16] = {
    kValues[0], kValues[1], kValues[2],  kValues[3],  kValues[4],  kValues[5],  kValues[6],  kValues[7],
    kValues[8], kValues[9], kValues[10], kValues[11], kValues[12], kValues[13], kValues[14], kValues[15]};

void InstallTrackingHooks(const TrackingHooks* hooks) {
  // Release: the hook table is initialised before a slow path can use it.
  hooks_detail::g_modes.on_sampled_allocate.store(hooks->on_sampled_allocate, std::memory_order_release);
  hooks_detail::g_modes.on_sampled_free.store(hooks->on_sampled_free, std::memory_order_release);
  hooks_detail::g_modes.hooks.store(hooks, std::memory_order_release);
}
const TrackingHooks* InstalledTrackingHooks() { return hooks_detail::g_modes.hooks.load(std::memory_order_acquire); }

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
  hooks_detail::g_modes.sample_rate.store(bytes < 0 ? 0 : bytes, std::memory_order_relaxed);
  hooks_detail::g_modes.inv_sample_rate.store(bytes > 0 ? 1.0 / static_cast<double>(bytes) : 0.0,
                                              std::memory_order_relaxed);
  RefreshCallingThread();
}
std::int64_t SampleRate() { return SampleRateInline(); }
void SetTrackAll(bool on) {
  hooks_detail::g_modes.track_all.store(on, std::memory_order_relaxed);
  RefreshCallingThread();
}
bool TrackAll() { return TrackAllInline(); }

// The modes read inline (the mode line): no calls on a sample's way.
std::int64_t NextSampleCountdown() {
  if (TrackAllInline() || failure_injection::FailureInjectionForcesSlowPath()) return -1;
  return SampleStride();
}

std::int64_t SampleStride() {
  std::int64_t rate = SampleRateInline();
  if (rate <= 0 || hooks_detail::g_modes.hooks.load(std::memory_order_acquire) == nullptr) return kIdleCountdown;
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
  const double most = hooks_detail::ImmediateConstant(hooks_detail::kMostStride);
  if (stride > most) stride = most;
  return static_cast<std::int64_t>(stride);
}


}  // namespace strata::internal
