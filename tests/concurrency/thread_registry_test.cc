// Tests for concurrency/thread_registry.h.
#include "concurrency/thread_registry.h"

#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <new>
#include <thread>
#include <vector>

#include "gtest/gtest.h"

namespace strata {
namespace {

struct alignas(kCacheLineSize) TestRecord : ThreadRecord {
  int uses = 0;           // owner-only
  int generation = 0;     // owner-only; bumped by each new owner
  std::atomic<int> releases{0};
};

std::atomic<int> g_constructed{0};

ThreadRecord* Construct(void* memory, ThreadRegistry*) noexcept {
  g_constructed.fetch_add(1);
  return new (memory) TestRecord();
}

void Release(ThreadRecord* r) noexcept {
  auto* rec = static_cast<TestRecord*>(r);
  rec->releases.fetch_add(1);
  rec->uses = 0;
}

ThreadRegistry* NewRegistry() {
  ThreadRegistry* r = ThreadRegistry::Create(sizeof(TestRecord), alignof(TestRecord), &Construct,
                                             &Release, /*context=*/nullptr);
  EXPECT_NE(r, nullptr);
  return r;
}

TEST(ThreadRegistryTest, SameRecordWithinAThread) {
  ThreadRegistry* reg = NewRegistry();
  EXPECT_EQ(reg->FindCurrent(), nullptr);  // FindCurrent never creates
  ThreadRecord* a = reg->Current();
  ASSERT_NE(a, nullptr);
  EXPECT_EQ(reg->Current(), a);
  EXPECT_EQ(reg->FindCurrent(), a);
  EXPECT_EQ(a->owner.load(), CurrentThreadToken());
  EXPECT_EQ(a->registry, reg);
  EXPECT_EQ(reinterpret_cast<std::uintptr_t>(a) % kCacheLineSize, 0u);
  EXPECT_EQ(reg->RecordCount(), 1u);
}

TEST(ThreadRegistryTest, ContextIsPassedThrough) {
  int anchor = 0;
  ThreadRegistry* reg = ThreadRegistry::Create(sizeof(TestRecord), alignof(TestRecord),
                                               &Construct, nullptr, &anchor);
  ASSERT_NE(reg, nullptr);
  EXPECT_EQ(reg->context(), &anchor);
}

TEST(ThreadRegistryTest, ConcurrentThreadsGetDistinctRecords) {
  ThreadRegistry* reg = NewRegistry();
  constexpr int kThreads = 8;
  std::vector<ThreadRecord*> got(kThreads);
  std::atomic<int> arrived{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      got[t] = reg->Current();
      static_cast<TestRecord*>(got[t])->uses++;
      arrived.fetch_add(1);
      while (arrived.load() < kThreads) std::this_thread::yield();  // all alive at once
    });
  }
  for (auto& t : threads) t.join();
  for (int i = 0; i < kThreads; ++i) {
    for (int j = i + 1; j < kThreads; ++j) EXPECT_NE(got[i], got[j]);
  }
  EXPECT_EQ(reg->RecordCount(), static_cast<std::size_t>(kThreads));
  // All released at exit.
  int free_records = 0, releases = 0;
  reg->ForEach([&](ThreadRecord* r) {
    free_records += r->owner.load() == 0;
    releases += static_cast<TestRecord*>(r)->releases.load();
  });
  EXPECT_EQ(free_records, kThreads);
  EXPECT_EQ(releases, kThreads);
}

TEST(ThreadRegistryTest, RecordsAreReusedAfterExitAndHandOverState) {
  ThreadRegistry* reg = NewRegistry();
  ThreadRecord* first = nullptr;
  for (int round = 0; round < 10; ++round) {
    std::thread t([&, round] {
      auto* r = static_cast<TestRecord*>(reg->Current());
      if (round == 0) first = r;
      EXPECT_EQ(r, first);
      EXPECT_EQ(r->uses, 0);               // Release reset it
      EXPECT_EQ(r->generation, round);     // previous owner's write is visible
      r->generation++;
      r->uses++;
    });
    t.join();
  }
  EXPECT_EQ(reg->RecordCount(), 1u);
  EXPECT_EQ(static_cast<TestRecord*>(first)->releases.load(), 10);
}

