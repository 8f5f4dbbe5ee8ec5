// alloc/observe/fd_writer.h: buffered text output to a file descriptor
// that never allocates, for the observability pages (Prometheus text,
// JSON) written by the HTTP endpoint's server thread.
//
// Contract: appends go to a fixed buffer inside the object (keep it on the
// stack) and are written with write(2) when it fills and at Finish();
// EINTR and short writes are retried. The first write error sticks:
// later output is dropped and Finish() returns it as an errno value.
//
// Thread-safety: none; one writer per thread.
#ifndef STRATA_ALLOC_OBSERVE_FD_WRITER_H_
#define STRATA_ALLOC_OBSERVE_FD_WRITER_H_

#include <cstddef>
#include <cstdint>

namespace strata::observe {

class FdWriter {
 public:
  explicit FdWriter(int fd) : fd_(fd) {}
  FdWriter(const FdWriter&) = delete;
  FdWriter& operator=(const FdWriter&) = delete;

  FdWriter& Str(const char* s);
  FdWriter& Bytes(const char* s, std::size_t n);
  FdWriter& Char(char c) { return Bytes(&c, 1); }
  FdWriter& Int(std::int64_t v);
  FdWriter& Uint(std::uint64_t v);
  // `v` with exactly `decimals` (<= 9) digits after the point, rounded.
  // For finite values below 2^64 / 10^decimals only (ratios, counts): JSON
  // has no spelling for NaN or infinities.
  FdWriter& Fixed(double v, int decimals);
  // A JSON string literal with its quotes; control characters, quotes and
  // backslashes escaped.
  FdWriter& JsonString(const char* s);

  // Writes what is buffered; returns 0 or the first errno seen.
  int Finish();

 private:
  void Flush();

  int fd_;
  int error_ = 0;
  std::size_t used_ = 0;
  char buf_[8192];
};

}  // namespace strata::observe

#endif  // STRATA_ALLOC_OBSERVE_FD_WRITER_H_
