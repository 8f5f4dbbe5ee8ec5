// tests/hardening/fork_test.cc: fork() while other threads allocate, from
// plain code and from a signal handler, through the engine API.
//
//   ForkWhileThreadsAllocate: workers allocate and free without pause (small,
//     large, huge; FlushThreadCache and ReleaseMemory now and then, so every
//     engine lock is often held) while the main thread forks for a few
//     seconds. Each child allocates and frees (also blocks inherited from
//     the parent), runs a thread, checks the statistics, and exits 0. Every
//     child is waited for with a deadline: a child (or a parent) that hangs
//     on an engine lock fails the test.
//   ForkFromSignalHandler: the same workers are interrupted by SIGUSR1
//     (pthread_kill, hundreds of times, one handler-fork at a time), and
//     the handler forks, while another thread forks from plain code at the
//     same time. A handler that interrupted its thread inside an engine
//     critical section used to deadlock in the engine's pthread_atfork
//     prepare handler (waiting for a lock its own thread holds), and a
//     concurrent plain fork could then wait for it in a cycle; EngineLock
//     skips self-held locks and the prepare backs off
//     (alloc/internal/engine_lock.h). The child returns from the handler,
//     lets the interrupted operation finish, then allocates, and exits 0.
//     (Two handler-forks at once, *both* interrupted inside the engine,
//     remain a deadlock no allocator with locks avoids: see engine_lock.h.)
//   ForkFromSignalHandlerInsideTheRegistryLock: deterministic version: the
//     signal is raised while the thread holds the registry lock (inside
//     ForEachThreadCache's callback).
//   ForkDuringProcessInit*: in a fresh process one thread's first
//     allocation runs the engine's process init, paused at one of its
//     points (internal::SetProcessInitObserverForTesting), while the main
//     thread forks: before the settings, before the fork handlers, after
//     pthread_atfork returned, and with the registration landing while the
//     fork runs its prepare handlers. The child's only thread allocates
//     (it used to wait forever for the parent's init), resuming at the
//     parent's step; it then works, and its forks run the engine's prepare
//     handler as often as the handlers are registered (once, or twice in
//     the last case, where they act once). The parent's init then finishes
//     and its process works too.
//
// TSan does not support fork() in a multithreaded process: tagged no-tsan.
// The workers call nothing but strata (no glibc malloc, no stdio): glibc's
// own fork() takes glibc's malloc and stdio locks, which a handler-fork
// would deadlock on just the same.
#include <execinfo.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/thread_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"
#include "tests/hardening/init_pause.h"
#include "tests/hardening/util.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

constexpr int kWorkers = 4;
constexpr int kChildDeadlineMs = 10000;
// Forks each scenario must have done for the run to count.
constexpr int kMinForks = 40;

std::atomic<bool> g_stop{false};
// Set in a forked child (by the handler, or before the child's work).
volatile sig_atomic_t g_in_child = 0;

// A child that hangs is killed by its parent after kChildDeadlineMs; before
// that, its own watchdog (SIGALRM, armed right after fork) prints where it
// is stuck, so a rare hang leaves a stack in the test log instead of just
// an exit code. backtrace() is called once up front (its first call loads
// libgcc_s, which allocates); after that it and backtrace_symbols_fd only
// write to the given fd.
void WatchdogHandler(int) {
  static const char kMsg[] = "fork child: watchdog: stuck here:\n";
  (void)!write(2, kMsg, sizeof(kMsg) - 1);
  void* frames[64];
  int n = backtrace(frames, 64);
  backtrace_symbols_fd(frames, n, 2);
  _exit(27);
}

void InstallWatchdog() {
  void* frames[4];
  (void)backtrace(frames, 4);
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &WatchdogHandler;
  sigemptyset(&sa.sa_mask);
  sigaction(SIGALRM, &sa, nullptr);
}

// In a fresh child: the watchdog fires before the parent's deadline.
void ArmWatchdog() { alarm(static_cast<unsigned>(kChildDeadlineMs / 1000 - 2)); }

// Work done by a child after fork: allocate, free (also `inherited`), a
// thread, statistics. Returns an exit code (0: fine).
int ChildWork(void* inherited) {
  Free(inherited);
  for (int i = 0; i < 2000; ++i) {
    void* p = Allocate(static_cast<std::size_t>(16 + (i * 97) % 50000));
    if (p == nullptr) return 3;
    std::memset(p, 1, 16);
    Free(p);
  }
  void* big = Allocate(std::size_t{6} << 20);
  if (big == nullptr) return 4;
  Free(big);
  std::atomic<int> ok{0};
  std::thread t([&] {
    for (int i = 0; i < 1000; ++i) Free(Allocate(static_cast<std::size_t>(1 + i)));
    ok.store(1);
  });
  t.join();
  if (ok.load() != 1) return 5;
  Stats s = GetStats();
  if (s.allocations == 0) return 6;
  return 0;
}

