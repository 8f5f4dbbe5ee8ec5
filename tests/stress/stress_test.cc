// tests/stress/stress_test.cc: many threads, random sizes (a share of them
// large and huge), blocks handed between threads through a shared array of
// slots, threads recreated every round.
//
// Every block carries a header {size, tag, alignment} and a cookie derived
// from the tag over the rest; it is checked whenever a thread takes the
// block out of a slot and before it is freed or reallocated. A concurrent
// set of live block addresses proves that no block is handed out twice
// (an address returned while still live) and none is freed unknown. At the
// end every slot is drained and the engine's own statistics must show the
// live bytes back at the baseline; RSS is recorded after each round and
// must stay flat (the live set is bounded by the slots).
//
// Knobs (environment; tools/stress/run_long.sh sets them for long runs):
//   STRATA_STRESS_THREADS  threads per round (default 8)
//   STRATA_STRESS_SECONDS  time budget (default 15; sanitizers 10)
//   STRATA_STRESS_ROUNDS   maximum rounds (default 1000)
//   STRATA_STRESS_OPS      operations per thread per round (default 20000)
//   STRATA_STRESS_SLOTS    shared slots (default 1024)
// The run's figures are printed as one "stress:" line.
#include <atomic>
#include <cinttypes>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <thread>
#include <unordered_set>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/hardening.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"
#include "tests/hardening/util.h"

namespace strata {
namespace {

std::uint64_t EnvOr(const char* name, std::uint64_t fallback) {
  const char* v = std::getenv(name);
  return v != nullptr && *v != '\0' ? std::strtoull(v, nullptr, 10) : fallback;
}

struct Header {
  std::uint64_t size;   // bytes requested
  std::uint64_t tag;    // cookie seed
  std::uint64_t align;  // 0: not an aligned allocation
};
constexpr std::size_t kMinBlock = sizeof(Header);

// A set of live addresses, striped by address.
class LiveSet {
 public:
  bool Insert(void* p) {
    Stripe& s = stripes_[Index(p)];
    std::lock_guard<std::mutex> l(s.mu);
    return s.set.insert(reinterpret_cast<std::uintptr_t>(p)).second;
  }
  bool Erase(void* p) {
    Stripe& s = stripes_[Index(p)];
    std::lock_guard<std::mutex> l(s.mu);
    return s.set.erase(reinterpret_cast<std::uintptr_t>(p)) == 1;
  }

 private:
  static constexpr int kStripes = 64;
  static int Index(void* p) { return static_cast<int>((reinterpret_cast<std::uintptr_t>(p) >> 4) * 0x9E3779B97F4A7C15ull >> 58); }
  struct alignas(64) Stripe {
    std::mutex mu;
    std::unordered_set<std::uintptr_t> set;
  };
  Stripe stripes_[kStripes];
};

struct Counters {
  std::atomic<std::uint64_t> ops{0}, allocs{0}, frees{0}, reallocs{0}, large{0};
  std::atomic<std::uint64_t> cookie_failures{0}, handed_out_twice{0}, unknown_frees{0};
  std::atomic<std::uint64_t> not_zeroed{0}, misaligned{0}, null_results{0};
};

void Stamp(void* p, std::size_t n, std::uint64_t tag, std::size_t align) {
  Header h{n, tag, align};
  std::memcpy(p, &h, sizeof(h));
  testing::FillCookie(static_cast<char*>(p) + sizeof(h), n - sizeof(h), tag);
}

bool Verify(const void* p, Header* h) {
  std::memcpy(h, p, sizeof(*h));
  if (h->size < kMinBlock || h->size > (std::size_t{64} << 20)) return false;
  return testing::CheckCookie(static_cast<const char*>(p) + sizeof(*h), h->size - sizeof(*h), h->tag);
}

class Stress {
 public:
  Stress(int slots) : slots_(static_cast<std::size_t>(slots)) {
    for (auto& s : slots_) s.store(nullptr);
  }

