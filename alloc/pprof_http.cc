// The pprof HTTP endpoint (alloc/pprof_http.h).
//
// One thread polls the listening socket and a wake-up pipe; each accepted
// connection is served to completion before the next: read the request
// head (bounded by kMaxRequestBytes), answer, close. Stop writes to the
// pipe and joins the thread.
#include "alloc/pprof_http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

#include "alloc/heap_profiler.h"
#include "concurrency/base/raw_log.h"
#include "concurrency/base/spin_lock.h"

namespace strata {
namespace {

// A request head larger than this is refused: real clients (Go's pprof,
// curl) send a few hundred bytes.
constexpr std::size_t kMaxRequestBytes = 8192;
constexpr int kListenBacklog = 8;
constexpr char kHeapPath[] = "/debug/pprof/heap";
constexpr char kPeakPath[] = "/debug/pprof/peak";

constinit SpinLock g_server_lock;
constinit bool g_running STRATA_GUARDED_BY(g_server_lock) = false;
constinit pthread_t g_thread STRATA_GUARDED_BY(g_server_lock) = {};
constinit int g_listen_fd STRATA_GUARDED_BY(g_server_lock) = -1;
constinit int g_wake_pipe[2] STRATA_GUARDED_BY(g_server_lock) = {-1, -1};
constinit std::atomic<int> g_port{0};

struct ServerArgs {
  int listen_fd;
  int wake_fd;
};
constinit ServerArgs g_args = {-1, -1};

// Writes everything or fails (EINTR retried; a timeout or a closed peer
// ends the attempt). MSG_NOSIGNAL: a closed peer gives EPIPE, no SIGPIPE.
bool SendAll(int fd, const char* data, std::size_t n) {
  while (n > 0) {
    ssize_t w = send(fd, data, n, MSG_NOSIGNAL);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return false;
    data += w;
    n -= static_cast<std::size_t>(w);
  }
  return true;
}

void SendStatus(int fd, const char* status, const char* body) {
  raw::Buffer b;
  b.Str("HTTP/1.0 ").Str(status).Str("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  b.Udec(strlen(body)).Str("\r\nConnection: close\r\n\r\n").Str(body);
  SendAll(fd, b.data(), b.size());
}

// Reads until the end of the request head ("\r\n\r\n" or "\n\n"), EOF, a
// timeout or a full buffer. Returns the bytes read (NUL-terminated).
std::size_t ReadRequestHead(int fd, char* buf, std::size_t capacity) {
  std::size_t used = 0;
  while (used < capacity - 1) {
    ssize_t r = recv(fd, buf + used, capacity - 1 - used, 0);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) break;
    used += static_cast<std::size_t>(r);
    buf[used] = '\0';
    if (strstr(buf, "\r\n\r\n") != nullptr || strstr(buf, "\n\n") != nullptr) break;
  }
  buf[used] = '\0';
  return used;
}

void ServeConnection(int fd) {
  timeval tv;
  tv.tv_sec = kPprofIoTimeoutMs / 1000;
  tv.tv_usec = (kPprofIoTimeoutMs % 1000) * 1000;
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  char request[kMaxRequestBytes];
  std::size_t n = ReadRequestHead(fd, request, sizeof(request));
  // Request line: METHOD SP TARGET SP VERSION.
  const char* sp1 = n > 0 ? static_cast<const char*>(memchr(request, ' ', n)) : nullptr;
  const char* target = sp1 != nullptr ? sp1 + 1 : nullptr;
  std::size_t target_len = target != nullptr ? strcspn(target, " \r\n") : 0;
  if (sp1 == nullptr || target_len == 0) {
    SendStatus(fd, "400 Bad Request", "bad request\n");
    return;
  }
  std::size_t path_len = strcspn(target, "? \r\n");  // the query string is ignored
  const bool is_get = sp1 - request == 3 && memcmp(request, "GET", 3) == 0;
  const bool is_heap = path_len == sizeof(kHeapPath) - 1 && memcmp(target, kHeapPath, path_len) == 0;
  const bool is_peak = path_len == sizeof(kPeakPath) - 1 && memcmp(target, kPeakPath, path_len) == 0;
  if (!is_get || !(is_heap || is_peak)) {
    SendStatus(fd, "404 Not Found",
               "404 page not found: strata serves GET /debug/pprof/heap and /debug/pprof/peak\n");
    return;
  }
  static constexpr char kHeader[] =
      "HTTP/1.0 200 OK\r\n"
      "Content-Type: application/octet-stream\r\n"
      "Content-Disposition: attachment; filename=\"heap.pb.gz\"\r\n"
      "X-Content-Type-Options: nosniff\r\n"
      "Connection: close\r\n"
      "\r\n";
  if (!SendAll(fd, kHeader, sizeof(kHeader) - 1)) return;
  // The body ends with the connection (HTTP/1.0): no length needed.
  int rc = is_peak ? WritePeakHeapProfileToFd(fd) : WriteHeapProfileToFd(fd);
  if (rc != 0) {
    raw::Buffer b;
    b.Str("strata: pprof: writing the ").Str(is_peak ? "peak " : "").Str("heap profile failed: error ").Dec(rc);
    b.Char('\n');
    b.WriteTo(2);
  }
}

void* ServerMain(void* arg) {
  pthread_setname_np(pthread_self(), "strata-pprof");
  const ServerArgs args = *static_cast<ServerArgs*>(arg);
  for (;;) {
    pollfd fds[2];
    fds[0] = pollfd{args.listen_fd, POLLIN, 0};
    fds[1] = pollfd{args.wake_fd, POLLIN, 0};
    int r = poll(fds, 2, -1);
    if (r < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (fds[1].revents != 0) break;  // StopPprofServer
    if ((fds[0].revents & POLLIN) == 0) {
      if (fds[0].revents != 0) break;  // the socket failed
      continue;
    }
    int fd = accept4(args.listen_fd, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) {
      // Out of descriptors or memory: back off instead of spinning on a
      // listening socket that stays readable. Otherwise poll again.
      if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) poll(nullptr, 0, 100);
      continue;
    }
    ServeConnection(fd);
    shutdown(fd, SHUT_WR);
    close(fd);
  }
  return nullptr;
}

void CloseIfOpen(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// A fork child has no server thread: it forgets the server and closes its
// copies of the descriptors (the parent keeps serving).
void ForkChild() {
  g_server_lock.ResetAfterFork();
  SpinLockHolder h(&g_server_lock);
  if (!g_running) return;
  CloseIfOpen(&g_listen_fd);
  CloseIfOpen(&g_wake_pipe[0]);
  CloseIfOpen(&g_wake_pipe[1]);
  g_running = false;
  g_port.store(0, std::memory_order_relaxed);
}
constinit std::atomic<bool> g_atfork_registered{false};

}  // namespace

bool StartPprofServer(int port, int* bound_port) noexcept {
  if (port < 0 || port > 65535) return false;
  SpinLockHolder h(&g_server_lock);
  if (g_running) return false;
  if (!g_atfork_registered.exchange(true, std::memory_order_relaxed)) {
    pthread_atfork(nullptr, nullptr, &ForkChild);
  }
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return false;
  int one = 1;
  setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only
  socklen_t len = sizeof(addr);
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 || listen(fd, kListenBacklog) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    close(fd);
    return false;
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC) != 0) {
    close(fd);
    return false;
  }
  g_args = ServerArgs{fd, wake[0]};
  // Every signal blocked in the server thread: handlers stay on the
  // program's threads.
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  pthread_t thread;
  int rc = pthread_create(&thread, nullptr, &ServerMain, &g_args);
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
  if (rc != 0) {
    close(fd);
    close(wake[0]);
    close(wake[1]);
    return false;
  }
  g_thread = thread;
  g_listen_fd = fd;
  g_wake_pipe[0] = wake[0];
  g_wake_pipe[1] = wake[1];
  g_running = true;
  int bound = ntohs(addr.sin_port);
  g_port.store(bound, std::memory_order_relaxed);
  if (bound_port != nullptr) *bound_port = bound;
  return true;
}

void StopPprofServer() noexcept {
  SpinLockHolder h(&g_server_lock);
  if (!g_running) return;
  char byte = 1;
  while (write(g_wake_pipe[1], &byte, 1) < 0 && errno == EINTR) {
  }
  pthread_join(g_thread, nullptr);
  CloseIfOpen(&g_listen_fd);
  CloseIfOpen(&g_wake_pipe[0]);
  CloseIfOpen(&g_wake_pipe[1]);
  g_running = false;
  g_port.store(0, std::memory_order_relaxed);
}

int PprofServerPort() noexcept { return g_port.load(std::memory_order_relaxed); }

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
    b.Str("strata: pprof: cannot serve on 127.0.0.1:").Dec(port).Char('\n');
    b.WriteTo(2);
    return;
  }
  raw::Buffer b;
  b.Str("strata: pprof: serving http://127.0.0.1:").Dec(bound).Str("/debug/pprof/heap\n");
  b.WriteTo(2);
}

}  // namespace strata