// Allocates and frees until g_stop (or, in a forked child, until the
// interrupted operation is done). `held` is a fixed array: no glibc malloc.
void WorkerLoop(int seed, bool exit_in_child) {
  testing::Prng rng(seed);
  void* held[128] = {};
  std::uint64_t ops = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    if (exit_in_child && g_in_child) {
      // A forked child continues here, on the thread the handler ran on,
      // after the interrupted engine call returned.
      _exit(ChildWork(Allocate(100)));
    }
    int i = static_cast<int>(rng.Below(128));
    if (held[i] != nullptr) {
      Free(held[i]);
      held[i] = nullptr;
    } else {
      std::size_t n;
      switch (rng.Below(16)) {
        case 0: n = (std::size_t{4} << 20) + rng.Below(std::size_t{4} << 20); break;
        case 1:
        case 2: n = 262144 + rng.Below(1 << 20); break;
        default: n = 1 + rng.Below(2048); break;
      }
      held[i] = Allocate(n);
      if (held[i] != nullptr) std::memset(held[i], seed, n < 64 ? n : 64);
    }
    if (++ops % 512 == 0) FlushThreadCache();
    if (ops % 4096 == 0) ReleaseMemory();
  }
  for (void* p : held) Free(p);
}

// Waits for `pid` with a deadline; returns its exit code, or -1 (timeout,
// child killed) / -2 (killed by a signal).
int WaitChild(pid_t pid) { return testing::WaitChildFor(pid, kChildDeadlineMs); }

// --- plain fork -------------------------------------------------------------

// Forks only once every worker runs: a thread that is still starting may
// hold a lock of the sanitizer runtime (GCC 12's libasan does not take its
// allocator's locks around fork(): the child of a fork during a thread's
// start-up can hang inside ASan's calloc). Not strata's business, but the
// test must not trip on it.
[[noreturn]] void ForkWhileThreadsAllocate(int seconds) {
  InstallWatchdog();
  std::atomic<int> started{0};
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back([i, &started] {
      started.fetch_add(1);
      WorkerLoop(i + 1, false);
    });
  }
  while (started.load() != kWorkers) sched_yield();
  std::uint64_t end = testing::MonotonicMs() + static_cast<std::uint64_t>(seconds) * 1000;
  int forks = 0;
  // At least `seconds`, and on a loaded machine on until kMinForks forks
  // (within 6x the time): the count is what the test is about.
  const std::uint64_t hard_end = testing::MonotonicMs() + static_cast<std::uint64_t>(seconds) * 6000;
  while ((testing::MonotonicMs() < end || forks < kMinForks) && testing::MonotonicMs() < hard_end) {
    void* inherited = Allocate(1000);
    pid_t pid = fork();
    if (pid == 0) {
      ArmWatchdog();
      _exit(ChildWork(inherited));
    }
    if (pid < 0) _exit(20);
    int code = WaitChild(pid);
    if (code != 0) _exit(code == -1 ? 21 : code == -2 ? 22 : 30 + code);
    Free(inherited);
    ++forks;
  }
  g_stop.store(true);
  for (auto& t : workers) t.join();
  std::fprintf(stderr, "fork: %d forks in %d s while %d threads allocated; every child finished\n", forks,
               seconds, kWorkers);
  _exit(forks >= kMinForks ? 0 : 23);
}

class Fork : public ::testing::TestWithParam<Mode> {};

