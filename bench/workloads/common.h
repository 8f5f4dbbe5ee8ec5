// bench/workloads/common.h: plumbing shared by the allocator workloads.
//
// Every workload is a standalone program that calls plain malloc/free/new/
// delete and is linked normally, so that LD_PRELOAD of an allocator's shared
// object replaces the allocator it runs on. The contract with the runner
// (bench/compare/compare.py):
//   * flags: --threads N (default 1) and --scale F (default 1.0, multiplies
//     the amount of work; 1.0 is sized for roughly 0.3-1.5 s with glibc on
//     the 2-core CI machines). A few workloads take more (see their usage).
//   * stdout: exactly one line, a 16-hex-digit checksum. The checksum depends
//     only on the flags, never on the allocator or on thread scheduling, so
//     the runner can compare it across allocators to catch corruption.
//   * stderr: when BENCH_CHECK_PRELOAD is set, one line
//       bench-preload: malloc=<object> free=<object>
//     naming the shared objects that the dynamic linker bound `malloc` and
//     `free` to (dlsym(RTLD_DEFAULT) + dladdr), which is how the runner proves
//     the allocator under test was really interposed.
//   * exit status 0; a failed content check prints "workload error: ..." on
//     stderr and exits with status 3.
//   * fixed-duration throughput workloads (xmalloc_test, xmalloc_pairs) run
//     for --scale seconds and also print `bench-throughput: ops=N
//     seconds=S` on stderr (ReportThroughput); their checksum depends on
//     the flags only (how many operations fit in the time does not), and
//     their own checks (every object's contents, every object freed) are
//     what catch corruption.
//
// Thread-safety: the helpers are pure or thread-local; Options is read-only
// once parsed.
#ifndef STRATA_BENCH_WORKLOADS_COMMON_H_
#define STRATA_BENCH_WORKLOADS_COMMON_H_

#include <dlfcn.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

