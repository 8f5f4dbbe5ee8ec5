// alloc/http/server.h: the small HTTP/1.x server behind strata's
// observability endpoint (/metrics, /debug/strata, /debug/pprof/heap; the
// routes live in alloc/pprof_http.cc).
//
// Why not cpp-httplib (Debian libcpp-httplib-dev): it builds every request
// and response in std::string / std::map and serves each connection on a
// thread pool of std::function tasks, all allocating through malloc, which
// here is the allocator being measured: a scrape would move the numbers it
// reports (allocations, live bytes, thread caches of the pool's threads)
// and could not run in a fork child or past a hard memory limit. It would
// also put a header-only HTTP stack with exceptions into libstrata.so.
// What this endpoint needs is small: GET/HEAD of a few fixed paths on
// loopback, so strata keeps its own server, which allocates nothing.
//
// Contract:
//   - Binds 127.0.0.1 only. One thread (named at Start) runs a poll(2)
//     loop over the listening socket, a wake-up pipe and at most
//     kMaxConnections non-blocking connections; every connection has its
//     own fixed buffers, so a slow client only ever holds its own slot.
//   - Bounded: a request head is at most kMaxRequestHeadBytes
//     (alloc/http/request.h; 431 beyond), one request per connection
//     (HTTP/1.0 semantics: `Connection: close`), kMaxConnections at once
//     (a connection beyond that gets `503` at once and is closed); a head
//     must arrive within kRequestTimeoutMs, a response must make progress
//     every kWriteIdleTimeoutMs, and no connection lives longer than
//     kMaxConnectionMs. Expired connections are closed.
//   - A route's BodyWriter writes the whole body into a memfd (anonymous
//     tmpfs memory, not the heap), so the response is complete and its
//     Content-Length known before a byte is sent; the socket then gets it
//     with non-blocking sendfile(2) as fast as the client reads. Writers
//     run one at a time on the server thread: a slow writer (a large heap
//     profile) delays the other connections by its own run time, never by
//     a client's. A writer that fails yields `500`. Unknown paths `404` (listing the routes),
//     other methods than GET and HEAD `405`.
//   - The loop never allocates through malloc (fixed arrays, stack
//     buffers) and never raises SIGPIPE (the thread blocks every signal).
//     BodyWriters run on the server thread; they must not block on a
//     client (they never see one) and should not allocate either.
//
// Thread-safety: Start/Stop/port are thread-safe and serialised per
// Server. A Server is a constinit-able object; at most one thread serves
// it. Start and Stop run with the calling thread's signals blocked (a
// handler that forked inside them would leave its child a thread it does
// not have to create or join).
//
// Fork: the owner registers PrepareFork, ParentAfterFork and
// ChildAfterFork as pthread_atfork handlers (alloc/pprof_http.cc, before
// its first Start). A fork waits for the short section of Start or Stop
// that opens or closes the server's sockets, so the child knows all of
// them: it closes its copies (a listening socket left open in a child
// would keep the port bound, and accept connections nobody serves, after
// the parent stopped) and starts with the server stopped, whatever Start
// or Stop another thread of the parent was in. Connections being served
// stay open in the child until it exits or execs (CLOEXEC).
#ifndef STRATA_ALLOC_HTTP_SERVER_H_
#define STRATA_ALLOC_HTTP_SERVER_H_

#include <netinet/in.h>
#include <pthread.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/http/request.h"
#include "concurrency/base/spin_lock.h"

namespace strata::http {

inline constexpr int kMaxConnections = 16;
inline constexpr int kRequestTimeoutMs = 5'000;
inline constexpr int kWriteIdleTimeoutMs = 10'000;
inline constexpr int kMaxConnectionMs = 60'000;

// Writes a response body to `fd`; returns 0 or an errno-style code.
using BodyWriter = int (*)(int fd) noexcept;

struct Route {
  const char* path;          // exact match, e.g. "/metrics" (the query is ignored)
  const char* content_type;  // e.g. "text/plain; version=0.0.4; charset=utf-8"
  BodyWriter write;
  // Non-null: sent as `Content-Disposition: attachment; filename="..."`.
  const char* download_name = nullptr;
};

// Counts since Start (relaxed; for tests and diagnostics).
struct ServerCounters {
  std::uint64_t accepted;
  std::uint64_t responses;       // complete responses of any status
  std::uint64_t refused_busy;    // 503: every slot taken
  std::uint64_t timed_out;       // closed at a deadline
  std::uint64_t bad_requests;    // 400 / 431 / 505
};

class Server {
 public:
  constexpr Server() = default;
  Server(const Server&) = delete;
  Server& operator=(const Server&) = delete;

  // Serves `routes[0, count)` (which must outlive the server) on
  // 127.0.0.1:`port` (0: an ephemeral port) from a new thread named
  // `thread_name` (at most 15 characters). Returns false when this server
  // runs already, the port cannot be bound or the thread not created;
  // otherwise stores the bound port in *bound_port (if not null).
  bool Start(const Route* routes, std::size_t count, int port, const char* thread_name,
             int* bound_port = nullptr) noexcept;
  // Closes every connection and the socket and joins the thread. No-op
  // when not running.
  void Stop() noexcept;
  // The bound port while running, else 0.
  int port() const noexcept { return port_.load(std::memory_order_relaxed); }
  ServerCounters counters() const noexcept;
  // pthread_atfork handlers (see Fork above).
  void PrepareFork() noexcept STRATA_ACQUIRE(fds_lock_);
  void ParentAfterFork() noexcept STRATA_RELEASE(fds_lock_);
  void ChildAfterFork() noexcept STRATA_RELEASE(fds_lock_);

  struct Connection;  // defined in server.cc

 private:
  static void* ThreadMain(void* self);
  void Serve();
  // Opens (closes) the listening socket and the wake-up pipe, recording
  // each descriptor as soon as it exists. Open leaves what it opened
  // recorded on failure.
  bool OpenSocketsLocked(int port, sockaddr_in* addr) STRATA_REQUIRES(fds_lock_);
  void CloseSocketsLocked() STRATA_REQUIRES(fds_lock_);

  SpinLock lock_;
  bool running_ STRATA_GUARDED_BY(lock_) = false;
  pthread_t thread_ STRATA_GUARDED_BY(lock_) = {};
  // Opened and closed under fds_lock_ (which the fork prepare takes), with
  // lock_ held; set before the thread starts, read by it; closed after it
  // is joined.
  SpinLock fds_lock_;
  int listen_fd_ = -1;
  int wake_read_fd_ = -1;
  int wake_write_fd_ = -1;
  const Route* routes_ = nullptr;
  std::size_t route_count_ = 0;
  std::atomic<int> port_{0};
  std::atomic<std::uint64_t> accepted_{0};
  std::atomic<std::uint64_t> responses_{0};
  std::atomic<std::uint64_t> refused_busy_{0};
  std::atomic<std::uint64_t> timed_out_{0};
  std::atomic<std::uint64_t> bad_requests_{0};
};

// For tests: `fn` (nullptr: none) is called by Start on its thread once
// the sockets are open, before the server's thread is created (lock held,
// signals blocked). It must not allocate through strata.
void SetStartObserverForTesting(void (*fn)());

}  // namespace strata::http

#endif  // STRATA_ALLOC_HTTP_SERVER_H_
