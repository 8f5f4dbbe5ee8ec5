// tests/hardening/first_call_test.cc: entry points that do not allocate,
// called as a program's first call into strata (in a fresh process: a
// child whose parent never touched strata, tests/hardening/child.h). They
// read the mode or take engine locks, so they must run the engine's
// process init first (EnsureProcessInit: the mode, then the fork handlers
// of those locks).
//
//   FirstCallIs{ReleaseMemory,GetStats,FlushThreadCache,Owns}: the call
//     runs the init (each of its points seen once, through the test
//     observer internal::SetProcessInitObserverForTesting) in the mode the
//     environment asks; a fork right after it, before any allocation, runs
//     the engine's prepare handler once (the handlers are registered) and
//     its child allocates, frees and counts; the statistics are exact: 0
//     before the first allocation, then every block allocated and freed.
//     Without the init in those entry points the init ran only at the first
//     allocation: no point seen by then, the fork ran no prepare handler.
//   ThreadsCallingThemWhileForking: in a fresh process, a thread calls
//     ReleaseMemory and GetStats in a loop (never allocating; the page
//     heap's, the central pools' and the registry's locks taken again and
//     again) while the main thread forks 40 times; every child allocates
//     (small, large, huge blocks: those locks) under a watchdog. Without
//     the fork handlers, a child inherits a lock the looping thread held
//     and waits for it forever.
//
// Each case in normal and hardened mode. TSan does not support fork() in a
// multithreaded process: tagged no-tsan.
#include <sched.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <tuple>

#include <gtest/gtest.h>

#include "alloc/internal/hardening.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"

