#include "alloc/tracking/tracker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

#include <atomic>

#include "absl/debugging/stacktrace.h"
#include "alloc/internal/hooks.h"

namespace strata::tracking {
namespace {

constinit std::atomic<std::uint64_t> g_tracked_allocs{0};
constinit std::atomic<std::uint64_t> g_tracked_frees{0};
constinit std::atomic<std::uint64_t> g_record_failures{0};
constinit std::atomic<bool> g_installed{false};

void OnAllocate(void* ptr, std::size_t requested, std::size_t usable, bool sampled);
void OnFree(void* ptr);

constinit internal::TrackingHooks g_hooks = {&OnAllocate, &OnFree};

// Captures the whole stack, strata's own frames included: skipping a fixed
// number of frames is fragile across inlining, so the readers (profile
// writer, leak report) drop the leading allocator frames by symbol name
// (see alloc/tracking/symbolize.h).
int CaptureStack(void** frames) { return absl::GetStackTrace(frames, kMaxStackDepth, 0); }

void OnAllocate(void* ptr, std::size_t requested, std::size_t usable, bool sampled) {
  void* frames[kMaxStackDepth];
  int depth = CaptureStack(frames);
  StackEntry* stack = GlobalStackTable().Intern(frames, depth);
  stack->alloc_count.fetch_add(1, std::memory_order_relaxed);
  stack->alloc_bytes.fetch_add(requested, std::memory_order_relaxed);
  if (sampled) {
    stack->sampled_alloc_count.fetch_add(1, std::memory_order_relaxed);
    stack->sampled_alloc_bytes.fetch_add(requested, std::memory_order_relaxed);
  }
  LiveInfo info{reinterpret_cast<std::uintptr_t>(ptr), requested, usable, stack, NowNs(),
                sampled ? static_cast<std::uint32_t>(kSampled) : static_cast<std::uint32_t>(kTracked)};
  if (!GlobalLiveTable().Insert(info)) g_record_failures.fetch_add(1, std::memory_order_relaxed);
  g_tracked_allocs.fetch_add(1, std::memory_order_relaxed);
}

void OnFree(void* ptr) {
  LiveInfo info;
  GlobalLiveTable().Remove(reinterpret_cast<std::uintptr_t>(ptr), &info);
  g_tracked_frees.fetch_add(1, std::memory_order_relaxed);
}

std::int64_t ParseBytes(const char* s, std::int64_t fallback) {
  if (s == nullptr || *s == '\0') return fallback;
  std::int64_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) v = v * 10 + (*s - '0');
  switch (*s) {
    case 'k': case 'K': v <<= 10; ++s; break;
    case 'm': case 'M': v <<= 20; ++s; break;
    case 'g': case 'G': v <<= 30; ++s; break;
    default: break;
  }
  if (*s == 'b' || *s == 'B') ++s;
  return *s == '\0' ? v : fallback;
}

bool EnvFlag(const char* name) {
  const char* s = getenv(name);
  return s != nullptr && *s != '\0' && *s != '0';
}

}  // namespace

std::uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

void EnsureTrackingInstalled() {
  if (g_installed.exchange(true, std::memory_order_acq_rel)) return;
  // Registered after the engine's handlers, so (prepare handlers running in
  // reverse order) this lock is taken before the engine's: the order in
  // which tracked allocation takes them.
  pthread_atfork(&LiveTableForkPrepare, &LiveTableForkParent, &LiveTableForkChild);
  internal::InstallTrackingHooks(&g_hooks);
  internal::SetSampleRate(ParseBytes(getenv("STRATA_SAMPLE_RATE"), kDefaultSampleRate));
  if (EnvFlag("STRATA_LEAKCHECK")) internal::SetTrackAll(true);
}

void SetSampleRate(std::int64_t bytes) {
  EnsureTrackingInstalled();
  internal::SetSampleRate(bytes);
}
std::int64_t SampleRate() { return internal::SampleRate(); }
void SetTrackAll(bool on) {
  EnsureTrackingInstalled();
  internal::SetTrackAll(on);
}
bool TrackAll() { return internal::TrackAll(); }

TrackerCounters Counters() {
  return {g_tracked_allocs.load(std::memory_order_relaxed), g_tracked_frees.load(std::memory_order_relaxed),
          g_record_failures.load(std::memory_order_relaxed)};
}

}  // namespace strata::tracking

// Called by the engine's process init when this layer is linked in.
extern "C" void StrataTrackingInit() { strata::tracking::EnsureTrackingInstalled(); }
