// launch (//bench/compare:launch): runs one workload process under a given
// LD_PRELOAD and reports its wall time and resource usage (wait4 rusage).
//
// Why this exists instead of os.wait4() in compare.py: Linux carries the
// RSS high-water mark of the image a process had before exec() into the
// ru_maxrss of the new image (exec_mmap() folds the old mm's hiwater_rss into
// signal->maxrss). A workload started by Python (vfork + exec) therefore
// reports a peak RSS of at least Python's own, ~10 MiB, hiding the small
// workloads' real peaks (a 300 MiB Python makes /bin/true report 300 MiB).
// This launcher is a small exec'ed C++ program: its forked child starts with
// a fresh maxrss, so the child's ru_maxrss is the workload's own peak (plus
// at most this launcher's ~1-2 MiB image, which is below any workload's).
//
// Usage: launch [--preload SO] [--timeout SECONDS] -- PROGRAM [ARGS]
//   --preload SO   set LD_PRELOAD=SO for PROGRAM (otherwise LD_PRELOAD is
//                  removed from its environment)
//   --timeout S    SIGKILL the child after S seconds (default 600)
// PROGRAM's stdout and stderr are inherited. After it exits, one line goes
// to this launcher's stdout:
//   compare_launch: exit=E signal=S timeout=T wall_ns=N maxrss_kib=K
//                   utime_us=U stime_us=Y minflt=F majflt=J nvcsw=V nivcsw=I
// (one line; exit=127 when PROGRAM could not be executed). The launcher's
// own exit status is 0 once that line is printed, whatever the child did,
// and 2 on usage errors.
#include <signal.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace {

volatile sig_atomic_t g_alarm = 0;

void OnAlarm(int) { g_alarm = 1; }

long long NowNs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<long long>(ts.tv_sec) * 1000000000LL + ts.tv_nsec;
}

long long Us(const timeval& tv) {
  return static_cast<long long>(tv.tv_sec) * 1000000LL + tv.tv_usec;
}

[[noreturn]] void Usage() {
  std::fprintf(stderr,
               "usage: launch [--preload SO] [--timeout SECONDS] -- "
               "PROGRAM [ARGS...]\n");
  std::exit(2);
}

}  // namespace

int main(int argc, char** argv) {
  const char* preload = nullptr;
  long timeout = 600;
  int i = 1;
  for (; i < argc; ++i) {
    if (std::strcmp(argv[i], "--") == 0) {
      ++i;
      break;
    } else if (std::strcmp(argv[i], "--preload") == 0 && i + 1 < argc) {
      preload = argv[++i];
    } else if (std::strcmp(argv[i], "--timeout") == 0 && i + 1 < argc) {
      char* end = nullptr;
      timeout = std::strtol(argv[++i], &end, 10);
      if (*end != '\0' || timeout <= 0) Usage();
    } else {
      Usage();
    }
  }
  if (i >= argc) Usage();
  char** child_argv = argv + i;
  std::fflush(stdout);

  struct sigaction sa;
  std::memset(&sa, 0, sizeof sa);
  sa.sa_handler = OnAlarm;  // no SA_RESTART: wait4 returns EINTR
  sigaction(SIGALRM, &sa, nullptr);

  const long long start = NowNs();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("compare_launch: fork");
    return 127;
  }
  if (pid == 0) {
    if (preload != nullptr && preload[0] != '\0') {
      setenv("LD_PRELOAD", preload, 1);
    } else {
      unsetenv("LD_PRELOAD");
    }
    execv(child_argv[0], child_argv);
    std::fprintf(stderr, "compare_launch: exec %s: %s\n", child_argv[0],
                 std::strerror(errno));
    _exit(127);
  }
  alarm(static_cast<unsigned>(timeout));
  int status = 0;
  rusage ru;
  bool timed_out = false;
  for (;;) {
    pid_t r = wait4(pid, &status, 0, &ru);
    if (r == pid) break;
    if (r < 0 && errno == EINTR) {
      if (g_alarm) {
        timed_out = true;
        kill(pid, SIGKILL);
      }
      continue;
    }
    std::perror("compare_launch: wait4");
    return 127;
  }
  const long long wall = NowNs() - start;
  alarm(0);

  int exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  int signal = WIFSIGNALED(status) ? WTERMSIG(status) : 0;
  std::printf(
      "compare_launch: exit=%d signal=%d timeout=%d wall_ns=%lld "
      "maxrss_kib=%ld utime_us=%lld stime_us=%lld minflt=%ld majflt=%ld "
      "nvcsw=%ld nivcsw=%ld\n",
      exit_code, signal, timed_out ? 1 : 0, wall, ru.ru_maxrss,
      Us(ru.ru_utime), Us(ru.ru_stime), ru.ru_minflt, ru.ru_majflt,
      ru.ru_nvcsw, ru.ru_nivcsw);
  return 0;
}
