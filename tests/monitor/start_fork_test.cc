// tests/monitor/start_fork_test.cc: a fork while another thread is inside
// the memory monitor's or the pprof endpoint's first start: their one-time
// init (registering their fork handlers, alloc/fork/layer_fork_init.h) and the
// start itself (the monitor's control lock held before its thread is
// created; the endpoint's lock held and its sockets open before its thread
// is created).
//
//   ForkDuringMonitorStart*, ForkDuringPprofStart*: in a fresh process one
//     thread starts the monitor (the endpoint), paused at one point by a
//     test observer (SetLayerForkInitObserverForTesting, and
//     http::SetStartObserverForTesting for the endpoint's sockets), while
//     the main thread forks: before the fork handlers, after
//     pthread_atfork returned, with the registration landing while the
//     fork runs its prepare handlers, and inside the start. The child's
//     only thread allocates and starts its own monitor (endpoint), which
//     finishes the init from the parent's step and must work (the monitor
//     thread ticks; the endpoint serves /metrics); then it forks while a
//     thread calls into the layer (the monitor's locks; the endpoint's
//     start and stop), each fork running the layer's prepare handler once
//     per registration (1, or 2 when registered during the prepares: the
//     handlers act once), and each grandchild starts its own too. The
//     parent's start then finishes and works; the endpoint's child holds
//     none of its parent's sockets: once the parent stopped its endpoint,
//     a connection to that port is refused. Before, the monitor's child
//     waited forever for the control lock held by the starting thread (it
//     registered the handlers under it), and the endpoint's child kept the
//     parent's listening socket (the port stayed bound, connections were
//     accepted and never served) or, forked during the registration, had
//     no fork handlers: its own children believed a server ran and could
//     not start one.
//   SignalsAreBlockedInsideThe{Monitor,Pprof}Start: at each point the
//     starting thread has every signal blocked; a signal sent there (its
//     handler forks) runs once the section is left, and the handler's
//     child starts the layer itself. (A handler that forked inside
//     pthread_atfork waited forever for glibc's atfork lock; one that
//     forked while its thread held the monitor's queue or history lock
//     waited forever in the prepare.)
//
// Every scenario runs in a fresh process (RunInChild); children run under
// watchdogs and their parents' deadlines. TSan does not support fork() in
// a multithreaded process: tagged no-tsan.
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "alloc/http/server.h"
#include "alloc/fork/layer_fork_init.h"
#include "alloc/monitor.h"
#include "alloc/pprof_http.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"
#include "tests/hardening/init_pause.h"
#include "tests/observe/http_client.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::RunInChild;

constexpr int kChildDeadlineMs = 10000;
constexpr int Bit(ForkInitPoint point) { return 1 << static_cast<int>(point); }
constexpr int kAllPoints =
    Bit(ForkInitPoint::kForkHandlers) | Bit(ForkInitPoint::kForkHandlersRegistered) | Bit(ForkInitPoint::kStart);

// The layer under test (the other's points are ignored); pauses its start
// in the test's process; the points where the starting thread did not have
// SIGUSR1 blocked.
ForkInitLayer g_layer = ForkInitLayer::kMonitor;
testing::InitPause g_pause;
std::atomic<int> g_unblocked_at{0};

bool SignalBlockedHere(int sig) {
  sigset_t current;
  pthread_sigmask(SIG_BLOCK, nullptr, &current);
  return sigismember(&current, sig) == 1;
}

void Observer(ForkInitLayer layer, ForkInitPoint point) {
  if (layer != g_layer) return;
  if (!SignalBlockedHere(SIGUSR1)) g_unblocked_at.fetch_or(Bit(point));
  g_pause.At(static_cast<int>(point));
}

void ServerStartObserver() { Observer(ForkInitLayer::kPprof, ForkInitPoint::kStart); }

void InstallObservers(ForkInitLayer layer) {
  g_layer = layer;
  SetLayerForkInitObserverForTesting(&Observer);
  http::SetStartObserverForTesting(&ServerStartObserver);
}

// A prepare handler of the test's, registered before the layer's: when
// armed, it lets the paused init call pthread_atfork and waits until that
// returned (testing::InitPause::DuringForkPrepare).
void RegisterDuringForkPrepare() {
  g_pause.DuringForkPrepare(static_cast<int>(ForkInitPoint::kForkHandlers),
                            static_cast<int>(ForkInitPoint::kForkHandlersRegistered), kChildDeadlineMs);
}

