// tests/hardening/churn_test.cc: thousands of threads are created and exit
// while long-lived threads allocate. Each short-lived thread allocates,
// frees some of its blocks, hands the rest to the long-lived threads (which
// free them) and exits with a full cache. Checked: the exiting threads'
// caches are drained (threads_with_cache and thread_cache_bytes back to the
// long-lived threads' level), nothing is lost (live bytes back to the
// baseline), and memory does not grow with the number of threads that came
// and went (committed bytes and RSS late in the run within a bound of
// those early in the run, see the checkpoints below). Normal and hardened
// mode, each in a forked child (a fresh engine per mode).
#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <mutex>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"
#include "tests/hardening/util.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

constexpr int kLongLived = 3;
constexpr int kWaveThreads = 8;
// Sanitizers make thread creation slow (and TSan keeps per-thread state):
// fewer threads there.
constexpr int kWaves = static_cast<int>(500 / testing::kSanitizerDivisor);
constexpr int kBlocksPerThread = 200;

// A bounded multi-producer multi-consumer hand-off of blocks (a lock is
// enough: the engine is under test, not this queue).
class Handoff {
 public:
  bool Push(void* p, std::size_t n) {
    std::lock_guard<std::mutex> l(mu_);
    if (items_.size() >= 1 << 16) return false;
    items_.push_back({p, n});
    return true;
  }
  bool Pop(void** p, std::size_t* n) {
    std::lock_guard<std::mutex> l(mu_);
    if (items_.empty()) return false;
    *p = items_.back().p;
    *n = items_.back().n;
    items_.pop_back();
    return true;
  }

 private:
  struct Item {
    void* p;
    std::size_t n;
  };
  std::mutex mu_;
  std::vector<Item> items_;
};

