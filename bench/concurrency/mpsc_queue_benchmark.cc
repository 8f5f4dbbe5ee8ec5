// MPSC queue enqueue throughput: 1, 2, 4 and 8 producers push into one
// queue while a dedicated consumer thread drains it and hands each node back
// to its producer (through a per-producer Treiber stack). On the 2-core
// machines the consumer competes with the producers for CPU time, so the
// figure is end-to-end throughput with a live consumer, not a raw exchange.
//
//   bazel run -c opt --config=bench //bench/concurrency:mpsc_queue_benchmark
#include <sched.h>

#include <atomic>
#include <mutex>
#include <thread>

#include "benchmark/benchmark.h"
#include "concurrency/mpsc_queue.h"
#include "concurrency/treiber_stack.h"

namespace strata {
namespace {

constexpr int kMaxProducers = 8;
constexpr int kNodesPerProducer = 1024;

struct Node {
  Node* next = nullptr;
  Node* free_next = nullptr;
  int owner = 0;
};

MpscQueue<Node> g_queue;
TreiberStack<Node, &Node::free_next> g_free[kMaxProducers];
Node g_nodes[kMaxProducers][kNodesPerProducer];
std::once_flag g_started;

void StartConsumer() {
  std::call_once(g_started, [] {
    for (int p = 0; p < kMaxProducers; ++p) {
      for (Node& n : g_nodes[p]) {
        n.owner = p;
        g_free[p].Push(&n);
      }
    }
    // Runs until the process exits; it only touches constinit globals.
    std::thread([] {
      for (;;) {
        Node* chain = g_queue.PopAll();
        if (chain == nullptr) {
          sched_yield();
          continue;
        }
        while (chain != nullptr) {
          Node* next = MpscQueue<Node>::NextOf(chain);
          g_free[chain->owner].Push(chain);
          chain = next;
        }
      }
    }).detach();
  });
}

void BM_MpscPush(benchmark::State& state) {
  StartConsumer();
  auto& free_list = g_free[state.thread_index()];
  std::int64_t stalls = 0;
  for (auto _ : state) {
    Node* n;
    while ((n = free_list.Pop()) == nullptr) {
      ++stalls;  // consumer behind: all our nodes are in flight
      sched_yield();
    }
    g_queue.Push(n);
  }
  state.SetItemsProcessed(state.iterations());
  state.counters["stalls"] = static_cast<double>(stalls);
}

BENCHMARK(BM_MpscPush)->ThreadRange(1, kMaxProducers)->UseRealTime();

// The raw cost of Push + Pop on one thread (no contention, no consumer).
void BM_MpscPushPopSingleThread(benchmark::State& state) {
  static MpscQueue<Node> queue;
  Node node;
  for (auto _ : state) {
    queue.Push(&node);
    benchmark::DoNotOptimize(queue.Pop());
  }
  state.SetItemsProcessed(state.iterations());
}

BENCHMARK(BM_MpscPushPopSingleThread);

}  // namespace
}  // namespace strata