  // One thread's round.
  void Run(std::uint64_t seed, std::uint64_t ops) {
    testing::Prng rng(seed);
    for (std::uint64_t op = 0; op < ops; ++op) {
      counters_.ops.fetch_add(1, std::memory_order_relaxed);
      std::atomic<void*>& slot = slots_[rng.Below(slots_.size())];
      if (rng.OneIn(3)) {
        // Take a block, check it, and free or resize it.
        void* p = slot.exchange(nullptr, std::memory_order_acq_rel);
        if (p == nullptr) continue;
        Header h;
        if (!Verify(p, &h)) counters_.cookie_failures.fetch_add(1);
        if (rng.OneIn(4) && h.align == 0) {
          if (!live_.Erase(p)) counters_.unknown_frees.fetch_add(1);
          std::size_t n = NewSize(rng);
          void* q = Reallocate(p, n);
          counters_.reallocs.fetch_add(1, std::memory_order_relaxed);
          if (q == nullptr) {
            counters_.null_results.fetch_add(1);
            continue;
          }
          Header g;
          std::memcpy(&g, q, sizeof(g));
          std::size_t keep = n < h.size ? n : h.size;
          // The kept prefix of the cookie survived the move.
          if (g.tag != h.tag || !testing::CheckCookie(static_cast<char*>(q) + sizeof(g),
                                                      (keep > 4096 ? 4096 : keep) - sizeof(g), h.tag)) {
            counters_.cookie_failures.fetch_add(1);
          }
          Publish(slot, q, n, rng.Next(), 0);
        } else {
          Release(p, h, rng);
        }
        continue;
      }
      std::size_t n = NewSize(rng);
      std::size_t align = 0;
      void* p;
      switch (rng.Below(8)) {
        case 0:
          p = AllocateZeroed(1, n);
          if (p != nullptr && !Zero(p, n)) counters_.not_zeroed.fetch_add(1);
          break;
        case 1:
          align = std::size_t{32} << rng.Below(12);
          p = AllocateAligned(n, align);
          if (p != nullptr && reinterpret_cast<std::uintptr_t>(p) % align != 0) counters_.misaligned.fetch_add(1);
          break;
        default:
          p = Allocate(n);
          break;
      }
      counters_.allocs.fetch_add(1, std::memory_order_relaxed);
      if (n > (std::size_t{256} << 10)) counters_.large.fetch_add(1, std::memory_order_relaxed);
      if (p == nullptr) {
        counters_.null_results.fetch_add(1);
        continue;
      }
      Publish(slot, p, n, rng.Next(), align);
    }
  }

  // Frees every block left in the slots (single-threaded, at the end).
  void Drain() {
    testing::Prng rng(99);
    for (auto& slot : slots_) {
      void* p = slot.exchange(nullptr);
      if (p == nullptr) continue;
      Header h;
      if (!Verify(p, &h)) counters_.cookie_failures.fetch_add(1);
      Release(p, h, rng);
    }
  }

  const Counters& counters() const { return counters_; }

 private:
  static std::size_t NewSize(testing::Prng& rng) {
    std::uint64_t r = rng.Below(1000);
    if (r < 20) return (std::size_t{256} << 10) + rng.Below(std::size_t{2} << 20);  // large and huge: 2%
    if (r < 170) return 1024 + rng.Below(std::size_t{255} << 10);                   // medium: 15%
    return kMinBlock + rng.Below(1024);                                              // small
  }

  static bool Zero(const void* p, std::size_t n) {
    const auto* b = static_cast<const unsigned char*>(p);
    std::size_t step = n > 65536 ? 997 : 1;
    for (std::size_t i = 0; i < n; i += step) {
      if (b[i] != 0) return false;
    }
    return b[n - 1] == 0;
  }

  // Stamps a fresh block, records it live, and puts it in `slot` (freeing
  // the block the slot held, if any).
  void Publish(std::atomic<void*>& slot, void* p, std::size_t n, std::uint64_t tag, std::size_t align) {
    if (!live_.Insert(p)) counters_.handed_out_twice.fetch_add(1);
    Stamp(p, n, tag, align);
    void* old = slot.exchange(p, std::memory_order_acq_rel);
    if (old != nullptr) {
      Header h;
      if (!Verify(old, &h)) counters_.cookie_failures.fetch_add(1);
      testing::Prng rng(tag);
      Release(old, h, rng);
    }
  }

  void Release(void* p, const Header& h, testing::Prng& rng) {
    if (!live_.Erase(p)) counters_.unknown_frees.fetch_add(1);
    counters_.frees.fetch_add(1, std::memory_order_relaxed);
    if (h.align != 0) {
      FreeAlignedSized(p, h.size, h.align);
    } else if (rng.OneIn(2)) {
      FreeSized(p, h.size);
    } else {
      Free(p);
    }
  }

