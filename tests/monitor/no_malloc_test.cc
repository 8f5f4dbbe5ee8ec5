// tests/monitor/no_malloc_test.cc: the monitor never recurses into the
// allocator it watches. This binary interposes the malloc family
// (forwarding to glibc's __libc_* entry points) and counts calls:
//   - on the test thread around MemoryMonitorTick() calls that sample,
//     raise alerts, log them and write growth heap profiles;
//   - on every thread while only the monitor thread works (ticking every
//     2 ms, relieving soft-limit pressure).
// Both counts must be zero. Not run under sanitizers (they own malloc).
#include <time.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <string>

#include "alloc/heap_profiler.h"
#include "alloc/monitor.h"
#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"

extern "C" {
void* __libc_malloc(std::size_t);
void __libc_free(void*);
void* __libc_calloc(std::size_t, std::size_t);
void* __libc_realloc(void*, std::size_t);
void* __libc_memalign(std::size_t, std::size_t);
void* __libc_valloc(std::size_t);
void* __libc_pvalloc(std::size_t);
}

namespace {
thread_local bool t_armed = false;
thread_local long t_calls = 0;
std::atomic<bool> g_armed{false};
std::atomic<long> g_calls{0};
inline void Note() {
  if (t_armed) ++t_calls;
  if (g_armed.load(std::memory_order_relaxed)) g_calls.fetch_add(1, std::memory_order_relaxed);
}
}  // namespace

extern "C" {
void* malloc(std::size_t n) {
  Note();
  return __libc_malloc(n);
}
void free(void* p) {
  if (p != nullptr) Note();
  __libc_free(p);
}
void* calloc(std::size_t n, std::size_t size) {
  Note();
  return __libc_calloc(n, size);
}
void* realloc(void* p, std::size_t n) {
  Note();
  return __libc_realloc(p, n);
}
void* memalign(std::size_t align, std::size_t n) {
  Note();
  return __libc_memalign(align, n);
}
void* aligned_alloc(std::size_t align, std::size_t n) {
  Note();
  return __libc_memalign(align, n);
}
int posix_memalign(void** out, std::size_t align, std::size_t n) {
  Note();
  void* p = __libc_memalign(align, n);
  if (p == nullptr) return 12;  // ENOMEM
  *out = p;
  return 0;
}
void* valloc(std::size_t n) {
  Note();
  return __libc_valloc(n);
}
void* pvalloc(std::size_t n) {
  Note();
  return __libc_pvalloc(n);
}
}

namespace strata {
namespace {

using monitor_test::Blocks;
using monitor_test::TempDir;

constexpr std::size_t kMiB = std::size_t{1} << 20;

void SleepMs(long ms) {
  timespec ts = {ms / 1000, (ms % 1000) * 1'000'000};
  nanosleep(&ts, nullptr);
}

TEST(MonitorNoMalloc, TicksWithAlertsLogsAndProfilesNeverCallMalloc) {
  SetProfileSampleRate(1);
  const std::string prefix = TempDir() + "/nomalloc";
  const auto base = static_cast<std::uint64_t>(monitor_test::LiveBytes());
  MonitorConfig c;
  c.live_bytes.warning = base + 4 * kMiB;
  c.live_bytes.critical = base + 8 * kMiB;
  c.committed_bytes.warning = 1;  // always above: one alert
  c.threads.warning = 1;
  c.growth_bytes = kMiB;
  c.profile_prefix = prefix.c_str();
  c.max_profiles = 100;
  c.log_alerts = true;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  // Warm-up: the first heap profile initialises the symbolizer, which may
  // allocate once (outside the monitor's own code): grow, tick, profile.
  ASSERT_TRUE(MemoryMonitorTick());
  Blocks warm(2 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  ASSERT_EQ(GetMonitorCounters().profiles_written, 1u);

  Blocks a;
  Blocks b;
  t_armed = true;
  t_calls = 0;
  bool ticked = MemoryMonitorTick();
  t_armed = false;
  a.Add(4 * kMiB);  // warning + growth + profile on the next tick
  t_armed = true;
  ticked = MemoryMonitorTick() && ticked;
  t_armed = false;
  b.Add(4 * kMiB);  // critical + growth + profile
  t_armed = true;
  ticked = MemoryMonitorTick() && ticked;
  Alert alerts[kAlertQueueCapacity];
  const std::size_t n = PollAlerts(alerts, kAlertQueueCapacity);
  MemorySnapshot history[kMaxHistory];
  const std::size_t h = GetMemoryHistory(history, kMaxHistory);
  const long calls = t_calls;
  t_armed = false;

  EXPECT_TRUE(ticked);
  EXPECT_EQ(calls, 0) << "the monitor's tick called malloc";
  EXPECT_GE(n, 4u);
  EXPECT_GE(h, 5u);
  EXPECT_GE(GetMonitorCounters().profiles_written, 3u);
}

TEST(MonitorNoMalloc, MonitorThreadNeverCallsMalloc) {
  MonitorConfig c;
  c.interval_ms = 2;
  c.live_bytes.warning = 1;
  c.growth_bytes = 64 * 1024;
  c.profile_prefix = nullptr;
  ASSERT_TRUE(StartMemoryMonitor(c));
  Blocks live(2 * kMiB);
  SleepMs(50);  // the thread is up and has ticked
  g_calls.store(0);
  g_armed.store(true);
  // Only the monitor thread runs now: ticks every 2 ms, and soft-limit
  // pressure (the limit is far below what is committed) released at once
  // and again every second.
  SetMemoryLimit(1);
  SleepMs(300);
  g_armed.store(false);
  const long calls = g_calls.load();
  const MonitorCounters counters = GetMonitorCounters();
  SetMemoryLimit(0);
  StopMemoryMonitor();
  EXPECT_EQ(calls, 0) << "the monitor thread called malloc";
  EXPECT_GE(counters.pressure_events, 1u);
  EXPECT_GE(counters.ticks, 20u);
}

}  // namespace
}  // namespace strata
