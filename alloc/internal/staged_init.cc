#include "alloc/internal/staged_init.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/syscall.h>
#include <unistd.h>

namespace strata::internal {
namespace {

// The inits this thread is running, innermost first (one may run inside
// another: the tracking layer's, started by a call into that layer before
// the process's first allocation, runs the engine's first, whose last step
// runs the tracking layer's init: reentered, it returns at once).
struct RunFrame {
  const StagedInit* init;
  const RunFrame* outer;
};
constinit thread_local const RunFrame* tls_running STRATA_INITIAL_EXEC = nullptr;

bool RunningOnThisThread(const StagedInit* init) {
  for (const RunFrame* f = tls_running; f != nullptr; f = f->outer) {
    if (f->init == init) return true;
  }
  return false;
}

// The pid from the kernel (no cache to go stale in a fork child, no
// malloc).
std::uint64_t CurrentPid() { return static_cast<std::uint64_t>(syscall(SYS_getpid)); }

}  // namespace

void StagedInit::Run(std::uint64_t pid, int step) {
  RunFrame frame{this, tls_running};
  tls_running = &frame;
  sigset_t all;
  sigset_t saved;
  sigfillset(&all);
  pthread_sigmask(SIG_SETMASK, &all, &saved);
  run_(pid, step);
  state_.store(kDone, std::memory_order_release);
  tls_running = frame.outer;
  pthread_sigmask(SIG_SETMASK, &saved, nullptr);
}

// The pid is read again on every round: this thread may itself be the one
// a signal handler forked while it waited here, continuing in the child.
// (A pid is reused only after its process is gone: a descendant could find
// its own pid in the word only if an ancestor left the init unfinished,
// exited, and the pid space wrapped around before the descendant was
// created.)
bool StagedInit::Ensure() {
  if (RunningOnThisThread(this)) return false;
  std::uint64_t state = state_.load(std::memory_order_acquire);
  for (;;) {
    if (state == kDone) return false;
    const std::uint64_t pid = CurrentPid();
    int step = 0;
    if (state != kNotStarted) {
      if (state >> kStepBits == pid) {
        // A thread of this process runs it: wait (the init is short, and
        // its callers must not go on before it is done).
        sched_yield();
        state = state_.load(std::memory_order_acquire);
        continue;
      }
      step = static_cast<int>(state & ((std::uint64_t{1} << kStepBits) - 1));
    }
    // Acquire: what the parent's run did before the step it reached.
    if (state_.compare_exchange_strong(state, Running(pid, step), std::memory_order_acq_rel,
                                       std::memory_order_acquire)) {
      Run(pid, step);
      return true;
    }
  }
}

}  // namespace strata::internal
