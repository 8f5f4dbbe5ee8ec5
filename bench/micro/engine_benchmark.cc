// bench/micro/engine_benchmark.cc: strata's engine API against glibc's
// malloc in one binary, with Google Benchmark.
//   - a malloc/free pair at 16 B .. 4 MiB (the fast path, and the large
//     and huge tiers);
//   - a batch of 1000 allocations, then 1000 frees (refills and overflows
//     of the thread cache through the central pools);
//   - producer/consumer: one thread allocates, another frees (cross-thread
//     frees through the freeing thread's cache and the transfer ring);
//   - the sampling stride draw: -ln(1 - u) for a uniform u, as every
//     sampled allocation draws the bytes to its next sample, with strata's
//     allocation-free log (concurrency/base/fast_math.h) against libm's.
// The binary is linked normally, so "glibc" is the system malloc and
// "strata" calls strata::Allocate/Free directly.
#include <atomic>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include <benchmark/benchmark.h>

#include "alloc/strata.h"
#include "concurrency/base/fast_math.h"

namespace {

struct Strata {
  static void* Alloc(std::size_t n) { return strata::Allocate(n); }
  static void Free(void* p) { strata::Free(p); }
};
struct Glibc {
  static void* Alloc(std::size_t n) { return std::malloc(n); }
  static void Free(void* p) { std::free(p); }
};

template <typename A>
void BM_Pair(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  for (auto _ : state) {
    void* p = A::Alloc(n);
    benchmark::DoNotOptimize(p);
    static_cast<volatile char*>(p)[0] = 1;
    A::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

template <typename A>
void BM_Batch1000(benchmark::State& state) {
  const auto n = static_cast<std::size_t>(state.range(0));
  std::vector<void*> v(1000);
  for (auto _ : state) {
    for (auto& p : v) {
      p = A::Alloc(n);
      benchmark::DoNotOptimize(p);
    }
    for (void* p : v) A::Free(p);
  }
  state.SetItemsProcessed(state.iterations() * 1000);
}

// One producer allocates blocks of 64 B and hands them over a ring; the
// consumer frees them. Items per second of the pair.
template <typename A>
void BM_ProducerConsumer(benchmark::State& state) {
  constexpr std::size_t kRing = 4096;
  std::vector<std::atomic<void*>> ring(kRing);
  std::atomic<bool> stop{false};
  std::thread consumer([&] {
    std::size_t i = 0;
    while (!stop.load(std::memory_order_relaxed)) {
      void* p = ring[i % kRing].exchange(nullptr, std::memory_order_acquire);
      if (p == nullptr) {
        std::this_thread::yield();
        continue;
      }
      A::Free(p);
      ++i;
    }
  });
  std::size_t i = 0;
  for (auto _ : state) {
    void* p = A::Alloc(64);
    static_cast<char*>(p)[0] = 1;
    while (ring[i % kRing].load(std::memory_order_relaxed) != nullptr) std::this_thread::yield();
    ring[i % kRing].store(p, std::memory_order_release);
    ++i;
  }
  stop.store(true);
  consumer.join();
  for (auto& slot : ring) {
    if (void* p = slot.load()) A::Free(p);
  }
  state.SetItemsProcessed(state.iterations());
}

struct FastLog {
  static double NegLogOneMinus(double u) { return strata::base::NegLogOneMinus(u); }
};
struct Libm {
  static double NegLogOneMinus(double u) { return -std::log1p(-u); }
};

template <typename L>
void BM_SampleStride(benchmark::State& state) {
  std::uint64_t x = 88172645463325252ull;
  for (auto _ : state) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    const double u = static_cast<double>((x * 0x2545F4914F6CDD1Dull) >> 11) * (1.0 / 9007199254740992.0);
    benchmark::DoNotOptimize(L::NegLogOneMinus(u));
  }
}

#define SIZES ->Arg(16)->Arg(64)->Arg(256)->Arg(1024)->Arg(16 << 10)->Arg(256 << 10)->Arg(4 << 20)
BENCHMARK_TEMPLATE(BM_Pair, Strata) SIZES;
BENCHMARK_TEMPLATE(BM_Pair, Glibc) SIZES;
BENCHMARK_TEMPLATE(BM_Batch1000, Strata)->Arg(16)->Arg(256)->Arg(4096);
BENCHMARK_TEMPLATE(BM_Batch1000, Glibc)->Arg(16)->Arg(256)->Arg(4096);
BENCHMARK_TEMPLATE(BM_ProducerConsumer, Strata)->UseRealTime();
BENCHMARK_TEMPLATE(BM_ProducerConsumer, Glibc)->UseRealTime();
BENCHMARK_TEMPLATE(BM_SampleStride, FastLog);
BENCHMARK_TEMPLATE(BM_SampleStride, Libm);

}  // namespace

BENCHMARK_MAIN();
