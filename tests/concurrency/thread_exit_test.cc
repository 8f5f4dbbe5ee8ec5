// Tests for concurrency/base/thread_exit.h.
#include "concurrency/base/thread_exit.h"

#include <pthread.h>

#include <atomic>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

// Per-thread storage for hooks, the way strata uses them: constinit,
// trivially destructible thread_local.
struct PerThread {
  ThreadExitHook hooks[4];
};
constinit thread_local PerThread t_per_thread = {};

// Records the order in which hooks run (test-owned, reset per test).
struct Log {
  std::atomic<int> n{0};
  int order[32];
  void Add(int v) {
    int i = n.fetch_add(1);
    if (i < 32) order[i] = v;
  }
};

Log* g_log = nullptr;

void Append(void* arg) { g_log->Add(static_cast<int>(reinterpret_cast<std::intptr_t>(arg))); }

void* Tag(int v) { return reinterpret_cast<void*>(static_cast<std::intptr_t>(v)); }

TEST(ThreadExitTest, KeyIsBelow32SoSetSpecificNeverAllocates) {
  EXPECT_LT(ThreadExitKeyForTesting(), 32u);
}

TEST(ThreadExitTest, HooksRunAtExitInReverseRegistrationOrder) {
  Log log;
  g_log = &log;
  std::thread t([] {
    for (int i = 0; i < 3; ++i) {
      t_per_thread.hooks[i] = ThreadExitHook{&Append, Tag(i + 1), nullptr};
      RegisterThreadExitHook(&t_per_thread.hooks[i]);
    }
    EXPECT_EQ(RegisteredThreadExitHooksForTesting(), 3);
    EXPECT_EQ(g_log->n.load(), 0);  // nothing runs before exit
  });
  t.join();
  ASSERT_EQ(log.n.load(), 3);
  EXPECT_EQ(log.order[0], 3);
  EXPECT_EQ(log.order[1], 2);
  EXPECT_EQ(log.order[2], 1);
}

TEST(ThreadExitTest, RegisteringTheSameHookTwiceIsANoOp) {
  Log log;
  g_log = &log;
  std::thread t([] {
    t_per_thread.hooks[0] = ThreadExitHook{&Append, Tag(7), nullptr};
    t_per_thread.hooks[1] = ThreadExitHook{&Append, Tag(8), nullptr};
    RegisterThreadExitHook(&t_per_thread.hooks[0]);
    RegisterThreadExitHook(&t_per_thread.hooks[1]);
    RegisterThreadExitHook(&t_per_thread.hooks[0]);  // not at the head
    RegisterThreadExitHook(&t_per_thread.hooks[1]);  // at the head
    EXPECT_EQ(RegisteredThreadExitHooksForTesting(), 2);
  });
  t.join();
  ASSERT_EQ(log.n.load(), 2);
  EXPECT_EQ(log.order[0], 8);
  EXPECT_EQ(log.order[1], 7);
}