// Code that runs in the exiting thread after the record's own exit hook
// (a hook registered earlier runs later) must get a record it owns again,
// not the released one from its lookup cache.
struct LateUse {
  ThreadRegistry* reg;
  std::atomic<int> owned_by_caller{-1};
  std::atomic<int> releases_after{0};
};
constinit thread_local ThreadExitHook t_late_hook = {nullptr, nullptr, nullptr};

void UseRegistryLate(void* arg) {
  auto* late = static_cast<LateUse*>(arg);
  ThreadRecord* r = late->reg->Current();
  late->owned_by_caller = r != nullptr && r->owner.load() == CurrentThreadToken();
}

TEST(ThreadRegistryTest, UseAfterOwnReleaseDuringExitReclaims) {
  LateUse late{NewRegistry()};
  std::thread t([&] {
    t_late_hook = ThreadExitHook{&UseRegistryLate, &late, nullptr};
    RegisterThreadExitHook(&t_late_hook);  // first: runs last
    static_cast<TestRecord*>(late.reg->Current())->uses++;
  });
  t.join();
  EXPECT_EQ(late.owned_by_caller.load(), 1);
  // The re-claimed record was released again by its re-registered hook.
  late.reg->ForEach([](ThreadRecord* r) { EXPECT_EQ(r->owner.load(), 0u); });
}

// More registries than cache entries, used in an interleaved way: lookups
// must always return the thread's own record of the right registry.
TEST(ThreadRegistryTest, CacheCollisionsAreResolvedByTheSlowPath) {
  constexpr int kRegistries = 3 * thread_registry_internal::kCacheEntries;
  ThreadRegistry* regs[kRegistries];
  ThreadRecord* recs[kRegistries];
  for (int i = 0; i < kRegistries; ++i) {
    regs[i] = NewRegistry();
    recs[i] = regs[i]->Current();
  }
  const int constructed = g_constructed.load();
  for (int round = 0; round < 5; ++round) {
    for (int i = 0; i < kRegistries; ++i) {
      int k = (i * 7 + round) % kRegistries;
      EXPECT_EQ(regs[k]->Current(), recs[k]);
      EXPECT_EQ(recs[k]->registry, regs[k]);
    }
  }
  EXPECT_EQ(g_constructed.load(), constructed);  // no new records
}

// In a fork child, records of threads that do not exist there are released;
// the forking thread keeps its own.
TEST(ThreadRegistryTest, ForkChildReleasesRecordsOfGoneThreads) {
  ThreadRegistry* reg = NewRegistry();
  ThreadRecord* mine = reg->Current();
  std::atomic<bool> ready{false}, done{false};
  ThreadRecord* other = nullptr;
  std::thread t([&] {
    other = reg->Current();
    ready = true;
    while (!done.load()) std::this_thread::yield();
  });
  while (!ready.load()) std::this_thread::yield();
  pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    // Child: only this thread exists. No gtest assertions here: report
    // through the exit code.
    int code = 0;
    if (other->owner.load() != 0) code |= 1;
    if (static_cast<TestRecord*>(other)->releases.load() != 1) code |= 2;
    if (mine->owner.load() != CurrentThreadToken()) code |= 4;
    if (reg->Current() != mine) code |= 8;
    _exit(code);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status)) << status;
  EXPECT_EQ(WEXITSTATUS(status), 0);
  // The parent is unaffected.
  EXPECT_EQ(other->owner.load() != 0, true);
  done = true;
  t.join();
  EXPECT_EQ(other->owner.load(), 0u);
}

}  // namespace
}  // namespace strata
