// tests/hardening/faults_test.cc: failures of the OS calls under the engine
// (mmap, madvise, munmap; injected with os::InjectFaultsForTesting) are
// surfaced -- as nullptr from the allocating call, and in
// os::FailureCount() -- and survived: no crash, no corrupted state, and
// everything works again once the OS does. Each scenario runs in a forked
// child (a fresh engine, so the first allocations must map memory), in
// normal and in hardened mode.
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/internal/hardening.h"
#include "alloc/os/os.h"
#include "alloc/stats.h"
#include "alloc/stats_report.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"
#include "tests/hardening/util.h"

namespace strata {
namespace {

using os::FailureCount;
using os::FaultKind;
using os::InjectFaultsForTesting;
using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

// Child exit codes name the failed check.
#define CHILD_CHECK(cond, code) \
  do {                          \
    if (!(cond)) _exit(code);   \
  } while (0)

class Faults : public ::testing::TestWithParam<Mode> {};

TEST_P(Faults, MmapFailuresMakeEveryApiReturnNullThenRecover) {
  ChildResult r = RunInChild(
      [] {
        // Before any memory is mapped: everything that needs memory fails.
        InjectFaultsForTesting(FaultKind::kReserve, 1 << 30);
        CHILD_CHECK(Allocate(64) == nullptr, 2);
        CHILD_CHECK(Allocate(1 << 20) == nullptr, 3);
        CHILD_CHECK(Allocate(std::size_t{16} << 20) == nullptr, 4);
        CHILD_CHECK(AllocateZeroed(10, 100) == nullptr, 5);
        CHILD_CHECK(AllocateZeroed(1, 3 << 20) == nullptr, 6);
        CHILD_CHECK(AllocateAligned(100, 4096) == nullptr, 7);
        CHILD_CHECK(AllocateAligned(1 << 20, 1 << 20) == nullptr, 8);
        CHILD_CHECK(Reallocate(nullptr, 100) == nullptr, 9);
        CHILD_CHECK(FailureCount(FaultKind::kReserve) >= 8, 10);
        Free(nullptr);
        FlushThreadCache();
        ReleaseMemory();
        // The OS recovers; so does strata.
        InjectFaultsForTesting(FaultKind::kReserve, 0);
        auto* p = static_cast<char*>(Allocate(64));
        CHILD_CHECK(p != nullptr, 11);
        std::memset(p, 1, 64);
        auto* big = static_cast<char*>(Allocate(std::size_t{16} << 20));
        CHILD_CHECK(big != nullptr, 12);
        big[0] = big[(std::size_t{16} << 20) - 1] = 1;
        // A failed realloc leaves the block intact.
        InjectFaultsForTesting(FaultKind::kReserve, 1 << 30);
        CHILD_CHECK(Reallocate(p, std::size_t{64} << 20) == nullptr, 13);
        for (int i = 0; i < 64; ++i) CHILD_CHECK(p[i] == 1, 14);
        InjectFaultsForTesting(FaultKind::kReserve, 0);
        p = static_cast<char*>(Reallocate(p, std::size_t{64} << 20));
        CHILD_CHECK(p != nullptr && p[63] == 1, 15);
        Free(p);
        Free(big);
        Stats s = GetStats();
        CHILD_CHECK(s.large_live_bytes == 0, 16);
        _exit(0);
      },
      GetParam());
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

TEST_P(Faults, IntermittentMmapFailuresUnderThreads) {
  ChildResult r = RunInChild(
      [] {
        std::atomic<bool> stop{false};
        std::atomic<std::uint64_t> nulls{0}, oks{0}, bad{0};
        std::vector<std::thread> threads;
        for (int t = 0; t < 4; ++t) {
          threads.emplace_back([&, t] {
            testing::Prng rng(t + 1);
            void* held[64] = {};
            std::uint64_t tags[64] = {};
            std::size_t sizes[64] = {};
            while (!stop.load(std::memory_order_relaxed)) {
              int i = static_cast<int>(rng.Below(64));
              if (held[i] != nullptr) {
                if (!testing::CheckCookie(held[i], sizes[i], tags[i])) bad.fetch_add(1);
                Free(held[i]);
                held[i] = nullptr;
                continue;
              }
              std::size_t n = rng.OneIn(4) ? (std::size_t{1} << 20) + rng.Below(std::size_t{12} << 20)
                                           : 1 + rng.Below(300000);
              void* p = rng.OneIn(3) ? AllocateAligned(n, std::size_t{64} << rng.Below(10)) : Allocate(n);
              if (p == nullptr) {
                nulls.fetch_add(1);
                continue;
              }
              oks.fetch_add(1);
              held[i] = p;
              sizes[i] = n;
              tags[i] = rng.Next();
              testing::FillCookie(p, n, tags[i]);
            }
            for (int i = 0; i < 64; ++i) {
              if (held[i] != nullptr && !testing::CheckCookie(held[i], sizes[i], tags[i])) bad.fetch_add(1);
              Free(held[i]);
            }
          });
        }
        // Every other mmap fails, in bursts, for a while: 200 bursts, or
        // fewer when they take more than 2 s (on a loaded machine this
        // thread waits long for a CPU after each sleep, while the workers
        // fill and check blocks of up to 13 MiB all along: the run grew
        // to the child's 60 s deadline).
        const auto bursts_end = std::chrono::steady_clock::now() + std::chrono::seconds(2);
        for (int burst = 0; burst < 200 && (burst < 20 || std::chrono::steady_clock::now() < bursts_end);
             ++burst) {
          InjectFaultsForTesting(FaultKind::kReserve, burst % 2 == 0 ? 3 : 0);
          ReleaseMemory();  // so that later allocations must map again
          usleep(2000);
        }
        InjectFaultsForTesting(FaultKind::kReserve, 0);
        stop.store(true);
        for (auto& t : threads) t.join();
        CHILD_CHECK(bad.load() == 0, 2);
        CHILD_CHECK(oks.load() > 100, 3);
        CHILD_CHECK(FailureCount(FaultKind::kReserve) > 0, 4);
        FlushThreadCache();
        CHILD_CHECK(GetStats().large_live_bytes == 0, 5);
        _exit(0);
      },
      GetParam(), 60000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

// With the address space gone (every mmap refused), huge blocks live in
// free segments the page heap already holds, and those segments come back
// to it when the blocks are freed.
TEST_P(Faults, HugeBlocksBorrowFreeSegmentsWhenMmapFails) {
  ChildResult r = RunInChild(
      [] {
        constexpr std::size_t kMiB = std::size_t{1} << 20;
        // About 20 segments of large blocks, dirtied, then freed: the
        // segments stay reserved and (for the decay delay) committed.
        std::vector<void*> v;
        for (int i = 0; i < 60; ++i) {
          auto* p = static_cast<char*>(Allocate(kMiB));
          CHILD_CHECK(p != nullptr, 2);
          std::memset(p, 0xAB, kMiB);
          v.push_back(p);
        }
        for (void* p : v) Free(p);
        v.clear();
        const Stats before = GetStats();
        InjectFaultsForTesting(FaultKind::kReserve, 1 << 30);
        // Zeroed although its segments held 0xAB a moment ago.
        auto* a = static_cast<unsigned char*>(AllocateZeroed(1, 6 * kMiB));
        CHILD_CHECK(a != nullptr, 3);
        for (std::size_t i = 0; i < 6 * kMiB; ++i) CHILD_CHECK(a[i] == 0, 4);
        std::memset(a, 0x11, 6 * kMiB);
        auto* b = static_cast<unsigned char*>(Allocate(9 * kMiB));
        CHILD_CHECK(b != nullptr, 5);
        std::memset(b, 0x22, 9 * kMiB);
        CHILD_CHECK(UsableSize(a) >= 6 * kMiB && UsableSize(b) >= 9 * kMiB, 6);
        // Growth within the borrowed segments stays in place (hardened
        // mode always moves: it then borrows again). The mode as the engine
        // decided it: a hardened build is hardened in both runs.
        auto* a2 = static_cast<unsigned char*>(Reallocate(a, 7 * kMiB));
        CHILD_CHECK(a2 != nullptr && (internal::Hardened() || a2 == a), 7);
        for (std::size_t i = 0; i < 6 * kMiB; i += 4096) CHILD_CHECK(a2[i] == 0x11, 8);
        std::memset(a2 + 6 * kMiB, 0x33, kMiB);
        for (std::size_t i = 0; i < 9 * kMiB; i += 4096) CHILD_CHECK(b[i] == 0x22, 9);
        CHILD_CHECK(GetStats().reserved_bytes == before.reserved_bytes, 10);  // no new mapping
        Free(a2);
        Free(b);
        // The segments are back: large and small blocks fit in them again,
        // still without any new mapping.
        for (int i = 0; i < 45; ++i) {
          auto* p = static_cast<char*>(Allocate(kMiB));
          CHILD_CHECK(p != nullptr, 11);
          std::memset(p, 0x44, kMiB);
          v.push_back(p);
        }
        for (int i = 0; i < 1000; ++i) {
          auto* p = static_cast<char*>(Allocate(48));
          CHILD_CHECK(p != nullptr, 12);
          std::memset(p, 0x55, 48);
          v.push_back(p);
        }
        for (void* p : v) Free(p);
        auto* c = static_cast<unsigned char*>(Allocate(10 * kMiB));
        CHILD_CHECK(c != nullptr, 13);
        std::memset(c, 0x66, 10 * kMiB);
        Free(c);
        // More than the free segments hold: refused, as before.
        CHILD_CHECK(Allocate(std::size_t{512} << 20) == nullptr, 14);
        InjectFaultsForTesting(FaultKind::kReserve, 0);
        FlushThreadCache();
        CHILD_CHECK(GetStats().large_live_bytes == 0, 15);
        _exit(0);
      },
      GetParam());
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

TEST_P(Faults, MadviseFailuresLeavePagesCommittedAndAreRetried) {
  ChildResult r = RunInChild(
      [] {
        std::vector<void*> v;
        for (int i = 0; i < 64; ++i) {
          auto* p = static_cast<char*>(Allocate(1 << 20));
          CHILD_CHECK(p != nullptr, 2);
          std::memset(p, 1, 1 << 20);
          v.push_back(p);
        }
        for (void* p : v) Free(p);
        Stats before = GetStats();
        std::uint64_t failures = FailureCount(FaultKind::kDecommit);
        InjectFaultsForTesting(FaultKind::kDecommit, 1 << 30);
        std::size_t released = ReleaseMemory();
        Stats during = GetStats();
        CHILD_CHECK(released == 0, 3);
        CHILD_CHECK(FailureCount(FaultKind::kDecommit) > failures, 4);
        CHILD_CHECK(during.committed_bytes == before.committed_bytes, 5);
        // Memory that failed to decommit is still good memory.
        auto* q = static_cast<char*>(Allocate(8 << 20));
        CHILD_CHECK(q != nullptr, 6);
        std::memset(q, 2, 8 << 20);
        Free(q);
        InjectFaultsForTesting(FaultKind::kDecommit, 0);
        released = ReleaseMemory();
        Stats after = GetStats();
        CHILD_CHECK(released >= (std::size_t{32} << 20), 7);
        CHILD_CHECK(after.committed_bytes + (std::size_t{32} << 20) <= before.committed_bytes, 8);
        _exit(0);
      },
      GetParam());
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

TEST_P(Faults, MunmapFailuresLeakTheMappingButNothingBreaks) {
  ChildResult r = RunInChild(
      [] {
        InjectFaultsForTesting(FaultKind::kRelease, 1 << 30);
        for (int i = 0; i < 4; ++i) {
          // Blocks this big are unmapped at free (not cached).
          auto* p = static_cast<char*>(Allocate(std::size_t{80} << 20));
          CHILD_CHECK(p != nullptr, 2);
          p[0] = 1;
          Free(p);
        }
        auto* cached = static_cast<char*>(Allocate(std::size_t{20} << 20));
        CHILD_CHECK(cached != nullptr, 3);
        Free(cached);
        ReleaseMemory();  // unmaps the cached block: fails too
        CHILD_CHECK(FailureCount(FaultKind::kRelease) >= 5, 4);
        InjectFaultsForTesting(FaultKind::kRelease, 0);
        void* p = Allocate(std::size_t{80} << 20);
        CHILD_CHECK(p != nullptr, 5);
        Free(p);
        CHILD_CHECK(GetStats().large_live_bytes == 0, 6);
        _exit(0);
      },
      GetParam());
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

// Stats::os_failures (and the stats report) count every failed OS call, of
// each kind, real or injected.
TEST_P(Faults, StatsCountOsFailures) {
  ChildResult r = RunInChild(
      [] {
        void* warm = Allocate(64);  // the engine is up
        CHILD_CHECK(warm != nullptr, 2);
        const std::uint64_t before = GetStats().os_failures;
        const std::uint64_t before_reserve = FailureCount(FaultKind::kReserve);
        CHILD_CHECK(before == FailureCount(FaultKind::kReserve) + FailureCount(FaultKind::kDecommit) +
                                  FailureCount(FaultKind::kRelease),
                    3);
        // A huge block needs a fresh mapping: every mmap fails meanwhile.
        InjectFaultsForTesting(FaultKind::kReserve, 1 << 30);
        void* huge = Allocate(std::size_t{256} << 20);
        InjectFaultsForTesting(FaultKind::kReserve, 0);
        CHILD_CHECK(huge == nullptr, 4);
        const std::uint64_t after_mmap = GetStats().os_failures;
        CHILD_CHECK(after_mmap > before, 5);
        CHILD_CHECK(after_mmap - before == FailureCount(FaultKind::kReserve) - before_reserve, 13);
        // madvise failures while releasing freed memory.
        void* big = Allocate(std::size_t{8} << 20);
        CHILD_CHECK(big != nullptr, 6);
        std::memset(big, 1, std::size_t{8} << 20);
        Free(big);
        InjectFaultsForTesting(FaultKind::kDecommit, 1 << 30);
        InjectFaultsForTesting(FaultKind::kRelease, 1 << 30);
        ReleaseMemory();
        InjectFaultsForTesting(FaultKind::kDecommit, 0);
        InjectFaultsForTesting(FaultKind::kRelease, 0);
        const Stats s = GetStats();
        CHILD_CHECK(s.os_failures > after_mmap, 7);
        CHILD_CHECK(s.os_failures == FailureCount(FaultKind::kReserve) + FailureCount(FaultKind::kDecommit) +
                                         FailureCount(FaultKind::kRelease),
                    8);
        Free(warm);
        // The report names it.
        CHILD_CHECK(StatsReport(ReportFormat::kText).find("failed OS calls") != std::string::npos, 9);
        const std::string json = StatsReport(ReportFormat::kJson);
        const std::string key = "\"strata.os_failures\":" + std::to_string(GetStats().os_failures);
        CHILD_CHECK(json.find(key) != std::string::npos, 10);
        std::int64_t value = -1;
        CHILD_CHECK(GetNumericProperty("strata.os_failures", &value), 11);
        CHILD_CHECK(value == static_cast<std::int64_t>(GetStats().os_failures), 12);
      },
      GetParam());
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

INSTANTIATE_TEST_SUITE_P(BothModes, Faults, ::testing::Values(Mode::kNormal, Mode::kHardened),
                         testing::ModeParamName());

}  // namespace
}  // namespace strata
