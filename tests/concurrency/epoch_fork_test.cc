// fork() with the epoch collector (and sharded counters) in use: the child
// must be able to pin, retire and collect even though threads that were
// pinned or held garbage in the parent do not exist in the child.
//
// The child reports through its exit status only (no gtest in the child)
// and leaves with _exit, so no atexit handlers, sanitizer leak checks or
// gtest teardown run twice.
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <thread>

#include "concurrency/epoch/collector.h"
#include "concurrency/sharded_counter.h"
#include "gtest/gtest.h"

namespace strata::epoch {
namespace {

std::atomic<int> g_freed{0};
void CountFree(void*, void*) { g_freed.fetch_add(1); }

int g_objs[64];

// Waits for a child and returns its exit code (or 100 + signal).
int WaitChild(pid_t pid) {
  int status = 0;
  if (waitpid(pid, &status, 0) != pid) return 200;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 100 + WTERMSIG(status);
  return 201;
}

TEST(EpochForkTest, ChildCanReclaimDespiteThreadsPinnedInTheParent) {
  Collector c;
  ShardedCounter counter;
  std::atomic<int> ready{0};
  std::atomic<bool> done{false};
  g_freed = 0;
  // Thread A: pinned, with 5 objects in its partial bag.
  std::thread a([&] {
    auto g = c.Pin();
    for (int i = 0; i < 5; ++i) c.Retire(&g_objs[i], &CountFree);
    counter.Add(100);
    ready.fetch_add(1);
    while (!done.load()) std::this_thread::yield();
  });
  // Thread B: not pinned, 3 objects in its partial bag.
  std::thread b([&] {
    for (int i = 5; i < 8; ++i) c.Retire(&g_objs[i], &CountFree);
    counter.Add(10);
    ready.fetch_add(1);
    while (!done.load()) std::this_thread::yield();
  });
  while (ready.load() < 2) std::this_thread::yield();
  c.Retire(&g_objs[8], &CountFree);  // the forking thread's own garbage
  counter.Add(1);

  // In the parent, A's pin blocks reclamation.
  for (int i = 0; i < 5; ++i) c.Collect();
  EXPECT_EQ(g_freed.load(), 0);

  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    int code = 0;
    // A and B are gone: A's pin is released, their bags are orphaned.
    if (c.PendingForTesting() != 9) code |= 1;
    for (int i = 0; i < 5; ++i) c.Collect();
    if (g_freed.load() != 9) code |= 2;
    if (c.PendingForTesting() != 0) code |= 4;
    // Normal use in the child.
    {
      auto g = c.Pin();
      c.Retire(&g_objs[9], &CountFree);
    }
    for (int i = 0; i < 3; ++i) c.Collect();
    if (g_freed.load() != 10) code |= 8;
    // New threads would work too, but sanitizers do not support starting
    // threads after a multi-threaded fork; the global collector is usable:
    GlobalCollector().Retire(&g_objs[10], &CountFree);
    for (int i = 0; i < 3; ++i) GlobalCollector().Collect();
    if (g_freed.load() != 11) code |= 16;
    // Counters keep the parent's values and stay usable.
    if (counter.Sum() != 111) code |= 32;
    counter.Add(1000);
    if (counter.Sum() != 1111) code |= 64;
    _exit(code);
  }
  EXPECT_EQ(WaitChild(pid), 0);
  // The parent is unaffected: A is still pinned there.
  c.Collect();
  EXPECT_EQ(g_freed.load(), 0);
  EXPECT_EQ(counter.Sum(), 111);
  done = true;
  a.join();
  b.join();
  for (int i = 0; i < 5; ++i) c.Collect();
  EXPECT_EQ(g_freed.load(), 9);
}

// Forking while other threads hammer the collector: the child must never
// hang or crash, and must still reclaim.
TEST(EpochForkTest, ForkDuringConcurrentUse) {
  Collector c;
  std::atomic<bool> stop{false};
  std::thread workers[3];
  std::atomic<int> worker_freed{0};
  static int obj;
  for (auto& w : workers) {
    w = std::thread([&] {
      while (!stop.load(std::memory_order_relaxed)) {
        auto g = c.Pin();
        c.Retire(&obj, [](void*, void* ctx) { static_cast<std::atomic<int>*>(ctx)->fetch_add(1); },
                 &worker_freed);
      }
    });
  }
  for (int round = 0; round < 5; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      g_freed = 0;
      int code = 0;
      {
        auto g = c.Pin();
        c.Retire(&obj, &CountFree);
      }
      for (int i = 0; i < 4; ++i) c.Collect();
      if (g_freed.load() != 1) code |= 1;
      _exit(code);
    }
    EXPECT_EQ(WaitChild(pid), 0) << round;
  }
  stop = true;
  for (auto& w : workers) w.join();
  for (int i = 0; i < 4; ++i) c.Collect();
  EXPECT_EQ(c.PendingForTesting(), 0u);
}

}  // namespace
}  // namespace strata::epoch
