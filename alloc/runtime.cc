#include "alloc/runtime.h"

#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cerrno>
#include <atomic>

#include "alloc/heap_profiler.h"
#include "alloc/leak_check.h"
#include "alloc/monitor.h"
#include "alloc/pprof_http.h"
#include "alloc/stats_report.h"
#include "alloc/strata.h"
#include "alloc/tracking/symbolize.h"
#include "alloc/tracking/tracker.h"
#include "concurrency/base/raw_log.h"

namespace strata::runtime {
namespace {

constinit std::atomic<bool> g_init_done{false};
constinit std::atomic<bool> g_exit_done{false};
constinit int g_signal_pipe[2] = {-1, -1};
constinit std::atomic<int> g_signal_profiles{0};
// A private copy of stderr taken at load time when an exit report is asked
// for: programs often close stderr in their own atexit handlers (gnulib's
// close_stdout), which run before ours. Not taken otherwise: an unmodified
// program must not find a descriptor it did not open (programs list and
// check their open descriptors, and pass them on to children).
constinit int g_report_fd = 2;

bool EnvOn(const char* name) {
  const char* s = getenv(name);
  return s != nullptr && *s != '\0' && strcmp(s, "0") != 0;
}

int EnvInt(const char* name, int fallback) {
  const char* s = getenv(name);
  if (s == nullptr || *s == '\0') return fallback;
  int v = 0;
  bool neg = *s == '-';
  if (neg) ++s;
  for (; *s >= '0' && *s <= '9'; ++s) v = v * 10 + (*s - '0');
  return neg ? -v : v;
}

void WriteProfileTo(const char* path, bool peak = false) {
  const int fd = g_report_fd;
  int err = peak ? WritePeakHeapProfile(path) : WriteHeapProfile(path);
  const char* what = peak ? "peak heap profile" : "heap profile";
  raw::Buffer b;
  if (err == 0) {
    b.Str("strata: ").Str(what).Str(" written to ").Str(path).Char('\n');
  } else {
    b.Str("strata: cannot write ").Str(what).Char(' ').Str(path).Str(": ").Str(strerror(err)).Char('\n');
  }
  b.WriteTo(fd);
}

void OnProfileSignal(int) {
  char c = 1;
  int saved = errno;
  if (g_signal_pipe[1] >= 0) (void)!write(g_signal_pipe[1], &c, 1);
  errno = saved;
}

// Writes a profile each time the signal arrives, on its own thread: the
// handler only writes to a pipe (the writer is not async-signal-safe).
void* SignalProfileThread(void*) {
  const char* base = getenv("STRATA_HEAPPROFILE");
  for (;;) {
    char c;
    ssize_t n = read(g_signal_pipe[0], &c, 1);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return nullptr;
    int k = g_signal_profiles.fetch_add(1, std::memory_order_relaxed) + 1;
    char path[4096];
    raw::Buffer b;
    b.Str(base).Char('.').Dec(k).Str(".heap");
    std::size_t len = b.size() < sizeof(path) - 1 ? b.size() : sizeof(path) - 1;
    memcpy(path, b.data(), len);
    path[len] = '\0';
    WriteProfileTo(path);
  }
}

void ArmProfileSignal() {
  int sig = EnvInt("STRATA_HEAPPROFILE_SIGNAL", 0);
  if (sig <= 0 || sig >= NSIG || getenv("STRATA_HEAPPROFILE") == nullptr) return;
  if (pipe2(g_signal_pipe, O_CLOEXEC) != 0) return;
  pthread_t thread;
  pthread_attr_t attr;
  pthread_attr_init(&attr);
  pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
  if (pthread_create(&thread, &attr, &SignalProfileThread, nullptr) != 0) {
    raw::Log("cannot start the heap profile signal thread");
    return;
  }
  struct sigaction sa {};
  sa.sa_handler = &OnProfileSignal;
  sa.sa_flags = SA_RESTART;
  sigemptyset(&sa.sa_mask);
  sigaction(sig, &sa, nullptr);
}

void AtExit() { RunExitActions(); }

}  // namespace

void Init() {
  if (g_init_done.exchange(true, std::memory_order_acq_rel)) return;
  if (EnvOn("STRATA_SHOW_STATS") || EnvOn("STRATA_LEAKCHECK") || EnvOn("STRATA_HEAPPROFILE") ||
      EnvOn("STRATA_PEAK_HEAPPROFILE")) {
    int fd = fcntl(2, F_DUPFD_CLOEXEC, 100);
    if (fd >= 0) g_report_fd = fd;
  }
  // One allocation runs the engine's process init, which installs the
  // tracking hooks (and applies STRATA_SAMPLE_RATE / STRATA_LEAKCHECK).
  Free(Allocate(1));
  tracking::EnsureTrackingInstalled();
  if (getenv("STRATA_HEAPPROFILE") != nullptr || getenv("STRATA_PEAK_HEAPPROFILE") != nullptr) {
    tracking::InitSymbolizer();
  }
  if (EnvOn("STRATA_LEAKCHECK")) EnableLeakChecking();
  ArmProfileSignal();
  InitMonitorFromEnvironment();
  InitPprofFromEnvironment();
  atexit(&AtExit);
}

void RunExitActions() {
  if (g_exit_done.exchange(true, std::memory_order_acq_rel)) return;
  const char* stats = getenv("STRATA_SHOW_STATS");
  if (stats != nullptr && *stats != '\0' && strcmp(stats, "0") != 0) {
    WriteStatsReport(g_report_fd, strcmp(stats, "json") == 0 ? ReportFormat::kJson : ReportFormat::kText);
  }
  const char* profile = getenv("STRATA_HEAPPROFILE");
  if (profile != nullptr && *profile != '\0') WriteProfileTo(profile);
  const char* peak = getenv("STRATA_PEAK_HEAPPROFILE");
  if (peak != nullptr && *peak != '\0') WriteProfileTo(peak, true);
  if (EnvOn("STRATA_LEAKCHECK")) {
    LeakCheckOptions options;
    options.report_fd = g_report_fd;
    options.show_reachable = EnvOn("STRATA_LEAKCHECK_SHOW_REACHABLE");
    LeakReport report = CheckForLeaks(options);
    int code = EnvInt("STRATA_LEAKCHECK_EXITCODE", 23);
    if (report.HasLeaks() && code != 0) {
      fflush(nullptr);  // _exit skips stdio's flush
      _exit(code);
    }
  }
}

}  // namespace strata::runtime

// Runs before main() (and, preloaded, before the program's constructors).
__attribute__((constructor)) static void StrataRuntimeConstructor() { strata::runtime::Init(); }
