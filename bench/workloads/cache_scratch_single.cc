// cache_scratch_single: passive false sharing, Hoard's cache-scratch as
// written: one object per thread, freed by a thread that did not allocate
// it.
//
// The main thread allocates one object per worker (1 byte by default),
// back to back, so they share a cache line. Each of --threads fresh
// workers first frees the object it was given, then repeatedly allocates
// an object of the same size, writes each byte many times and frees it
// (hoard_worker.h). An allocator that serves the worker's next allocation
// from the foreign object it just freed leaves every worker writing into
// the line the others write to, for the whole run; one that returns a
// foreign free to its owner, or keeps it out of the local free list,
// gives each worker a line of its own. The total work is fixed and split
// over the threads. The multi-size variant is cache_scratch.
//
// Usage: cache_scratch_single [--threads T] [--scale F] [--size BYTES]
#include <cstdint>
#include <vector>

#include "bench/workloads/common.h"
#include "bench/workloads/hoard_worker.h"

int main(int argc, char** argv) {
  const strata_bench::Options opt =
      strata_bench::ParseArgs(argc, argv, strata_bench::kSizeFlag);
  const strata_bench::HoardParams p = strata_bench::ReadHoardParams(opt);
  std::vector<char*> given(static_cast<size_t>(opt.threads));
  for (char*& g : given) {
    g = new char[p.size];
    *static_cast<volatile char*>(g) = 1;
  }
  std::vector<uint64_t> sums(static_cast<size_t>(opt.threads), 0);
  strata_bench::RunFreshThreads(opt.threads, [&](int t) {
    if (*static_cast<volatile char*>(given[t]) != 1) {
      strata_bench::Die("cache_scratch_single: the given object changed");
    }
    delete[] given[t];
    sums[t] = strata_bench::HoardWorker(p);
  });
  uint64_t sum = 0;
  for (uint64_t s : sums) sum += s;
  strata_bench::PrintChecksum(sum);
  return 0;
}