namespace strata {
namespace {

using internal::ProcessInitPoint;
using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

constexpr int kNumInitPoints = 3;
constexpr int kChildDeadlineMs = 10000;
std::atomic<int> g_points[kNumInitPoints];

void CountPoint(ProcessInitPoint point) { g_points[static_cast<int>(point)].fetch_add(1); }

int WaitChild(pid_t pid) { return testing::WaitChildFor(pid, kChildDeadlineMs); }

// A fork child's work: small, large and huge blocks (the central pools'
// and the page heap's locks), then exact counts. Exit code (0: fine).
int ForkChildWork() {
  alarm(static_cast<unsigned>(kChildDeadlineMs / 1000 - 2));  // default action: dies
  const Stats before = GetStats();
  constexpr int kBlocks = 64;
  void* blocks[kBlocks + 2];
  for (int i = 0; i < kBlocks; ++i) {
    blocks[i] = Allocate(static_cast<std::size_t>(16 + i * 40));
    if (blocks[i] == nullptr) return 3;
    std::memset(blocks[i], 0x5a, 16);
  }
  blocks[kBlocks] = Allocate(100000);
  blocks[kBlocks + 1] = Allocate(std::size_t{6} << 20);
  if (blocks[kBlocks] == nullptr || blocks[kBlocks + 1] == nullptr) return 4;
  const Stats during = GetStats();
  for (void* p : blocks) Free(p);
  FlushThreadCache();
  const Stats after = GetStats();
  if (during.allocations - before.allocations != kBlocks + 2) return 5;
  if (during.live_objects - before.live_objects != kBlocks + 2) return 6;
  if (after.live_objects != before.live_objects || after.live_bytes != before.live_bytes) return 7;
  return 0;
}

enum class FirstCall { kReleaseMemory, kGetStats, kFlushThreadCache, kOwns };

void Call(FirstCall call) {
  switch (call) {
    case FirstCall::kReleaseMemory:
      (void)ReleaseMemory();
      break;
    case FirstCall::kGetStats:
      (void)GetStats();
      break;
    case FirstCall::kFlushThreadCache:
      FlushThreadCache();
      break;
    case FirstCall::kOwns: {
      int local = 0;
      if (Owns(&local)) _exit(9);
      break;
    }
  }
}

// In a fresh process: `call` first, then the checks above. Exit code.
[[noreturn]] void FirstCallThenFork(FirstCall call, bool hardened) {
  internal::SetProcessInitObserverForTesting(&CountPoint);
  Call(call);
  for (auto& n : g_points) {
    if (n.load() != 1) _exit(2);  // the init did not run (or ran twice)
  }
  if (internal::Hardened() != hardened) _exit(3);
  const Stats empty = GetStats();
  if (empty.allocations != 0 || empty.frees != 0 || empty.live_objects != 0 || empty.live_bytes != 0 ||
      empty.threads_with_cache != 0) {
    _exit(4);
  }
  // A fork before any allocation: the engine's fork handlers must be
  // registered by now (their prepare runs once).
  const std::uint64_t prepares = internal::ForkPrepareRuns();
  const pid_t pid = fork();
  if (pid == 0) _exit(ForkChildWork());
  if (pid < 0) _exit(5);
  const bool prepared_once = internal::ForkPrepareRuns() - prepares == 1;
  const int code = WaitChild(pid);
  if (!prepared_once) _exit(6);
  if (code != 0) _exit(code == -1 ? 7 : code == -2 ? 8 : 10 + code);
  // Exact counts in this process too: nothing yet, then every block.
  const int own = ForkChildWork();
  if (own != 0) _exit(30 + own);
  const Stats s = GetStats();
  if (s.allocations != 66 || s.frees != 66 || s.live_objects != 0 || s.live_bytes != 0) _exit(40);
  _exit(0);
}

// In a fresh process: a thread whose only strata calls are ReleaseMemory
// and GetStats loops while the main thread forks. Exit code.
[[noreturn]] void ThreadsCallingThemWhileForking() {
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> rounds{0};
  std::thread caller([&stop, &rounds] {
    while (!stop.load(std::memory_order_relaxed)) {
      (void)ReleaseMemory();
      (void)GetStats().committed_bytes;
      rounds.fetch_add(1, std::memory_order_relaxed);
    }
  });
  // Fork once the thread runs (a starting thread may hold a lock of a
  // sanitizer's runtime, see fork_test).
  while (rounds.load() < 2) sched_yield();
  int result = 0;
  for (int i = 0; i < 40 && result == 0; ++i) {
    const std::uint64_t seen = rounds.load();
    while (rounds.load() == seen) sched_yield();  // the thread is in its loop
    const pid_t pid = fork();
    if (pid == 0) _exit(ForkChildWork());
    if (pid < 0) {
      result = 2;
      break;
    }
    const int code = WaitChild(pid);
    if (code != 0) result = code == -1 ? 3 : code == -2 ? 4 : 10 + code;
  }
  stop.store(true);
  caller.join();
  _exit(result);
}

const char* FirstCallName(FirstCall call) {
  switch (call) {
    case FirstCall::kReleaseMemory:
      return "ReleaseMemory";
    case FirstCall::kGetStats:
      return "GetStats";
    case FirstCall::kFlushThreadCache:
      return "FlushThreadCache";
    case FirstCall::kOwns:
      return "Owns";
  }
  return "?";
}

class FirstCallTest : public ::testing::TestWithParam<std::tuple<Mode, FirstCall>> {};

TEST_P(FirstCallTest, RunsTheProcessInit) {
  const Mode mode = std::get<0>(GetParam());
  const FirstCall call = std::get<1>(GetParam());
  const bool hardened = mode == Mode::kHardened || internal::kHardenedBuild;
  ChildResult r = RunInChild([=] { FirstCallThenFork(call, hardened); }, mode, 30000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << FirstCallName(call) << ": " << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(
    BothModes, FirstCallTest,
    ::testing::Combine(::testing::Values(Mode::kNormal, Mode::kHardened),
                       ::testing::Values(FirstCall::kReleaseMemory, FirstCall::kGetStats,
                                         FirstCall::kFlushThreadCache, FirstCall::kOwns)),
    [](const ::testing::TestParamInfo<std::tuple<Mode, FirstCall>>& info) {
      return std::string(testing::ModeName(std::get<0>(info.param))) + "_" +
             FirstCallName(std::get<1>(info.param));
    });

class FirstCallsWhileForking : public ::testing::TestWithParam<Mode> {};

TEST_P(FirstCallsWhileForking, ThreadsCallingThemWhileForking) {
  ChildResult r = RunInChild([] { ThreadsCallingThemWhileForking(); }, GetParam(), 60000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(BothModes, FirstCallsWhileForking, ::testing::Values(Mode::kNormal, Mode::kHardened),
                         testing::ModeParamName());

}  // namespace
}  // namespace strata
