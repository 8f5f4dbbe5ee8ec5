// tests/observe/server_test.cc: the endpoint's HTTP server
// (alloc/http/server.h) with test routes: responses and their fields, HEAD,
// errors, and the bounds that keep one slow client from stalling others:
// a client that never sends its head, one that never reads a large
// response, more connections than slots, an oversized head, a deadline.
// Loopback only; every wait is bounded.
#include "alloc/http/server.h"

#include <errno.h>
#include <poll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest.h"
#include "tests/observe/http_client.h"

namespace strata::http {
namespace {

using observe_test::Connect;
using observe_test::Fetch;
using observe_test::Get;
using observe_test::ReadResponse;
using observe_test::Response;

constexpr std::size_t kBigBytes = std::size_t{48} << 20;  // far beyond any socket buffer

int WriteAll(int fd, const char* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0 && errno == EINTR) continue;
    if (w <= 0) return errno != 0 ? errno : EIO;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

int WriteHello(int fd) noexcept { return WriteAll(fd, "hello\n", 6); }
int WriteFailure(int) noexcept { return EIO; }
int WriteBig(int fd) noexcept {
  static char chunk[1 << 16];
  memset(chunk, 'x', sizeof(chunk));
  for (std::size_t done = 0; done < kBigBytes; done += sizeof(chunk)) {
    if (int rc = WriteAll(fd, chunk, sizeof(chunk)); rc != 0) return rc;
  }
  return 0;
}

const Route kTestRoutes[] = {
    {"/hello", "text/plain; charset=utf-8", &WriteHello},
    {"/big", "application/octet-stream", &WriteBig, "big.bin"},
    {"/fail", "text/plain", &WriteFailure},
};

class ServerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_TRUE(server_.Start(kTestRoutes, 3, 0, "strata-test-http", &port_));
    ASSERT_GT(port_, 0);
    EXPECT_EQ(server_.port(), port_);
  }
  void TearDown() override {
    server_.Stop();
    EXPECT_EQ(server_.port(), 0);
  }
  // A Server holds only descriptors and counters: a test may own one.
  Server server_;
  int port_ = 0;
};

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

TEST_F(ServerTest, ServesRoutesWithLengthAndCloses) {
  EXPECT_FALSE(server_.Start(kTestRoutes, 3, 0, "again")) << "one thread per server";
  Response r = Get(port_, "/hello?x=1");
  ASSERT_TRUE(r.ok);
  EXPECT_EQ(r.status_line, "HTTP/1.0 200 OK");
  EXPECT_NE(r.headers.find("Content-Type: text/plain; charset=utf-8"), std::string::npos) << r.headers;
  EXPECT_NE(r.headers.find("Content-Length: 6"), std::string::npos) << r.headers;
  EXPECT_NE(r.headers.find("Connection: close"), std::string::npos) << r.headers;
  EXPECT_EQ(r.body, "hello\n");

  Response head = Fetch(port_, "HEAD /hello HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(head.ok);
  EXPECT_EQ(head.status_line, "HTTP/1.0 200 OK");
  EXPECT_NE(head.headers.find("Content-Length: 6"), std::string::npos);
  EXPECT_EQ(head.body, "") << "HEAD has no body";

  Response big = Get(port_, "/big");
  ASSERT_TRUE(big.ok);
  EXPECT_EQ(big.body.size(), kBigBytes);
  EXPECT_NE(big.headers.find("Content-Disposition: attachment; filename=\"big.bin\""), std::string::npos);
}

TEST_F(ServerTest, ErrorsHaveStatusesAndNameTheRoutes) {
  Response missing = Get(port_, "/nope");
  EXPECT_EQ(missing.status_line, "HTTP/1.0 404 Not Found");
  EXPECT_NE(missing.body.find("/hello"), std::string::npos) << missing.body;
  EXPECT_NE(missing.body.find("/big"), std::string::npos) << missing.body;
  EXPECT_EQ(Fetch(port_, "DELETE /hello HTTP/1.1\r\n\r\n").status_line, "HTTP/1.0 405 Method Not Allowed");
  EXPECT_EQ(Fetch(port_, "GET /hello HTTP/2.0\r\n\r\n").status_line, "HTTP/1.0 505 HTTP Version Not Supported");
  EXPECT_EQ(Fetch(port_, "GET hello HTTP/1.1\r\n\r\n").status_line, "HTTP/1.0 400 Bad Request");
  EXPECT_EQ(Get(port_, "/fail").status_line, "HTTP/1.0 500 Internal Server Error");
  std::string huge = "GET /hello HTTP/1.1\r\nX: " + std::string(kMaxRequestHeadBytes, 'a') + "\r\n\r\n";
  EXPECT_EQ(Fetch(port_, huge).status_line, "HTTP/1.0 431 Request Header Fields Too Large");
  EXPECT_EQ(server_.counters().bad_requests, 3u);
  EXPECT_EQ(Get(port_, "/hello").body, "hello\n") << "still serving";
}

TEST_F(ServerTest, SilentAndNonReadingClientsStallNobody) {
  // One client connects and sends half a head, never the rest.
  int silent = Connect(port_);
  ASSERT_GE(silent, 0);
  ASSERT_EQ(send(silent, "GET /hel", 8, MSG_NOSIGNAL), 8);
  // Another asks for 48 MiB and never reads: the server's send blocks for
  // it alone.
  int stuck = Connect(port_);
  ASSERT_GE(stuck, 0);
  const char kBig[] = "GET /big HTTP/1.1\r\n\r\n";
  ASSERT_EQ(send(stuck, kBig, sizeof(kBig) - 1, MSG_NOSIGNAL), static_cast<ssize_t>(sizeof(kBig) - 1));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  // Everyone else is served at once, many times over.
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < 50; ++i) ASSERT_EQ(Get(port_, "/hello").body, "hello\n") << i;
  EXPECT_LT(SecondsSince(t0), 2.0) << "50 small requests beside two stalled clients";
  // The stalled reader still gets its whole response once it reads.
  Response big = ReadResponse(stuck);
  EXPECT_TRUE(big.ok);
  EXPECT_EQ(big.body.size(), kBigBytes);
  close(stuck);
  close(silent);
}

