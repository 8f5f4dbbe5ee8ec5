// bench/micro/span_tier_benchmark.cc: the central pool's span tier
// (alloc/internal/central_pool.h, tier 2) on a pool of its own, with
// Google Benchmark: objects handed back to their spans as batches of
// addresses (InsertBatch of a partial batch: the spans' path) and taken out
// again by a thread cache's refill (RemoveForCache), per object.
//   - ordered: each batch is one run of neighbouring blocks, as a program
//     that frees in the order it allocated gives back (and the batches cut
//     out of an order that InsertBatch sends to the spans are made of);
//   - shuffled: the same objects in no order (every block its own run).
// Both move the same objects through the same spans; the difference is
// what InsertToSpans can do with runs (their bits set a bitmap word at a
// time). Run: bazel run -c opt //bench/micro:span_tier_benchmark
#include <algorithm>
#include <cstdint>
#include <random>
#include <vector>

#include <benchmark/benchmark.h>

#include "alloc/internal/cache_slots.h"
#include "alloc/internal/central_pool.h"
#include "alloc/internal/size_classes.h"
#include "alloc/strata.h"

namespace strata::internal {
namespace {

constinit CentralPool::Transfer::Slots g_slots;
constinit CentralPool g_pool(&g_slots);

void BM_SpanTierRoundTrip(benchmark::State& state) {
  const bool shuffled = state.range(0) != 0;
  (void)strata::GoodSize(1);  // process init
  const int c = SizeToClass(64);
  const int batch = ClassInfo(c).batch;
  // 64 batches' worth out of the pool, then given back in address order.
  constexpr int kBatches = 64;
  std::vector<FreeObject*> objects;
  std::vector<FreeObject*> out(RefillBound(c));
  while (objects.size() < static_cast<std::size_t>(kBatches * batch)) {
    const int got = g_pool.RemoveForCache(c, batch, false, 0, out.data());
    if (got == 0) {
      state.SkipWithError("out of memory");
      return;
    }
    objects.insert(objects.end(), out.begin(), out.begin() + got);
  }
  // Each round gives the objects back in `order` (indices into the
  // objects as the last refills handed them out, in the spans' scan
  // order): the identity, or a fixed random permutation.
  std::vector<std::uint32_t> order(objects.size());
  for (std::uint32_t k = 0; k < order.size(); ++k) order[k] = k;
  if (shuffled) std::shuffle(order.begin(), order.end(), std::mt19937_64(42));
  std::vector<FreeObject*> given(objects.size());
  // A partial batch goes to the spans (not reuse_soon).
  const int give = batch - 1;
  std::int64_t moved = 0;
  for (auto _ : state) {
    for (std::size_t k = 0; k < objects.size(); ++k) given[k] = objects[order[k]];
    for (std::size_t at = 0; at < given.size(); at += static_cast<std::size_t>(give)) {
      const int n = static_cast<int>(std::min<std::size_t>(static_cast<std::size_t>(give), given.size() - at));
      g_pool.InsertBatch(c, given.data() + at, n, /*reuse_soon=*/false);
    }
    // Out again, refill by refill, in hand-out order (a refill's array
    // hands out its last slot first).
    std::size_t at = 0;
    while (at < objects.size()) {
      const int got = g_pool.RemoveForCache(c, batch, false, 0, out.data());
      if (got == 0) break;
      for (int k = got - 1; k >= 0 && at < objects.size(); --k) objects[at++] = out[static_cast<std::size_t>(k)];
    }
    moved += static_cast<std::int64_t>(objects.size());
  }
  state.SetItemsProcessed(moved);
}
BENCHMARK(BM_SpanTierRoundTrip)->ArgName("shuffled")->Arg(0)->Arg(1);

}  // namespace
}  // namespace strata::internal

BENCHMARK_MAIN();
