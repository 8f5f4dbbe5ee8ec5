// tests/monitor/monitor_test.cc: the memory monitor (alloc/monitor.h):
// thresholds fire warning then critical in order and resolve, the alert
// queue is bounded and drains, the history ring keeps the newest N in
// order, callbacks run (and refuse re-entry), the thread metric, and the
// background thread with logging.
//
// Ticks are driven by hand (MemoryMonitorTick) except in the background
// test, so the expected alerts are exact.
#include "alloc/monitor.h"

#include <fcntl.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <fstream>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"

namespace strata {
namespace {

using monitor_test::Blocks;
using monitor_test::DrainAlerts;
using monitor_test::LiveBytes;
using monitor_test::TempDir;
using monitor_test::WaitFor;

constexpr std::size_t kMiB = std::size_t{1} << 20;

MonitorConfig LiveConfig(std::uint64_t warning, std::uint64_t critical) {
  MonitorConfig c;
  c.interval_ms = 1000;
  c.history_size = 16;
  c.live_bytes.warning = warning;
  c.live_bytes.critical = critical;
  return c;
}

TEST(Monitor, TickNeedsAConfiguration) {
  // The first test in the binary: nothing configured yet.
  EXPECT_FALSE(MemoryMonitorTick());
  MonitorConfig bad;
  bad.interval_ms = 0;
  EXPECT_FALSE(ConfigureMemoryMonitor(bad));
  bad = MonitorConfig{};
  bad.history_size = kMaxHistory + 1;
  EXPECT_FALSE(ConfigureMemoryMonitor(bad));
  std::string long_prefix(kMaxProfilePrefix + 1, 'x');
  bad = MonitorConfig{};
  bad.profile_prefix = long_prefix.c_str();
  EXPECT_FALSE(ConfigureMemoryMonitor(bad));
  EXPECT_FALSE(MemoryMonitorTick());
}

TEST(Monitor, WarningThenCriticalInOrderThenResolved) {
  const std::int64_t base = LiveBytes();
  ASSERT_TRUE(ConfigureMemoryMonitor(LiveConfig(base + 8 * kMiB, base + 16 * kMiB)));
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty());

  Blocks a(10 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  Blocks b(8 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  ASSERT_TRUE(MemoryMonitorTick());  // still critical: edge-triggered, no repeat

  std::vector<Alert> alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[0].kind, AlertKind::kLiveBytes);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
  EXPECT_EQ(alerts[0].threshold, base + 8 * kMiB);
  EXPECT_GE(alerts[0].value, base + 10 * kMiB);
  EXPECT_EQ(alerts[1].kind, AlertKind::kLiveBytes);
  EXPECT_EQ(alerts[1].level, AlertLevel::kCritical);
  EXPECT_EQ(alerts[1].threshold, base + 16 * kMiB);
  EXPECT_GE(alerts[1].value, base + 18 * kMiB);
  EXPECT_LT(alerts[0].sequence, alerts[1].sequence);
  EXPECT_LE(alerts[0].monotonic_ns, alerts[1].monotonic_ns);
  EXPECT_GT(alerts[0].unix_ns, 0u);
  EXPECT_TRUE(DrainAlerts().empty()) << "the queue drains";

  b.FreeAll();  // 10 MiB: below critical, above 90% of warning: no alert
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty());
  a.FreeAll();
  ASSERT_TRUE(MemoryMonitorTick());
  alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].level, AlertLevel::kResolved);
  EXPECT_EQ(alerts[0].kind, AlertKind::kLiveBytes);

  // Re-armed: crossing warning again alerts again.
  Blocks c(10 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
}

TEST(Monitor, CrossingBothLevelsAtOnceReportsWarningThenCritical) {
  const std::int64_t base = LiveBytes();
  ASSERT_TRUE(ConfigureMemoryMonitor(LiveConfig(base + 4 * kMiB, base + 8 * kMiB)));
  ASSERT_TRUE(MemoryMonitorTick());
  Blocks a(12 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  std::vector<Alert> alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 2u);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
  EXPECT_EQ(alerts[1].level, AlertLevel::kCritical);
  EXPECT_EQ(alerts[0].sequence + 1, alerts[1].sequence);
}

