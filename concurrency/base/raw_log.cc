#include "concurrency/base/raw_log.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

namespace strata::raw {

Buffer& Buffer::Str(const char* s) { return Str(s, s ? strlen(s) : 0); }

Buffer& Buffer::Str(const char* s, std::size_t n) {
  if (n > kCapacity - size_) n = kCapacity - size_;
  memcpy(data_ + size_, s, n);
  size_ += n;
  return *this;
}

Buffer& Buffer::Char(char c) { return Str(&c, 1); }

Buffer& Buffer::Udec(std::uint64_t v) {
  char tmp[24];
  int i = sizeof(tmp);
  do {
    tmp[--i] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  return Str(tmp + i, sizeof(tmp) - i);
}

Buffer& Buffer::Dec(std::int64_t v) {
  if (v < 0) {
    Char('-');
    return Udec(static_cast<std::uint64_t>(0) - static_cast<std::uint64_t>(v));
  }
  return Udec(static_cast<std::uint64_t>(v));
}

Buffer& Buffer::Hex(std::uint64_t v) {
  char tmp[16];
  int i = sizeof(tmp);
  do {
    tmp[--i] = "0123456789abcdef"[v & 15];
    v >>= 4;
  } while (v != 0);
  Str("0x", 2);
  return Str(tmp + i, sizeof(tmp) - i);
}

Buffer& Buffer::PadDec(std::uint64_t v, int width) {
  Buffer tmp;
  tmp.Udec(v);
  for (int i = static_cast<int>(tmp.size()); i < width; ++i) Char(' ');
  return Str(tmp.data(), tmp.size());
}

Buffer& Buffer::PadStr(const char* s, int width) {
  std::size_t n = strlen(s);
  for (int i = static_cast<int>(n); i < width; ++i) Char(' ');
  return Str(s, n);
}

void WriteAll(int fd, const char* s, std::size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, s, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return;
    }
    s += w;
    n -= static_cast<std::size_t>(w);
  }
}

void Buffer::WriteTo(int fd) const {
  int saved = errno;
  WriteAll(fd, data_, size_);
  errno = saved;
}

void Log(const char* msg) {
  Buffer b;
  b.Str("strata: ").Str(msg).Char('\n');
  b.WriteTo(2);
}

void Fatal(const char* file, int line, const char* msg) {
  Buffer b;
  b.Str("strata: FATAL ").Str(file).Char(':').Dec(line).Str(": ").Str(msg).Char('\n');
  b.WriteTo(2);
  abort();
}

}  // namespace strata::raw