TEST_F(ServerTest, ConnectionsBeyondTheSlotsGet503) {
  std::vector<int> held;
  for (int i = 0; i < kMaxConnections; ++i) {
    int fd = Connect(port_);
    ASSERT_GE(fd, 0);
    held.push_back(fd);
  }
  // Let the server accept them all into slots.
  for (int i = 0; i < 100 && server_.counters().accepted < static_cast<std::uint64_t>(kMaxConnections); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  Response busy = Get(port_, "/hello");
  EXPECT_EQ(busy.status_line, "HTTP/1.0 503 Service Unavailable");
  EXPECT_NE(busy.headers.find("Retry-After: 1"), std::string::npos);
  EXPECT_EQ(server_.counters().refused_busy, 1u);
  for (int fd : held) close(fd);
  // Slots free again once the server sees the closes.
  Response ok;
  for (int i = 0; i < 100; ++i) {
    ok = Get(port_, "/hello");
    if (ok.body == "hello\n") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(ok.body, "hello\n");
}

TEST_F(ServerTest, AHeadThatNeverEndsIsDroppedAtItsDeadline) {
  int fd = Connect(port_, kRequestTimeoutMs / 1000 + 10);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(send(fd, "GET / HTTP/1.1\r\n", 16, MSG_NOSIGNAL), 16);
  const auto t0 = std::chrono::steady_clock::now();
  char c;
  const ssize_t n = recv(fd, &c, 1, 0);  // EOF when the server drops it
  const double waited = SecondsSince(t0);
  EXPECT_EQ(n, 0);
  EXPECT_GE(waited, kRequestTimeoutMs / 1000.0 - 0.5);
  EXPECT_LT(waited, kRequestTimeoutMs / 1000.0 + 5);
  EXPECT_EQ(server_.counters().timed_out, 1u);
  close(fd);
}

// Many clients at once: every answer is complete, either the page or a 503
// when all slots are taken at that moment; most are served.
TEST_F(ServerTest, ManyConcurrentClientsGetWholeAnswers) {
  constexpr int kThreads = 8;
  constexpr int kRequests = 40;
  std::atomic<int> served{0};
  std::atomic<int> busy{0};
  std::atomic<int> broken{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kRequests; ++i) {
        Response r = Get(port_, "/hello");
        if (r.ok && r.status_line == "HTTP/1.0 200 OK" && r.body == "hello\n") {
          served.fetch_add(1);
        } else if (r.ok && r.status_line == "HTTP/1.0 503 Service Unavailable") {
          busy.fetch_add(1);
        } else {
          broken.fetch_add(1);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(broken.load(), 0);
  EXPECT_EQ(served.load() + busy.load(), kThreads * kRequests);
  EXPECT_GT(served.load(), kThreads * kRequests / 2);
  const ServerCounters c = server_.counters();
  EXPECT_EQ(c.accepted, static_cast<std::uint64_t>(kThreads * kRequests));
  EXPECT_EQ(c.refused_busy, static_cast<std::uint64_t>(busy.load()));
}

}  // namespace
}  // namespace strata::http
