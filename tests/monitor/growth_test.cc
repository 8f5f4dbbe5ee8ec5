// tests/monitor/growth_test.cc: growth detection ("live bytes grew by more
// than X bytes or X% within Y ms") raises a growth alert and writes a heap
// profile by itself, which tools/heapdump's reader parses.
#include <sys/stat.h>
#include <time.h>

#include <cstdint>
#include <string>
#include <vector>

#include "alloc/heap_profiler.h"
#include "alloc/monitor.h"
#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"
#include "tools/heapdump/profile_reader.h"

namespace strata {
namespace {

using monitor_test::Blocks;
using monitor_test::DrainAlerts;
using monitor_test::TempDir;

constexpr std::size_t kMiB = std::size_t{1} << 20;

bool FileExists(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0;
}

// The allocation site the profile should show.
__attribute__((noinline)) void GrowthSite(Blocks* blocks, std::size_t bytes) {
  blocks->Add(bytes, 256 * 1024);
  asm volatile("" ::: "memory");
}

class GrowthTest : public ::testing::Test {
 protected:
  void SetUp() override { SetProfileSampleRate(1); }  // record every block
};

TEST_F(GrowthTest, GrowthByBytesAlertsAndWritesAProfile) {
  const std::string prefix = TempDir() + "/growth";
  MonitorConfig c;
  c.growth_bytes = 4 * kMiB;
  c.growth_window_ms = 60'000;
  c.profile_prefix = prefix.c_str();
  c.history_size = 16;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(MemoryMonitorTick());
  Blocks small_growth(2 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty()) << "2 MiB is below the 4 MiB threshold";

  Blocks blocks;
  GrowthSite(&blocks, 8 * kMiB);
  const MonitorCounters before = GetMonitorCounters();
  ASSERT_TRUE(MemoryMonitorTick());
  std::vector<Alert> alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind, AlertKind::kGrowth);
  EXPECT_EQ(alerts[0].level, AlertLevel::kWarning);
  EXPECT_GE(alerts[0].value, 10 * kMiB) << "measured from the lowest point in the window";
  EXPECT_EQ(alerts[0].threshold, 4 * kMiB);
  ASSERT_EQ(alerts[0].profile_index, 1u);
  EXPECT_EQ(GetMonitorCounters().profiles_written, before.profiles_written + 1);

  const std::string path = prefix + ".1.pb.gz";
  ASSERT_TRUE(FileExists(path)) << path;
  heapdump::Profile profile;
  std::string error;
  ASSERT_TRUE(heapdump::ReadProfileFile(path, &profile, &error)) << error;
  const int inuse = profile.SampleTypeIndex("inuse_space");
  ASSERT_GE(inuse, 0);
  std::int64_t inuse_bytes = 0;
  bool site_seen = false;
  for (const heapdump::Sample& s : profile.samples) {
    inuse_bytes += s.values[inuse];
    for (std::uint64_t id : s.location_ids) {
      const heapdump::Location* loc = profile.FindLocation(id);
      if (loc == nullptr) continue;
      for (const heapdump::Line& line : loc->lines) {
        const heapdump::Function* fn = profile.FindFunction(line.function_id);
        if (fn != nullptr && fn->name.find("GrowthSite") != std::string::npos) site_seen = true;
      }
    }
  }
  EXPECT_GE(inuse_bytes, static_cast<std::int64_t>(8 * kMiB));
  EXPECT_TRUE(site_seen) << "the growing site is in the profile";

  // Measured again from the alert on: no growth, no alert.
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty());
  // Growing again writes profile 2.
  GrowthSite(&blocks, 6 * kMiB);
  ASSERT_TRUE(MemoryMonitorTick());
  alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].profile_index, 2u);
  EXPECT_TRUE(FileExists(prefix + ".2.pb.gz"));
}

TEST_F(GrowthTest, GrowthByPercentAndProfileCap) {
  const std::string prefix = TempDir() + "/percent";
  Blocks base(4 * kMiB);
  MonitorConfig c;
  c.growth_percent = 50;
  c.growth_window_ms = 60'000;
  c.profile_prefix = prefix.c_str();
  c.max_profiles = 1;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  const std::int64_t low = monitor_test::LiveBytes();
  ASSERT_TRUE(MemoryMonitorTick());
  Blocks more(static_cast<std::size_t>(low) / 4);  // +25%: below 50%
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty());
  Blocks most(static_cast<std::size_t>(low) / 2);  // +75% in total
  ASSERT_TRUE(MemoryMonitorTick());
  std::vector<Alert> alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind, AlertKind::kGrowth);
  const auto low_bytes = static_cast<std::uint64_t>(low);
  EXPECT_EQ(alerts[0].threshold, low_bytes / 100 * 50 + low_bytes % 100 * 50 / 100);
  EXPECT_EQ(alerts[0].profile_index, 1u);
  EXPECT_TRUE(FileExists(prefix + ".1.pb.gz"));
  // The cap (max_profiles = 1): the next growth alerts without a profile.
  Blocks again(static_cast<std::size_t>(low));
  ASSERT_TRUE(MemoryMonitorTick());
  alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].profile_index, 0u);
  EXPECT_FALSE(FileExists(prefix + ".2.pb.gz"));
}

TEST_F(GrowthTest, GrowthOutsideTheWindowDoesNotCount) {
  MonitorConfig c;
  c.growth_bytes = 4 * kMiB;
  c.growth_window_ms = 1;  // only the newest sample is inside the window
  c.history_size = 16;
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(MemoryMonitorTick());
  Blocks blocks(8 * kMiB);
  struct timespec ts = {0, 20'000'000};
  nanosleep(&ts, nullptr);
  ASSERT_TRUE(MemoryMonitorTick());
  EXPECT_TRUE(DrainAlerts().empty());
}

TEST_F(GrowthTest, UnwritableProfilePathIsCountedNotFatal) {
  MonitorConfig c;
  c.growth_bytes = kMiB;
  c.profile_prefix = "/nonexistent-dir/strata/growth";
  ASSERT_TRUE(ConfigureMemoryMonitor(c));
  ASSERT_TRUE(MemoryMonitorTick());
  Blocks blocks(4 * kMiB);
  const MonitorCounters before = GetMonitorCounters();
  ASSERT_TRUE(MemoryMonitorTick());
  std::vector<Alert> alerts = DrainAlerts();
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].profile_index, 0u);
  EXPECT_EQ(GetMonitorCounters().profile_failures, before.profile_failures + 1);
}

}  // namespace
}  // namespace strata