TEST_P(Fork, ForkWhileThreadsAllocate) {
  ChildResult r = RunInChild([] { ForkWhileThreadsAllocate(4); }, GetParam(), 50000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
  std::printf("%s", r.err.c_str());
}

// --- fork from a signal handler ------------------------------------------

constexpr int kMaxForks = 4096;
std::atomic<pid_t> g_children[kMaxForks];
std::atomic<int> g_forks{0};
std::atomic<int> g_fork_failures{0};

void ForkingHandler(int) {
  int saved = errno;
  pid_t pid = fork();
  if (pid == 0) {
    ArmWatchdog();
    // Only this thread exists in the child. Let the interrupted code finish
    // (return from the handler); the worker loop then sees the flag.
    g_in_child = 1;
    errno = saved;
    return;
  }
  if (pid < 0) {
    g_fork_failures.fetch_add(1);
  } else {
    int i = g_forks.fetch_add(1);
    if (i < kMaxForks) g_children[i].store(pid);
  }
  errno = saved;
}

[[noreturn]] void ForkFromSignalHandler(int seconds) {
  InstallWatchdog();
  // No allocation before the workers: the engine's process init runs on
  // the first of them to allocate, and a handler may fork on another one
  // meanwhile (its child takes the init over; the deterministic cases are
  // the ForkDuringProcessInit tests below).
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &ForkingHandler;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &sa, nullptr);
  std::atomic<int> started{0};
  pthread_t ids[kWorkers];
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) {
    workers.emplace_back([i, &started, &ids] {
      ids[i] = pthread_self();
      started.fetch_add(1);
      WorkerLoop(i + 100, true);
    });
  }
  // Plain forks at the same time, from a thread that does nothing else.
  std::atomic<int> plain_result{0};
  std::atomic<int> plain_forks{0};
  std::thread plain([&] {
    while (started.load() != kWorkers) sched_yield();  // see ForkWhileThreadsAllocate
    while (!g_stop.load()) {
      void* inherited = Allocate(300);
      pid_t pid = fork();
      if (pid == 0) {
        ArmWatchdog();
        _exit(ChildWork(inherited));
      }
      int code = WaitChild(pid);
      if (code != 0) plain_result.store(code == -1 ? 41 : code == -2 ? 42 : 50 + code);
      Free(inherited);
      plain_forks.fetch_add(1);
      usleep(1000);
    }
  });
  while (started.load() != kWorkers) sched_yield();
  std::uint64_t end = testing::MonotonicMs() + static_cast<std::uint64_t>(seconds) * 1000;
  testing::Prng rng(7);
  int sent = 0;
  // As above: at least `seconds`, and on until kMinForks handler-forks and
  // kMinForks / 4 plain ones on a loaded machine (within 6x the time).
  const std::uint64_t hard_end = testing::MonotonicMs() + static_cast<std::uint64_t>(seconds) * 6000;
  while ((testing::MonotonicMs() < end || sent < kMinForks || plain_forks.load() < kMinForks / 4) &&
         testing::MonotonicMs() < hard_end && sent < kMaxForks) {
    pthread_kill(ids[rng.Below(kWorkers)], SIGUSR1);
    ++sent;
    // One handler-fork at a time: wait until this one has forked (a hang in
    // the prepare handler shows up here), then reap its child.
    std::uint64_t deadline = testing::MonotonicMs() + kChildDeadlineMs;
    while (g_forks.load() < sent || g_children[sent - 1].load() == 0) {
      if (testing::MonotonicMs() > deadline) _exit(26);
      sched_yield();
    }
    int code = WaitChild(g_children[sent - 1].load());
    if (code != 0) _exit(code == -1 ? 21 : code == -2 ? 22 : 30 + code);
    usleep(static_cast<useconds_t>(rng.Below(500)));
  }
  g_stop.store(true);
  for (auto& t : workers) t.join();
  plain.join();
  if (g_fork_failures.load() != 0) _exit(24);
  if (plain_result.load() != 0) _exit(plain_result.load());
  std::fprintf(stderr, "fork: %d forks from signal handlers and %d plain forks in %d s while %d threads allocated\n",
               sent, plain_forks.load(), seconds, kWorkers);
  if (sent < kMinForks || plain_forks.load() < kMinForks / 4) _exit(25);
  _exit(0);
}

// AddressSanitizer's runtime is not async-signal-safe across fork(): a
// fork from a signal handler that interrupted a thread inside ASan's own
// allocator (the test's threads and gtest allocate through it) can leave
// the child waiting on ASan's lock. Measured: 3 of 12 runs of this target
// failed under --config=asan at the session-10 start (11058d4), 1 of 12
// later, always a handler-fork case's child stuck in a join; 12 of 12
// passed in the normal build. strata's own handling of a handler-fork is
// tested by these cases in the normal, hardened and UBSan builds.
#if defined(__SANITIZE_ADDRESS__)
#define STRATA_SKIP_HANDLER_FORK_UNDER_ASAN() \
  GTEST_SKIP() << "fork from a signal handler is not safe in AddressSanitizer's runtime"
#else
#define STRATA_SKIP_HANDLER_FORK_UNDER_ASAN() \
  do {                                        \
  } while (false)