TEST(Monitor, CommittedThresholds) {
  ReleaseMemory();  // no free committed spans left to reuse
  const std::size_t committed = monitor_test::CommittedBytes();
  MonitorConfig c;
  c.committed_bytes.warning = committed + 8 * kMiB;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty());
  Blocks a(16 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  std::vector<Alert> alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind, AlertKind::kCommittedBytes);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
  EXPECT_STREQ(AlertKindName(alerts[0].kind), "committed_bytes");
  EXPECT_STREQ(AlertLevelName(alerts[0].level), "WARNING");
}

TEST(Monitor, HistoryKeepsTheNewestNInOrder) {
  MonitorConfig c;
  c.history_size = 8;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  MemorySnapshot out[kMaxHistory];
  EXPECT_EQ(GetMemoryHistory(out, kMaxHistory), 0u) << "configure clears the history";
  Blocks grow;
  for (int i = 0; i < 20; ++i) {
    grow.Add(512 * 1024);
    ASSERT_TRUE(MemoryMonitorTick());
  }
  std::size_t n = GetMemoryHistory(out, kMaxHistory);
  ASSERT_EQ(n, 8u);
  for (std::size_t i = 0; i < n; ++i) {
    EXPECT_EQ(out[i].sequence, 13 + i) << i;
    if (i > 0) {
      EXPECT_GE(out[i].monotonic_ns, out[i - 1].monotonic_ns);
      EXPECT_GT(out[i].live_bytes, out[i - 1].live_bytes) << "one more block per tick";
      EXPECT_GE(out[i].allocations, out[i - 1].allocations);
    }
    EXPECT_GT(out[i].committed_bytes, 0u);
    EXPECT_GE(out[i].reserved_bytes, out[i].committed_bytes);
    EXPECT_GE(out[i].threads, 1u) << "/proc/self/status Threads:";
  }
  // A shorter copy holds the newest, oldest first.
  n = GetMemoryHistory(out, 3);
  ASSERT_EQ(n, 3u);
  EXPECT_EQ(out[0].sequence, 18u);
  EXPECT_EQ(out[1].sequence, 19u);
  EXPECT_EQ(out[2].sequence, 20u);
}

TEST(Monitor, AlertQueueIsBoundedKeepsTheNewestAndDrains) {
  MonitorConfig c;
  c.growth_bytes = 1;  // every tick that allocates raises a growth alert
  c.growth_window_ms = 60'000;
  c.history_size = 4;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(MemoryMonitorTick());
  const MonitorCounters before = GetMonitorCounters();
  constexpr int kTicks = kAlertQueueCapacity + 44;
  Blocks grow;
  for (int i = 0; i < kTicks; ++i) {
    grow.Add(4096, 4096);
    ASSERT_TRUE(MemoryMonitorTick());
  }
  const MonitorCounters after = GetMonitorCounters();
  EXPECT_EQ(after.alerts_raised - before.alerts_raised, static_cast<std::uint64_t>(kTicks));
  EXPECT_EQ(after.alerts_dropped - before.alerts_dropped, 44u);
  std::vector<Alert> alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), kAlertQueueCapacity);
  for (std::size_t i = 1; i < alerts.size(); ++i) {
    EXPECT_EQ(alerts[i].sequence, alerts[i - 1].sequence + 1);
    EXPECT_EQ(alerts[i].kind, AlertKind::kGrowth);
  }
  EXPECT_EQ(alerts[0].profile_index, 0u) << "no profile prefix: none written";
  EXPECT_TRUE(DrainAlerts().empty());
}

struct CallbackLog {
  std::atomic<int> config_calls{0};
  std::atomic<int> registered_calls{0};
  std::atomic<int> reentry_refused{0};
  AlertLevel last_level = AlertLevel::kResolved;
};

void ConfigCallback(const Alert& alert, void* arg) {
  auto* log = static_cast<CallbackLog*>(arg);
  log->last_level = alert.level;
  log->config_calls.fetch_add(1);
}

void NoopCallback(const Alert&, void*) {}

