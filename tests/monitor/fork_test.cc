// tests/monitor/fork_test.cc: a fork child of a process running the monitor
// thread and the pprof server has neither (threads do not survive fork):
// it sees both stopped, its calls do not hang, and the parent keeps both.
#include <sys/wait.h>
#include <unistd.h>

#include "alloc/monitor.h"
#include "alloc/pprof_http.h"
#include "gtest/gtest.h"
#include "tests/monitor/test_util.h"

namespace strata {
namespace {

// Runs in the child: only async-signal-safe-ish calls of this API, no
// gtest. Exit code 0 when everything holds.
int ChildChecks() {
  if (MemoryMonitorRunning()) return 1;
  if (PprofServerPort() != 0) return 2;
  StopMemoryMonitor();  // no thread to join: returns at once
  StopPprofServer();
  if (!MemoryMonitorTick()) return 3;  // sampling on demand still works
  if (MemoryLimit() != (std::size_t{1} << 40)) return 4;  // limits stay
  SetMemoryLimit(0);
  return 0;
}

TEST(Fork, ChildStartsWithoutTheThreads) {
  MonitorConfig c;
  c.interval_ms = 1;
  ASSERT_TRUE(StartMemoryMonitor(c));
  SetMemoryLimit(std::size_t{1} << 40);
  int port = 0;
  ASSERT_TRUE(StartPprofServer(0, &port));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) _exit(ChildChecks());
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 0);

  EXPECT_TRUE(MemoryMonitorRunning());
  EXPECT_EQ(PprofServerPort(), port);
  const std::uint64_t ticks = GetMonitorCounters().ticks;
  EXPECT_TRUE(monitor_test::WaitFor([&] { return GetMonitorCounters().ticks > ticks + 2; }));
  StopPprofServer();
  StopMemoryMonitor();
  SetMemoryLimit(0);
}

}  // namespace
}  // namespace strata