int Fail(int code, const char* what) {
  std::fprintf(stderr, "pid %d: %s (code %d)\n", static_cast<int>(getpid()), what, code);
  return code;
}

// Runs `scenario` in a fresh process (no monitor or endpoint started yet),
// which must exit 0 within a minute.
void ExpectScenarioPasses(const std::function<void()>& scenario, const char* what = "") {
  const ChildResult r = RunInChild(scenario, testing::Mode::kInherit, 60000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << what << r.Describe();
}

bool AllocatorWorks() {
  void* small = Allocate(100);
  void* large = Allocate(300000);
  const bool ok = small != nullptr && large != nullptr;
  Free(small);
  Free(large);
  return ok;
}

// --- the monitor -------------------------------------------------------------

// Starts the monitor (reconfigures a running one); its thread must tick.
int MonitorWorks() {
  MonitorConfig c;
  c.interval_ms = 1;
  c.history_size = 8;
  if (!StartMemoryMonitor(c)) return Fail(40, "StartMemoryMonitor failed");
  if (!MemoryMonitorRunning()) return Fail(41, "monitor not running");
  const std::uint64_t ticks = GetMonitorCounters().ticks;
  const std::uint64_t deadline = testing::MonotonicMs() + 5000;
  while (GetMonitorCounters().ticks < ticks + 3) {
    if (testing::MonotonicMs() > deadline) return Fail(42, "the monitor thread does not tick");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  MemorySnapshot history[8];
  if (GetMemoryHistory(history, 8) == 0) return Fail(43, "no history");
  Alert alerts[4];
  PollAlerts(alerts, 4);
  if (!AllocatorWorks()) return Fail(44, "allocation failed");
  return 0;
}

// The worker of the forks: every lock of the monitor, taken and released.
void MonitorStep(std::uint64_t i) {
  Alert alerts[4];
  PollAlerts(alerts, 4);
  MemorySnapshot history[4];
  GetMemoryHistory(history, 4);
  GetRecentAlerts(alerts, 4);
  (void)GetMonitorStatus();
  if (i % 8 == 0) MemoryMonitorTick();
  Free(Allocate(16 + i % 4000));
}

std::uint64_t MonitorPrepareRuns() { return LayerForkPrepareRunsForTesting(ForkInitLayer::kMonitor); }

// Forks while a thread uses the monitor; each grandchild starts its own.
int MonitorForks(std::uint64_t prepare_runs) {
  testing::ForkLoop loop;
  loop.forks = 6;
  loop.prepare_runs = prepare_runs;
  loop.prepare_count = &MonitorPrepareRuns;
  loop.child_deadline_ms = kChildDeadlineMs;
  return testing::ForkWhileAThreadRuns(loop, &MonitorStep, [](void*) {
    const int works = MonitorWorks();
    StopMemoryMonitor();
    return works;
  });
}

// The child of a fork made while another thread was inside the monitor's
// start: its only thread starts the monitor (finishing the init from the
// parent's step: `points`, those it must go through).
int ChildOfForkDuringMonitorStart(int points, std::uint64_t prepare_runs) {
  if (!AllocatorWorks()) return Fail(3, "allocation failed");
  if (const int works = MonitorWorks(); works != 0) return works;
  if (g_pause.seen() != points) {
    std::fprintf(stderr, "child: monitor start points 0x%x, expected 0x%x\n", g_pause.seen(), points);
    return 4;
  }
  const int forks = MonitorForks(prepare_runs);
  StopMemoryMonitor();
  return forks;
}

[[noreturn]] void ForkDuringMonitorStart(ForkInitPoint pause, bool register_in_prepare, int child_points,
                                         std::uint64_t child_prepare_runs) {
  g_pause.Arm(getpid(), Bit(pause) | (register_in_prepare ? Bit(ForkInitPoint::kForkHandlersRegistered) : 0));
  if (register_in_prepare && pthread_atfork(&RegisterDuringForkPrepare, nullptr, nullptr) != 0) _exit(61);
  InstallObservers(ForkInitLayer::kMonitor);
  std::atomic<bool> started{false};
  std::thread starter([&started] {
    MonitorConfig c;
    c.interval_ms = 1;
    started.store(StartMemoryMonitor(c));
  });
  if (!g_pause.AwaitReached(static_cast<int>(pause), kChildDeadlineMs)) _exit(60);
  g_pause.ArmRegisterInPrepare(register_in_prepare);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(kChildDeadlineMs / 1000 - 2);
    g_pause.ClearSeen();
    _exit(ChildOfForkDuringMonitorStart(child_points, child_prepare_runs));
  }
  if (pid < 0) _exit(62);
  const int code = testing::WaitChildFor(pid, kChildDeadlineMs);
  g_pause.ReleaseAll();
  starter.join();
  if (code != 0) _exit(code == -1 ? Fail(21, "child timed out") : code == -2 ? Fail(22, "child killed") : code);
  if (!started.load()) _exit(Fail(63, "the parent's start failed"));
  if (g_pause.seen() != kAllPoints) _exit(Fail(64, "the parent's start missed points"));
  if (const int works = MonitorWorks(); works != 0) _exit(works);
  const int forks = MonitorForks(1);
  StopMemoryMonitor();
  _exit(forks);
}

void ExpectForkDuringMonitorStartWorks(ForkInitPoint pause, bool register_in_prepare, int child_points,
                                       std::uint64_t child_prepare_runs) {
  ExpectScenarioPasses([=] { ForkDuringMonitorStart(pause, register_in_prepare, child_points, child_prepare_runs); });
}

// Before the fork handlers: the child registers them and starts.
TEST(StartFork, ForkDuringMonitorStartBeforeTheForkHandlers) {
  ExpectForkDuringMonitorStartWorks(ForkInitPoint::kForkHandlers, false, kAllPoints, 1);
}

// Registered (and so run for this fork), the init not yet told: the child
// inherits them and must not register them again.
TEST(StartFork, ForkDuringMonitorStartAfterTheForkHandlers) {
  ExpectForkDuringMonitorStartWorks(ForkInitPoint::kForkHandlersRegistered, false,
                                    Bit(ForkInitPoint::kForkHandlers) | Bit(ForkInitPoint::kStart), 1);
}

// Registered while the fork ran its prepare handlers: in the child's list
// without having run; the child registers them again, its forks run the
// prepare twice, and the handlers act once.
TEST(StartFork, ForkDuringMonitorStartRegisteringWhileTheForkPrepares) {
  ExpectForkDuringMonitorStartWorks(ForkInitPoint::kForkHandlers, true, kAllPoints, 2);
}

// The control lock held, the thread about to be created: the child
// forgets the lock and starts its own thread.
TEST(StartFork, ForkDuringMonitorStartCreatingTheThread) {
  ExpectForkDuringMonitorStartWorks(ForkInitPoint::kStart, false, Bit(ForkInitPoint::kStart), 1);
}

// --- the pprof endpoint ------------------------------------------------------

bool Serves(int port) {
  const observe_test::Response r = observe_test::Get(port, "/metrics");
  return r.ok && r.status_line.find(" 200 ") != std::string::npos;
}

// Starts an endpoint on an ephemeral port, fetches /metrics, stops it.
int PprofWorks() {
  int port = 0;
  if (!StartPprofServer(0, &port) || port == 0) return Fail(45, "StartPprofServer failed");
  if (!Serves(port)) return Fail(46, "the endpoint does not serve /metrics");
  StopPprofServer();
  if (PprofServerPort() != 0) return Fail(47, "the endpoint did not stop");
  if (!AllocatorWorks()) return Fail(48, "allocation failed");
  return 0;
}

// The worker of the forks: starts and stops the endpoint (forks land
// inside Start and Stop).
void PprofStep(std::uint64_t i) {
  if (StartPprofServer(0)) StopPprofServer();
  Free(Allocate(16 + i % 4000));
}

std::uint64_t PprofPrepareRuns() { return LayerForkPrepareRunsForTesting(ForkInitLayer::kPprof); }

int PprofForks(std::uint64_t prepare_runs) {
  testing::ForkLoop loop;
  loop.forks = 6;
  loop.prepare_runs = prepare_runs;
  loop.prepare_count = &PprofPrepareRuns;
  loop.child_deadline_ms = kChildDeadlineMs;
  return testing::ForkWhileAThreadRuns(loop, &PprofStep, [](void*) { return PprofWorks(); });
}

int ChildOfForkDuringPprofStart(int points, std::uint64_t prepare_runs) {
  if (!AllocatorWorks()) return Fail(3, "allocation failed");
  if (PprofServerPort() != 0) return Fail(5, "the child believes a server runs");
  if (const int works = PprofWorks(); works != 0) return works;
  if (g_pause.seen() != points) {
    std::fprintf(stderr, "child: pprof start points 0x%x, expected 0x%x\n", g_pause.seen(), points);
    return 4;
  }
  return PprofForks(prepare_runs);
}

// Reads one byte from `fd` within `timeout_ms`; -1 when none came.
int ReadByte(int fd, int timeout_ms) {
  pollfd p{fd, POLLIN, 0};
  unsigned char byte = 0;
  if (poll(&p, 1, timeout_ms) != 1 || read(fd, &byte, 1) != 1) return -1;
  return byte;
}

[[noreturn]] void ForkDuringPprofStart(ForkInitPoint pause, bool register_in_prepare, int child_points,
                                       std::uint64_t child_prepare_runs) {
  g_pause.Arm(getpid(), Bit(pause) | (register_in_prepare ? Bit(ForkInitPoint::kForkHandlersRegistered) : 0));
  if (register_in_prepare && pthread_atfork(&RegisterDuringForkPrepare, nullptr, nullptr) != 0) _exit(61);
  InstallObservers(ForkInitLayer::kPprof);
  std::atomic<int> port{0};
  std::thread starter([&port] {
    int bound = 0;
    if (StartPprofServer(0, &bound)) port.store(bound);
  });
  if (!g_pause.AwaitReached(static_cast<int>(pause), kChildDeadlineMs)) _exit(60);
  g_pause.ArmRegisterInPrepare(register_in_prepare);
  // The child reports its result, then stays alive (holding whatever
  // descriptors it inherited) until the parent has stopped its endpoint.
  int done[2];
  int go[2];
  if (pipe(done) != 0 || pipe(go) != 0) _exit(65);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(kChildDeadlineMs / 1000 - 2);
    g_pause.ClearSeen();
    const unsigned char code = static_cast<unsigned char>(ChildOfForkDuringPprofStart(child_points, child_prepare_runs));
    (void)!write(done[1], &code, 1);
    ReadByte(go[0], kChildDeadlineMs);
    _exit(code);
  }
  if (pid < 0) _exit(62);
  const int code = ReadByte(done[0], kChildDeadlineMs);
  g_pause.ReleaseAll();
  starter.join();
  int result = code != 0 ? (code == -1 ? Fail(21, "child timed out") : code) : 0;
  if (result == 0 && port.load() == 0) result = Fail(63, "the parent's start failed");
  if (result == 0 && g_pause.seen() != kAllPoints) result = Fail(64, "the parent's start missed points");
  if (result == 0 && !Serves(port.load())) result = Fail(66, "the parent's endpoint does not serve");
  StopPprofServer();
  if (result == 0) {
    const int fd = observe_test::Connect(port.load(), 2);
    if (fd >= 0) {
      close(fd);
      result = Fail(67, "the parent's port still accepts connections after its Stop (the child kept the socket)");
    }
  }
  (void)!write(go[1], "g", 1);
  const int exit_code = testing::WaitChildFor(pid, kChildDeadlineMs);
  if (result == 0 && exit_code != 0) result = exit_code == -1 ? 23 : exit_code == -2 ? 24 : exit_code;
  if (result == 0) result = PprofWorks();
  if (result == 0) result = PprofForks(1);
  _exit(result);
}

