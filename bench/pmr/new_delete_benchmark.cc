// bench/pmr/new_delete_benchmark.cc: global operator new/delete and
// malloc/free, built twice (bench/pmr/BUILD.bazel): with
// malloc = "//alloc:malloc" (strata) and with the default (glibc).
//
//   bazel run --config=bench //bench/pmr:new_delete_benchmark_strata
//   bazel run --config=bench //bench/pmr:new_delete_benchmark_glibc
#include <cstddef>
#include <cstdlib>
#include <new>
#include <string>
#include <vector>

#include "benchmark/benchmark.h"

namespace {

constexpr int kBatch = 64;

// kBatch blocks of state.range(0) bytes, then their sized deletes.
void BM_NewDelete(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  void* ptrs[kBatch];
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) ptrs[i] = ::operator new(size);
    benchmark::DoNotOptimize(ptrs);
    for (int i = 0; i < kBatch; ++i) ::operator delete(ptrs[i], size);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_NewDelete)
    ->Arg(16)
    ->Arg(64)
    ->Arg(256)
    ->Arg(1024)
    ->Arg(8192)
    ->Threads(1)
    ->Threads(2)
    ->Threads(8)
    ->UseRealTime();

void BM_MallocFree(benchmark::State& state) {
  const auto size = static_cast<std::size_t>(state.range(0));
  void* ptrs[kBatch];
  for (auto _ : state) {
    for (int i = 0; i < kBatch; ++i) ptrs[i] = std::malloc(size);
    benchmark::DoNotOptimize(ptrs);
    for (int i = 0; i < kBatch; ++i) std::free(ptrs[i]);
  }
  state.SetItemsProcessed(state.iterations() * kBatch);
}
BENCHMARK(BM_MallocFree)->Arg(16)->Arg(256)->Arg(4096)->Threads(1)->Threads(8)->UseRealTime();

// Standard containers: a vector of strings built and destroyed.
void BM_VectorOfStrings(benchmark::State& state) {
  for (auto _ : state) {
    std::vector<std::string> v;
    for (int i = 0; i < 100; ++i) v.emplace_back(24 + i % 64, 'x');
    benchmark::DoNotOptimize(v.data());
  }
  state.SetItemsProcessed(state.iterations() * 100);
}
BENCHMARK(BM_VectorOfStrings)->Threads(1)->Threads(8)->UseRealTime();

}  // namespace
