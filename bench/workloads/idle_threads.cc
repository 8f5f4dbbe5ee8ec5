// idle_threads: memory stranded in the caches of threads that go idle.
//
// Not timed: a memory scenario (bench/RESULTS.md, step 30). Many threads
// each build and tear down a working set of small blocks (a request's
// worth of strings and nodes), three times, and then block, as the workers
// of a pool do between bursts. With all of them still alive, the main
// thread allocates the same amount of memory itself and frees it. A
// per-thread cache that keeps a teardown's worth of blocks for its next
// build holds that memory in every idle thread, where the main thread
// cannot use it, so the process peaks higher. Prints, in KiB: resident
// memory once every worker is idle, and resident memory at the main
// thread's peak, then the checksum line of the workload contract
// (common.h).
//
// Flags: --threads N workers (default 1; RESULTS uses 64), --scale F
// multiplies the blocks per worker (20000 blocks of 48 bytes at 1.0).
#include <barrier>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/workloads/common.h"

namespace {

constexpr long kBaseBlocks = 20000;
constexpr size_t kBlockSize = 48;
constexpr int kRounds = 3;

long ResidentKiB() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) strata_bench::Die("idle_threads: cannot open /proc/self/statm");
  long pages = 0;
  long resident = 0;
  if (std::fscanf(f, "%ld %ld", &pages, &resident) != 2) strata_bench::Die("idle_threads: bad statm");
  std::fclose(f);
  return resident * (sysconf(_SC_PAGESIZE) / 1024);
}

// Allocates `n` blocks, stamps them, checks and frees them; returns the
// sum of their tags.
uint64_t BuildAndTearDown(std::vector<void*>& blocks, uint64_t seed) {
  uint64_t sum = 0;
  for (size_t i = 0; i < blocks.size(); ++i) {
    blocks[i] = std::malloc(kBlockSize);
    if (blocks[i] == nullptr) strata_bench::Die("idle_threads: malloc failed");
    strata_bench::Stamp(blocks[i], kBlockSize, strata_bench::Mix(seed + i));
  }
  for (size_t i = 0; i < blocks.size(); ++i) {
    const uint64_t tag = strata_bench::Mix(seed + i);
    if (!strata_bench::StampOk(blocks[i], kBlockSize, tag)) strata_bench::Die("idle_threads: block corrupted");
    sum += tag;
    std::free(blocks[i]);
  }
  return sum;
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long per_thread = strata_bench::Scaled(kBaseBlocks, opt);
  std::barrier<> idle(n + 1);
  std::barrier<> release(n + 1);
  std::vector<uint64_t> sums(static_cast<size_t>(n), 0);
  std::vector<std::thread> workers;
  for (int t = 0; t < n; ++t) {
    workers.emplace_back([&, t] {
      std::vector<void*> blocks(static_cast<size_t>(per_thread));
      for (int r = 0; r < kRounds; ++r) sums[t] += BuildAndTearDown(blocks, (uint64_t{1} << 40) * (t + 1) + r);
      idle.arrive_and_wait();
      release.arrive_and_wait();
    });
  }
  idle.arrive_and_wait();
  const long resident_idle = ResidentKiB();
  std::vector<void*> mine(static_cast<size_t>(per_thread) * static_cast<size_t>(n));
  uint64_t sum = 0;
  for (size_t i = 0; i < mine.size(); ++i) {
    mine[i] = std::malloc(kBlockSize);
    if (mine[i] == nullptr) strata_bench::Die("idle_threads: malloc failed");
    strata_bench::Stamp(mine[i], kBlockSize, strata_bench::Mix(i));
  }
  const long resident_peak = ResidentKiB();
  for (size_t i = 0; i < mine.size(); ++i) {
    if (!strata_bench::StampOk(mine[i], kBlockSize, strata_bench::Mix(i))) strata_bench::Die("idle_threads: block corrupted");
    sum += strata_bench::Mix(i);
    std::free(mine[i]);
  }
  release.arrive_and_wait();
  for (auto& w : workers) w.join();
  for (uint64_t s : sums) sum += s;
  std::fprintf(stderr, "idle_threads: %d workers idle: %ld KiB resident; main thread's peak: %ld KiB (live %zu KiB)\n",
               n, resident_idle, resident_peak, mine.size() * kBlockSize / 1024);
  strata_bench::PrintChecksum(sum);
  return 0;
}
