// //concurrency (the umbrella target) exposes every primitive, and each is
// constant-initialisable with a trivial destructor: the property that lets
// the allocator keep them as globals used before main() and after exit().
#include <type_traits>

#include "concurrency/base/raw_memory.h"
#include "concurrency/base/spin_lock.h"
#include "concurrency/base/thread_exit.h"
#include "concurrency/cache_padded.h"
#include "concurrency/epoch/collector.h"
#include "concurrency/mpsc_queue.h"
#include "concurrency/sharded_counter.h"
#include "concurrency/tagged_ptr.h"
#include "concurrency/treiber_stack.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

struct Node {
  Node* next = nullptr;
};

constinit SpinLock g_lock;
constinit RawRecordArena g_arena;
constinit CachePadded<std::atomic<int>> g_padded;
constinit TreiberStack<Node> g_stack;
constinit MpscQueue<Node> g_queue;
constinit ShardedCounterArray<16> g_counters;
constinit epoch::Collector g_collector;
constinit ThreadExitHook g_hook = {nullptr, nullptr, nullptr};

static_assert(std::is_trivially_destructible_v<SpinLock>);
static_assert(std::is_trivially_destructible_v<RawRecordArena>);
static_assert(std::is_trivially_destructible_v<TreiberStack<Node>>);
static_assert(std::is_trivially_destructible_v<MpscQueue<Node>>);
static_assert(std::is_trivially_destructible_v<ShardedCounterArray<16>>);
static_assert(std::is_trivially_destructible_v<epoch::Collector>);
static_assert(sizeof(TreiberStack<Node>) == 8);

TEST(UmbrellaTest, GlobalsAreUsable) {
  Node a;
  g_stack.Push(&a);
  EXPECT_EQ(g_stack.Pop(), &a);
  g_queue.Push(&a);
  EXPECT_EQ(g_queue.Pop(), &a);
  g_counters.Add(3, 2);
  EXPECT_EQ(g_counters.Sum(3), 2);
  { auto guard = g_collector.Pin(); }
  EXPECT_NE(g_arena.Allocate(8, 8), nullptr);
  EXPECT_TRUE(g_lock.TryLock());
  g_lock.Unlock();
  EXPECT_EQ(g_hook.fn, nullptr);
  g_padded->store(1);
  EXPECT_EQ(g_padded->load(), 1);
}

}  // namespace
}  // namespace strata
