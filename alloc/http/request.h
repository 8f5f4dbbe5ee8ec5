// alloc/http/request.h: the parser of an HTTP/1.x request head, for the
// observability endpoint (alloc/http/server.h).
//
// Contract:
//   - ParseRequestHead() looks at the bytes received so far and says
//     whether the head (request line and header fields, up to the empty
//     line) is complete, malformed, or too large; it never reads past `n`,
//     never allocates and keeps no state between calls, so the server calls
//     it again after each read.
//   - Accepted: `METHOD SP origin-form SP HTTP/1.<digit>` where METHOD is a
//     token, the target starts with '/' and holds only visible ASCII, then
//     header fields `name ":" value` (name a token; value without control
//     characters other than tab), each line ending in CRLF or a bare LF
//     (RFC 9112 lets a server accept LF). Obsolete line folding, NUL, a
//     target with spaces, absolute-form targets, versions other than
//     HTTP/1.x and more than kMaxHeaderFields fields are refused.
//   - A request body is neither expected nor read (the endpoint serves GET
//     and HEAD only; the connection closes after one response).
//
// Thread-safety: pure function; safe from any thread.
#ifndef STRATA_ALLOC_HTTP_REQUEST_H_
#define STRATA_ALLOC_HTTP_REQUEST_H_

#include <cstddef>

namespace strata::http {

// Real clients (Prometheus, curl, Chromium, Go's pprof) send well under
// 2 KiB; Chromium's heads with cookies for 127.0.0.1 stay below 8 KiB.
inline constexpr std::size_t kMaxRequestHeadBytes = 8192;
inline constexpr int kMaxHeaderFields = 64;

enum class Method { kGet, kHead, kOther };

enum class ParseStatus {
  kIncomplete,   // no end of head yet: read more (if there is room)
  kComplete,     // *out is filled
  kBadRequest,   // malformed: answer 400
  kTooLarge,     // head longer than the capacity: answer 431
  kBadVersion,   // not HTTP/1.x: answer 505
};

struct Request {
  Method method = Method::kOther;
  const char* path = nullptr;   // points into the parsed bytes, not NUL-terminated
  std::size_t path_len = 0;
  const char* query = nullptr;  // after '?', or nullptr
  std::size_t query_len = 0;
  int minor_version = 0;        // HTTP/1.<minor_version>
  int header_fields = 0;
  std::size_t head_bytes = 0;   // length of the head including the empty line
};

// Parses `data[0, n)`. `capacity` is the most the caller can buffer: an
// incomplete head that already fills it is kTooLarge.
ParseStatus ParseRequestHead(const char* data, std::size_t n, std::size_t capacity, Request* out) noexcept;

// "400 Bad Request" etc. for a failed status (nullptr for the others).
const char* StatusLineFor(ParseStatus status) noexcept;

}  // namespace strata::http

#endif  // STRATA_ALLOC_HTTP_REQUEST_H_
