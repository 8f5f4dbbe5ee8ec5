// tests/hardening/process_init_test.cc: threads racing into the engine's
// one-time process init (EnsureProcessInit, alloc/internal/thread_cache.cc).
//
//   ThreadsRacingTheFirstAllocation: in a fresh process, 8 threads released
//     together make their first allocation; the first runs the init, paused
//     (a test observer) before the fork handlers so that the others wait
//     for it in its own process (the pid in the init's state is theirs: no
//     takeover). Every thread then sees the mode decided by the init and
//     allocates, writes and frees blocks of several classes; the init ran
//     once (each point observed once). Also under TSan (no fork with
//     threads here): the settings the init writes must reach every thread
//     through the init's state.
// The fork cases of the init are in fork_test (ForkDuringProcessInit*).
#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/hardening.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"

namespace strata {
namespace {

using internal::ProcessInitPoint;
using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

constexpr int kThreads = 8;
std::atomic<int> g_points[3];

void CountAndPause(ProcessInitPoint point) {
  g_points[static_cast<int>(point)].fetch_add(1);
  // Long enough for the other threads to reach the init and wait.
  if (point == ProcessInitPoint::kForkHandlers) usleep(20000);
}

// Exits 0 when every thread allocated in the expected mode.
[[noreturn]] void RaceTheFirstAllocation(bool hardened) {
  internal::SetProcessInitObserverForTesting(&CountAndPause);
  std::atomic<bool> go{false};
  std::atomic<int> ready{0};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, hardened, &go, &ready, &failures] {
      ready.fetch_add(1);
      while (!go.load()) sched_yield();
      void* first = Allocate(static_cast<std::size_t>(16 + t * 8));
      if (first == nullptr || internal::Hardened() != hardened) failures.fetch_add(1);
      for (int i = 0; i < 2000; ++i) {
        const auto n = static_cast<std::size_t>(1 + (i * 131 + t) % 3000);
        void* p = Allocate(n);
        if (p == nullptr) {
          failures.fetch_add(1);
          break;
        }
        std::memset(p, t, n);
        Free(p);
      }
      Free(first);
    });
  }
  while (ready.load() != kThreads) sched_yield();
  go.store(true);
  for (auto& t : threads) t.join();
  if (failures.load() != 0) _exit(2);
  for (auto& n : g_points) {
    if (n.load() != 1) _exit(3);
  }
  _exit(0);
}

class ProcessInit : public ::testing::TestWithParam<Mode> {};

TEST_P(ProcessInit, ThreadsRacingTheFirstAllocation) {
  const Mode mode = GetParam();
  const bool hardened = mode == Mode::kHardened || internal::kHardenedBuild;
  ChildResult r = RunInChild([hardened] { RaceTheFirstAllocation(hardened); }, mode, 60000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(BothModes, ProcessInit, ::testing::Values(Mode::kNormal, Mode::kHardened),
                         testing::ModeParamName());

}  // namespace
}  // namespace strata
