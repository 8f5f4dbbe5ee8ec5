// The observability endpoint (alloc/pprof_http.h): the route table and the
// process-wide server.
#include "alloc/pprof_http.h"

#include <pthread.h>
#include <stdlib.h>

#include <atomic>

#include "alloc/fork/layer_fork_init.h"
#include "alloc/heap_profiler.h"
#include "alloc/http/server.h"
#include "alloc/observe/dashboard.h"
#include "alloc/observe/dashboard_json.h"
#include "alloc/observe/prometheus.h"
#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"

namespace strata {
namespace {

static_assert(kPprofIoTimeoutMs == http::kWriteIdleTimeoutMs);

// One line per path.
constexpr http::Route kRoutes[] = {
    {"/metrics", "text/plain; version=0.0.4; charset=utf-8", &observe::WritePrometheusMetrics},
    {"/debug/pprof/heap", "application/octet-stream", &WriteHeapProfileToFd, "heap.pb.gz"},
    {"/debug/pprof/peak", "application/octet-stream", &WritePeakHeapProfileToFd, "peak.pb.gz"},
    {"/debug/strata", "text/html; charset=utf-8", &observe::WriteDashboardHtml},
    {"/debug/strata/stats.json", "application/json", &observe::WriteDashboardJson},
};

constinit http::Server g_server;

// The server's fork handlers, registered before its first Start or Stop
// (alloc/fork/layer_fork_init.h: a fork during that registration is safe too).
struct PprofForkLayer {
  static constexpr ForkInitLayer kLayer = ForkInitLayer::kPprof;
  static void Prepare() STRATA_NO_THREAD_SAFETY_ANALYSIS { g_server.PrepareFork(); }
  static void Parent() STRATA_NO_THREAD_SAFETY_ANALYSIS { g_server.ParentAfterFork(); }
  static void Child() STRATA_NO_THREAD_SAFETY_ANALYSIS { g_server.ChildAfterFork(); }
};
using PprofForkInit = LayerForkInit<PprofForkLayer>;

}  // namespace

bool StartPprofServer(int port, int* bound_port) noexcept {
  PprofForkInit::Ensure();
  return g_server.Start(kRoutes, sizeof(kRoutes) / sizeof(kRoutes[0]), port, "strata-http", bound_port);
}

void StopPprofServer() noexcept {
  PprofForkInit::Ensure();
  g_server.Stop();
}

int PprofServerPort() noexcept { return g_server.port(); }

void InitPprofFromEnvironment() noexcept {
  static constinit std::atomic<bool> done{false};
  if (done.exchange(true, std::memory_order_acq_rel)) return;
  const char* v = getenv("STRATA_PPROF_PORT");
  if (v == nullptr || *v == '\0') return;
  long port = 0;
  const char* s = v;
  for (; *s >= '0' && *s <= '9' && port <= 65535; ++s) port = port * 10 + (*s - '0');
  if (*s != '\0' || port > 65535) {
    raw::Buffer b;
    b.Str("strata: ignoring STRATA_PPROF_PORT=").Str(v).Str(": expected a port number\n");
    b.WriteTo(2);
    return;
  }
  if (port == 0) return;
  int bound = 0;
  if (!StartPprofServer(static_cast<int>(port), &bound)) {
    raw::Buffer b;
    b.Str("strata: http: cannot serve on 127.0.0.1:").Dec(port).Char('\n');
    b.WriteTo(2);
    return;
  }
  raw::Buffer b;
  b.Str("strata: http: serving http://127.0.0.1:").Dec(bound).Str("/debug/strata (dashboard), /metrics, ");
  b.Str("/debug/pprof/heap and /debug/pprof/peak\n");
  b.WriteTo(2);
}

}  // namespace strata