void ExpectForkDuringPprofStartWorks(ForkInitPoint pause, bool register_in_prepare, int child_points,
                                     std::uint64_t child_prepare_runs) {
  ExpectScenarioPasses([=] { ForkDuringPprofStart(pause, register_in_prepare, child_points, child_prepare_runs); });
}

TEST(StartFork, ForkDuringPprofStartBeforeTheForkHandlers) {
  ExpectForkDuringPprofStartWorks(ForkInitPoint::kForkHandlers, false, kAllPoints, 1);
}

TEST(StartFork, ForkDuringPprofStartAfterTheForkHandlers) {
  ExpectForkDuringPprofStartWorks(ForkInitPoint::kForkHandlersRegistered, false,
                                  Bit(ForkInitPoint::kForkHandlers) | Bit(ForkInitPoint::kStart), 1);
}

TEST(StartFork, ForkDuringPprofStartRegisteringWhileTheForkPrepares) {
  ExpectForkDuringPprofStartWorks(ForkInitPoint::kForkHandlers, true, kAllPoints, 2);
}

// The sockets open, the thread about to be created: the child closes its
// copies (the parent's port is free once the parent stops).
TEST(StartFork, ForkDuringPprofStartWithTheSocketsOpen) {
  ExpectForkDuringPprofStartWorks(ForkInitPoint::kStart, false, Bit(ForkInitPoint::kStart), 1);
}

