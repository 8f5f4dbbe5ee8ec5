// tests/tracking/init_fork_test.cc: a fork while another thread is inside
// the tracking layer's one-time init (tracking::EnsureTrackingInstalled,
// run as the engine's process init's last step on the thread of the
// process's first allocation; alloc/internal/staged_init.h).
//
//   ForkDuringTrackingInit*: in a fresh process (STRATA_SAMPLE_RATE=1,
//     STRATA_LEAKCHECK=1) one thread's first allocation runs the inits, the
//     tracking layer's paused at one of its points (a test observer,
//     tracking::SetTrackingInitObserverForTesting), while the main thread
//     forks: before the layer's fork handlers, after its pthread_atfork
//     returned, before the install (hooks, settings), and with the
//     registration landing while the fork runs its prepare handlers. The
//     child's only thread allocates, which finishes the init there from
//     the parent's step (before: the child had no hooks, so nothing was
//     sampled or leak-checked, or no fork handlers of the layer); it then
//     samples (every allocation, the rate from the environment), its leak
//     checks see exactly the blocks left live, and its forks, while a
//     thread allocates tracked small and large blocks, run the layer's
//     prepare handler once per registration (1, or 2 in the last case,
//     where the handlers act once: without the nesting count the second
//     prepare takes the live table's lock again and hangs). The parent's
//     init then finishes and its process works too.
//   SignalsAreBlockedInsideTheInit: at each point of the tracking init,
//     the init's thread has every signal blocked; a signal sent to it
//     there (its handler forks) runs only once the init is done (a handler
//     that forked inside the init's pthread_atfork call would wait forever
//     for glibc's atfork lock), and the handler's child works.
//
// Children run under watchdogs (SIGALRM) and their parents' deadlines.
// TSan does not support fork() in a multithreaded process: tagged no-tsan.
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>

#include <gtest/gtest.h>

#include "alloc/internal/hardening.h"
#include "alloc/internal/hooks.h"
#include "alloc/leak_check.h"
#include "alloc/strata.h"
#include "alloc/tracking/tracker.h"
#include "tests/hardening/child.h"
#include "tests/hardening/init_pause.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;
using tracking::TrackingInitPoint;

constexpr int kChildDeadlineMs = 10000;
constexpr int Bit(TrackingInitPoint point) { return 1 << static_cast<int>(point); }
constexpr int kAllPoints =
    Bit(TrackingInitPoint::kForkHandlers) | Bit(TrackingInitPoint::kForkHandlersRegistered) |
    Bit(TrackingInitPoint::kInstall);

// Pauses the init of the test's process at its points; the points it went
// through; those at which the init's thread did not have SIGUSR1 blocked.
testing::InitPause g_pause;
std::atomic<int> g_unblocked_at{0};

bool SignalBlockedHere(int sig) {
  sigset_t current;
  pthread_sigmask(SIG_BLOCK, nullptr, &current);
  return sigismember(&current, sig) == 1;
}

void Observer(TrackingInitPoint point) {
  if (!SignalBlockedHere(SIGUSR1)) g_unblocked_at.fetch_or(Bit(point));
  g_pause.At(static_cast<int>(point));
}

int WaitChild(pid_t pid) { return testing::WaitChildFor(pid, kChildDeadlineMs); }

// A forked child dies of its watchdog before its parent's deadline.
void ArmWatchdog() { alarm(static_cast<unsigned>(kChildDeadlineMs / 1000 - 2)); }

// A prepare handler of the test's, registered before the engine's (so it
// runs after theirs): when armed, it lets the paused init call
// pthread_atfork and waits until that returned
// (testing::InitPause::DuringForkPrepare).
void RegisterDuringForkPrepare() {
  g_pause.DuringForkPrepare(static_cast<int>(TrackingInitPoint::kForkHandlers),
                            static_cast<int>(TrackingInitPoint::kForkHandlersRegistered), kChildDeadlineMs);
}

