// tests/alloc/test_util.h: helpers shared by the engine tests.
#ifndef STRATA_TESTS_ALLOC_TEST_UTIL_H_
#define STRATA_TESTS_ALLOC_TEST_UTIL_H_

#include <unistd.h>

#include <atomic>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstring>

namespace strata::testing {

// Scale for operation counts: sanitizer builds run 10x fewer operations so
// each test stays well under a minute on 2 cores.
#if defined(STRATA_SANITIZER_BUILD)
inline constexpr std::size_t kScale = 10;
#else
inline constexpr std::size_t kScale = 1;
#endif

// The pattern word at word index `i` of a block with seed `seed`.
inline std::uint64_t PatternWord(std::uint64_t seed, std::size_t i) {
  return (seed * 0x9E3779B97F4A7C15ull) ^ (i * 0xD6E8FEB86659FD93ull) ^ 0x5bd1e995u;
}

// Fills `n` bytes at `p` with a pattern derived from `seed` (word by word,
// so that multi-megabyte blocks stay cheap to fill and check).
inline void Fill(void* p, std::size_t n, std::uint64_t seed) {
  auto* b = static_cast<unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w = PatternWord(seed, i);
    std::memcpy(b + 8 * i, &w, 8);
  }
  std::uint64_t w = PatternWord(seed, words);
  std::memcpy(b + 8 * words, &w, n % 8);
}

// True when the `n` bytes at `p` still hold Fill(p, n, seed).
inline bool Check(const void* p, std::size_t n, std::uint64_t seed) {
  auto* b = static_cast<const unsigned char*>(p);
  std::size_t words = n / 8;
  for (std::size_t i = 0; i < words; ++i) {
    std::uint64_t w;
    std::memcpy(&w, b + 8 * i, 8);
    if (w != PatternWord(seed, i)) return false;
  }
  std::uint64_t w = PatternWord(seed, words);
  return std::memcmp(b + 8 * words, &w, n % 8) == 0;
}

// Resident set size in bytes, from /proc/self/statm.
inline std::size_t ResidentBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? resident * static_cast<std::size_t>(sysconf(_SC_PAGESIZE)) : 0;
}

// A small deterministic PRNG (xorshift64*), so failures reproduce.
// A bounded single-producer single-consumer ring of pointers (the tests'
// hand-off between threads that must not go through the allocator).
template <std::size_t kCap>
class SpscRing {
 public:
  bool Push(void* p) {
    const std::size_t h = head_.load(std::memory_order_relaxed);
    if (h - tail_.load(std::memory_order_acquire) == kCap) return false;
    slots_[h % kCap] = p;
    head_.store(h + 1, std::memory_order_release);
    return true;
  }
  void* Pop() {
    const std::size_t t = tail_.load(std::memory_order_relaxed);
    if (t == head_.load(std::memory_order_acquire)) return nullptr;
    void* p = slots_[t % kCap];
    tail_.store(t + 1, std::memory_order_release);
    return p;
  }

 private:
  void* slots_[kCap];
  std::atomic<std::size_t> head_{0};
  std::atomic<std::size_t> tail_{0};
};

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : state_(seed * 0x9E3779B97F4A7C15ull + 1) {}
  std::uint64_t Next() {
    state_ ^= state_ >> 12;
    state_ ^= state_ << 25;
    state_ ^= state_ >> 27;
    return state_ * 0x2545F4914F6CDD1Dull;
  }
  std::uint64_t Uniform(std::uint64_t n) { return Next() % n; }

 private:
  std::uint64_t state_;
};

}  // namespace strata::testing

#endif  // STRATA_TESTS_ALLOC_TEST_UTIL_H_
