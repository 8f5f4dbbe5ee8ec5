// tests/observe/no_malloc_test.cc: the endpoint never calls malloc. This
// binary interposes the malloc family and counts calls:
//   - on the test thread around WritePrometheusMetrics(),
//     WriteDashboardJson() (with monitor history and alerts) and
//     WriteDashboardHtml();
//   - on every thread while the server accepts, parses, renders and sends
//     /metrics, a 404 and stats.json to a client that uses only stack
//     buffers.
// Both counts must be zero. Not run under sanitizers (they own malloc).
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

#include "alloc/monitor.h"
#include "alloc/observe/dashboard.h"
#include "alloc/observe/dashboard_json.h"
#include "alloc/observe/prometheus.h"
#include "alloc/pprof_http.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"
#include "tests/observe/http_client.h"
#include "tests/util/malloc_counter.h"

namespace strata {
namespace {

// GET `path` with stack buffers only; returns the bytes received.
std::size_t RawGet(int port, const char* path, char* buf, std::size_t capacity) {
  int fd = observe_test::Connect(port);
  if (fd < 0) return 0;
  char request[256];
  std::size_t n = 0;
  for (const char* part : {"GET ", path, " HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"}) {
    std::size_t len = strlen(part);
    memcpy(request + n, part, len);
    n += len;
  }
  send(fd, request, n, MSG_NOSIGNAL);
  std::size_t used = 0;
  for (;;) {
    ssize_t r = recv(fd, buf + used, capacity - 1 - used, 0);
    if (r <= 0) break;
    used += static_cast<std::size_t>(r);
    if (used == capacity - 1) break;
  }
  buf[used] = '\0';
  close(fd);
  return used;
}

TEST(ObserveNoMalloc, WritingMetricsNeverCallsMalloc) {
  void* keep = Allocate(1 << 20);
  int fd = memfd_create("metrics", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(observe::WritePrometheusMetrics(fd), 0);  // warm-up
  strata::testing::t_malloc_armed = true;
  strata::testing::t_malloc_calls = 0;
  const int rc = observe::WritePrometheusMetrics(fd);
  strata::testing::t_malloc_armed = false;
  EXPECT_EQ(rc, 0);
  EXPECT_EQ(strata::testing::t_malloc_calls, 0);
  EXPECT_GT(lseek(fd, 0, SEEK_END), 4000);
  close(fd);
  Free(keep);
}

TEST(ObserveNoMalloc, WritingTheDashboardAndItsJsonNeverCallsMalloc) {
  MonitorConfig config;
  config.live_bytes.warning = 1;  // one alert in the JSON
  ASSERT_TRUE(ConfigureMemoryMonitor(config));
  for (int i = 0; i < 5; ++i) ASSERT_TRUE(MemoryMonitorTick());
  int fd = memfd_create("dashboard", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(observe::WriteDashboardJson(fd), 0);  // warm-up
  strata::testing::t_malloc_armed = true;
  strata::testing::t_malloc_calls = 0;
  const int json = observe::WriteDashboardJson(fd);
  const int html = observe::WriteDashboardHtml(fd);
  strata::testing::t_malloc_armed = false;
  EXPECT_EQ(json, 0);
  EXPECT_EQ(html, 0);
  EXPECT_EQ(strata::testing::t_malloc_calls, 0);
  EXPECT_GT(lseek(fd, 0, SEEK_END), 10000);
  close(fd);
}

TEST(ObserveNoMalloc, ServingNeverCallsMalloc) {
  int port = 0;
  ASSERT_TRUE(StartPprofServer(0, &port));
  static char buf[1 << 20];
  ASSERT_GT(RawGet(port, "/metrics", buf, sizeof(buf)), 0u);  // warm-up
  strata::testing::g_malloc_calls = 0;
  strata::testing::g_malloc_armed = true;
  const std::size_t metrics = RawGet(port, "/metrics", buf, sizeof(buf));
  const bool metrics_ok = strstr(buf, "HTTP/1.0 200 OK") == buf && strstr(buf, "strata_live_bytes ") != nullptr;
  const std::size_t missing = RawGet(port, "/nothing-here", buf, sizeof(buf));
  const bool missing_ok = strstr(buf, "HTTP/1.0 404 Not Found") == buf;
  const std::size_t json = RawGet(port, "/debug/strata/stats.json", buf, sizeof(buf));
  const bool json_ok = strstr(buf, "HTTP/1.0 200 OK") == buf && strstr(buf, "\"history\":[") != nullptr;
  strata::testing::g_malloc_armed = false;
  EXPECT_GT(metrics, 4000u);
  EXPECT_TRUE(metrics_ok);
  EXPECT_GT(missing, 0u);
  EXPECT_TRUE(missing_ok);
  EXPECT_GT(json, 1000u);
  EXPECT_TRUE(json_ok);
  EXPECT_EQ(strata::testing::g_malloc_calls.load(), 0);
  StopPprofServer();
}

}  // namespace
}  // namespace strata
