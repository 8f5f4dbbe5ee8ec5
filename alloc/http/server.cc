// The observability endpoint's HTTP server (alloc/http/server.h).
//
// One thread, one poll(2) loop. Each connection moves through
//   kReading  -> (head complete) -> route, body into a memfd -> kWriting
//   kWriting  -> head bytes, then sendfile() of the body -> closed
// and is closed early at its deadline or on any error. The connection
// table lives on the thread's stack.
#include "alloc/http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <atomic>

#include "concurrency/base/raw_log.h"
#include "concurrency/base/signals_blocked.h"

namespace strata::http {

namespace {

constexpr int kListenBacklog = 64;
constexpr std::uint64_t kNanosPerMilli = 1'000'000;
// Status line, fields and a short error body: what a raw::Buffer holds.
constexpr std::size_t kResponseHeadBytes = 1024;
// Connections taken from the listening socket per poll round.
constexpr int kAcceptsPerRound = 32;

constinit std::atomic<void (*)()> g_start_observer{nullptr};

std::uint64_t NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1'000'000'000u + static_cast<std::uint64_t>(ts.tv_nsec);
}

void CloseIfOpen(int* fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

// Closes a connection after its response: first reads (without waiting,
// at most 32 KiB) what the client sent beyond the head, because closing a
// socket with unread data makes the kernel send a reset, which can make
// the client drop the response it has not read yet.
void DrainAndClose(int fd) {
  char sink[512];
  for (int i = 0; i < 64 && recv(fd, sink, sizeof(sink), MSG_DONTWAIT) > 0; ++i) {
  }
  close(fd);
}

}  // namespace

struct Server::Connection {
  enum class State { kFree, kReading, kWriting };
  State state = State::kFree;
  int fd = -1;
  std::uint64_t opened_ns = 0;
  std::uint64_t deadline_ns = 0;
  std::size_t used = 0;  // request bytes received
  char request[kMaxRequestHeadBytes];
  char head[kResponseHeadBytes];
  std::size_t head_len = 0;
  std::size_t head_sent = 0;
  int body_fd = -1;  // memfd holding the body, or -1
  off_t body_sent = 0;
  off_t body_len = 0;