namespace strata_bench {

struct Options {
  int threads = 1;
  double scale = 1.0;
  // Optional knobs; -1 means "not given". Only some workloads accept them.
  long size = -1;
  long iters = -1;
  bool empty = false;  // malloc_free_pair: loop without allocating
};

// Bits of a usage line, per workload.
enum ExtraFlags : unsigned {
  kNoExtras = 0,
  kSizeFlag = 1u << 0,
  kItersFlag = 1u << 1,
  kEmptyFlag = 1u << 2,
};

[[noreturn]] inline void Die(const char* fmt, ...) {
  // One buffer and one write(2): no stdio (the heap may be what is broken),
  // and no interleaving when several threads fail at once.
  char buf[600] = "workload error: ";
  const size_t prefix = std::strlen(buf);
  va_list ap;
  va_start(ap, fmt);
  int n = std::vsnprintf(buf + prefix, sizeof buf - prefix - 1, fmt, ap);
  va_end(ap);
  size_t len = prefix + (n < 0 ? 0 : static_cast<size_t>(n));
  if (len > sizeof buf - 2) len = sizeof buf - 2;
  buf[len++] = '\n';
  (void)!write(2, buf, len);
  _exit(3);
}

[[noreturn]] inline void Usage(const char* argv0, unsigned extras) {
  std::fprintf(stderr, "usage: %s [--threads N] [--scale F]%s%s%s\n", argv0,
               (extras & kSizeFlag) ? " [--size BYTES]" : "",
               (extras & kItersFlag) ? " [--iters N]" : "",
               (extras & kEmptyFlag) ? " [--empty]" : "");
  std::exit(2);
}

// Names the shared objects `malloc` and `free` resolve to in the global
// lookup scope, which is the scope the program's own calls bind to.
inline void ReportPreload() {
  if (std::getenv("BENCH_CHECK_PRELOAD") == nullptr) return;
  auto where = [](const char* symbol) -> const char* {
    void* address = dlsym(RTLD_DEFAULT, symbol);
    Dl_info info;
    if (address == nullptr || dladdr(address, &info) == 0 ||
        info.dli_fname == nullptr) {
      return "?";
    }
    return info.dli_fname;
  };
  std::fprintf(stderr, "bench-preload: malloc=%s free=%s\n", where("malloc"),
               where("free"));
}

inline Options ParseArgs(int argc, char** argv, unsigned extras = kNoExtras) {
  Options o;
  for (int i = 1; i < argc; ++i) {
    const char* a = argv[i];
    auto value = [&]() -> const char* {
      if (i + 1 >= argc) Usage(argv[0], extras);
      return argv[++i];
    };
    auto integer = [&](long lo) -> long {
      const char* v = value();
      char* end = nullptr;
      errno = 0;
      long x = std::strtol(v, &end, 10);
      if (errno != 0 || end == v || *end != '\0' || x < lo) {
        Usage(argv[0], extras);
      }
      return x;
    };
    if (std::strcmp(a, "--threads") == 0) {
      o.threads = static_cast<int>(integer(1));
      if (o.threads > 1024) Usage(argv[0], extras);
    } else if (std::strcmp(a, "--scale") == 0) {
      const char* v = value();
      char* end = nullptr;
      o.scale = std::strtod(v, &end);
      if (end == v || *end != '\0' || !(o.scale > 0) || o.scale > 1e6) {
        Usage(argv[0], extras);
      }
    } else if ((extras & kSizeFlag) && std::strcmp(a, "--size") == 0) {
      o.size = integer(0);
    } else if ((extras & kItersFlag) && std::strcmp(a, "--iters") == 0) {
      o.iters = integer(0);
    } else if ((extras & kEmptyFlag) && std::strcmp(a, "--empty") == 0) {
      o.empty = true;
    } else {
      Usage(argv[0], extras);
    }
  }
  ReportPreload();
  return o;
}

// base * scale, at least `floor`.
inline long Scaled(long base, const Options& o, long floor = 1) {
  long long x = std::llround(static_cast<double>(base) * o.scale);
  return x < floor ? floor : static_cast<long>(x);
}

// Share of `total` units of work done by thread `t` of `threads`.
inline long ShareOf(long total, int threads, int t) {
  return total / threads + (t < total % threads ? 1 : 0);
}

// Fixed-duration throughput workloads: after the run, one stderr line
//   bench-throughput: ops=<N> seconds=<S>
// (N operations done in S seconds). The runner shows S / N times a fixed
// count: seconds per that many operations, lower is better like a time.
inline void ReportThroughput(uint64_t ops, double seconds) {
  std::fprintf(stderr, "bench-throughput: ops=%llu seconds=%.6f\n",
               static_cast<unsigned long long>(ops), seconds);
}

inline void PrintChecksum(uint64_t sum) {
  std::printf("%016llx\n", static_cast<unsigned long long>(sum));
}

// splitmix64's finaliser: a good 64-bit mix for tags and seeds.
inline uint64_t Mix(uint64_t x) {
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

// Small, fast, deterministic generator (splitmix64 stream).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(Mix(seed ^ 0x5DEECE66Dull)) {}
  uint64_t Next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  // Uniform in [0, n), n > 0.
  uint64_t Below(uint64_t n) {
    return static_cast<uint64_t>(
        (static_cast<unsigned __int128>(Next()) * n) >> 64);
  }
  // Uniform in [lo, hi].
  uint64_t Range(uint64_t lo, uint64_t hi) { return lo + Below(hi - lo + 1); }
  // Log-uniform in [lo, hi] (lo > 0): as many objects per octave.
  uint64_t LogRange(uint64_t lo, uint64_t hi) {
    double u = static_cast<double>(Next() >> 11) * 0x1.0p-53;
    double v = static_cast<double>(lo) *
               std::exp(u * std::log(static_cast<double>(hi) / lo));
    uint64_t x = static_cast<uint64_t>(v);
    return x < lo ? lo : (x > hi ? hi : x);
  }
  // True with probability percent/100.
  bool Percent(unsigned percent) { return Below(100) < percent; }

 private:
  uint64_t state_;
};

// Makes `p` (and what it points to) escape, so the compiler cannot drop or
// merge an allocation whose contents it thinks are unused.
template <typename T>
inline void Escape(T* p) {
  asm volatile("" : : "g"(p) : "memory");
}

// A tagged object: the first 8 bytes hold `tag` and, for objects longer
// than 8 bytes, the last byte holds the tag's low byte (objects shorter than
// 8 bytes keep the tag's low bytes only). Stamping and checking cost O(1),
// whatever the size.
inline void Stamp(void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<unsigned char*>(p);
  std::memcpy(b, &tag, n < 8 ? n : 8);
  if (n > 8) b[n - 1] = static_cast<unsigned char>(tag);
}

inline bool StampOk(const void* p, size_t n, uint64_t tag) {
  auto* b = static_cast<const unsigned char*>(p);
  if (std::memcmp(b, &tag, n < 8 ? n : 8) != 0) return false;
  return n <= 8 || b[n - 1] == static_cast<unsigned char>(tag);
}

// Runs body(t) for t in [0, threads): thread 0 on the calling thread (as a
// single-threaded program would), the others on new std::threads.
template <typename Body>
void RunThreads(int threads, Body body) {
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 1; t < threads; ++t) pool.emplace_back(body, t);
  body(0);
  for (auto& th : pool) th.join();
}

// Runs body(t) on `threads` freshly created threads (none on the caller).
template <typename Body>
void RunFreshThreads(int threads, Body body) {
  std::vector<std::thread> pool;
  pool.reserve(static_cast<size_t>(threads));
  for (int t = 0; t < threads; ++t) pool.emplace_back(body, t);
  for (auto& th : pool) th.join();
}

}  // namespace strata_bench

#endif  // STRATA_BENCH_WORKLOADS_COMMON_H_
