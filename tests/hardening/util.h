// tests/hardening/util.h: small helpers shared by the hardening, stress and
// fuzz tests (deterministic PRNG, fill patterns, RSS). Header-only.
#ifndef STRATA_TESTS_HARDENING_UTIL_H_
#define STRATA_TESTS_HARDENING_UTIL_H_

#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace strata::testing {

// Sanitizer builds (STRATA_SANITIZER_BUILD, .bazelrc) run fewer operations.
#if defined(STRATA_SANITIZER_BUILD)
inline constexpr std::size_t kSanitizerDivisor = 8;
#else
inline constexpr std::size_t kSanitizerDivisor = 1;
#endif

// xorshift64*: small, fast, reproducible.
class Prng {
 public:
  explicit Prng(std::uint64_t seed) : s_(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) {}
  std::uint64_t Next() {
    s_ ^= s_ >> 12;
    s_ ^= s_ << 25;
    s_ ^= s_ >> 27;
    return s_ * 0x2545F4914F6CDD1Dull;
  }
  std::uint64_t Below(std::uint64_t n) { return n == 0 ? 0 : Next() % n; }
  bool OneIn(std::uint64_t n) { return Below(n) == 0; }

 private:
  std::uint64_t s_;
};

// A cookie word for word `i` of a block tagged `tag`.
inline std::uint64_t CookieWord(std::uint64_t tag, std::size_t i) {
  std::uint64_t x = tag ^ (i * 0x9E3779B97F4A7C15ull);
  x ^= x >> 29;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 32);
}

// Writes the cookie over `n` bytes; large blocks get their first and last
// 4 KiB and one word per 4 KiB page in between (cheap, still touches and
// checks every page).
inline void FillCookie(void* p, std::size_t n, std::uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  auto put = [&](std::size_t off) {
    std::uint64_t w = CookieWord(tag, off / 8);
    std::memcpy(b + off, &w, n - off < 8 ? n - off : 8);
  };
  if (n <= 16384) {
    for (std::size_t off = 0; off < n; off += 8) put(off);
    return;
  }
  for (std::size_t off = 0; off < 4096; off += 8) put(off);
  for (std::size_t off = 4096; off + 4096 < n; off += 4096) put(off);
  for (std::size_t off = (n - 4096) & ~std::size_t{7}; off < n; off += 8) put(off);
}

inline bool CheckCookie(const void* p, std::size_t n, std::uint64_t tag) {
  const auto* b = static_cast<const unsigned char*>(p);
  auto ok = [&](std::size_t off) {
    std::uint64_t w = CookieWord(tag, off / 8);
    return std::memcmp(b + off, &w, n - off < 8 ? n - off : 8) == 0;
  };
  if (n <= 16384) {
    for (std::size_t off = 0; off < n; off += 8) {
      if (!ok(off)) return false;
    }
    return true;
  }
  for (std::size_t off = 0; off < 4096; off += 8) {
    if (!ok(off)) return false;
  }
  for (std::size_t off = 4096; off + 4096 < n; off += 4096) {
    if (!ok(off)) return false;
  }
  for (std::size_t off = (n - 4096) & ~std::size_t{7}; off < n; off += 8) {
    if (!ok(off)) return false;
  }
  return true;
}

// Resident set size in bytes (/proc/self/statm).
inline std::size_t Rss() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// Virtual size in bytes (/proc/self/statm).
inline std::size_t VirtualSize() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0;
  int n = std::fscanf(f, "%lu", &size);
  std::fclose(f);
  return n == 1 ? size * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_HARDENING_UTIL_H_
