// tests/monitor/soft_limit_test.cc: the soft memory limit. Committed memory
// above 90% of it makes strata release cached memory to the OS and call the
// pressure callbacks, on demand (CheckMemoryLimitNow) and from the monitor
// thread by itself.
#include <atomic>
#include <cstdint>
#include <vector>

#include "alloc/monitor.h"
#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"

namespace strata {
namespace {

using monitor_test::Blocks;
using monitor_test::CommittedBytes;
using monitor_test::DrainAlerts;
using monitor_test::WaitFor;

constexpr std::size_t kMiB = std::size_t{1} << 20;

struct PressureLog {
  std::atomic<int> calls{0};
  std::atomic<std::size_t> released{0};
  std::atomic<std::size_t> before{0};
  std::atomic<std::size_t> after{0};
  std::atomic<std::size_t> limit{0};
  std::atomic<bool> reentry_refused{true};
};

void OnPressure(const PressureEvent& e, void* arg) {
  auto* log = static_cast<PressureLog*>(arg);
  log->released.store(e.released_bytes);
  log->before.store(e.committed_before);
  log->after.store(e.committed_after);
  log->limit.store(e.limit_bytes);
  if (CheckMemoryLimitNow() || RegisterMemoryPressureCallback(&OnPressure, nullptr)) {
    log->reentry_refused.store(false);
  }
  log->calls.fetch_add(1);
}

// Leaves `bytes` of free, committed spans in the page heap (freed large
// blocks stay committed for the decay delay).
void MakeFreeCommittedMemory(std::size_t bytes) {
  Blocks blocks(bytes, 1024 * 1024);
  blocks.FreeAll();
}

class SoftLimitTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(RegisterMemoryPressureCallback(&OnPressure, &log_));
    DrainAlerts();
  }
  void TearDown() override {
    SetMemoryLimit(0);
    UnregisterMemoryPressureCallback(&OnPressure, &log_);
  }
  PressureLog log_;
};

TEST_F(SoftLimitTest, BelowTheThresholdNothingHappens) {
  SetMemoryLimit(std::size_t{1} << 40);
  EXPECT_EQ(MemoryLimit(), std::size_t{1} << 40);
  EXPECT_FALSE(CheckMemoryLimitNow());
  SetMemoryLimit(0);
  EXPECT_FALSE(CheckMemoryLimitNow()) << "no limit";
  EXPECT_EQ(log_.calls.load(), 0);
}

TEST_F(SoftLimitTest, CrossingReleasesMemoryAndCallsBack) {
  Blocks live(4 * kMiB);
  MakeFreeCommittedMemory(32 * kMiB);
  const std::size_t committed = CommittedBytes();
  ASSERT_GE(committed, 36 * kMiB);
  const MonitorCounters before = GetMonitorCounters();
  // 90% of `committed` is crossed at once. The monitor thread (started by
  // SetMemoryLimit) or this call relieves it, whichever comes first.
  SetMemoryLimit(committed);
  const bool here = CheckMemoryLimitNow();
  ASSERT_TRUE(WaitFor([&] { return log_.calls.load() >= 1; }));
  EXPECT_TRUE(here || GetMonitorCounters().pressure_events > before.pressure_events);
  EXPECT_GE(log_.released.load(), 32 * kMiB) << "the free spans went back to the OS";
  EXPECT_GT(log_.before.load(), committed / 10 * 9);
  EXPECT_LT(log_.after.load(), log_.before.load());
  EXPECT_LE(CommittedBytes(), committed / 10 * 9) << "back under the threshold";
  EXPECT_EQ(log_.limit.load(), committed);
  EXPECT_TRUE(log_.reentry_refused.load());
  const MonitorCounters after = GetMonitorCounters();
  EXPECT_GE(after.pressure_events, before.pressure_events + 1);
  EXPECT_GE(after.pressure_released_bytes, before.pressure_released_bytes + 32 * kMiB);
  // The pressure is also an alert.
  bool limit_alert = false;
  for (const Alert& a : DrainAlerts()) {
    if (a.kind == AlertKind::kMemoryLimit) {
      limit_alert = true;
      EXPECT_EQ(a.level, AlertLevel::kWarning);
      EXPECT_EQ(a.threshold, committed / 100 * kPressurePercent + committed % 100 * kPressurePercent / 100);
    }
  }
  EXPECT_TRUE(limit_alert);
}

TEST_F(SoftLimitTest, MonitorThreadRelievesPressureByItself) {
  Blocks live(2 * kMiB);
  SetMemoryLimit(std::size_t{1} << 40);  // the thread runs, nothing to do
  MakeFreeCommittedMemory(32 * kMiB);
  const std::size_t committed = CommittedBytes();
  SetMemoryLimit(committed);  // no CheckMemoryLimitNow(): the thread acts
  ASSERT_TRUE(WaitFor([&] { return log_.calls.load() >= 1; }))
      << "the monitor thread did not release within 10 s";
  EXPECT_GE(log_.released.load(), 32 * kMiB);
  EXPECT_LE(CommittedBytes(), committed / 10 * 9);
  // Below the threshold again: quiet.
  const int calls = log_.calls.load();
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(log_.calls.load(), calls);
  // Pressure again (new free memory, a lower limit): the thread acts again.
  MakeFreeCommittedMemory(32 * kMiB);
  SetMemoryLimit(CommittedBytes());
  ASSERT_TRUE(WaitFor([&] { return log_.calls.load() > calls; }));
}

TEST_F(SoftLimitTest, UnregisteredCallbackIsNotCalled) {
  ASSERT_TRUE(UnregisterMemoryPressureCallback(&OnPressure, &log_));
  EXPECT_FALSE(UnregisterMemoryPressureCallback(&OnPressure, &log_));
  MakeFreeCommittedMemory(16 * kMiB);
  SetMemoryLimit(CommittedBytes());
  CheckMemoryLimitNow();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  EXPECT_EQ(log_.calls.load(), 0);
  ASSERT_TRUE(RegisterMemoryPressureCallback(&OnPressure, &log_));  // for TearDown
}

TEST(SoftLimitCallbacks, TableIsBounded) {
  int args[kMaxCallbacks + 1];
  int added = 0;
  for (int i = 0; i <= kMaxCallbacks; ++i) {
    if (RegisterMemoryPressureCallback(&OnPressure, &args[i])) ++added;
  }
  EXPECT_EQ(added, kMaxCallbacks);
  for (int i = 0; i <= kMaxCallbacks; ++i) UnregisterMemoryPressureCallback(&OnPressure, &args[i]);
  EXPECT_FALSE(RegisterMemoryPressureCallback(nullptr, nullptr));
}

}  // namespace
}  // namespace strata
