// Epoch-based reclamation: the cost of a pin/unpin pair (outermost and
// nested), and retire throughput (each iteration pins, retires one object
// with a trivial deleter and unpins; collection cost is included, as bags
// fill and are freed), from 1, 2, 4 and 8 threads.
//
//   bazel run -c opt --config=bench //bench/concurrency:epoch_benchmark
#include "benchmark/benchmark.h"
#include "concurrency/epoch/collector.h"

namespace strata::epoch {
namespace {

void BM_PinUnpin(benchmark::State& state) {
  Collector& c = GlobalCollector();
  for (auto _ : state) {
    auto guard = c.Pin();
    benchmark::DoNotOptimize(&guard);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PinUnpin)->ThreadRange(1, 8)->UseRealTime();

void BM_NestedPinUnpin(benchmark::State& state) {
  Collector& c = GlobalCollector();
  auto outer = c.Pin();
  for (auto _ : state) {
    auto guard = c.Pin();
    benchmark::DoNotOptimize(&guard);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_NestedPinUnpin);

void NoopDeleter(void* p, void*) { benchmark::DoNotOptimize(p); }

void BM_PinRetireUnpin(benchmark::State& state) {
  Collector& c = GlobalCollector();
  static int objects[8];
  void* obj = &objects[state.thread_index()];
  for (auto _ : state) {
    auto guard = c.Pin();
    c.Retire(obj, &NoopDeleter);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_PinRetireUnpin)->ThreadRange(1, 8)->UseRealTime();

void BM_RetireUnpinned(benchmark::State& state) {
  Collector& c = GlobalCollector();
  static int objects[8];
  void* obj = &objects[state.thread_index()];
  for (auto _ : state) c.Retire(obj, &NoopDeleter);
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_RetireUnpinned)->ThreadRange(1, 8)->UseRealTime();

}  // namespace
}  // namespace strata::epoch
