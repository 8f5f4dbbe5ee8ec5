#include "alloc/observe/fd_writer.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>

#include "concurrency/base/raw_log.h"

namespace strata::observe {

FdWriter& FdWriter::Str(const char* s) { return Bytes(s, std::strlen(s)); }

FdWriter& FdWriter::Bytes(const char* s, std::size_t n) {
  while (n > 0) {
    if (used_ == sizeof(buf_)) Flush();
    std::size_t take = sizeof(buf_) - used_ < n ? sizeof(buf_) - used_ : n;
    std::memcpy(buf_ + used_, s, take);
    used_ += take;
    s += take;
    n -= take;
  }
  return *this;
}

FdWriter& FdWriter::Uint(std::uint64_t v) {
  raw::Buffer digits;
  digits.Udec(v);
  return Bytes(digits.data(), digits.size());
}

FdWriter& FdWriter::Int(std::int64_t v) {
  raw::Buffer digits;
  digits.Dec(v);
  return Bytes(digits.data(), digits.size());
}

FdWriter& FdWriter::Fixed(double v, int decimals) {
  if (decimals < 0) decimals = 0;
  if (decimals > 9) decimals = 9;
  std::uint64_t scale = 1;
  for (int i = 0; i < decimals; ++i) scale *= 10;
  if (v < 0) {
    Char('-');
    v = -v;
  }
  // Values here are byte ratios and counts: far below 2^64 / 10^9.
  auto scaled = static_cast<std::uint64_t>(v * static_cast<double>(scale) + 0.5);
  Uint(scaled / scale);
  if (decimals == 0) return *this;
  Char('.');
  char digits[9];
  std::uint64_t frac = scaled % scale;
  for (int i = decimals - 1; i >= 0; --i) {
    digits[i] = static_cast<char>('0' + frac % 10);
    frac /= 10;
  }
  return Bytes(digits, static_cast<std::size_t>(decimals));
}

FdWriter& FdWriter::JsonString(const char* s) {
  static constexpr char kHex[] = "0123456789abcdef";
  Char('"');
  for (; *s != '\0'; ++s) {
    const auto c = static_cast<unsigned char>(*s);
    if (c == '"' || c == '\\') {
      Char('\\').Char(static_cast<char>(c));
    } else if (c < 0x20) {
      char esc[6] = {'\\', 'u', '0', '0', kHex[c >> 4], kHex[c & 15]};
      Bytes(esc, sizeof(esc));
    } else {
      Char(static_cast<char>(c));
    }
  }
  return Char('"');
}

void FdWriter::Flush() {
  const char* p = buf_;
  std::size_t n = used_;
  used_ = 0;
  while (n > 0 && error_ == 0) {
    ssize_t w = write(fd_, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      error_ = errno;
      break;
    }
    if (w == 0) {
      error_ = EIO;
      break;
    }
    p += w;
    n -= static_cast<std::size_t>(w);
  }
}

int FdWriter::Finish() {
  Flush();
  return error_;
}

}  // namespace strata::observe