  void Reset() {
    CloseIfOpen(&body_fd);
    if (fd >= 0) DrainAndClose(fd);
    fd = -1;
    state = State::kFree;
    used = head_len = head_sent = 0;
    body_sent = body_len = 0;
  }
};

namespace {

using Connection = Server::Connection;

// A response without a body writer: status line, fields, short text body.
void SetHead(Connection* c, const raw::Buffer& b) {
  c->head_len = b.size() < sizeof(c->head) ? b.size() : sizeof(c->head);
  memcpy(c->head, b.data(), c->head_len);
}

void PrepareSimple(Connection* c, const char* status, const char* extra_fields, const char* body, bool head_only) {
  raw::Buffer h;
  h.Str("HTTP/1.0 ").Str(status).Str("\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ");
  h.Udec(strlen(body)).Str("\r\nConnection: close\r\n").Str(extra_fields).Str("\r\n");
  if (!head_only) h.Str(body);
  SetHead(c, h);
}

// 404 names every route, so a user who guessed wrong sees what exists.
void PrepareNotFound(Connection* c, const Route* routes, std::size_t count, bool head_only) {
  raw::Buffer b;
  b.Str("404 page not found; strata serves:\n");
  for (std::size_t i = 0; i < count; ++i) b.Str("  ").Str(routes[i].path).Str("\n");
  b.Char('\0');
  PrepareSimple(c, "404 Not Found", "", b.data(), head_only);
}

// Runs the route's writer into a memfd and prepares the head; prepares a
// 500 or 503 instead when that fails.
void PrepareRoute(Connection* c, const Route& route, bool head_only) {
  int body = memfd_create("strata-http", MFD_CLOEXEC);
  if (body < 0) {
    PrepareSimple(c, "503 Service Unavailable", "Retry-After: 1\r\n", "strata: no memory for the response\n",
                  head_only);
    return;
  }
  int rc = route.write(body);
  off_t len = lseek(body, 0, SEEK_END);
  if (rc != 0 || len < 0) {
    close(body);
    raw::Buffer b;
    b.Str("strata: http: writing ").Str(route.path).Str(" failed: error ").Dec(rc != 0 ? rc : errno).Char('\n');
    b.WriteTo(2);
    PrepareSimple(c, "500 Internal Server Error", "", "strata: writing the response failed (see stderr)\n",
                  head_only);
    return;
  }
  raw::Buffer h;
  h.Str("HTTP/1.0 200 OK\r\nContent-Type: ").Str(route.content_type);
  h.Str("\r\nContent-Length: ").Udec(static_cast<std::uint64_t>(len));
  h.Str("\r\nCache-Control: no-store\r\nX-Content-Type-Options: nosniff\r\nConnection: close\r\n");
  if (route.download_name != nullptr) {
    h.Str("Content-Disposition: attachment; filename=\"").Str(route.download_name).Str("\"\r\n");
  }
  h.Str("\r\n");
  SetHead(c, h);
  if (head_only) {
    close(body);
    return;
  }
  c->body_fd = body;
  c->body_len = len;
  c->body_sent = 0;
}

// Sends what the socket takes now. Returns true when the response is
// complete or the connection failed (either way: close it).
bool ContinueWriting(Connection* c, std::uint64_t now, bool* failed) {
  *failed = false;
  bool progressed = false;
  while (c->head_sent < c->head_len) {
    ssize_t w = send(c->fd, c->head + c->head_sent, c->head_len - c->head_sent, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (w <= 0) {
      *failed = true;
      return true;
    }
    c->head_sent += static_cast<std::size_t>(w);
    progressed = true;
  }
  while (c->head_sent == c->head_len && c->body_fd >= 0 && c->body_sent < c->body_len) {
    ssize_t w = sendfile(c->fd, c->body_fd, &c->body_sent, static_cast<std::size_t>(c->body_len - c->body_sent));
    if (w < 0 && errno == EINTR) continue;
    if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) break;
    if (w <= 0) {
      *failed = true;
      return true;
    }
    progressed = true;
  }
  if (c->head_sent == c->head_len && (c->body_fd < 0 || c->body_sent >= c->body_len)) return true;
  if (progressed) {
    std::uint64_t idle = now + kWriteIdleTimeoutMs * kNanosPerMilli;
    std::uint64_t cap = c->opened_ns + kMaxConnectionMs * kNanosPerMilli;
    c->deadline_ns = idle < cap ? idle : cap;
  }
  return false;
}

}  // namespace

bool Server::Start(const Route* routes, std::size_t count, int port, const char* thread_name,
                   int* bound_port) noexcept {
  if (port < 0 || port > 65535 || routes == nullptr) return false;
  // Also makes the server thread start with every signal blocked: handlers
  // stay on the program's threads, and a peer that closes early gives
  // EPIPE, never SIGPIPE.
  SignalsBlocked blocked;
  SpinLockHolder h(&lock_);
  if (running_) return false;
  sockaddr_in addr{};
  {
    SpinLockHolder fds(&fds_lock_);
    if (!OpenSocketsLocked(port, &addr)) {
      CloseSocketsLocked();
      return false;
    }
  }
  routes_ = routes;
  route_count_ = count;
  accepted_.store(0, std::memory_order_relaxed);
  responses_.store(0, std::memory_order_relaxed);
  refused_busy_.store(0, std::memory_order_relaxed);
  timed_out_.store(0, std::memory_order_relaxed);
  bad_requests_.store(0, std::memory_order_relaxed);
  if (void (*observer)() = g_start_observer.load(std::memory_order_acquire); observer != nullptr) observer();
  pthread_t thread;
  int rc = pthread_create(&thread, nullptr, &Server::ThreadMain, this);
  if (rc != 0) {
    SpinLockHolder fds(&fds_lock_);
    CloseSocketsLocked();
    return false;
  }
  if (thread_name != nullptr) pthread_setname_np(thread, thread_name);
  thread_ = thread;
  running_ = true;
  int bound = ntohs(addr.sin_port);
  port_.store(bound, std::memory_order_relaxed);
  if (bound_port != nullptr) *bound_port = bound;
  return true;
}

bool Server::OpenSocketsLocked(int port, sockaddr_in* addr) {
  listen_fd_ = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (listen_fd_ < 0) return false;
  int one = 1;
  setsockopt(listen_fd_, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  addr->sin_family = AF_INET;
  addr->sin_port = htons(static_cast<std::uint16_t>(port));
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);  // 127.0.0.1 only
  socklen_t len = sizeof(*addr);
  if (bind(listen_fd_, reinterpret_cast<sockaddr*>(addr), sizeof(*addr)) != 0 ||
      listen(listen_fd_, kListenBacklog) != 0 ||
      getsockname(listen_fd_, reinterpret_cast<sockaddr*>(addr), &len) != 0) {
    return false;
  }
  int wake[2];
  if (pipe2(wake, O_CLOEXEC | O_NONBLOCK) != 0) return false;
  wake_read_fd_ = wake[0];
  wake_write_fd_ = wake[1];
  return true;
}

void Server::CloseSocketsLocked() {
  CloseIfOpen(&listen_fd_);
  CloseIfOpen(&wake_read_fd_);
  CloseIfOpen(&wake_write_fd_);
}

void Server::Stop() noexcept {
  SignalsBlocked blocked;
  SpinLockHolder h(&lock_);
  if (!running_) return;
  char byte = 1;
  while (write(wake_write_fd_, &byte, 1) < 0 && errno == EINTR) {
  }
  pthread_join(thread_, nullptr);
  {
    SpinLockHolder fds(&fds_lock_);
    CloseSocketsLocked();
  }
  running_ = false;
  port_.store(0, std::memory_order_relaxed);
}

void Server::PrepareFork() noexcept { fds_lock_.Lock(); }

void Server::ParentAfterFork() noexcept { fds_lock_.Unlock(); }

void Server::ChildAfterFork() noexcept {
  // The only thread here is the forking one, which took fds_lock_ in the
  // prepare: no Start or Stop was inside its socket section. The server's
  // thread, and any thread inside Start or Stop, do not exist here.
  CloseSocketsLocked();
  fds_lock_.Unlock();
  lock_.ResetAfterFork();
  SpinLockHolder h(&lock_);
  running_ = false;
  port_.store(0, std::memory_order_relaxed);
}

void SetStartObserverForTesting(void (*fn)()) { g_start_observer.store(fn, std::memory_order_release); }

ServerCounters Server::counters() const noexcept {
  return ServerCounters{accepted_.load(std::memory_order_relaxed), responses_.load(std::memory_order_relaxed),
                        refused_busy_.load(std::memory_order_relaxed), timed_out_.load(std::memory_order_relaxed),
                        bad_requests_.load(std::memory_order_relaxed)};
}

void* Server::ThreadMain(void* self) {
  static_cast<Server*>(self)->Serve();
  return nullptr;
}

void Server::Serve() {
  Connection conns[kMaxConnections];
  pollfd fds[kMaxConnections + 2];
  int slot_of[kMaxConnections + 2];
  auto finish = [this](Connection* c) {
    responses_.fetch_add(1, std::memory_order_relaxed);
    shutdown(c->fd, SHUT_WR);
    c->Reset();
  };
  // Head complete or refused: decide the response and start sending it.
  auto respond = [&](Connection* c, std::uint64_t now) {
    Request request;
    ParseStatus status = ParseRequestHead(c->request, c->used, sizeof(c->request), &request);
    if (status == ParseStatus::kIncomplete) return;
    if (status != ParseStatus::kComplete) {
      bad_requests_.fetch_add(1, std::memory_order_relaxed);
      PrepareSimple(c, StatusLineFor(status), "", "strata: malformed or oversized request\n", false);
    } else {
      const bool head_only = request.method == Method::kHead;
      const Route* route = nullptr;
      for (std::size_t i = 0; i < route_count_; ++i) {
        if (strlen(routes_[i].path) == request.path_len &&
            memcmp(routes_[i].path, request.path, request.path_len) == 0) {
          route = &routes_[i];
        }
      }
      if (request.method == Method::kOther) {
        PrepareSimple(c, "405 Method Not Allowed", "Allow: GET, HEAD\r\n", "strata serves GET and HEAD only\n",
                      false);
      } else if (route == nullptr) {
        PrepareNotFound(c, routes_, route_count_, head_only);
      } else {
        PrepareRoute(c, *route, head_only);
      }
    }
    c->state = Connection::State::kWriting;
    c->deadline_ns = now + kWriteIdleTimeoutMs * kNanosPerMilli;
    std::uint64_t cap = c->opened_ns + kMaxConnectionMs * kNanosPerMilli;
    if (cap < c->deadline_ns) c->deadline_ns = cap;
    bool failed;
    if (ContinueWriting(c, NowNs(), &failed)) failed ? c->Reset() : finish(c);
  };

  for (;;) {
    int n = 0;
    fds[n] = pollfd{wake_read_fd_, POLLIN, 0};
    slot_of[n++] = -1;
    fds[n] = pollfd{listen_fd_, POLLIN, 0};
    slot_of[n++] = -1;
    std::uint64_t now = NowNs();
    std::uint64_t next_deadline = UINT64_MAX;
    for (int i = 0; i < kMaxConnections; ++i) {
      Connection& c = conns[i];
      if (c.state == Connection::State::kFree) continue;
      fds[n] = pollfd{c.fd, static_cast<short>(c.state == Connection::State::kReading ? POLLIN : POLLOUT), 0};
      slot_of[n++] = i;
      if (c.deadline_ns < next_deadline) next_deadline = c.deadline_ns;
    }
    int timeout_ms = -1;
    if (next_deadline != UINT64_MAX) {
      timeout_ms = next_deadline <= now ? 0 : static_cast<int>((next_deadline - now + kNanosPerMilli - 1) / kNanosPerMilli);
    }
    int r = poll(fds, static_cast<nfds_t>(n), timeout_ms);
    if (r < 0 && errno != EINTR) break;
    if (r > 0 && fds[0].revents != 0) break;  // Stop()
    now = NowNs();
    for (int k = 2; r > 0 && k < n; ++k) {
      if (fds[k].revents == 0) continue;
      Connection& c = conns[slot_of[k]];
      if (c.state == Connection::State::kReading) {
        std::size_t room = sizeof(c.request) - c.used;
        ssize_t got = recv(c.fd, c.request + c.used, room, MSG_DONTWAIT);
        if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) continue;
        if (got <= 0) {  // closed before a whole head arrived, or failed
          c.Reset();
          continue;
        }
        const char* fresh = c.request + c.used;
        c.used += static_cast<std::size_t>(got);
        // Parse again only when a line ended or the buffer is full: a
        // client sending a byte at a time costs one parse per line.
        if (memchr(fresh, '\n', static_cast<std::size_t>(got)) != nullptr || c.used == sizeof(c.request)) {
          respond(&c, now);
        }
      } else {
        bool failed;
        if (ContinueWriting(&c, now, &failed)) failed ? c.Reset() : finish(&c);
      }
    }
    // Deadlines.
    for (Connection& c : conns) {
      if (c.state != Connection::State::kFree && c.deadline_ns <= now) {
        timed_out_.fetch_add(1, std::memory_order_relaxed);
        c.Reset();
      }
    }
    if (r > 0 && (fds[1].revents & POLLIN) != 0) {
      for (int a = 0; a < kAcceptsPerRound; ++a) {
        int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (fd < 0) {
          // Out of descriptors: back off instead of spinning on a
          // listening socket that stays readable.
          if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) poll(nullptr, 0, 100);
          break;
        }
        accepted_.fetch_add(1, std::memory_order_relaxed);
        Connection* slot = nullptr;
        for (Connection& c : conns) {
          if (c.state == Connection::State::kFree) {
            slot = &c;
            break;
          }
        }
        if (slot == nullptr) {
          static constexpr char kBusy[] =
              "HTTP/1.0 503 Service Unavailable\r\nContent-Type: text/plain; charset=utf-8\r\n"
              "Content-Length: 34\r\nRetry-After: 1\r\nConnection: close\r\n\r\n"
              "strata: too many open connections\n";
          send(fd, kBusy, sizeof(kBusy) - 1, MSG_NOSIGNAL | MSG_DONTWAIT);
          refused_busy_.fetch_add(1, std::memory_order_relaxed);
          shutdown(fd, SHUT_WR);
          DrainAndClose(fd);
          continue;
        }
        slot->fd = fd;
        slot->state = Connection::State::kReading;
        slot->opened_ns = now;
        slot->deadline_ns = now + kRequestTimeoutMs * kNanosPerMilli;
        slot->used = 0;
      }
    } else if (r > 0 && fds[1].revents != 0) {
      break;  // the listening socket failed
    }
  }
  for (Connection& c : conns) {
    if (c.state != Connection::State::kFree) c.Reset();
  }
}

}  // namespace strata::http
