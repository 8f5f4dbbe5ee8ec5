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

#include "tests/util/malloc_counter.h"

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
  strata::testing::t_malloc_armed = true;
  strata::testing::t_malloc_calls = 0;
  bool ticked = MemoryMonitorTick();
  strata::testing::t_malloc_armed = false;
  a.Add(4 * kMiB);  // warning + growth + profile on the next tick
  strata::testing::t_malloc_armed = true;
  ticked = MemoryMonitorTick() && ticked;
  strata::testing::t_malloc_armed = false;
  b.Add(4 * kMiB);  // critical + growth + profile
  strata::testing::t_malloc_armed = true;
  ticked = MemoryMonitorTick() && ticked;
  Alert alerts[kAlertQueueCapacity];
  const std::size_t n = PollAlerts(alerts, kAlertQueueCapacity);
  MemorySnapshot history[kMaxHistory];
  const std::size_t h = GetMemoryHistory(history, kMaxHistory);
  const long calls = strata::testing::t_malloc_calls;
  strata::testing::t_malloc_armed = false;

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
  strata::testing::g_malloc_calls.store(0);
  strata::testing::g_malloc_armed.store(true);
  // Only the monitor thread runs now: ticks every 2 ms, and soft-limit
  // pressure (the limit is far below what is committed) released at once
  // and again every second.
  SetMemoryLimit(1);
  SleepMs(300);
  strata::testing::g_malloc_armed.store(false);
  const long calls = strata::testing::g_malloc_calls.load();
  const MonitorCounters counters = GetMonitorCounters();
  SetMemoryLimit(0);
  StopMemoryMonitor();
  EXPECT_EQ(calls, 0) << "the monitor thread called malloc";
  EXPECT_GE(counters.pressure_events, 1u);
  EXPECT_GE(counters.ticks, 20u);
}

}  // namespace
}  // namespace strata
