// tests/observe/observed_program.cc: a program on strata (malloc =
// //alloc:malloc) for the tests that point real clients at the endpoint
// (promtool, a Prometheus server, headless Chromium).
//
//   observed_program --port-file=PATH [--seconds=N] [--live-mib=M] [--monitor]
//                    [--wave]
//
// Serves the endpoint on an ephemeral loopback port and writes the port
// to PATH (atomically) once it listens. Holds M MiB (default 64) live from
// ObservedSiteHoldBuffers() and, on two threads, keeps allocating and
// freeing small blocks of several size classes, so the numbers move.
// --monitor starts the memory monitor (every 200 ms, a live-bytes warning
// below what is held, so the dashboard has an active alert). Exits after
// N seconds (default 120) or on SIGTERM/SIGINT. --wave adds a sawtooth:
// another M MiB taken 2 MiB every 100 ms from ObservedSiteWave(), then
// freed at once (for a chart that moves, as in docs/dashboard.png).
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "alloc/monitor.h"
#include "alloc/pprof_http.h"

namespace {

std::atomic<bool> g_stop{false};

void OnSignal(int) { g_stop.store(true); }

__attribute__((noinline)) std::vector<char*> ObservedSiteHoldBuffers(std::size_t mib) {
  std::vector<char*> held;
  for (std::size_t i = 0; i < mib * 4; ++i) {
    char* p = new char[256 * 1024];
    std::memset(p, 1, 256 * 1024);
    held.push_back(p);
  }
  return held;
}

__attribute__((noinline)) void ObservedSiteChurn(unsigned seed) {
  std::vector<void*> ring(4096, nullptr);
  unsigned x = seed;
  std::size_t i = 0;
  while (!g_stop.load(std::memory_order_relaxed)) {
    x = x * 1103515245u + 12345u;
    void*& slot = ring[i++ % ring.size()];
    std::free(slot);
    slot = std::malloc(16 + (x >> 16) % 2048);
    if ((i & 4095) == 0) usleep(1000);
  }
  for (void* p : ring) std::free(p);
}

__attribute__((noinline)) char* ObservedSiteWave() {
  char* p = new char[2 << 20];
  std::memset(p, 2, 2 << 20);
  return p;
}

void Wave(std::size_t mib) {
  std::vector<char*> wave;
  while (!g_stop.load(std::memory_order_relaxed)) {
    if (wave.size() * 2 >= mib) {
      for (char* p : wave) delete[] p;
      wave.clear();
    }
    wave.push_back(ObservedSiteWave());
    usleep(100'000);
  }
  for (char* p : wave) delete[] p;
}

}  // namespace

int main(int argc, char** argv) {
  std::string port_file;
  long seconds = 120;
  long live_mib = 64;
  bool monitor = false;
  bool wave = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a.rfind("--port-file=", 0) == 0) {
      port_file = a.substr(12);
    } else if (a.rfind("--seconds=", 0) == 0) {
      seconds = std::atol(a.c_str() + 10);
    } else if (a.rfind("--live-mib=", 0) == 0) {
      live_mib = std::atol(a.c_str() + 11);
    } else if (a == "--monitor") {
      monitor = true;
    } else if (a == "--wave") {
      wave = true;
    } else {
      std::fprintf(stderr, "observed_program: unknown argument %s\n", argv[i]);
      return 2;
    }
  }
  if (port_file.empty() || seconds <= 0 || live_mib < 0) {
    std::fprintf(stderr,
                 "usage: observed_program --port-file=PATH [--seconds=N] [--live-mib=M] [--monitor] [--wave]\n");
    return 2;
  }
  signal(SIGTERM, OnSignal);
  signal(SIGINT, OnSignal);
  std::vector<char*> held = ObservedSiteHoldBuffers(static_cast<std::size_t>(live_mib));
  if (monitor) {
    strata::MonitorConfig config;
    config.interval_ms = 200;
    config.history_size = 300;
    config.live_bytes.warning = static_cast<std::uint64_t>(live_mib) << 19;  // half of what is held
    config.live_bytes.critical = std::uint64_t{1} << 40;
    if (!strata::StartMemoryMonitor(config)) {
      std::fprintf(stderr, "observed_program: cannot start the monitor\n");
      return 1;
    }
  }
  std::thread a(ObservedSiteChurn, 1u);
  std::thread b(ObservedSiteChurn, 2u);
  std::thread c;
  if (wave) c = std::thread(Wave, static_cast<std::size_t>(live_mib));
  int port = 0;
  if (!strata::StartPprofServer(0, &port)) {
    std::fprintf(stderr, "observed_program: cannot start the endpoint\n");
    return 1;
  }
  const std::string tmp = port_file + ".tmp";
  FILE* f = std::fopen(tmp.c_str(), "w");
  if (f == nullptr || std::fprintf(f, "%d\n", port) < 0 || std::fclose(f) != 0 ||
      std::rename(tmp.c_str(), port_file.c_str()) != 0) {
    std::fprintf(stderr, "observed_program: cannot write %s\n", port_file.c_str());
    return 1;
  }
  std::fprintf(stderr, "observed_program: serving http://127.0.0.1:%d/\n", port);
  for (long t = 0; t < seconds * 10 && !g_stop.load(); ++t) usleep(100'000);
  g_stop.store(true);
  a.join();
  b.join();
  if (c.joinable()) c.join();
  strata::StopPprofServer();
  for (char* p : held) delete[] p;
  return 0;
}
