// tests/monitor/env_init_test.cc: InitMonitorFromEnvironment applies the
// real environment once: limits set, monitor thread started with the
// configured thresholds.
#include <stdlib.h>

#include <string>
#include <vector>

#include "alloc/monitor.h"
#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"

namespace strata {
namespace {

using monitor_test::Blocks;
using monitor_test::DrainAlerts;
using monitor_test::WaitFor;

TEST(InitMonitorFromEnvironment, AppliesLimitsAndStartsTheMonitor) {
  const std::int64_t base = monitor_test::LiveBytes();
  const std::string warn = std::to_string(base + (1 << 20));
  setenv("STRATA_MEMORY_LIMIT", "64G", 1);
  setenv("STRATA_HARD_MEMORY_LIMIT", "128G", 1);
  setenv("STRATA_MONITOR", "1", 1);
  setenv("STRATA_MONITOR_INTERVAL_MS", "5", 1);
  setenv("STRATA_MONITOR_WARN_BYTES", warn.c_str(), 1);
  setenv("STRATA_MONITOR_LOG", "0", 1);
  InitMonitorFromEnvironment();
  EXPECT_EQ(MemoryLimit(), std::size_t{64} << 30);
  EXPECT_EQ(HardMemoryLimit(), std::size_t{128} << 30);
  EXPECT_TRUE(MemoryMonitorRunning());

  Blocks blocks(2 << 20);
  std::vector<Alert> alerts;
  ASSERT_TRUE(WaitFor([&] {
    for (const Alert& a : DrainAlerts()) alerts.push_back(a);
    return !alerts.empty();
  }));
  EXPECT_EQ(alerts[0].kind, AlertKind::kLiveBytes);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
  EXPECT_EQ(alerts[0].threshold, static_cast<std::uint64_t>(base + (1 << 20)));

  // Once per process: a second call changes nothing.
  StopMemoryMonitor();
  setenv("STRATA_MEMORY_LIMIT", "1G", 1);
  InitMonitorFromEnvironment();
  EXPECT_FALSE(MemoryMonitorRunning());
  EXPECT_EQ(MemoryLimit(), std::size_t{64} << 30);

  SetMemoryLimit(0);
  SetHardMemoryLimit(0);
  EXPECT_EQ(HardMemoryLimit(), 0u);
}

}  // namespace
}  // namespace strata
