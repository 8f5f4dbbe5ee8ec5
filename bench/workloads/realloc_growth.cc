// realloc_growth: buffers that grow by realloc, like string builders and
// hand-rolled vectors in C code.
//
// Modelled on the realloc-heavy patterns of C programs (string builders
// that realloc on every append, vectors that grow by a factor) and on the
// realloc tests of allocator test suites; no particular benchmark is copied.
//
// Each thread keeps 16 buffers under construction and appends 1-64 byte
// chunks to a random one at a time, so neighbouring buffers compete for the
// space a buffer would like to grow into. Half the buffers realloc to the
// exact new length on every append (naive string building), half grow their
// capacity by 1.5x when full (vector-style), and one in eight starts from
// realloc(NULL, n). When a buffer reaches its target length (log-uniform in
// [256 B, 256 KiB], one in 50 up to 4 MiB) it is checked in full, shrunk with
// realloc to its length one time in five, and freed. Contents are a function
// of the position, so a realloc that loses or moves bytes wrongly is caught:
// the first and last bytes are checked after every realloc.
//
// Work: --scale 1.0 is 7M appends split over the threads.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseAppends = 7'000'000;
constexpr int kBuffers = 16;

struct Buffer {
  unsigned char* data = nullptr;
  size_t len = 0;
  size_t cap = 0;
  size_t target = 0;
  uint8_t salt = 0;
  bool exact = false;
};

inline unsigned char ByteAt(const Buffer& b, size_t i) {
  return static_cast<unsigned char>(b.salt + i * 7 + (i >> 9));
}

void Start(Buffer& b, Rng& rng) {
  b.len = 0;
  b.salt = static_cast<uint8_t>(rng.Next());
  b.exact = rng.Percent(50);
  b.target = rng.Percent(2) ? rng.LogRange(256 << 10, 4 << 20)
                            : rng.LogRange(256, 256 << 10);
  if (rng.Below(8) == 0) {
    b.data = nullptr;  // the first append uses realloc(NULL, n)
    b.cap = 0;
  } else {
    b.cap = rng.Range(8, 64);
    b.data = static_cast<unsigned char*>(std::malloc(b.cap));
    if (b.data == nullptr) strata_bench::Die("realloc_growth: malloc failed");
  }
}

void Grow(Buffer& b, size_t need) {
  size_t cap = b.exact ? need : (b.cap + b.cap / 2 > need ? b.cap + b.cap / 2
                                                          : need);
  auto* p = static_cast<unsigned char*>(std::realloc(b.data, cap));
  if (p == nullptr) strata_bench::Die("realloc_growth: realloc(%zu) failed", cap);
  if (b.len > 0 && (p[0] != ByteAt(b, 0) || p[b.len - 1] != ByteAt(b, b.len - 1))) {
    strata_bench::Die("realloc_growth: realloc lost contents");
  }
  b.data = p;
  b.cap = cap;
}

uint64_t Finish(Buffer& b, Rng& rng) {
  uint64_t sum = 0;
  for (size_t i = 0; i < b.len; ++i) {
    if (b.data[i] != ByteAt(b, i)) {
      strata_bench::Die("realloc_growth: byte %zu of %zu corrupted", i, b.len);
    }
    sum += b.data[i];
  }
  if (rng.Below(5) == 0 && b.cap > b.len) {
    auto* p = static_cast<unsigned char*>(std::realloc(b.data, b.len));
    if (p == nullptr) strata_bench::Die("realloc_growth: shrink failed");
    if (p[b.len - 1] != ByteAt(b, b.len - 1)) {
      strata_bench::Die("realloc_growth: shrink lost contents");
    }
    b.data = p;
  }
  std::free(b.data);
  b.data = nullptr;
  return sum + b.len;
}

uint64_t Worker(int t, long appends) {
  Rng rng(Mix(0xB0F ^ static_cast<uint64_t>(t)));
  Buffer bufs[kBuffers];
  for (Buffer& b : bufs) Start(b, rng);
  uint64_t sum = 0;
  for (long i = 0; i < appends; ++i) {
    Buffer& b = bufs[rng.Below(kBuffers)];
    size_t chunk = rng.Range(1, 64);
    if (b.len + chunk > b.cap) Grow(b, b.len + chunk);
    for (size_t k = 0; k < chunk; ++k) b.data[b.len + k] = ByteAt(b, b.len + k);
    b.len += chunk;
    if (b.len >= b.target) {
      sum += Finish(b, rng);
      Start(b, rng);
    }
  }
  for (Buffer& b : bufs) {
    if (b.len > 0) {
      sum += Finish(b, rng);
    } else {
      std::free(b.data);
    }
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseAppends, opt, n);
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  strata_bench::RunThreads(n, [&](int t) {
    sums[t] = Worker(t, strata_bench::ShareOf(total, n, t));
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