#endif

TEST_P(Fork, ForkFromSignalHandler) {
  STRATA_SKIP_HANDLER_FORK_UNDER_ASAN();
  ChildResult r = RunInChild([] { ForkFromSignalHandler(5); }, GetParam(), 55000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
  std::printf("%s", r.err.c_str());
}

// Deterministic: the handler forks while its own thread holds the registry
// lock (ForEachThreadCache runs its callback under it).
void RaiseInsideRegistryLock(const internal::ThreadCache&, void* raised) {
  if (*static_cast<bool*>(raised)) return;
  *static_cast<bool*>(raised) = true;
  raise(SIGUSR1);
}

TEST_P(Fork, ForkFromSignalHandlerInsideTheRegistryLock) {
  STRATA_SKIP_HANDLER_FORK_UNDER_ASAN();
  ChildResult r = RunInChild(
      [] {
        InstallWatchdog();
        struct sigaction sa;
        std::memset(&sa, 0, sizeof(sa));
        sa.sa_handler = &ForkingHandler;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGUSR1, &sa, nullptr);
        std::thread other([] {
          while (!g_stop.load()) Free(Allocate(64));
        });
        Free(Allocate(64));  // this thread has a cache: the callback runs
        bool raised = false;
        internal::ForEachThreadCache(&RaiseInsideRegistryLock, &raised);
        if (!raised) _exit(2);
        if (g_in_child) {
          // The child, after the callback returned and the lock was released.
          _exit(ChildWork(Allocate(100)));
        }
        g_stop.store(true);
        other.join();
        if (g_forks.load() != 1) _exit(3);
        int code = WaitChild(g_children[0].load());
        _exit(code == 0 ? 0 : code == -1 ? 21 : code == -2 ? 22 : 30 + code);
      },
      GetParam(), 30000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

// --- fork while another thread is inside the process init ------------------

using internal::ProcessInitPoint;

constexpr int Bit(ProcessInitPoint point) { return 1 << static_cast<int>(point); }
constexpr int kAllInitPoints = Bit(ProcessInitPoint::kSettings) | Bit(ProcessInitPoint::kForkHandlers) |
                               Bit(ProcessInitPoint::kForkHandlersRegistered);

// Pauses the init of the process (a fresh engine: RunInChild's) at its
// points; the points it went through.
testing::InitPause g_pause;

void InitObserver(ProcessInitPoint point) { g_pause.At(static_cast<int>(point)); }

// A prepare handler of the test's, registered before the engine's: when
// armed, it lets the paused init call pthread_atfork and waits until that
// returned (testing::InitPause::DuringForkPrepare).
void RegisterDuringForkPrepare() {
  g_pause.DuringForkPrepare(static_cast<int>(ProcessInitPoint::kForkHandlers),
                            static_cast<int>(ProcessInitPoint::kForkHandlersRegistered), kChildDeadlineMs);
}

// Forks `forks` times while another thread allocates; each fork must run
// the engine's prepare handler `prepare_runs` times (1: the handlers are
// registered once; 0 would mean not at all) and its child must work (with
// a block its parent allocated before the fork). Returns an exit code (0:
// fine; testing::ForkWhileAThreadRuns).
int ForkWhileAThreadAllocates(int forks, std::uint64_t prepare_runs) {
  testing::ForkLoop loop;
  loop.forks = forks;
  loop.prepare_runs = prepare_runs;
  loop.prepare_count = &internal::ForkPrepareRuns;
  loop.child_deadline_ms = kChildDeadlineMs;
  loop.inherit = [] { return Allocate(1000); };
  loop.release = [](void* inherited) { Free(inherited); };
  testing::Prng rng(3);
  return testing::ForkWhileAThreadRuns(
      loop,
      [&rng](std::uint64_t ops) {
        Free(Allocate(1 + rng.Below(4096)));
        if (ops % 256 == 0) FlushThreadCache();
        if (ops % 2048 == 0) ReleaseMemory();
      },
      &ChildWork);
}

// The child of a fork made while another thread of the parent was inside
// the process init (paused at one of its points): its only thread
// allocates, which finishes the init here (it waited forever for the
// parent's thread before). `points`: the init points the child must go
// through (it resumes at the parent's step); `prepare_runs`: how many
// times its forks run the engine's prepare handler.
int ChildOfForkDuringInit(int points, std::uint64_t prepare_runs, bool hardened) {
  void* p = Allocate(100);
  if (p == nullptr) return 3;
  if (g_pause.seen() != points) {
    std::fprintf(stderr, "child: init points 0x%x, expected 0x%x\n", g_pause.seen(), points);
    return 7;
  }
  if (internal::Hardened() != hardened) return 8;
  const int code = ChildWork(p);
  if (code != 0) return code;
  return ForkWhileAThreadAllocates(8, prepare_runs);
}

// In a fresh process: one thread starts the process init (its first
// allocation), which pauses at `pause`; the main thread forks meanwhile
// (with `register_in_prepare`: the init registers the fork handlers while
// that fork runs its prepare handlers, then pauses). The child must finish
// the init and work; the parent's init then finishes, and its process
// works and has the fork handlers once.
[[noreturn]] void ForkDuringProcessInit(ProcessInitPoint pause, bool register_in_prepare, int child_points,
                                        std::uint64_t child_prepare_runs, Mode mode) {
  InstallWatchdog();
  g_pause.Arm(getpid(), Bit(pause) | (register_in_prepare ? Bit(ProcessInitPoint::kForkHandlersRegistered) : 0));
  if (register_in_prepare && pthread_atfork(&RegisterDuringForkPrepare, nullptr, nullptr) != 0) _exit(61);
  internal::SetProcessInitObserverForTesting(&InitObserver);
  std::thread init([] { Free(Allocate(64)); });
  if (!g_pause.AwaitReached(static_cast<int>(pause), kChildDeadlineMs)) _exit(60);
  g_pause.ArmRegisterInPrepare(register_in_prepare);
  pid_t pid = fork();
  if (pid == 0) {
    ArmWatchdog();
    g_pause.ClearSeen();
    _exit(ChildOfForkDuringInit(child_points, child_prepare_runs, mode == Mode::kHardened || internal::kHardenedBuild));
  }
  if (pid < 0) _exit(62);
  const int code = WaitChild(pid);
  g_pause.ReleaseAll();
  init.join();
  if (code != 0) _exit(code == -1 ? 21 : code == -2 ? 22 : 30 + code);
  if (g_pause.seen() != kAllInitPoints) _exit(63);
  const int parent = ForkWhileAThreadAllocates(8, 1);
  _exit(parent == 0 ? 0 : 70 + parent);
}

void ExpectForkDuringProcessInitWorks(Mode mode, ProcessInitPoint pause, bool register_in_prepare, int child_points,
                                      std::uint64_t child_prepare_runs) {
  ChildResult r = RunInChild(
      [=] { ForkDuringProcessInit(pause, register_in_prepare, child_points, child_prepare_runs, mode); }, mode,
      30000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

constexpr int kFromTheForkHandlers = Bit(ProcessInitPoint::kForkHandlers) |
                                     Bit(ProcessInitPoint::kForkHandlersRegistered);

// Before the settings (mode, secret, ...): the child redoes the whole init.
TEST_P(Fork, ForkDuringProcessInitBeforeTheSettings) {
  ExpectForkDuringProcessInitWorks(GetParam(), ProcessInitPoint::kSettings, false, kAllInitPoints, 1);
}

// Settings done, fork handlers not yet registered: the child keeps the
// settings (and redoes nothing else) and registers the handlers.
TEST_P(Fork, ForkDuringProcessInitBeforeTheForkHandlers) {
  ExpectForkDuringProcessInitWorks(GetParam(), ProcessInitPoint::kForkHandlers, false, kFromTheForkHandlers, 1);
}

// The handlers registered (and so run for this fork), the init not yet
// told: the child inherits them and must not register them again.
TEST_P(Fork, ForkDuringProcessInitAfterTheForkHandlers) {
  ExpectForkDuringProcessInitWorks(GetParam(), ProcessInitPoint::kForkHandlersRegistered, false,
                                   Bit(ProcessInitPoint::kForkHandlers), 1);
}

// The handlers registered while the fork ran its prepare handlers: they
// are in the child's list without having run, and the child cannot tell,
// so it registers them again; its forks run the prepare twice, and the
// handlers act once.
TEST_P(Fork, ForkDuringProcessInitRegisteringWhileTheForkPrepares) {
  ExpectForkDuringProcessInitWorks(GetParam(), ProcessInitPoint::kForkHandlers, true, kFromTheForkHandlers, 2);
}

INSTANTIATE_TEST_SUITE_P(BothModes, Fork, ::testing::Values(Mode::kNormal, Mode::kHardened),
                         testing::ModeParamName());

}  // namespace
}  // namespace strata