  std::vector<std::atomic<void*>> slots_;
  LiveSet live_;
  Counters counters_;
};

TEST(Stress, ThreadsRandomSizesHandOffRecreatedEachRound) {
  const int threads = static_cast<int>(EnvOr("STRATA_STRESS_THREADS", 8));
#if defined(STRATA_SANITIZER_BUILD)
  const std::uint64_t default_seconds = 10;
#else
  const std::uint64_t default_seconds = 15;
#endif
  const std::uint64_t seconds = EnvOr("STRATA_STRESS_SECONDS", default_seconds);
  const std::uint64_t max_rounds = EnvOr("STRATA_STRESS_ROUNDS", 1000);
  const std::uint64_t ops = EnvOr("STRATA_STRESS_OPS", 20000 / testing::kSanitizerDivisor);
  const int slots = static_cast<int>(EnvOr("STRATA_STRESS_SLOTS", 1024));

  FlushThreadCache();
  ReleaseMemory();
  const Stats base = GetStats();
  Stress stress(slots);
  const std::uint64_t start = testing::MonotonicMs();
  std::vector<std::size_t> rss;  // after each round
  std::uint64_t rounds = 0;
  while (rounds < max_rounds && testing::MonotonicMs() - start < seconds * 1000) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t) {
      pool.emplace_back([&stress, rounds, t, ops] { stress.Run(rounds * 1000003 + static_cast<std::uint64_t>(t), ops); });
    }
    for (auto& t : pool) t.join();
    ReleaseMemory();
    rss.push_back(testing::Rss());
    ++rounds;
  }
  const double elapsed = static_cast<double>(testing::MonotonicMs() - start) / 1000.0;
  stress.Drain();
  FlushThreadCache();
  ReleaseMemory();
  const Stats end = GetStats();
  const Counters& c = stress.counters();

  std::size_t rss_first = rss.size() > 1 ? rss[1] : rss[0];  // round 0 warms up
  std::size_t rss_max_late = 0;
  for (std::size_t i = rss.size() / 2; i < rss.size(); ++i) rss_max_late = rss_max_late > rss[i] ? rss_max_late : rss[i];
  std::printf(
      "stress: %s mode, threads %d, rounds %" PRIu64 ", ops %" PRIu64 " (allocs %" PRIu64 ", large %" PRIu64
      ", frees %" PRIu64 ", reallocs %" PRIu64 "), %.1f s, %.0f ops/s; cookie failures %" PRIu64
      ", handed out twice %" PRIu64 ", unknown frees %" PRIu64 ", not zeroed %" PRIu64 ", misaligned %" PRIu64
      ", null results %" PRIu64 "; live bytes %lld -> %lld; rss round 1 %.1f MiB, max of last half %.1f MiB\n",
      internal::Hardened() ? "hardened" : "normal", threads, rounds, c.ops.load(), c.allocs.load(), c.large.load(), c.frees.load(), c.reallocs.load(), elapsed,
      static_cast<double>(c.ops.load()) / elapsed, c.cookie_failures.load(), c.handed_out_twice.load(),
      c.unknown_frees.load(), c.not_zeroed.load(), c.misaligned.load(), c.null_results.load(),
      static_cast<long long>(base.live_bytes), static_cast<long long>(end.live_bytes),
      static_cast<double>(rss_first) / 1048576.0, static_cast<double>(rss_max_late) / 1048576.0);
  std::fflush(stdout);

  EXPECT_GE(rounds, 2u);
  EXPECT_EQ(c.cookie_failures.load(), 0u);
  EXPECT_EQ(c.handed_out_twice.load(), 0u);
  EXPECT_EQ(c.unknown_frees.load(), 0u);
  EXPECT_EQ(c.not_zeroed.load(), 0u);
  EXPECT_EQ(c.misaligned.load(), 0u);
  EXPECT_EQ(c.null_results.load(), 0u);
  // Nothing lost: the engine's own count of live bytes is back.
  EXPECT_EQ(end.live_bytes, base.live_bytes);
  EXPECT_EQ(end.large_live_bytes, base.large_live_bytes);
  EXPECT_EQ(end.thread_cache_bytes, 0u);
#if !defined(STRATA_SANITIZER_BUILD)
  // Flat: the live set is bounded by the slots, so RSS must not creep up
  // round after round.
  EXPECT_LE(rss_max_late, rss_first + rss_first / 4 + (std::size_t{32} << 20));
#endif
}

}  // namespace
}  // namespace strata