TEST(ThreadExitTest, EachThreadRunsOnlyItsOwnHooks) {
  constexpr int kThreads = 8;
  Log log;
  g_log = &log;
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([i] {
      t_per_thread.hooks[0] = ThreadExitHook{&Append, Tag(100 + i), nullptr};
      RegisterThreadExitHook(&t_per_thread.hooks[0]);
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(log.n.load(), kThreads);
  int seen = 0;
  for (int i = 0; i < kThreads; ++i) seen |= 1 << (log.order[i] - 100);
  EXPECT_EQ(seen, (1 << kThreads) - 1);
}

// A hook that registers another hook while the thread exits: the new hook
// must still run in the same exit.
void RegisterSecond(void* arg) {
  g_log->Add(1);
  RegisterThreadExitHook(static_cast<ThreadExitHook*>(arg));
}

TEST(ThreadExitTest, HookRegisteredDuringExitRuns) {
  Log log;
  g_log = &log;
  std::thread t([] {
    t_per_thread.hooks[1] = ThreadExitHook{&Append, Tag(2), nullptr};
    t_per_thread.hooks[0] = ThreadExitHook{&RegisterSecond, &t_per_thread.hooks[1], nullptr};
    RegisterThreadExitHook(&t_per_thread.hooks[0]);
  });
  t.join();
  ASSERT_EQ(log.n.load(), 2);
  EXPECT_EQ(log.order[0], 1);
  EXPECT_EQ(log.order[1], 2);
}

// A hook that re-registers itself a few times (like a cache that is used
// again by a later destructor): it runs each time it is registered.
std::atomic<int> g_reregister_budget{0};
void ReRegisterSelf(void* arg) {
  g_log->Add(9);
  if (g_reregister_budget.fetch_sub(1) > 0) RegisterThreadExitHook(static_cast<ThreadExitHook*>(arg));
}

TEST(ThreadExitTest, HookMayReRegisterItselfDuringExit) {
  Log log;
  g_log = &log;
  g_reregister_budget = 2;
  std::thread t([] {
    t_per_thread.hooks[0] = ThreadExitHook{&ReRegisterSelf, &t_per_thread.hooks[0], nullptr};
    RegisterThreadExitHook(&t_per_thread.hooks[0]);
  });
  t.join();
  EXPECT_EQ(log.n.load(), 3);  // first run + 2 re-registrations
}

// A hook that re-registers forever must not hang thread exit. (It touches
// only a global atomic: under TSan, hooks that run in glibc's last
// destructor iterations run after TSan has already finished the thread, so
// TSan does not order them before join.)
std::atomic<int> g_endless_runs{0};
void ReRegisterForever(void* arg) {
  g_endless_runs.fetch_add(1);
  RegisterThreadExitHook(static_cast<ThreadExitHook*>(arg));
}

TEST(ThreadExitTest, EndlessReRegistrationIsBounded) {
  std::thread t([] {
    t_per_thread.hooks[0] = ThreadExitHook{&ReRegisterForever, &t_per_thread.hooks[0], nullptr};
    RegisterThreadExitHook(&t_per_thread.hooks[0]);
  });
  t.join();  // must return
  EXPECT_GE(g_endless_runs.load(), 2);
  EXPECT_LE(g_endless_runs.load(), 32);
}

// A hook registered by ANOTHER key's destructor, after ours has run (glibc
// runs destructors in key order, and our key was created first): glibc's
// next destructor iteration must pick it up.
pthread_key_t g_late_key;
ThreadExitHook* g_late_hook = nullptr;
void LateKeyDestructor(void*) { RegisterThreadExitHook(g_late_hook); }

TEST(ThreadExitTest, HookRegisteredByALaterKeyDestructorRuns) {
  Log log;
  g_log = &log;
  ASSERT_EQ(pthread_key_create(&g_late_key, &LateKeyDestructor), 0);
  ASSERT_GT(g_late_key, ThreadExitKeyForTesting());
  std::thread t([] {
    t_per_thread.hooks[0] = ThreadExitHook{&Append, Tag(1), nullptr};
    t_per_thread.hooks[1] = ThreadExitHook{&Append, Tag(2), nullptr};
    g_late_hook = &t_per_thread.hooks[1];
    RegisterThreadExitHook(&t_per_thread.hooks[0]);
    pthread_setspecific(g_late_key, &t_per_thread);  // non-null: runs at exit
  });
  t.join();
  pthread_key_delete(g_late_key);
  ASSERT_EQ(log.n.load(), 2);
  EXPECT_EQ(log.order[0], 1);  // our destructor first
  EXPECT_EQ(log.order[1], 2);  // then the late registration, next iteration
}

TEST(ThreadExitTest, HooksDoNotRunWhileTheThreadLives) {
  Log log;
  g_log = &log;
  std::atomic<bool> done{false};
  std::atomic<bool> registered{false};
  std::thread t([&] {
    t_per_thread.hooks[0] = ThreadExitHook{&Append, Tag(5), nullptr};
    RegisterThreadExitHook(&t_per_thread.hooks[0]);
    registered = true;
    while (!done.load()) std::this_thread::yield();
  });
  while (!registered.load()) std::this_thread::yield();
  EXPECT_EQ(log.n.load(), 0);
  done = true;
  t.join();
  EXPECT_EQ(log.n.load(), 1);
}

}  // namespace
}  // namespace strata
