// alloc/pprof_http.h: an optional HTTP endpoint serving strata's heap
// profile, as Go's net/http/pprof does, so that
//   go tool pprof http://127.0.0.1:PORT/debug/pprof/heap
// reads a live process.
//
// Contract:
//   - Off unless started (StartPprofServer, or STRATA_PPROF_PORT=N through
//     InitPprofFromEnvironment, which the runtime layer calls at startup).
//   - Binds 127.0.0.1 only (loopback: no remote access); one background
//     thread ("strata-pprof") serves one connection at a time with
//     HTTP/1.0 semantics (the response ends when the connection closes).
//   - GET /debug/pprof/heap (any query string ignored) answers
//     200 with Content-Type: application/octet-stream and the gzipped
//     profile.proto written by strata::WriteHeapProfileToFd straight into
//     the socket; GET /debug/pprof/peak the same for the peak heap
//     profile (strata::WritePeakHeapProfileToFd); every other request
//     answers 404 (400 when the request
//     line cannot be parsed). Reads and writes time out after
//     kPprofIoTimeoutMs, so a stuck client cannot block the server.
//   - The serving loop never allocates through malloc (stack buffers; the
//     profile writer is malloc-free) and never raises SIGPIPE (the thread
//     runs with every signal blocked).
//
// Thread-safety: Start/Stop are thread-safe and serialised; at most one
// server runs per process. A fork child starts without a server (its
// copies of the sockets are closed; the parent keeps serving).
#ifndef STRATA_ALLOC_PPROF_HTTP_H_
#define STRATA_ALLOC_PPROF_HTTP_H_

namespace strata {

// Socket read/write timeout: long enough for a profile of a large heap on
// a loaded machine, short enough that a silent client frees the server.
inline constexpr int kPprofIoTimeoutMs = 10'000;

// Starts the server on 127.0.0.1:`port` (0: an ephemeral port). On success
// returns true and stores the bound port in *bound_port (if not null).
// False when a server already runs, the port cannot be bound, or the
// thread cannot be created.
bool StartPprofServer(int port, int* bound_port = nullptr) noexcept;

// Stops the server (closes the socket, joins the thread). No-op when none
// runs.
void StopPprofServer() noexcept;

// The bound port of the running server, or 0.
int PprofServerPort() noexcept;

// STRATA_PPROF_PORT=N (1..65535; 0 or unset: off) starts the server;
// malformed values are logged and ignored. Runs once per process.
void InitPprofFromEnvironment() noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_PPROF_HTTP_H_
