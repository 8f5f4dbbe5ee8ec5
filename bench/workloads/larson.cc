// larson: a server-style workload with thread churn and cross-thread frees.
//
// Modelled on Larson & Krishnan's "larson" benchmark (Memory Allocation for
// Long-Running Server Applications, ISMM 1998), as used by Hoard and
// mimalloc-bench. Each worker owns a window of live objects and repeatedly
// frees a random one and replaces it with a new object of random size; at
// the end of a round its window is inherited by a newly created thread, so
// objects allocated by one thread are freed by another.
//
// How it differs from the original:
//   * a fixed amount of work (so wall time is the metric) instead of a fixed
//     duration and an ops/second figure;
//   * rounds are synchronous: all threads of a round are joined before the
//     next round starts, and window w goes to thread (w + round) % N, instead
//     of each thread asynchronously spawning its own successor;
//   * every object carries a tag that is checked before it is freed, and the
//     checksum (sum of the tags freed) does not depend on scheduling: each
//     window carries its own random generator, so its history is fixed.
//
// Work: --scale 1.0 is 24M replace operations split over the threads, in
// 24 rounds. Sizes are uniform in [8, 512] bytes; each window holds 2000
// objects.
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "bench/workloads/common.h"

namespace {

using strata_bench::Mix;
using strata_bench::Rng;

constexpr long kBaseOps = 24'000'000;
constexpr int kRounds = 24;
constexpr size_t kSlots = 2000;
constexpr size_t kMinSize = 8;
constexpr size_t kMaxSize = 512;

struct Slot {
  void* p = nullptr;
  uint32_t size = 0;
  uint64_t tag = 0;
};

struct Window {
  explicit Window(uint64_t id) : rng(id), id(id), slots(kSlots) {}
  Rng rng;
  uint64_t id;
  uint64_t serial = 0;
  uint64_t freed_sum = 0;  // sum of the tags of objects freed so far
  std::vector<Slot> slots;
};

void Release(Window& w, Slot& s) {
  if (s.p == nullptr) return;
  if (!strata_bench::StampOk(s.p, s.size, s.tag)) {
    strata_bench::Die("larson: object of %u bytes in window %llu corrupted",
                      s.size, static_cast<unsigned long long>(w.id));
  }
  std::free(s.p);
  w.freed_sum += s.tag;
  s.p = nullptr;
}

void Work(Window& w, long ops) {
  for (long i = 0; i < ops; ++i) {
    Slot& s = w.slots[w.rng.Below(kSlots)];
    Release(w, s);
    size_t size = w.rng.Range(kMinSize, kMaxSize);
    void* p = std::malloc(size);
    if (p == nullptr) strata_bench::Die("larson: malloc(%zu) failed", size);
    uint64_t tag = Mix((w.id << 40) ^ ++w.serial);
    strata_bench::Stamp(p, size, tag);
    s.p = p;
    s.size = static_cast<uint32_t>(size);
    s.tag = tag;
  }
}

}  // namespace

int main(int argc, char** argv) {
  const strata_bench::Options opt = strata_bench::ParseArgs(argc, argv);
  const int n = opt.threads;
  const long total = strata_bench::Scaled(kBaseOps, opt, kRounds * n);

  std::vector<Window*> windows;
  for (int w = 0; w < n; ++w) windows.push_back(new Window(w + 1));

  for (int round = 0; round < kRounds; ++round) {
    const long round_ops = strata_bench::ShareOf(total, kRounds, round);
    strata_bench::RunFreshThreads(n, [&](int t) {
      int w = (t + round) % n;
      Work(*windows[w], strata_bench::ShareOf(round_ops, n, w));
    });
  }

  uint64_t sum = 0;
  for (Window* w : windows) {
    for (Slot& s : w->slots) Release(*w, s);
    sum += w->freed_sum + w->serial;
    delete w;
  }
  strata_bench::PrintChecksum(sum);
  return 0;
}