void RegisteredCallback(const Alert&, void* arg) {
  auto* log = static_cast<CallbackLog*>(arg);
  log->registered_calls.fetch_add(1);
  // Inside a callback these would wait for the callback itself: refused.
  if (!MemoryMonitorTick() && !RegisterAlertCallback(&NoopCallback, nullptr) &&
      !ConfigureMemoryMonitor(MonitorConfig{}) && !CheckMemoryLimitNow()) {
    log->reentry_refused.fetch_add(1);
  }
  MemorySnapshot snap[1];
  GetMemoryHistory(snap, 1);  // readers are fine
}

TEST(Monitor, CallbacksRunRefuseReentryAndUnregister) {
  CallbackLog log;
  const std::int64_t base = LiveBytes();
  MonitorConfig c = LiveConfig(base + 2 * kMiB, 0);
  c.on_alert = &ConfigCallback;
  c.on_alert_arg = &log;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(RegisterAlertCallback(&RegisteredCallback, &log));
  EXPECT_FALSE(RegisterAlertCallback(&RegisteredCallback, &log)) << "registered once";
  EXPECT_FALSE(RegisterAlertCallback(nullptr, &log));
  ASSERT_TRUE(MemoryMonitorTick());
  {
    Blocks a(4 * kMiB);
    ASSERT_TRUE(MemoryMonitorTick());
    EXPECT_EQ(log.config_calls.load(), 1);
    EXPECT_EQ(log.registered_calls.load(), 1);
    EXPECT_EQ(log.reentry_refused.load(), 1);
    EXPECT_EQ(log.last_level, AlertLevel::kWarning);
  }
  ASSERT_TRUE(UnregisterAlertCallback(&RegisteredCallback, &log));
  EXPECT_FALSE(UnregisterAlertCallback(&RegisteredCallback, &log));
  ASSERT_TRUE(MemoryMonitorTick());  // resolved
  EXPECT_EQ(log.config_calls.load(), 2);
  EXPECT_EQ(log.registered_calls.load(), 1);
  EXPECT_EQ(log.last_level, AlertLevel::kResolved);
  // A new configuration replaces on_alert.
  ASSERT_TRUE(ConfigureMemoryMonitor(LiveConfig(base + 2 * kMiB, 0)));
  Blocks b(4 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_EQ(log.config_calls.load(), 2);
  DrainAlerts();
}

TEST(Monitor, ThreadCountThresholds) {
  MonitorConfig c;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(MemoryMonitorTick());
  MemorySnapshot snap[1];
  ASSERT_EQ(GetMemoryHistory(snap, 1), 1u);
  const std::uint32_t base = snap[0].threads;
  ASSERT_GE(base, 1u);
  c.threads.warning = base + 2;
  c.threads.critical = base + 100;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty());

  std::mutex mu;
  std::condition_variable cv;
  bool release = false;
  std::vector<std::thread> threads;
  for (int i = 0; i < 4; ++i) {
    threads.emplace_back([&] {
      std::unique_lock<std::mutex> lock(mu);
      cv.wait(lock, [&] { return release; });
    });
  }
  ASSERT_TRUE(MemoryMonitorTick());
  std::vector<Alert> alerts = DrainAlerts();
  {
    std::lock_guard<std::mutex> lock(mu);
    release = true;
  }
  cv.notify_all();
  for (auto& t : threads) t.join();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind, AlertKind::kThreads);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
  EXPECT_GE(alerts[0].value, base + 4);
  ASSERT_TRUE(MemoryMonitorTick());
  alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].level, AlertLevel::kResolved);
}

