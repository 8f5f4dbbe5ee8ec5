// tests/observe/http_client.h: a raw-socket HTTP client for the endpoint's
// tests: loopback only, every connect, send and read bounded by a timeout.
#ifndef STRATA_TESTS_OBSERVE_HTTP_CLIENT_H_
#define STRATA_TESTS_OBSERVE_HTTP_CLIENT_H_

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace strata::observe_test {

struct Response {
  bool ok = false;  // connected and read to EOF
  std::string status_line;
  std::string headers;
  std::string body;
};

// A connected socket to 127.0.0.1:port with `timeout_s` on reads and
// writes, or -1.
inline int Connect(int port, int timeout_s = 10) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  timeval tv{timeout_s, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<std::uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

// Reads until EOF (at most 64 MiB) and splits the response.
inline Response ReadResponse(int fd) {
  Response r;
  std::string data;
  char buf[65536];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof(buf), 0);
    if (n == 0) {
      r.ok = true;
      break;
    }
    if (n < 0 || data.size() > (std::size_t{64} << 20)) break;
    data.append(buf, static_cast<std::size_t>(n));
  }
  std::size_t head_end = data.find("\r\n\r\n");
  if (head_end == std::string::npos) {
    r.ok = false;
    r.body = data;
    return r;
  }
  std::size_t line_end = data.find("\r\n");
  r.status_line = data.substr(0, line_end);
  r.headers = data.substr(line_end + 2, head_end - line_end - 2);
  r.body = data.substr(head_end + 4);
  return r;
}

// Sends `request` whole and reads the response.
inline Response Fetch(int port, const std::string& request) {
  int fd = Connect(port);
  if (fd < 0) return Response{};
  if (send(fd, request.data(), request.size(), MSG_NOSIGNAL) != static_cast<ssize_t>(request.size())) {
    close(fd);
    return Response{};
  }
  Response r = ReadResponse(fd);
  close(fd);
  return r;
}

inline Response Get(int port, const std::string& path) {
  return Fetch(port, "GET " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\nUser-Agent: strata-test\r\n\r\n");
}

}  // namespace strata::observe_test

#endif  // STRATA_TESTS_OBSERVE_HTTP_CLIENT_H_
