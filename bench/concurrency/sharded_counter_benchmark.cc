// Sharded counter Add vs one shared std::atomic fetch_add, from 1, 2, 4 and
// 8 threads.
//
//   bazel run -c opt --config=bench //bench/concurrency:sharded_counter_benchmark
#include <atomic>

#include "benchmark/benchmark.h"
#include "concurrency/cache_padded.h"
#include "concurrency/sharded_counter.h"

namespace strata {
namespace {

ShardedCounterArray<64> g_sharded;
CachePadded<std::atomic<std::int64_t>> g_shared;

void BM_ShardedCounterAdd(benchmark::State& state) {
  std::size_t i = 0;
  for (auto _ : state) g_sharded.Add(i++ & 63, 1);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_ShardedCounterAdd)->ThreadRange(1, 8)->UseRealTime();

void BM_SharedAtomicFetchAdd(benchmark::State& state) {
  for (auto _ : state) g_shared->fetch_add(1, std::memory_order_relaxed);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_SharedAtomicFetchAdd)->ThreadRange(1, 8)->UseRealTime();

void BM_ShardedCounterSum64(benchmark::State& state) {
  std::int64_t out[64];
  for (auto _ : state) {
    g_sharded.SumAll(out);
    benchmark::DoNotOptimize(out);
  }
}
BENCHMARK(BM_ShardedCounterSum64);

}  // namespace
}  // namespace strata
