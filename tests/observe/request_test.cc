// tests/observe/request_test.cc: the request-head parser
// (alloc/http/request.h) on real clients' heads and on malformed input.
#include "alloc/http/request.h"

#include <string>

#include "gtest/gtest.h"

namespace strata::http {
namespace {

ParseStatus Parse(const std::string& head, Request* r, std::size_t capacity = kMaxRequestHeadBytes) {
  return ParseRequestHead(head.data(), head.size(), capacity, r);
}

std::string Path(const Request& r) { return std::string(r.path, r.path_len); }

TEST(RequestParser, PrometheusScrape) {
  const std::string head =
      "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1:9090\r\nUser-Agent: Prometheus/2.42.0\r\n"
      "Accept: application/openmetrics-text;version=1.0.0,text/plain;version=0.0.4;q=0.5,*/*;q=0.1\r\n"
      "Accept-Encoding: gzip\r\nX-Prometheus-Scrape-Timeout-Seconds: 10\r\n\r\n";
  Request r;
  ASSERT_EQ(Parse(head, &r), ParseStatus::kComplete);
  EXPECT_EQ(r.method, Method::kGet);
  EXPECT_EQ(Path(r), "/metrics");
  EXPECT_EQ(r.query, nullptr);
  EXPECT_EQ(r.minor_version, 1);
  EXPECT_EQ(r.header_fields, 5);
  EXPECT_EQ(r.head_bytes, head.size());
}

TEST(RequestParser, QueryBareLfHeadAndTrailingBytes) {
  Request r;
  const std::string head = "HEAD /debug/pprof/heap?gc=1&debug=0 HTTP/1.0\nHost: x\n\nBODY";
  ASSERT_EQ(Parse(head, &r), ParseStatus::kComplete);
  EXPECT_EQ(r.method, Method::kHead);
  EXPECT_EQ(Path(r), "/debug/pprof/heap");
  ASSERT_NE(r.query, nullptr);
  EXPECT_EQ(std::string(r.query, r.query_len), "gc=1&debug=0");
  EXPECT_EQ(r.head_bytes, head.size() - 4);
  ASSERT_EQ(Parse("POST /x HTTP/1.1\r\n\r\n", &r), ParseStatus::kComplete);
  EXPECT_EQ(r.method, Method::kOther);
  const std::string leading = "\r\nGET / HTTP/1.1\r\n\r\n";
  ASSERT_EQ(Parse(leading, &r), ParseStatus::kComplete) << "one empty line first is allowed";
  EXPECT_EQ(Path(r), "/");
}

TEST(RequestParser, IncompleteUntilTheEmptyLine) {
  const std::string full = "GET /metrics HTTP/1.1\r\nHost: a\r\n\r\n";
  Request r;
  EXPECT_EQ(ParseRequestHead(nullptr, 0, kMaxRequestHeadBytes, &r), ParseStatus::kIncomplete) << "nothing yet";
  for (std::size_t n = 0; n < full.size(); ++n) {
    EXPECT_EQ(ParseRequestHead(full.data(), n, kMaxRequestHeadBytes, &r), ParseStatus::kIncomplete) << n;
  }
  EXPECT_EQ(ParseRequestHead(full.data(), full.size(), kMaxRequestHeadBytes, &r), ParseStatus::kComplete);
}

TEST(RequestParser, TooLargeWhenTheBufferFillsFirst) {
  std::string head = "GET /metrics HTTP/1.1\r\nX-Long: " + std::string(100, 'a');
  Request r;
  EXPECT_EQ(Parse(head, &r, head.size()), ParseStatus::kTooLarge);
  EXPECT_EQ(Parse(head, &r, head.size() + 1), ParseStatus::kIncomplete);
  EXPECT_STREQ(StatusLineFor(ParseStatus::kTooLarge), "431 Request Header Fields Too Large");
}

TEST(RequestParser, RefusesMalformedHeads) {
  const char* const bad[] = {
      "garbage\r\n\r\n",
      "GET\r\n\r\n",
      "GET  /x HTTP/1.1\r\n\r\n",          // empty target
      "GET x HTTP/1.1\r\n\r\n",            // not origin-form
      "GET http://h/x HTTP/1.1\r\n\r\n",   // absolute-form
      "GET /x y HTTP/1.1\r\n\r\n",         // space in the target
      "GET /x HTTP/1.1 \r\n\r\n",          // trailing space
      "GET /x FTP/1.1\r\n\r\n",
      "GET /x\x01 HTTP/1.1\r\n\r\n",
      "G(T /x HTTP/1.1\r\n\r\n",           // not a token
      "GET /x HTTP/1.1\r\nNoColon\r\n\r\n",
      "GET /x HTTP/1.1\r\nName : v\r\n\r\n",  // space before the colon
      "GET /x HTTP/1.1\r\nA: b\r\n folded\r\n\r\n",
      "GET /x HTTP/1.1\r\nA: b\rc\r\n\r\n",  // bare CR
      "\r\n\r\n\r\nGET /x HTTP/1.1\r\n\r\n",
  };
  for (const char* head : bad) {
    Request r;
    EXPECT_EQ(Parse(head, &r), ParseStatus::kBadRequest) << head;
  }
  Request r;
  static constexpr char kNul[] = "GET /x HTTP/1.1\r\nA: \0\r\n\r\n";
  EXPECT_EQ(Parse(std::string(kNul, sizeof(kNul) - 1), &r), ParseStatus::kBadRequest);
  EXPECT_EQ(Parse("GET /x HTTP/2.0\r\n\r\n", &r), ParseStatus::kBadVersion);
  EXPECT_EQ(Parse("GET /x HTTP/1.10\r\n\r\n", &r), ParseStatus::kBadVersion);
  std::string many = "GET /x HTTP/1.1\r\n";
  for (int i = 0; i <= kMaxHeaderFields; ++i) many += "A: b\r\n";
  EXPECT_EQ(Parse(many + "\r\n", &r), ParseStatus::kBadRequest);
}

}  // namespace
}  // namespace strata::http
