// The HTTP/1.x request-head parser (alloc/http/request.h): one pass over
// complete lines; an unfinished line means "read more".
#include "alloc/http/request.h"

#include <cstring>

namespace strata::http {
namespace {

// RFC 9110 tchar.
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return c != 0 && std::strchr("!#$%&'*+-.^_`|~", c) != nullptr;
}

// Visible ASCII: what a request target may hold.
bool IsTargetChar(unsigned char c) { return c > 0x20 && c < 0x7f; }

// Field values: tab, space, visible ASCII and obs-text (0x80..0xff).
bool IsValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

bool Equal(const char* a, const char* lit, std::size_t n) { return std::memcmp(a, lit, n) == 0; }

struct Line {
  const char* begin;
  std::size_t len;   // without CR LF
  std::size_t next;  // offset after the LF
};

// The line starting at `pos`; false when no LF follows yet. A CR is only
// allowed right before the LF (checked by the callers' character classes,
// which all refuse CR).
bool NextLine(const char* data, std::size_t n, std::size_t pos, Line* line) {
  if (pos >= n) return false;  // (also keeps a null `data` of size 0 away from memchr)
  const void* lf = std::memchr(data + pos, '\n', n - pos);
  if (lf == nullptr) return false;
  std::size_t end = static_cast<std::size_t>(static_cast<const char*>(lf) - data);
  line->begin = data + pos;
  line->len = end - pos;
  if (line->len > 0 && line->begin[line->len - 1] == '\r') --line->len;
  line->next = end + 1;
  return true;
}

ParseStatus ParseRequestLine(const Line& line, Request* out) {
  const auto* s = reinterpret_cast<const unsigned char*>(line.begin);
  std::size_t i = 0;
  while (i < line.len && IsTokenChar(s[i])) ++i;
  if (i == 0 || i >= line.len || s[i] != ' ') return ParseStatus::kBadRequest;
  const std::size_t method_len = i;
  if (method_len == 3 && Equal(line.begin, "GET", 3)) {
    out->method = Method::kGet;
  } else if (method_len == 4 && Equal(line.begin, "HEAD", 4)) {
    out->method = Method::kHead;
  } else {
    out->method = Method::kOther;
  }
  const std::size_t target = ++i;
  while (i < line.len && IsTargetChar(s[i])) ++i;
  if (i == target || i >= line.len || s[i] != ' ' || s[target] != '/') return ParseStatus::kBadRequest;
  const std::size_t target_end = i++;
  // HTTP-version = "HTTP/" DIGIT "." DIGIT, and nothing after it.
  const std::size_t rest = line.len - i;
  if (rest < 5 || !Equal(line.begin + i, "HTTP/", 5)) return ParseStatus::kBadRequest;
  if (rest != 8 || s[i + 6] != '.' || s[i + 5] < '0' || s[i + 5] > '9' || s[i + 7] < '0' || s[i + 7] > '9') {
    // Something after "HTTP/": a version this server does not speak, or junk.
    for (std::size_t k = i + 5; k < line.len; ++k) {
      if (!IsTargetChar(s[k])) return ParseStatus::kBadRequest;
    }
    return ParseStatus::kBadVersion;
  }
  if (s[i + 5] != '1') return ParseStatus::kBadVersion;
  out->minor_version = s[i + 7] - '0';
  out->path = line.begin + target;
  out->path_len = target_end - target;
  const void* q = std::memchr(out->path, '?', out->path_len);
  if (q != nullptr) {
    const char* query = static_cast<const char*>(q) + 1;
    out->query = query;
    out->query_len = static_cast<std::size_t>(out->path + out->path_len - query);
    out->path_len = static_cast<std::size_t>(query - 1 - out->path);
  }
  return ParseStatus::kComplete;
}

bool ValidField(const Line& line) {
  const auto* s = reinterpret_cast<const unsigned char*>(line.begin);
  std::size_t i = 0;
  while (i < line.len && IsTokenChar(s[i])) ++i;
  // No space before the colon (RFC 9112 5.1: reject), a non-empty name.
  if (i == 0 || i >= line.len || s[i] != ':') return false;
  for (++i; i < line.len; ++i) {
    if (!IsValueChar(s[i])) return false;
  }
  return true;
}

}  // namespace

ParseStatus ParseRequestHead(const char* data, std::size_t n, std::size_t capacity, Request* out) noexcept {
  *out = Request{};
  const ParseStatus unfinished = n >= capacity ? ParseStatus::kTooLarge : ParseStatus::kIncomplete;
  std::size_t pos = 0;
  // A server should ignore at least one empty line before the request line
  // (RFC 9112 2.2); a few are tolerated, more are junk.
  for (int skipped = 0; pos < n && (data[pos] == '\r' || data[pos] == '\n'); ++pos) {
    if (data[pos] == '\n' && ++skipped > 2) return ParseStatus::kBadRequest;
  }
  Line line;
  if (!NextLine(data, n, pos, &line)) return unfinished;
  Request request;
  ParseStatus status = ParseRequestLine(line, &request);
  if (status != ParseStatus::kComplete) return status;
  pos = line.next;
  for (;;) {
    if (!NextLine(data, n, pos, &line)) return unfinished;
    pos = line.next;
    if (line.len == 0) break;
    // Obsolete line folding (a field line starting with white space) and
    // malformed fields are refused.
    if (!ValidField(line)) return ParseStatus::kBadRequest;
    if (++request.header_fields > kMaxHeaderFields) return ParseStatus::kBadRequest;
  }
  request.head_bytes = pos;
  *out = request;
  return ParseStatus::kComplete;
}

const char* StatusLineFor(ParseStatus status) noexcept {
  switch (status) {
    case ParseStatus::kBadRequest:
      return "400 Bad Request";
    case ParseStatus::kTooLarge:
      return "431 Request Header Fields Too Large";
    case ParseStatus::kBadVersion:
      return "505 HTTP Version Not Supported";
    case ParseStatus::kIncomplete:
    case ParseStatus::kComplete:
      break;
  }
  return nullptr;
}

}  // namespace strata::http
