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
// Thread-safety: At runs on the init's thread, the rest on the test's;
// the hand-shake is through atomics. Nothing here allocates.
#ifndef STRATA_TESTS_HARDENING_INIT_PAUSE_H_
#define STRATA_TESTS_HARDENING_INIT_PAUSE_H_

#include <sched.h>
#include <unistd.h>

#include <atomic>

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

}  // namespace strata::testing

#endif  // STRATA_TESTS_HARDENING_INIT_PAUSE_H_
