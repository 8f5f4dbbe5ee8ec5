// cache_thrash: active false sharing between threads' small objects.
//
// Modelled on Hoard's "cache-thrash" benchmark (Berger et al., ASPLOS 2000):
// each thread repeatedly allocates a small object, writes to it many times
// and frees it. An allocator that carves the small objects of different
// threads out of the same cache line makes those writes bounce the line
// between cores, and the run slows down as threads are added; a good
// allocator keeps each thread's objects on its own lines, so the time stays
// flat per unit of work.
//
// How it differs from the original:
//   * object sizes cycle through 8, 16, 24, 32, 48 and 64 bytes instead of a
//     single size, so several size classes are exercised;
//   * every word is read, modified and written back (volatile accesses) and
//     its final value checked before the free, and the checksum is the sum of
//     those values;
//   * the total work is fixed and split over the threads.
//
// Work: --scale 1.0 is 4.8M objects in total, each written 60 times over.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bench/workloads/common.h"

namespace {

constexpr long kBaseObjects = 4'800'000;
constexpr int kPasses = 60;
constexpr size_t kSizes[] = {8, 16, 24, 32, 48, 64};
constexpr int kNumSizes = sizeof(kSizes) / sizeof(kSizes[0]);

uint64_t Thrash(int t, long objects) {
  uint64_t sum = 0;
  for (long i = 0; i < objects; ++i) {
    const size_t size = kSizes[(i + t) % kNumSizes];
    const size_t words = size / 8;
    void* p = std::malloc(size);
    if (p == nullptr) strata_bench::Die("cache_thrash: malloc failed");
    auto* w = static_cast<volatile uint64_t*>(p);
    for (size_t k = 0; k < words; ++k) w[k] = static_cast<uint64_t>(i) + k;
    for (int pass = 0; pass < kPasses; ++pass) {
      for (size_t k = 0; k < words; ++k) w[k] = w[k] + 1;
    }
    for (size_t k = 0; k < words; ++k) {
      uint64_t expect = static_cast<uint64_t>(i) + k + kPasses;
      if (w[k] != expect) strata_bench::Die("cache_thrash: lost a write");
      sum += expect;
    }
    std::free(p);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseObjects, opt, n);
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  strata_bench::RunThreads(n, [&](int t) {
    sums[t] = Thrash(t, strata_bench::ShareOf(total, n, t));
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
