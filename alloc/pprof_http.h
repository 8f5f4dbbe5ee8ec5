// alloc/pprof_http.h: strata's optional observability endpoint over HTTP
// (loopback only): Prometheus metrics, the live dashboard and the heap
// profile, as Go's net/http/pprof serves a live process:
//   curl http://127.0.0.1:PORT/metrics
//   go tool pprof http://127.0.0.1:PORT/debug/pprof/heap
//
// Routes (the table is in pprof_http.cc; adding one is one line there):
//   GET /metrics            Prometheus text format (alloc/observe/prometheus.h)
//   GET /debug/pprof/heap   the gzipped profile.proto of
//                           strata::WriteHeapProfileToFd, as an attachment
//   GET /debug/pprof/peak   the same for the peak heap profile
//                           (strata::WritePeakHeapProfileToFd)
//   GET /debug/strata       the live dashboard (alloc/observe/dashboard.h)
//   GET /debug/strata/stats.json  what it polls
//                           (alloc/observe/dashboard_json.h)
// Any query string is ignored; HEAD is answered too; other paths get 404
// listing these. See docs/MONITOR.md.
//
// Contract:
//   - Off unless started (StartPprofServer, or STRATA_PPROF_PORT=N through
//     InitPprofFromEnvironment, which the runtime layer calls at startup).
//   - Binds 127.0.0.1 only. One background thread ("strata-http") serves
//     every connection with non-blocking I/O, bounded request heads, at
//     most http::kMaxConnections connections and per-connection deadlines,
//     so a slow or stuck client never stalls other clients or the program
//     (alloc/http/server.h has the bounds and why strata keeps its own
//     server rather than cpp-httplib).
//   - Serving allocates nothing through malloc: the server's buffers are
//     on its stack, responses are written into a memfd, and every page
//     writer formats into stack buffers, so a scrape does not move the
//     numbers it reports. (Starting the server's thread makes glibc
//     allocate once: the new thread's TLS vector.) The allocation path
//     pays nothing for the endpoint: it reads counters the engine keeps
//     anyway (bench/RESULTS.md, "HTTP endpoint overhead").
//
// Thread-safety: Start/Stop are thread-safe and serialised; at most one
// server runs per process. A fork child starts without a server (its
// copies of the listening socket and wake-up pipe are closed; the parent
// keeps serving) and can start its own, whenever the fork happens: also
// during another thread's Start or Stop (the first one registers the fork
// handlers, once per process; a fork waits for the few system calls that
// open or close the sockets), and from a signal handler (Start and Stop
// run with the thread's signals blocked). A connection being served when
// the fork happens stays open in the child until it exits or execs.
#ifndef STRATA_ALLOC_PPROF_HTTP_H_
#define STRATA_ALLOC_PPROF_HTTP_H_

namespace strata {

// How long a response may make no progress before the connection is
// dropped (long enough for a profile of a large heap on a loaded machine).
inline constexpr int kPprofIoTimeoutMs = 10'000;

// Starts the server on 127.0.0.1:`port` (0: an ephemeral port). On success
// returns true and stores the bound port in *bound_port (if not null).
// False when a server already runs, the port cannot be bound, or the
// thread cannot be created.
bool StartPprofServer(int port, int* bound_port = nullptr) noexcept;

// Stops the server (closes the sockets, joins the thread). No-op when none
// runs.
void StopPprofServer() noexcept;

// The bound port of the running server, or 0.
int PprofServerPort() noexcept;

// STRATA_PPROF_PORT=N (1..65535; 0 or unset: off) starts the server;
// malformed values are logged and ignored. Runs once per process.
void InitPprofFromEnvironment() noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_PPROF_HTTP_H_
