// tests/fuzz/http_request_fuzz.cc: the HTTP endpoint's request-head parser
// (alloc/http/request.h) on arbitrary bytes, whole and as every prefix the
// server could see between reads: never a crash or a read out of bounds;
// a complete head's path and query lie inside it, the path starts with
// '/', and a complete head stays complete (and the same) when more bytes
// follow; an incomplete head never reports a size.
#include <cstdint>
#include <cstring>

#include "alloc/http/request.h"
#include "tests/fuzz/fuzz_input.h"

namespace {

using strata::http::ParseRequestHead;
using strata::http::ParseStatus;
using strata::http::Request;

void CheckComplete(const char* data, std::size_t n, const Request& r) {
  FUZZ_CHECK(r.head_bytes > 0 && r.head_bytes <= n);
  FUZZ_CHECK(r.path != nullptr && r.path >= data && r.path + r.path_len <= data + r.head_bytes);
  FUZZ_CHECK(r.path_len > 0 && r.path[0] == '/');
  FUZZ_CHECK(std::memchr(r.path, '?', r.path_len) == nullptr);
  if (r.query != nullptr) {
    FUZZ_CHECK(r.query == r.path + r.path_len + 1 && r.query + r.query_len <= data + r.head_bytes);
  }
  FUZZ_CHECK(r.minor_version >= 0 && r.minor_version <= 9);
  FUZZ_CHECK(r.header_fields >= 0 && r.header_fields <= strata::http::kMaxHeaderFields);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* bytes, std::size_t size) {
  const auto* data = reinterpret_cast<const char*>(bytes);
  const std::size_t capacity = strata::http::kMaxRequestHeadBytes;
  const std::size_t n = size < capacity ? size : capacity;
  Request whole;
  const ParseStatus status = ParseRequestHead(data, n, capacity, &whole);
  if (status == ParseStatus::kComplete) CheckComplete(data, n, whole);
  if (status == ParseStatus::kTooLarge) FUZZ_CHECK(n == capacity);
  FUZZ_CHECK((strata::http::StatusLineFor(status) == nullptr) ==
             (status == ParseStatus::kComplete || status == ParseStatus::kIncomplete));
  // Every prefix, as the server sees the bytes arrive (small inputs only:
  // the parse is linear, prefixes make it quadratic).
  if (n > 1024) return 0;
  bool completed = false;
  for (std::size_t k = 0; k <= n; ++k) {
    Request r;
    ParseStatus s = ParseRequestHead(data, k, capacity, &r);
    if (s == ParseStatus::kComplete) {
      CheckComplete(data, k, r);
      if (!completed) {
        completed = true;
        FUZZ_CHECK(r.head_bytes == k);  // complete exactly when the empty line ends
        FUZZ_CHECK(status == ParseStatus::kComplete && whole.head_bytes == k && whole.path == r.path &&
                   whole.path_len == r.path_len && whole.method == r.method);
      }
    } else if (s == ParseStatus::kIncomplete) {
      FUZZ_CHECK(!completed);
      FUZZ_CHECK(r.head_bytes == 0);
    }
  }
  return 0;
}
