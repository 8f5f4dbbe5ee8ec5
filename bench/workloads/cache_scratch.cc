// cache_scratch: passive false sharing induced by freeing another thread's
// objects.
//
// Modelled on Hoard's "cache-scratch" benchmark (Berger et al., ASPLOS
// 2000): the main thread allocates one small object per worker, back to back
// (so they share cache lines), and hands object t to worker t. Each worker
// frees the object it was given and then repeatedly allocates, writes and
// frees a small object of the same size. An allocator that recycles the
// freed foreign object for the worker's own next allocation leaves every
// worker writing into the same line as the others for the whole run.
//
// How it differs from the original:
//   * each worker receives a small batch of objects (sizes 8, 16, 32 and 64
//     bytes, allocated interleaved across the workers by the main thread)
//     rather than a single one, so the hand-off touches several size
//     classes;
//   * every word written is read back and checked, and the checksum is the
//     sum of the final values;
//   * the total work is fixed and split over the threads.
//
// Work: --scale 1.0 is 4.8M worker objects in total, each written 60 times.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bench/workloads/common.h"

namespace {

constexpr long kBaseObjects = 4'800'000;
constexpr int kPasses = 60;
constexpr size_t kSizes[] = {8, 16, 32, 64};
constexpr int kNumSizes = sizeof(kSizes) / sizeof(kSizes[0]);

uint64_t Scratch(int t, long objects, std::vector<void*>& given) {
  // Free what the main thread allocated for us: the memory may now sit in
  // this thread's cache, next to the other workers' objects.
  for (int k = 0; k < kNumSizes; ++k) {
    if (!strata_bench::StampOk(given[k], kSizes[k], 0xC0FFEEull + t)) {
      strata_bench::Die("cache_scratch: handed-over object corrupted");
    }
    std::free(given[k]);
  }
  uint64_t sum = 0;
  for (long i = 0; i < objects; ++i) {
    const size_t size = kSizes[i % kNumSizes];
    const size_t words = size / 8;
    void* p = std::malloc(size);
    if (p == nullptr) strata_bench::Die("cache_scratch: malloc failed");
    auto* w = static_cast<volatile uint64_t*>(p);
    for (size_t k = 0; k < words; ++k) w[k] = static_cast<uint64_t>(i) ^ k;
    for (int pass = 0; pass < kPasses; ++pass) {
      for (size_t k = 0; k < words; ++k) w[k] = w[k] + 3;
    }
    for (size_t k = 0; k < words; ++k) {
      uint64_t expect = (static_cast<uint64_t>(i) ^ k) + 3 * kPasses;
      if (w[k] != expect) strata_bench::Die("cache_scratch: lost a write");
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

  // Allocated size-major, thread-minor: the objects of one size class for
  // all workers are adjacent in the allocation order.
  std::vector<std::vector<void*>> given(static_cast<size_t>(n),
                                        std::vector<void*>(kNumSizes));
  for (int k = 0; k < kNumSizes; ++k) {
    for (int t = 0; t < n; ++t) {
      void* p = std::malloc(kSizes[k]);
      if (p == nullptr) strata_bench::Die("cache_scratch: malloc failed");
      strata_bench::Stamp(p, kSizes[k], 0xC0FFEEull + t);
      given[t][k] = p;
    }
  }

  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  // Fresh threads: every worker's objects were allocated by another thread.
  strata_bench::RunFreshThreads(n, [&](int t) {
    sums[t] = Scratch(t, strata_bench::ShareOf(total, n, t), given[t]);
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