std::string Slurp(const std::string& path) {
  std::ifstream in(path);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

TEST(Monitor, BackgroundThreadSamplesAlertsAndLogs) {
  // Capture stderr (the raw log) in a file for the duration.
  const std::string log_path = TempDir() + "/monitor_stderr.txt";
  int log_fd = open(log_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  ASSERT_GE(log_fd, 0);
  int saved_stderr = dup(2);
  ASSERT_GE(saved_stderr, 0);
  ASSERT_EQ(dup2(log_fd, 2), 2);

  const std::int64_t base = LiveBytes();
  MonitorConfig c = LiveConfig(base + 2 * kMiB, 0);
  c.interval_ms = 5;
  c.log_alerts = true;
  const std::uint64_t ticks_before = GetMonitorCounters().ticks;
  const bool started = StartMemoryMonitor(c);
  Blocks a(4 * kMiB);
  std::vector<Alert> alerts;
  const bool alerted = WaitFor([&] {
    for (const Alert& alert : DrainAlerts()) alerts.push_back(alert);
    return !alerts.empty();
  });
  const bool running = MemoryMonitorRunning();
  StopMemoryMonitor();
  const bool running_after_stop = MemoryMonitorRunning();

  dup2(saved_stderr, 2);
  close(saved_stderr);
  close(log_fd);

  ASSERT_TRUE(started);
  EXPECT_TRUE(running);
  EXPECT_FALSE(running_after_stop);
  ASSERT_TRUE(alerted) << "no alert from the monitor thread within 10 s";
  EXPECT_EQ(alerts[0].kind, AlertKind::kLiveBytes);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
  EXPECT_GT(GetMonitorCounters().ticks, ticks_before);
  const std::string text = Slurp(log_path);
  EXPECT_NE(text.find("strata: monitor: WARNING live_bytes: "), std::string::npos) << text;

  // Stopped: no more ticks.
  const std::uint64_t ticks = GetMonitorCounters().ticks;
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(GetMonitorCounters().ticks, ticks);
}

TEST(Monitor, StartStopRepeatedly) {
  MonitorConfig c;
  c.interval_ms = 1;
  for (int i = 0; i < 20; ++i) {
    ASSERT_TRUE(StartMemoryMonitor(c));
    ASSERT_TRUE(StartMemoryMonitor(c)) << "a running monitor is reconfigured";
    StopMemoryMonitor();
    StopMemoryMonitor();
  }
  EXPECT_FALSE(MemoryMonitorRunning());
}

// For dashboards: the current levels, the recent alerts (not consumed by
// PollAlerts, nor consuming), counts by kind and level, resident bytes.
TEST(Monitor, StatusRecentAlertsCountsAndResidentBytes) {
  const std::int64_t base = LiveBytes();
  const MonitorCounters before = GetMonitorCounters();
  ASSERT_TRUE(ConfigureMemoryMonitor(LiveConfig(base + 4 * kMiB, base + 8 * kMiB)));
  MonitorStatus status = GetMonitorStatus();
  EXPECT_TRUE(status.configured);
  EXPECT_EQ(status.live_bytes.warning, static_cast<std::uint64_t>(base) + 4 * kMiB);
  EXPECT_EQ(status.history_size, 16u);
  EXPECT_EQ(status.live_bytes_level, AlertLevel::kResolved);
  Blocks a(6 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_EQ(GetMonitorStatus().live_bytes_level, AlertLevel::kWarning);
  Blocks b(4 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_EQ(GetMonitorStatus().live_bytes_level, AlertLevel::kCritical);
  EXPECT_EQ(DrainAlerts().size(), 2u);  // the program's own polling
  Alert recent[kRecentAlerts];
  ASSERT_EQ(GetRecentAlerts(recent, kRecentAlerts), 2u) << "recent alerts survive PollAlerts";
  EXPECT_EQ(recent[0].level, AlertLevel::kWarning);
  EXPECT_EQ(recent[1].level, AlertLevel::kCritical);
  EXPECT_LT(recent[0].sequence, recent[1].sequence);
  ASSERT_EQ(GetRecentAlerts(recent, 1), 1u);
  EXPECT_EQ(recent[0].level, AlertLevel::kCritical) << "the newest first when fewer fit";
  const MonitorCounters after = GetMonitorCounters();
  const int kind = static_cast<int>(AlertKind::kLiveBytes);
  EXPECT_EQ(after.alerts_by_kind_level[kind][1] - before.alerts_by_kind_level[kind][1], 1u);
  EXPECT_EQ(after.alerts_by_kind_level[kind][2] - before.alerts_by_kind_level[kind][2], 1u);
  MemorySnapshot snap;
  ASSERT_EQ(GetMemoryHistory(&snap, 1), 1u);
  EXPECT_GT(snap.resident_bytes, kMiB) << "VmRSS of this process";
  ASSERT_TRUE(ConfigureMemoryMonitor(LiveConfig(0, 0)));
  EXPECT_EQ(GetRecentAlerts(recent, kRecentAlerts), 0u) << "a new configuration starts over";
}

}  // namespace
}  // namespace strata
