// bench/workloads/hoard_worker.h: the worker of Hoard's cache-thrash and
// cache-scratch benchmarks (Berger et al., ASPLOS 2000), shared by
// cache_thrash_single and cache_scratch_single.
//
// Contract: HoardWorker(iterations, size, writes) allocates one object of
// `size` bytes with new[], writes every byte `writes` times (a volatile
// store and a volatile load back, as the original's
// `obj[k] = k; volatile char ch = obj[k]; ch++;` means to), checks the
// final bytes, frees it with delete[], and repeats `iterations` times; it
// returns the sum of the final bytes (a function of its arguments only).
// HoardParams reads the originals' parameters from the flags: mimalloc-bench
// runs `cache-thrash T 1000 1 2000000 T` (T threads, 1000 iterations,
// 1-byte objects, 2M writes per byte split over the threads).
// Thread-safety: HoardWorker is called by each worker on its own object.
#ifndef STRATA_BENCH_WORKLOADS_HOARD_WORKER_H_
#define STRATA_BENCH_WORKLOADS_HOARD_WORKER_H_

#include <cstddef>
#include <cstdint>

#include "bench/workloads/common.h"

namespace strata_bench {

struct HoardParams {
  long iterations;  // objects each worker allocates, one after the other
  size_t size;      // bytes per object
  long writes;      // times each byte is written, per worker
};

// --scale 1.0 is 1000 iterations x 300k writes per byte in total
// (mimalloc-bench: 2M; this fits the 0.3-1.5 s budget), split over the
// threads as the original splits its repetitions; --size (default 1) is
// the object's size.
inline HoardParams ReadHoardParams(const Options& o) {
  HoardParams p;
  p.iterations = 1000;
  p.size = o.size < 0 ? 1 : static_cast<size_t>(o.size);
  if (p.size == 0) Die("--size must be > 0");
  p.writes = Scaled(300'000, o, o.threads) / o.threads;
  return p;
}

inline uint64_t HoardWorker(const HoardParams& p) {
  uint64_t sum = 0;
  for (long i = 0; i < p.iterations; ++i) {
    char* obj = new char[p.size];
    volatile char* v = obj;
    for (long j = 0; j < p.writes; ++j) {
      for (size_t k = 0; k < p.size; ++k) {
        v[k] = static_cast<char>(k + static_cast<size_t>(j));
        volatile char ch = v[k];
        ch = static_cast<char>(ch + 1);
      }
    }
    for (size_t k = 0; k < p.size; ++k) {
      const char want = static_cast<char>(k + static_cast<size_t>(p.writes - 1));
      if (v[k] != want) Die("hoard worker: lost a write");
      sum += static_cast<unsigned char>(want);
    }
    delete[] obj;
  }
  return sum;
}

}  // namespace strata_bench

#endif  // STRATA_BENCH_WORKLOADS_HOARD_WORKER_H_
