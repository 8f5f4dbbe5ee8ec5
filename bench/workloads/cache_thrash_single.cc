// cache_thrash_single: active false sharing, Hoard's cache-thrash as
// written: one small object per thread at a time.
//
// Each of --threads fresh threads repeatedly allocates one object (1 byte
// by default), writes each byte many times and frees it (hoard_worker.h).
// An allocator that hands different threads' objects out of one cache line
// makes those writes bounce the line between the cores; a good one keeps
// each thread's objects apart, and the run takes 1/T the time of one
// thread (the total work is fixed and split over the threads). The
// multi-size variant is cache_thrash.
//
// Usage: cache_thrash_single [--threads T] [--scale F] [--size BYTES]
#include <cstdint>
#include <vector>

#include "bench/workloads/common.h"
#include "bench/workloads/hoard_worker.h"

int main(int argc, char** argv) {
  const strata_bench::Options opt =
      strata_bench::ParseArgs(argc, argv, strata_bench::kSizeFlag);
  const strata_bench::HoardParams p = strata_bench::ReadHoardParams(opt);
  std::vector<uint64_t> sums(static_cast<size_t>(opt.threads), 0);
  strata_bench::RunFreshThreads(opt.threads, [&](int t) {
    sums[t] = strata_bench::HoardWorker(p);
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
