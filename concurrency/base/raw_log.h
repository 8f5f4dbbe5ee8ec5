// concurrency/base/raw_log.h: logging and checks that never allocate or lock.
//
// Contract: every function here formats into a stack buffer and writes with
// write(2) to stderr; none calls malloc, takes a lock, or touches locale
// state, so they are safe inside the allocator, in signal handlers and in a
// forked child. Thread-safe (each message is one write(2) call).
//
// Three levels of checks:
//   STRATA_CHECK(cond, msg)            always on
//   STRATA_DCHECK(cond, msg)           debug builds only (!NDEBUG)
//   STRATA_EXPENSIVE_CHECK(cond, msg)  only with -DSTRATA_EXPENSIVE_CHECKS
#ifndef STRATA_CONCURRENCY_BASE_RAW_LOG_H_
#define STRATA_CONCURRENCY_BASE_RAW_LOG_H_

#include <cstddef>
#include <cstdint>

#include "concurrency/base/macros.h"

namespace strata::raw {

// A fixed-capacity text buffer on the stack. Appends truncate silently.
class Buffer {
 public:
  Buffer() = default;
  Buffer& Str(const char* s);
  Buffer& Str(const char* s, std::size_t n);
  Buffer& Dec(std::int64_t v);
  Buffer& Udec(std::uint64_t v);
  Buffer& Hex(std::uint64_t v);  // "0x" followed by lowercase hex digits
  Buffer& Ptr(const void* p) { return Hex(reinterpret_cast<std::uintptr_t>(p)); }
  Buffer& Char(char c);
  // Right-aligns `v` in a field `width` wide.
  Buffer& PadDec(std::uint64_t v, int width);
  Buffer& PadStr(const char* s, int width);
  const char* data() const { return data_; }
  std::size_t size() const { return size_; }
  void Clear() { size_ = 0; }
  // Writes the contents to `fd` (retrying on EINTR / short writes).
  void WriteTo(int fd) const;

 private:
  static constexpr std::size_t kCapacity = 1024;
  char data_[kCapacity];
  std::size_t size_ = 0;
};

// Writes `n` bytes to `fd`, retrying on EINTR and short writes.
void WriteAll(int fd, const char* s, std::size_t n);

// Writes "strata: <msg>\n" to stderr.
void Log(const char* msg);

// Writes "strata: FATAL <file>:<line>: <msg>\n" to stderr and aborts.
[[noreturn]] STRATA_COLD void Fatal(const char* file, int line, const char* msg);

}  // namespace strata::raw

#define STRATA_CHECK(cond, msg)                                  \
  do {                                                           \
    if (STRATA_PREDICT_FALSE(!(cond)))                           \
      ::strata::raw::Fatal(__FILE__, __LINE__, "check failed: " #cond ": " msg); \
  } while (0)

#ifndef NDEBUG
#define STRATA_DCHECK(cond, msg) STRATA_CHECK(cond, msg)
#else
#define STRATA_DCHECK(cond, msg) \
  do {                           \
  } while (false && (cond))
#endif

#ifdef STRATA_EXPENSIVE_CHECKS
#define STRATA_EXPENSIVE_CHECK(cond, msg) STRATA_CHECK(cond, msg)
#else
#define STRATA_EXPENSIVE_CHECK(cond, msg) \
  do {                                    \
  } while (false && (cond))
#endif

#endif  // STRATA_CONCURRENCY_BASE_RAW_LOG_H_
