// bench/pmr/pmr_benchmark.cc: strata's std::pmr resources against the
// standard library's and oneTBB's, at 1, 2 and 8 threads.
//
// Workload ("churn"): each iteration allocates kBatch blocks of mixed small
// sizes (16..512 bytes, 16-byte aligned) and frees them in allocation order.
// "Shared" benchmarks use one resource from every thread (thread-safe
// resources only); "PerThread" ones give each thread its own resource (the
// single-threaded resources). Monotonic resources free nothing: they are
// reset every kResetEvery iterations (the reset is timed, as it is part of
// their cost).
//
//   bazel run --config=bench //bench/pmr:pmr_benchmark
#include <array>
#include <cstddef>
#include <map>
#include <memory_resource>

#include "alloc/pmr.h"
#include "benchmark/benchmark.h"
#include "oneapi/tbb/scalable_allocator.h"

namespace {

constexpr int kBatch = 32;
constexpr std::array<std::size_t, 8> kSizes = {16, 32, 48, 64, 96, 128, 256, 512};
constexpr std::size_t kAlignment = alignof(std::max_align_t);
constexpr int kResetEvery = 256;

void Churn(benchmark::State& state, std::pmr::memory_resource* r) {
  void* ptrs[kBatch];
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) ptrs[i] = r->allocate(kSizes[i % kSizes.size()], kAlignment);
    benchmark::DoNotOptimize(ptrs);
    for (int i = 0; i < kBatch; ++i) r->deallocate(ptrs[i], kSizes[i % kSizes.size()], kAlignment);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

template <typename Reset>
void ChurnMonotonic(benchmark::State& state, std::pmr::memory_resource* r, Reset reset) {
  void* ptrs[kBatch];
  int round = 0;
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) ptrs[i] = r->allocate(kSizes[i % kSizes.size()], kAlignment);
    benchmark::DoNotOptimize(ptrs);
    if (++round == kResetEvery) {
      reset();
      round = 0;
    }
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}

// --- Thread-safe resources, one instance shared by every thread ----------

std::pmr::memory_resource* StrataGlobal() { return strata::pmr::GlobalResource(); }
std::pmr::memory_resource* StrataPool() {
  static auto* r = new strata::pmr::PoolResource();
  return r;
}
std::pmr::memory_resource* StdSynchronizedPool() {
  static auto* r = new std::pmr::synchronized_pool_resource();
  return r;
}
std::pmr::memory_resource* TbbScalable() { return tbb::scalable_memory_resource(); }
std::pmr::memory_resource* StdNewDelete() { return std::pmr::new_delete_resource(); }

template <std::pmr::memory_resource* (*Get)()>
void BM_Shared(benchmark::State& state) {
  Churn(state, Get());
}

BENCHMARK_TEMPLATE(BM_Shared, StrataPool)
    ->Name("Shared/strata::PoolResource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Shared, StrataGlobal)
    ->Name("Shared/strata::GlobalResource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Shared, StdSynchronizedPool)
    ->Name("Shared/std::synchronized_pool_resource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Shared, TbbScalable)
    ->Name("Shared/tbb::scalable_memory_resource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_Shared, StdNewDelete)
    ->Name("Shared/std::new_delete_resource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

// The concurrent arena, shared: reset only between runs (it cannot be reset
// while threads use it), so the run length is fixed to bound its memory.
void BM_SharedConcurrentArena(benchmark::State& state) {
  static auto* arena = new strata::pmr::ConcurrentMonotonicArena(
      strata::pmr::ArenaOptions{.initial_chunk_size = 64 << 10, .max_chunk_size = 4 << 20});
  if (state.thread_index() == 0) arena->Reset();  // before the timed loop
  void* ptrs[kBatch];
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) {
      ptrs[i] = arena->allocate(kSizes[i % kSizes.size()], kAlignment);
    }
    benchmark::DoNotOptimize(ptrs);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_SharedConcurrentArena)
    ->Name("Shared/strata::ConcurrentMonotonicArena")
    ->Iterations(20000)
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

// --- Single-threaded resources, one instance per thread ------------------

void BM_PerThreadUnsynchronizedPool(benchmark::State& state) {
  std::pmr::unsynchronized_pool_resource r;
  Churn(state, &r);
}
BENCHMARK(BM_PerThreadUnsynchronizedPool)
    ->Name("PerThread/std::unsynchronized_pool_resource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

void BM_PerThreadStrataPool(benchmark::State& state) {
  strata::pmr::PoolResource r;
  Churn(state, &r);
}
BENCHMARK(BM_PerThreadStrataPool)
    ->Name("PerThread/strata::PoolResource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

void BM_PerThreadStdMonotonic(benchmark::State& state) {
  std::pmr::monotonic_buffer_resource r;
  ChurnMonotonic(state, &r, [&r] { r.release(); });
}
BENCHMARK(BM_PerThreadStdMonotonic)
    ->Name("PerThread/std::monotonic_buffer_resource")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

void BM_PerThreadStrataArena(benchmark::State& state) {
  strata::pmr::MonotonicArena r;
  ChurnMonotonic(state, &r, [&r] { r.Reset(); });
}
BENCHMARK(BM_PerThreadStrataArena)
    ->Name("PerThread/strata::MonotonicArena")
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

// --- A container workload: std::pmr::map insert/erase ---------------------

template <std::pmr::memory_resource* (*Get)()>
void BM_SharedMap(benchmark::State& state) {
  std::pmr::memory_resource* r = Get();
  for (auto _ : state) {
    std::pmr::map<int, int> m(r);
    for (int i = 0; i < 256; ++i) m.emplace(i * 7919 % 1000, i);
    benchmark::DoNotOptimize(m);
  }
  state.SetItemsProcessed(state.iterations() * 256);
}
BENCHMARK_TEMPLATE(BM_SharedMap, StrataPool)
    ->Name("SharedMap/strata::PoolResource")
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_SharedMap, StdSynchronizedPool)
    ->Name("SharedMap/std::synchronized_pool_resource")
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();
BENCHMARK_TEMPLATE(BM_SharedMap, TbbScalable)
    ->Name("SharedMap/tbb::scalable_memory_resource")
    ->Threads(1)
    ->Threads(8)
    ->UseRealTime();

}  // namespace