// The tracking layer works in this process: every allocation is tracked
// (STRATA_LEAKCHECK=1), and sampled with leak checking off (the rate, 1,
// from STRATA_SAMPLE_RATE); a scoped leak check counts exactly the blocks
// left live. Exit code (0: fine).
int TrackingWorks() {
  if (internal::InstalledTrackingHooks() == nullptr) return 40;
  if (!tracking::TrackAll() || tracking::SampleRate() != 1) return 41;
  const std::uint64_t before = tracking::Counters().tracked_allocations;
  void* blocks[33];
  for (int i = 0; i < 32; ++i) blocks[i] = Allocate(static_cast<std::size_t>(24 + i * 50));
  blocks[32] = Allocate(200000);
  for (void* p : blocks) Free(p);
  if (tracking::Counters().tracked_allocations - before < 33) return 42;
  {
    LeakCheck check;
    void* freed = Allocate(10);
    void* kept = Allocate(20);
    Free(freed);
    const LeakReport r = check.CheckNoLiveBlocks(-1);
    Free(kept);
    if (r.definite_objects != 1 || r.definite_bytes != 20) return 43;
  }
  tracking::SetTrackAll(false);
  const std::uint64_t sampled_before = tracking::Counters().tracked_allocations;
  for (int i = 0; i < 16; ++i) Free(Allocate(static_cast<std::size_t>(32 + i)));
  const bool sampled = tracking::Counters().tracked_allocations - sampled_before >= 16;
  tracking::SetTrackAll(true);
  return sampled ? 0 : 44;
}

// Forks `forks` times while another thread allocates tracked small and
// large blocks (the live table's records); each fork must run the layer's
// prepare handler `prepare_runs` times and its child must work. Exit code
// (testing::ForkWhileAThreadRuns).
int ForkWhileAThreadAllocates(int forks, std::uint64_t prepare_runs) {
  testing::ForkLoop loop;
  loop.forks = forks;
  loop.prepare_runs = prepare_runs;
  loop.prepare_count = &tracking::TrackingForkPrepareRuns;
  loop.child_deadline_ms = kChildDeadlineMs;
  return testing::ForkWhileAThreadRuns(
      loop, [](std::uint64_t i) { Free(Allocate(i % 8 == 0 ? 70000 + i % 5000 : 16 + i % 2000)); },
      [](void*) { return TrackingWorks(); });
}

// The child of a fork made while another thread was inside the tracking
// init: its only thread's allocation finishes the init here, from the
// parent's step (`points`: those it must go through).
int ChildOfForkDuringInit(int points, std::uint64_t prepare_runs, bool hardened) {
  void* p = Allocate(100);
  if (p == nullptr) return 3;
  Free(p);
  if (g_pause.seen() != points) {
    std::fprintf(stderr, "child: tracking init points 0x%x, expected 0x%x\n", g_pause.seen(), points);
    return 4;
  }
  if (internal::Hardened() != hardened) return 5;
  const int code = TrackingWorks();
  if (code != 0) return code;
  return ForkWhileAThreadAllocates(6, prepare_runs);
}

[[noreturn]] void ForkDuringTrackingInit(TrackingInitPoint pause, bool register_in_prepare, int child_points,
                                         std::uint64_t child_prepare_runs, bool hardened) {
  setenv("STRATA_SAMPLE_RATE", "1", 1);
  setenv("STRATA_LEAKCHECK", "1", 1);
  g_pause.Arm(getpid(), Bit(pause) | (register_in_prepare ? Bit(TrackingInitPoint::kForkHandlersRegistered) : 0));
  if (register_in_prepare && pthread_atfork(&RegisterDuringForkPrepare, nullptr, nullptr) != 0) _exit(61);
  tracking::SetTrackingInitObserverForTesting(&Observer);
  std::thread init([] { Free(Allocate(64)); });
  if (!g_pause.AwaitReached(static_cast<int>(pause), kChildDeadlineMs)) _exit(60);
  g_pause.ArmRegisterInPrepare(register_in_prepare);
  const pid_t pid = fork();
  if (pid == 0) {
    ArmWatchdog();
    g_pause.ClearSeen();
    _exit(ChildOfForkDuringInit(child_points, child_prepare_runs, hardened));
  }
  if (pid < 0) _exit(62);
  const int code = WaitChild(pid);
  g_pause.ReleaseAll();
  init.join();
  if (code != 0) _exit(code == -1 ? 21 : code == -2 ? 22 : code);
  if (g_pause.seen() != kAllPoints) _exit(63);
  const int works = TrackingWorks();
  if (works != 0) _exit(works);
  const int parent = ForkWhileAThreadAllocates(6, 1);
  _exit(parent == 0 ? 0 : 70 + parent);
}