// --- signals inside the start ------------------------------------------------

std::atomic<int> g_handler_runs{0};
std::atomic<int> g_handler_child_code{-100};

// Forks on the starting thread; the child starts the layer itself.
void ForkingHandler(int) {
  g_handler_runs.fetch_add(1);
  const pid_t pid = fork();
  if (pid == 0) {
    alarm(kChildDeadlineMs / 1000 - 2);
    int code = g_layer == ForkInitLayer::kMonitor ? MonitorWorks() : PprofWorks();
    if (g_layer == ForkInitLayer::kMonitor) StopMemoryMonitor();
    _exit(code);
  }
  g_handler_child_code.store(pid < 0 ? -3 : testing::WaitChildFor(pid, kChildDeadlineMs));
}

[[noreturn]] void SignalsAreBlockedInsideTheStart(ForkInitLayer layer, ForkInitPoint pause) {
  struct sigaction sa;
  std::memset(&sa, 0, sizeof(sa));
  sa.sa_handler = &ForkingHandler;
  sigemptyset(&sa.sa_mask);
  if (sigaction(SIGUSR1, &sa, nullptr) != 0) _exit(50);
  g_pause.Arm(getpid(), Bit(pause));
  InstallObservers(layer);
  std::atomic<bool> started{false};
  std::atomic<bool> handled{false};
  std::thread starter([layer, &started, &handled] {
    bool ok;
    if (layer == ForkInitLayer::kMonitor) {
      MonitorConfig c;
      c.interval_ms = 1;
      ok = StartMemoryMonitor(c);
    } else {
      ok = StartPprofServer(0);
    }
    started.store(ok);
    // The signal sent inside the start is delivered when the thread's mask
    // is restored, before the start returns.
    handled.store(g_handler_runs.load() == 1);
  });
  if (!g_pause.AwaitReached(static_cast<int>(pause), kChildDeadlineMs)) _exit(51);
  if (pthread_kill(starter.native_handle(), SIGUSR1) != 0) _exit(52);
  usleep(50000);
  // Still paused inside the start: the handler must not have run there.
  const int runs_inside = g_handler_runs.load();
  g_pause.ReleaseAll();
  starter.join();
  if (runs_inside != 0) _exit(Fail(53, "the handler ran inside the start"));
  if (g_unblocked_at.load() != 0) _exit(Fail(54, "signals not blocked at a point of the start"));
  if (!started.load()) _exit(Fail(55, "the start failed"));
  if (!handled.load()) _exit(Fail(56, "the handler did not run before the start returned"));
  const int code = g_handler_child_code.load();
  if (code != 0) _exit(code == -1 ? 57 : code == -2 ? 58 : code);
  _exit(0);
}

void ExpectSignalsBlocked(ForkInitLayer layer) {
  for (ForkInitPoint pause : {ForkInitPoint::kForkHandlers, ForkInitPoint::kForkHandlersRegistered,
                              ForkInitPoint::kStart}) {
    const std::string what = "paused at " + std::to_string(static_cast<int>(pause)) + ": ";
    ExpectScenarioPasses([=] { SignalsAreBlockedInsideTheStart(layer, pause); }, what.c_str());
  }
}

TEST(StartFork, SignalsAreBlockedInsideTheMonitorStart) { ExpectSignalsBlocked(ForkInitLayer::kMonitor); }

TEST(StartFork, SignalsAreBlockedInsideThePprofStart) { ExpectSignalsBlocked(ForkInitLayer::kPprof); }

}  // namespace
}  // namespace strata
