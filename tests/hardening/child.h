// tests/hardening/child.h: run a piece of a test in a forked child and
// collect how it ended (exit status or signal, stderr), with a deadline.
//
// The engine tests call strata only through its API, so a test binary's
// own process never initialises the engine unless a test does; a forked
// child whose parent has not touched strata starts from a fresh engine, and
// can choose hardened mode by setting STRATA_HARDENED before its first
// strata call (the variable is read at process init). Tests that rely on
// that must not call strata in the parent (see FreshEngine below).
#ifndef STRATA_TESTS_HARDENING_CHILD_H_
#define STRATA_TESTS_HARDENING_CHILD_H_

#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <string>

namespace strata::testing {

struct ChildResult {
  bool exited = false;
  int exit_code = -1;
  bool signaled = false;
  int signal = 0;
  bool timed_out = false;
  std::string err;  // everything the child wrote to stderr

  bool Aborted() const { return signaled && signal == SIGABRT; }
  std::string Describe() const {
    std::string s;
    if (timed_out) s += "timed out; ";
    if (exited) s += "exited " + std::to_string(exit_code) + "; ";
    if (signaled) s += "killed by signal " + std::to_string(signal) + "; ";
    return s + "stderr:\n" + err;
  }
};

enum class Mode { kInherit, kNormal, kHardened };

// "Normal" or "Hardened": the suffix of a test instantiated per mode.
inline const char* ModeName(Mode mode) { return mode == Mode::kNormal ? "Normal" : "Hardened"; }

// INSTANTIATE_TEST_SUITE_P's name generator for a suite whose parameter
// is a Mode.
struct ModeParamName {
  template <typename Info>
  std::string operator()(const Info& info) const {
    return ModeName(info.param);
  }
};

inline std::uint64_t MonotonicMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1000000;
}

// Forks; the child sets the mode, runs `body`, and leaves with _exit(0) (or
// whatever `body` decides). The parent captures the child's stderr and
// waits at most `timeout_ms` (then kills it with SIGKILL).
inline ChildResult RunInChild(const std::function<void()>& body, Mode mode = Mode::kInherit,
                              int timeout_ms = 30000) {
  ChildResult result;
  int fds[2];
  if (pipe(fds) != 0) {
    result.err = "pipe failed";
    return result;
  }
  std::fflush(stdout);
  std::fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    result.err = "fork failed";
    return result;
  }
  if (pid == 0) {
    close(fds[0]);
    dup2(fds[1], 2);
    close(fds[1]);
    if (mode == Mode::kHardened) setenv("STRATA_HARDENED", "1", 1);
    if (mode == Mode::kNormal) unsetenv("STRATA_HARDENED");
    body();
    std::fflush(stdout);
    _exit(0);
  }
  close(fds[1]);
  const std::uint64_t deadline = MonotonicMs() + static_cast<std::uint64_t>(timeout_ms);
  char buf[4096];
  bool open = true;
  while (open) {
    std::uint64_t now = MonotonicMs();
    if (now >= deadline) {
      result.timed_out = true;
      kill(pid, SIGKILL);
      break;
    }
    pollfd p{fds[0], POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(deadline - now));
    if (r <= 0) continue;
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n <= 0) {
      open = false;
    } else {
      result.err.append(buf, static_cast<std::size_t>(n));
    }
  }
  close(fds[0]);
  int status = 0;
  // The pipe closes at exit; a child that closed stderr early is waited for
  // with the remaining deadline.
  for (;;) {
    pid_t w = waitpid(pid, &status, WNOHANG);
    if (w == pid) break;
    if (MonotonicMs() >= deadline && !result.timed_out) {
      result.timed_out = true;
      kill(pid, SIGKILL);
    }
    usleep(1000);
  }
  if (WIFEXITED(status)) {
    result.exited = true;
    result.exit_code = WEXITSTATUS(status);
  } else if (WIFSIGNALED(status)) {
    result.signaled = true;
    result.signal = WTERMSIG(status);
  }
  return result;
}

// Waits until `flag` is set, at most `timeout_ms`; false on timeout.
inline bool AwaitFlag(const std::atomic<bool>& flag, int timeout_ms) {
  const std::uint64_t deadline = MonotonicMs() + static_cast<std::uint64_t>(timeout_ms);
  while (!flag.load()) {
    if (MonotonicMs() > deadline) return false;
    sched_yield();
  }
  return true;
}

// Waits for the process `pid` (a fork of this one) at most `timeout_ms`,
// then kills it. Its exit code; -1 on timeout, -2 when a signal ended it.
inline int WaitChildFor(pid_t pid, int timeout_ms) {
  const std::uint64_t deadline = MonotonicMs() + static_cast<std::uint64_t>(timeout_ms);
  for (;;) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid) return WIFEXITED(status) ? WEXITSTATUS(status) : -2;
    if (MonotonicMs() > deadline) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      return -1;
    }
    usleep(1000);
  }
}

}  // namespace strata::testing

#endif  // STRATA_TESTS_HARDENING_CHILD_H_