class TrackingInitFork : public ::testing::TestWithParam<Mode> {
 protected:
  void Expect(TrackingInitPoint pause, bool register_in_prepare, int child_points, std::uint64_t prepare_runs) {
    const Mode mode = GetParam();
    const bool hardened = mode == Mode::kHardened || internal::kHardenedBuild;
    ChildResult r = RunInChild(
        [=] { ForkDuringTrackingInit(pause, register_in_prepare, child_points, prepare_runs, hardened); }, mode,
        30000);
    EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
  }
};

constexpr int kFromTheForkHandlers = kAllPoints;

// Before the layer's fork handlers: the child registers them and installs.
TEST_P(TrackingInitFork, ForkDuringTrackingInitBeforeTheForkHandlers) {
  Expect(TrackingInitPoint::kForkHandlers, false, kFromTheForkHandlers, 1);
}

// Registered (and so run for this fork), the init not yet told: the child
// inherits them, must not register them again, and installs.
TEST_P(TrackingInitFork, ForkDuringTrackingInitAfterTheForkHandlers) {
  Expect(TrackingInitPoint::kForkHandlersRegistered, false,
         Bit(TrackingInitPoint::kForkHandlers) | Bit(TrackingInitPoint::kInstall), 1);
}

// Handlers in place, hooks and settings not yet: the child installs them.
TEST_P(TrackingInitFork, ForkDuringTrackingInitBeforeTheInstall) {
  Expect(TrackingInitPoint::kInstall, false, Bit(TrackingInitPoint::kInstall), 1);
}

// Registered while the fork ran its prepare handlers: in the child's list
// without having run, so the child registers them again; its forks run
// the prepare twice, and the handlers act once.
TEST_P(TrackingInitFork, ForkDuringTrackingInitRegisteringWhileTheForkPrepares) {
  Expect(TrackingInitPoint::kForkHandlers, true, kFromTheForkHandlers, 2);
}

// --- signals inside the init ------------------------------------------------

std::atomic<int> g_handler_runs{0};
std::atomic<int> g_handler_child_code{-100};

// Forks on the init's thread; the child checks the layer and exits.
void ForkingHandler(int) {
  g_handler_runs.fetch_add(1);
  const pid_t pid = fork();
  if (pid == 0) {
    ArmWatchdog();
    _exit(TrackingWorks());
  }
  g_handler_child_code.store(pid < 0 ? -3 : WaitChild(pid));
}

pthread_t g_init_thread;

[[noreturn]] void SignalsAreBlockedInsideTheInit(TrackingInitPoint pause) {
  setenv("STRATA_SAMPLE_RATE", "1", 1);
  setenv("STRATA_LEAKCHECK", "1", 1);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &ForkingHandler;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, nullptr) != 0) _exit(50);
  g_pause.Arm(getpid(), Bit(pause));
  tracking::SetTrackingInitObserverForTesting(&Observer);
  std::atomic<bool> handled{false};
  std::thread init([&handled] {
    Free(Allocate(64));
    // The signal sent during the init is delivered when its mask is
    // restored, before this thread goes on.
    handled.store(g_handler_runs.load() == 1);
  });
  g_init_thread = init.native_handle();
  if (!g_pause.AwaitReached(static_cast<int>(pause), kChildDeadlineMs)) _exit(51);
  if (pthread_kill(g_init_thread, SIGUSR1) != 0) _exit(52);
  usleep(50000);
  // Still paused inside the init: the handler must not have run there.
  const int runs_inside = g_handler_runs.load();
  g_pause.ReleaseAll();
  init.join();
  if (runs_inside != 0) _exit(53);
  if (g_unblocked_at.load() != 0) _exit(54);
  if (!handled.load()) _exit(55);
  const int code = g_handler_child_code.load();
  if (code != 0) _exit(code == -1 ? 56 : code == -2 ? 57 : code);
  _exit(0);
}

TEST_P(TrackingInitFork, SignalsAreBlockedInsideTheInit) {
  const Mode mode = GetParam();
  for (TrackingInitPoint pause :
       {TrackingInitPoint::kForkHandlers, TrackingInitPoint::kForkHandlersRegistered, TrackingInitPoint::kInstall}) {
    ChildResult r = RunInChild([=] { SignalsAreBlockedInsideTheInit(pause); }, mode, 30000);
    EXPECT_TRUE(r.exited && r.exit_code == 0) << "paused at " << static_cast<int>(pause) << ": " << r.Describe();
  }
}

INSTANTIATE_TEST_SUITE_P(BothModes, TrackingInitFork, ::testing::Values(Mode::kNormal, Mode::kHardened),
                         testing::ModeParamName());

}  // namespace
}  // namespace strata
