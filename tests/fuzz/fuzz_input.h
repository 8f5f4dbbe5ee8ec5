// tests/fuzz/fuzz_input.h: reads typed values from a fuzzer's byte input.
// Running out of input yields zeros, so every input is a valid program.
#ifndef STRATA_TESTS_FUZZ_FUZZ_INPUT_H_
#define STRATA_TESTS_FUZZ_FUZZ_INPUT_H_

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace strata::fuzz {

class Input {
 public:
  Input(const std::uint8_t* data, std::size_t size) : p_(data), end_(data + size) {}
  bool empty() const { return p_ >= end_; }
  std::size_t left() const { return static_cast<std::size_t>(end_ - p_); }

  template <typename T>
  T Take() {
    T v{};
    std::size_t n = left() < sizeof(T) ? left() : sizeof(T);
    if (n == 0) return v;  // (an empty input may come as nullptr)
    std::memcpy(&v, p_, n);
    p_ += n;
    return v;
  }
  std::uint8_t Byte() { return Take<std::uint8_t>(); }
  // A value in [0, n).
  std::uint32_t Below(std::uint32_t n) { return n == 0 ? 0 : Take<std::uint32_t>() % n; }
  // A size spread over every tier: small, medium, large, huge (each tier
  // picked by one byte, the size within it by four more).
  std::size_t Size() {
    std::uint32_t r = Take<std::uint32_t>();
    switch (Byte() % 8) {
      case 0: return r % 17;                                         // tiny, 0 included
      case 1:
      case 2:
      case 3: return r % 1025;                                       // small
      case 4: return 1024 + r % (256 * 1024);                        // medium
      case 5: return (std::size_t{256} << 10) + r % (std::size_t{4} << 20);  // large
      case 6: return (std::size_t{4} << 20) + r % (std::size_t{12} << 20);   // huge
      default: return r % 4096 == 0 ? 4096 : std::size_t{1} << (r % 13);    // powers of two
    }
  }

 private:
  const std::uint8_t* p_;
  const std::uint8_t* end_;
};

// Fails the run with a message (abort: libFuzzer and the replay test both
// report it with the input that caused it).
[[noreturn]] inline void Fail(const char* what) {
  std::fprintf(stderr, "fuzz check failed: %s\n", what);
  std::abort();
}
#define FUZZ_CHECK(cond)                                                 \
  do {                                                                   \
    if (!(cond)) ::strata::fuzz::Fail(#cond " at " __FILE__ ":" STRATA_FUZZ_STR(__LINE__)); \
  } while (0)
#define STRATA_FUZZ_STR2(x) #x
#define STRATA_FUZZ_STR(x) STRATA_FUZZ_STR2(x)

}  // namespace strata::fuzz

#endif  // STRATA_TESTS_FUZZ_FUZZ_INPUT_H_
