// tests/hardening/init_pause.h: pausing a one-time init (the engine's
// process init, the tracking layer's; alloc/internal/staged_init.h) at the
// points its test observer reports, so that a test can fork while another
// thread is inside it.
//
// Use: the observer calls At(point); the test arms the pause for its own
// process (a fork child does not pause: its takeover runs through), waits
// until the init's thread reached the point, forks, then releases it. For
// the case where the init registers its fork handlers while a fork runs
// its prepare handlers: a prepare handler of the test's, registered before
// the init's, calls DuringForkPrepare, which lets the init go on from one
// point and waits until it reached the next.
//
// ForkWhileAThreadRuns, for after such a fork: forks again and again while
// a worker thread keeps calling into the layer, checks that each fork ran
// the layer's prepare handler the expected number of times, and waits for
// each child.
//
// Thread-safety: At runs on the init's thread, the rest on the test's;
// the hand-shake is through atomics. Nothing here allocates (but the
// worker ForkWhileAThreadRuns starts).
#ifndef STRATA_TESTS_HARDENING_INIT_PAUSE_H_
#define STRATA_TESTS_HARDENING_INIT_PAUSE_H_

#include <sched.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <thread>

#include "tests/hardening/child.h"

namespace strata::testing {

class InitPause {
 public:
  static constexpr int kMaxPoints = 8;

  // Pauses process `pid`'s init at the points in `mask` (bit i: point i).
  void Arm(pid_t pid, int mask) {
    pid_ = pid;
    mask_ = mask;
  }

  // From the observer, on the init's thread: records `point`, and waits
  // there until released when the pause is armed for it in this process.
  void At(int point) {
    seen_.fetch_or(1 << point);
    if (getpid() != pid_ || (mask_ & (1 << point)) == 0) return;
    reached_[point].store(true);
    while (!go_[point].load()) sched_yield();
  }

  bool AwaitReached(int point, int timeout_ms) const { return AwaitFlag(reached_[point], timeout_ms); }
  void ReleaseAll() {
    for (auto& go : go_) go.store(true);
  }

  // The points the init went through in this process (a fork child clears
  // them after the fork, then sees those of its own takeover).
  int seen() const { return seen_.load(); }
  void ClearSeen() { seen_.store(0); }

  // The next DuringForkPrepare in the armed process acts (or not).
  void ArmRegisterInPrepare(bool on) { register_in_prepare_.store(on); }
  // From a prepare handler of the test's: when armed, lets the init go on
  // from `from` and waits until it reached `until` (pthread_atfork, called
  // in between, returned). glibc runs the fork's handlers from a list taken
  // before, so the init's handlers land in the list (and the child's copy)
  // without running for this fork, and the init pauses before recording
  // them.
  void DuringForkPrepare(int from, int until, int timeout_ms) {
    if (getpid() != pid_ || !register_in_prepare_.exchange(false)) return;
    go_[from].store(true);
    if (!AwaitReached(until, timeout_ms)) {
      static const char kMsg[] = "prepare: the init did not register its fork handlers\n";
      (void)!write(2, kMsg, sizeof(kMsg) - 1);
    }
  }

 private:
  pid_t pid_ = 0;
  int mask_ = 0;
  std::atomic<bool> reached_[kMaxPoints] = {};
  std::atomic<bool> go_[kMaxPoints] = {};
  std::atomic<int> seen_{0};
  std::atomic<bool> register_in_prepare_{false};
};

// How ForkWhileAThreadRuns forks and checks.
struct ForkLoop {
  int forks = 1;
  // Each fork must run the layer's prepare handler this many times, as
  // `prepare_count` (a count this process keeps) tells.
  std::uint64_t prepare_runs = 1;
  std::uint64_t (*prepare_count)() = nullptr;
  // A child must exit within this; its watchdog (alarm, SIGALRM's action:
  // the caller's) fires two seconds earlier.
  int child_deadline_ms = 10000;
  // Optional: before each fork, a value for the child (a block its parent
  // allocated); after the child is done, released.
  void* (*inherit)() = nullptr;
  void (*release)(void* inherited) = nullptr;
};

// Starts a worker calling `step(i)` for i = 1, 2, ... until the loop ends,
// and once it ran a step (a thread still starting may hold a lock of a
// sanitizer's runtime), forks `loop.forks` times; each child runs
// `child(inherited)` (nullptr without loop.inherit) under its watchdog
// and exits with what it returns. Returns 0 when every fork ran the
// prepare handler loop.prepare_runs times and every child exited 0 in
// time; else 9 (fork failed), 10 (prepare count), 11 (child timed out),
// 12 (child killed by a signal) or the child's exit code, at the first
// failure (no more forks).
template <typename Step, typename Child>
int ForkWhileAThreadRuns(const ForkLoop& loop, Step step, Child child) {
  std::atomic<bool> stop{false};
  std::atomic<bool> started{false};
  std::thread worker([&stop, &started, &step] {
    for (std::uint64_t i = 1; !stop.load(std::memory_order_relaxed); ++i) {
      step(i);
      started.store(true, std::memory_order_relaxed);
    }
  });
  while (!started.load()) sched_yield();
  int result = 0;
  for (int i = 0; i < loop.forks && result == 0; ++i) {
    void* inherited = loop.inherit != nullptr ? loop.inherit() : nullptr;
    const std::uint64_t before = loop.prepare_count();
    const pid_t pid = fork();
    if (pid == 0) {
      alarm(static_cast<unsigned>(loop.child_deadline_ms / 1000 - 2));
      _exit(child(inherited));
    }
    if (pid < 0) result = 9;
    if (result == 0 && loop.prepare_count() - before != loop.prepare_runs) result = 10;
    const int code = pid > 0 ? WaitChildFor(pid, loop.child_deadline_ms) : 0;
    if (result == 0 && code != 0) result = code == -1 ? 11 : code == -2 ? 12 : code;
    if (loop.release != nullptr) loop.release(inherited);
  }
  stop.store(true);
  worker.join();
  return result;
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_HARDENING_INIT_PAUSE_H_
