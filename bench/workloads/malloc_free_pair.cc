// malloc_free_pair: the cost of one malloc(size) + free() on the fast path.
//
// Not a timing benchmark: bench/compare/compare.py --instructions runs it
// under `valgrind --tool=callgrind` at two iteration counts and divides the
// difference in executed instructions by the difference in iterations, which
// cancels start-up and the first (slow-path) allocation and leaves the
// instructions of one malloc/free pair plus this loop's own few.
//
// Usage: malloc_free_pair --size BYTES --iters N [--empty]
//   --empty runs the same loop with a no-op in place of malloc/free, to
//   measure the loop's own overhead. --threads and --scale are accepted
//   for uniformity and ignored (--scale multiplies --iters).
#include <cstdint>
#include <cstdlib>

#include "bench/workloads/common.h"

namespace {

unsigned char g_dummy[4096];

__attribute__((noinline)) void* FakeMalloc(size_t) {
  asm volatile("");
  return g_dummy;
}
__attribute__((noinline)) void FakeFree(void* p) { asm volatile("" : : "r"(p)); }

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(
      argc, argv,
      strata_bench::kSizeFlag | strata_bench::kItersFlag |
          strata_bench::kEmptyFlag);
  if (opt.size == 0) strata_bench::Die("malloc_free_pair: --size must be > 0");
  const size_t size = opt.size < 0 ? 16 : static_cast<size_t>(opt.size);
  const long iters = strata_bench::Scaled(opt.iters < 0 ? 1'000'000 : opt.iters,
                                          opt, 0);
  uint64_t sum = 0;
  if (opt.empty) {
    for (long i = 0; i < iters; ++i) {
      void* p = FakeMalloc(size);
      *static_cast<volatile unsigned char*>(p) = static_cast<unsigned char>(i);
      FakeFree(p);
    }
  } else {
    for (long i = 0; i < iters; ++i) {
      void* p = std::malloc(size);
      if (p == nullptr) strata_bench::Die("malloc_free_pair: malloc failed");
      *static_cast<volatile unsigned char*>(p) = static_cast<unsigned char>(i);
      std::free(p);
    }
  }
  sum = static_cast<uint64_t>(iters) * 1000003u + size;
  strata_bench::PrintChecksum(sum);
  return 0;
}
