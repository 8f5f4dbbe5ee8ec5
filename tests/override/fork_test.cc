// tests/override/fork_test.cc: fork while other threads allocate.
//
// Worker threads allocate and free (malloc and operator new) without pause
// while the main thread forks repeatedly. Each child allocates and frees
// (also blocks inherited from the parent), checks that strata counted its
// allocations, and leaves with _exit(0). The parent waits for each child
// with a deadline: a child that deadlocks on an allocator lock held by a
// thread that does not exist in the child is killed and reported, so the
// test fails instead of hanging.
//
// Built with malloc = "//alloc:malloc", and without strata for a run under
// LD_PRELOAD=libstrata.so.
// The engine makes fork safe (pthread_atfork); this test proves it.
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "alloc/override/strata_c.h"

// Weak: the preloaded variant is built without strata and binds to
// libstrata.so's definition at load time.
extern "C" uint64_t strata_stats_allocations(void) __attribute__((weak));

namespace {

constexpr int kWorkers = 4;
constexpr int kForks = 100;
constexpr int kChildDeadlineMs = 10000;

std::atomic<bool> g_stop{false};

void Worker(int seed) {
  std::vector<void*> held(64, nullptr);
  unsigned state = static_cast<unsigned>(seed) * 2654435761u + 1;
  while (!g_stop.load(std::memory_order_relaxed)) {
    state = state * 1103515245u + 12345u;
    const size_t slot = (state >> 8) % held.size();
    const size_t size = 1 + (state >> 12) % ((state & 1) ? 256 : 70000);
    if (held[slot] != nullptr) {
      if (state & 2) {
        free(held[slot]);
      } else {
        ::operator delete(held[slot]);
      }
      held[slot] = nullptr;
    } else {
      void* p = (state & 2) ? malloc(size) : ::operator new(size);
      memset(p, seed, size < 64 ? size : 64);
      held[slot] = p;
    }
  }
  for (void* p : held) free(p);
}

// Runs in the child: must not hang and must reach strata.
[[noreturn]] void Child(void* inherited) {
  const uint64_t before = strata_stats_allocations();
  free(inherited);
  std::vector<std::string> strings;
  for (int i = 0; i < 2000; ++i) {
    void* p = malloc(static_cast<size_t>(16 + (i * 97) % 50000));
    strings.emplace_back(100, static_cast<char>('a' + i % 26));
    free(p);
  }
  strings.clear();
  strings.shrink_to_fit();
  // A thread in the child: thread caches must work after fork too.
  std::thread t([] {
    for (int i = 0; i < 1000; ++i) free(malloc(static_cast<size_t>(1 + i)));
  });
  t.join();
  const uint64_t after = strata_stats_allocations();
  _exit(after >= before + 2000 ? 0 : 3);
}

long long NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000LL + ts.tv_nsec / 1000000;
}

}  // namespace

int main() {
  if (strata_stats_allocations == nullptr) {
    printf("FAIL: strata is not the process allocator (strata_stats_allocations missing)\n");
    return 1;
  }
  std::vector<std::thread> workers;
  for (int i = 0; i < kWorkers; ++i) workers.emplace_back(Worker, i + 1);

  int failures = 0;
  for (int i = 0; i < kForks; ++i) {
    void* inherited = malloc(static_cast<size_t>(100 + i));
    const pid_t pid = fork();
    if (pid < 0) {
      perror("fork");
      ++failures;
      break;
    }
    if (pid == 0) Child(inherited);
    free(inherited);

    const long long deadline = NowMs() + kChildDeadlineMs;
    int status = 0;
    pid_t done = 0;
    while ((done = waitpid(pid, &status, WNOHANG)) == 0 && NowMs() < deadline) {
      usleep(1000);
    }
    if (done == 0) {
      kill(pid, SIGKILL);
      waitpid(pid, &status, 0);
      printf("FAIL: fork %d: child hung (killed after %d ms)\n", i, kChildDeadlineMs);
      ++failures;
    } else if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
      printf("FAIL: fork %d: child status %d\n", i, status);
      ++failures;
    }
  }
  g_stop.store(true);
  for (auto& t : workers) t.join();
  printf("%s: %d forks with %d allocating threads, %d failed\n", failures ? "FAIL" : "PASS", kForks,
         kWorkers, failures);
  return failures == 0 ? 0 : 1;
}
