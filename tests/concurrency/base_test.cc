// Unit tests for concurrency/base (SpinLock, raw_log Buffer) and
// concurrency/cache_padded.h.
#include <fcntl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <type_traits>
#include <vector>

#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"
#include "concurrency/base/spin_lock.h"
#include "concurrency/cache_padded.h"
#include "gtest/gtest.h"
#include "tests/concurrency/test_util.h"

namespace strata {
namespace {

// --- SpinLock ---------------------------------------------------------------

constinit SpinLock g_constinit_lock;  // must compile: constinit-constructible

static_assert(std::is_trivially_destructible_v<SpinLock>);

TEST(SpinLockTest, LockUnlockAndTryLock) {
  SpinLock lock;
  EXPECT_FALSE(lock.IsLocked());
  lock.Lock();
  EXPECT_TRUE(lock.IsLocked());
  EXPECT_FALSE(lock.TryLock());
  lock.Unlock();
  EXPECT_FALSE(lock.IsLocked());
  EXPECT_TRUE(lock.TryLock());
  EXPECT_FALSE(lock.TryLock());
  lock.Unlock();
  {
    SpinLockHolder holder(&g_constinit_lock);
    EXPECT_TRUE(g_constinit_lock.IsLocked());
  }
  EXPECT_FALSE(g_constinit_lock.IsLocked());
}

TEST(SpinLockTest, ResetAfterForkFreesALockHeldByAGoneThread) {
  SpinLock lock;
  lock.Lock();
  lock.ResetAfterFork();
  EXPECT_FALSE(lock.IsLocked());
  EXPECT_TRUE(lock.TryLock());
  lock.Unlock();
}

// Mutual exclusion: a non-atomic read-modify-write under the lock, by more
// threads than cores, must lose no update. Also checks that no two threads
// are inside at once.
TEST(SpinLockTest, MutualExclusionUnderContention) {
  constexpr int kThreads = 8;
  const std::int64_t iters = testing::Scaled(200000);
  SpinLock lock;
  std::int64_t counter = 0;  // guarded by lock
  int inside = 0;            // guarded by lock
  std::atomic<int> violations{0};
  testing::StartGate gate;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      gate.Wait();
      for (std::int64_t i = 0; i < iters; ++i) {
        SpinLockHolder holder(&lock);
        if (++inside != 1) violations.fetch_add(1, std::memory_order_relaxed);
        counter = counter + 1;
        --inside;
      }
    });
  }
  gate.Release();
  for (auto& t : threads) t.join();
  EXPECT_EQ(counter, kThreads * iters);
  EXPECT_EQ(violations.load(), 0);
}

// --- CachePadded ------------------------------------------------------------

static_assert(kCacheLineSize == 128);
static_assert(alignof(CachePadded<int>) == kCacheLineSize);
static_assert(sizeof(CachePadded<int>) == kCacheLineSize);
static_assert(sizeof(CachePadded<char[kCacheLineSize]>) == kCacheLineSize);
static_assert(sizeof(CachePadded<char[kCacheLineSize + 1]>) == 2 * kCacheLineSize);
static_assert(std::is_trivially_destructible_v<CachePadded<std::atomic<int>>>);

constinit CachePadded<std::atomic<std::uint64_t>> g_padded_counters[3];

TEST(CachePaddedTest, ElementsOfAnArrayAreOnDistinctLinePairs) {
  for (int i = 0; i < 3; ++i) {
    auto addr = reinterpret_cast<std::uintptr_t>(&g_padded_counters[i].value);
    EXPECT_EQ(addr % kCacheLineSize, 0u) << i;
  }
  auto a = reinterpret_cast<std::uintptr_t>(&g_padded_counters[0]);
  auto b = reinterpret_cast<std::uintptr_t>(&g_padded_counters[1]);
  EXPECT_EQ(b - a, kCacheLineSize);
}

TEST(CachePaddedTest, StackAndHeapInstancesAreAligned) {
  CachePadded<int> local(42);
  EXPECT_EQ(*local, 42);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&local) % kCacheLineSize, 0u);
  // Over-aligned operator new (C++17) honours alignas.
  auto* heap = new CachePadded<std::atomic<int>>[5];
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(reinterpret_cast<std::uintptr_t>(&heap[i]) % kCacheLineSize, 0u) << i;
    heap[i]->store(i);
  }
  EXPECT_EQ(heap[4]->load(), 4);
  delete[] heap;
}

TEST(CachePaddedTest, ForwardsConstructorArguments) {
  struct Pair {
    int a;
    int b;
    Pair(int x, int y) : a(x), b(y) {}
  };
  CachePadded<Pair> p(3, 4);
  EXPECT_EQ(p->a, 3);
  EXPECT_EQ(p->b, 4);
}

// --- raw_log ----------------------------------------------------------------

TEST(RawLogTest, BufferFormatsWithoutAllocating) {
  raw::Buffer b;
  b.Str("x=").Dec(-42).Char(' ').Udec(7).Char(' ').Hex(255).Char('|').PadDec(5, 3);
  EXPECT_EQ(std::string(b.data(), b.size()), "x=-42 7 0xff|  5");
}

TEST(RawLogTest, CheckFailureAborts) {
  // Fork so the abort does not take the test runner down; _exit-clean.
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Silence the expected FATAL line.
    int devnull = open("/dev/null", O_WRONLY);
    if (devnull >= 0) dup2(devnull, 2);
    STRATA_CHECK(1 + 1 == 3, "expected failure");
    _exit(0);  // not reached
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT) << status;
}

}  // namespace
}  // namespace strata