// Child exit codes name the failed check; details go to stderr.
[[noreturn]] void Churn() {
  FlushThreadCache();
  ReleaseMemory();
  const Stats base = GetStats();
  Handoff handoff;
  std::atomic<bool> stop{false};
  std::atomic<std::uint64_t> corrupt{0};
  std::vector<std::thread> long_lived;
  for (int t = 0; t < kLongLived; ++t) {
    long_lived.emplace_back([&, t] {
      testing::Prng rng(1000 + t);
      void* own[32] = {};
      while (!stop.load(std::memory_order_relaxed)) {
        void* p;
        std::size_t n;
        while (handoff.Pop(&p, &n)) {
          if (static_cast<unsigned char*>(p)[n - 1] != static_cast<unsigned char>(n)) corrupt.fetch_add(1);
          FreeSized(p, n);
        }
        int i = static_cast<int>(rng.Below(32));
        Free(own[i]);
        own[i] = Allocate(1 + rng.Below(rng.OneIn(16) ? 400000 : 2000));
        // Let the thread that creates the waves run when it is ready: three
        // threads spinning here starved it on a loaded machine.
        std::this_thread::yield();
      }
      for (void* q : own) Free(q);
      void* p;
      std::size_t n;
      while (handoff.Pop(&p, &n)) FreeSized(p, n);
      FlushThreadCache();
    });
  }
  // Memory, while the long-lived threads still run, at ten checkpoints.
  // One sample is noisy (which blocks sit in the hand-off queue and in the
  // long-lived threads' hands at that moment moves committed bytes by
  // several MiB either way), so the check compares the *lowest* of the
  // last three checkpoints with the *highest* of checkpoints 1..3: memory
  // that grows with the threads that came and went (a cache not drained,
  // spans not returned) raises every late sample and fails it; noise does
  // not.
  constexpr int kCheckpoints = 10;
  std::size_t committed_at[kCheckpoints] = {}, rss_at[kCheckpoints] = {};
  for (int wave = 0; wave < kWaves; ++wave) {
    std::vector<std::thread> wave_threads;
    wave_threads.reserve(kWaveThreads);
    for (int t = 0; t < kWaveThreads; ++t) {
      wave_threads.emplace_back([&, wave, t] {
        testing::Prng rng(static_cast<std::uint64_t>(wave) * 131 + static_cast<std::uint64_t>(t));
        void* mine[kBlocksPerThread];
        std::size_t sizes[kBlocksPerThread];
        for (int i = 0; i < kBlocksPerThread; ++i) {
          std::size_t n = 1 + rng.Below(rng.OneIn(50) ? 300000 : 3000);
          mine[i] = Allocate(n);
          sizes[i] = n;
          static_cast<unsigned char*>(mine[i])[n - 1] = static_cast<unsigned char>(n);
        }
        for (int i = 0; i < kBlocksPerThread; ++i) {
          if (i % 2 == 0 || !handoff.Push(mine[i], sizes[i])) FreeSized(mine[i], sizes[i]);
        }
        // Exits with a full cache: the exit hook must drain it.
      });
    }
    for (auto& t : wave_threads) t.join();
    if ((wave + 1) % (kWaves / kCheckpoints) == 0 && (wave + 1) / (kWaves / kCheckpoints) <= kCheckpoints) {
      const int k = (wave + 1) / (kWaves / kCheckpoints) - 1;
      ReleaseMemory();
      committed_at[k] = GetStats().committed_bytes;
      rss_at[k] = testing::Rss();
    }
  }
  std::size_t committed_early = 0, rss_early = 0, committed_late = SIZE_MAX, rss_late = SIZE_MAX;
  for (int k = 1; k <= 3; ++k) {
    committed_early = std::max(committed_early, committed_at[k]);
    rss_early = std::max(rss_early, rss_at[k]);
  }
  for (int k = kCheckpoints - 3; k < kCheckpoints; ++k) {
    committed_late = std::min(committed_late, committed_at[k]);
    rss_late = std::min(rss_late, rss_at[k]);
  }
  stop.store(true);
  for (auto& t : long_lived) t.join();
  FlushThreadCache();
  ReleaseMemory();
  const Stats end = GetStats();
  std::fprintf(stderr,
               "threads %d, caches %zu -> %zu, cache bytes %zu, live %lld -> %lld, committed early %zu late %zu "
               "end %zu, rss early %zu late %zu\n",
               kWaves * kWaveThreads, base.threads_with_cache, end.threads_with_cache, end.thread_cache_bytes,
               static_cast<long long>(base.live_bytes), static_cast<long long>(end.live_bytes), committed_early,
               committed_late, end.committed_bytes, rss_early, rss_late);
  if (corrupt.load() != 0) _exit(2);
  // Only this thread has a cache now (and it is flushed).
  if (end.threads_with_cache > 1) _exit(3);
  if (end.thread_cache_bytes != 0) _exit(4);
  if (end.live_bytes != base.live_bytes) _exit(5);
  // No growth with the threads that came and went: 16 MiB of slack for
  // span-level fragmentation (hardened mode's larger blocks move the
  // samples by up to ~10 MiB). A cache or span leaked per exiting thread
  // would add far more over 4000 threads.
  if (committed_late > committed_early + (std::size_t{16} << 20)) _exit(6);
#if !defined(STRATA_SANITIZER_BUILD)
  if (rss_late > rss_early + (std::size_t{16} << 20)) _exit(7);
#endif
  _exit(0);
}

class ThreadChurn : public ::testing::TestWithParam<Mode> {};

TEST_P(ThreadChurn, CachesDrainedAndMemoryFlat) {
  ChildResult r = RunInChild([] { Churn(); }, GetParam(), 55000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
  std::printf("%s", r.err.c_str());
}

INSTANTIATE_TEST_SUITE_P(BothModes, ThreadChurn, ::testing::Values(Mode::kNormal, Mode::kHardened),
                         testing::ModeParamName());

}  // namespace
}  // namespace strata
