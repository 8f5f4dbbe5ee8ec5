// Treiber stack vs a std::mutex-guarded intrusive stack: a pop followed by
// a push of the popped node, from 1, 2, 4 and 8 threads sharing one stack.
//
//   bazel run -c opt --config=bench //bench/concurrency:treiber_stack_benchmark
#include <mutex>

#include "benchmark/benchmark.h"
#include "concurrency/treiber_stack.h"

namespace strata {
namespace {

struct Node {
  Node* next = nullptr;
};

// Enough nodes that the stack never runs dry (8 threads each hold at most
// one at a time); they stay in the stack between benchmarks.
constexpr int kNodes = 64;

class MutexStack {
 public:
  void Push(Node* n) {
    std::lock_guard<std::mutex> lock(mu_);
    n->next = head_;
    head_ = n;
  }
  Node* Pop() {
    std::lock_guard<std::mutex> lock(mu_);
    Node* n = head_;
    if (n != nullptr) head_ = n->next;
    return n;
  }

 private:
  std::mutex mu_;
  Node* head_ = nullptr;
};

TreiberStack<Node> g_treiber;
MutexStack g_mutex_stack;
Node g_treiber_nodes[kNodes];
Node g_mutex_nodes[kNodes];

[[maybe_unused]] const bool g_filled = [] {
  for (auto& n : g_treiber_nodes) g_treiber.Push(&n);
  for (auto& n : g_mutex_nodes) g_mutex_stack.Push(&n);
  return true;
}();

template <typename Stack>
void PopPush(benchmark::State& state, Stack& stack) {
  for (auto _ : state) {
    Node* n = stack.Pop();
    benchmark::DoNotOptimize(n);
    if (n != nullptr) stack.Push(n);
  }
  state.SetItemsProcessed(state.iterations());  // one pop+push pair each
}

void BM_TreiberPopPush(benchmark::State& state) { PopPush(state, g_treiber); }
void BM_MutexStackPopPush(benchmark::State& state) { PopPush(state, g_mutex_stack); }

BENCHMARK(BM_TreiberPopPush)->ThreadRange(1, 8)->UseRealTime();
BENCHMARK(BM_MutexStackPopPush)->ThreadRange(1, 8)->UseRealTime();

}  // namespace
}  // namespace strata
