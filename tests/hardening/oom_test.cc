// tests/hardening/oom_test.cc: out of memory for real. In a forked child
// whose address space is capped with RLIMIT_AS (current size + 200 MiB),
// four threads exhaust memory through one API each scenario (Allocate,
// AllocateZeroed, Reallocate, AllocateAligned, the pmr resource), in a mix
// of small, large and huge requests. Checked: failure is nullptr (or
// std::bad_alloc for pmr), never a crash; every block handed out is usable
// and keeps its contents (zeroed ones read zero); a failed Reallocate
// leaves the old block intact; after everything is freed the same child
// allocates 120 MiB again. Normal and hardened mode.
//
// RLIMIT_AS cannot work under ASan or TSan (they reserve terabytes of
// shadow address space): tagged no-asan, no-tsan.
#include <sys/resource.h>

#include <atomic>
#include <cstdint>
#include <cstring>
#include <memory_resource>
#include <new>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/pmr.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"
#include "tests/hardening/util.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

enum class Api { kAllocate, kZeroed, kReallocate, kAligned, kPmr };

constexpr int kThreads = 4;
constexpr std::size_t kLimitBytes = std::size_t{200} << 20;
constexpr std::size_t kMaxBlocks = 1 << 20;  // per thread

struct Block {
  void* p;
  std::size_t n;
  std::uint64_t tag;
  std::size_t align;
};

// Per-thread result, written by the thread, read after join.
struct Outcome {
  std::uint64_t ok = 0, failed = 0, corrupt = 0, not_zero = 0, misaligned = 0, realloc_lost = 0;
};

std::size_t PickSize(testing::Prng& rng) {
  switch (rng.Below(10)) {
    case 0: return (std::size_t{4} << 20) + rng.Below(std::size_t{12} << 20);  // huge
    case 1:
    case 2: return 300000 + rng.Below(std::size_t{3} << 20);                    // large
    case 3:
    case 4: return 4096 + rng.Below(250000);                                    // medium
    default: return 1 + rng.Below(4096);                                        // small
  }
}

// One thread's run: allocate until memory is exhausted (many failures in a
// row, small requests included), checking every block.
void Exhaust(Api api, int seed, Block* blocks, Outcome* out, std::size_t* count) {
  testing::Prng rng(seed);
  std::size_t n_blocks = 0;
  int consecutive_failures = 0;
  std::pmr::memory_resource* resource = pmr::GlobalResource();
  while (n_blocks < kMaxBlocks && consecutive_failures < (api == Api::kPmr ? 200 : 1000)) {
    // Once large requests fail, keep going with small ones only, so that
    // the small-object refill path runs out too.
    std::size_t n = consecutive_failures > 50 ? 16 + rng.Below(512) : PickSize(rng);
    std::size_t align = 0;
    void* p = nullptr;
    switch (api) {
      case Api::kAllocate:
        p = Allocate(n);
        break;
      case Api::kZeroed: {
        std::size_t count = 1 + rng.Below(4);
        std::size_t each = n / count + 1;
        p = AllocateZeroed(count, each);
        n = count * each;
        break;
      }
      case Api::kAligned:
        align = std::size_t{16} << rng.Below(14);
        p = AllocateAligned(n, align);
        break;
      case Api::kReallocate: {
        // Grow an existing block (or start one); a failure must leave it.
        if (n_blocks > 0 && rng.OneIn(2)) {
          Block& b = blocks[rng.Below(n_blocks)];
          std::size_t bigger = b.n + n;
          void* q = Reallocate(b.p, bigger);
          if (q == nullptr) {
            ++out->failed;
            ++consecutive_failures;
            if (!testing::CheckCookie(b.p, b.n, b.tag)) ++out->realloc_lost;
            continue;
          }
          if (!testing::CheckCookie(q, b.n, b.tag)) ++out->realloc_lost;
          b.p = q;
          b.n = bigger;
          testing::FillCookie(q, b.n, b.tag);
          ++out->ok;
          consecutive_failures = 0;
          continue;
        }
        p = Reallocate(nullptr, n);
        break;
      }
      case Api::kPmr:
        try {
          align = std::size_t{8} << rng.Below(8);
          p = resource->allocate(n, align);
        } catch (const std::bad_alloc&) {
          p = nullptr;
        }
        break;
    }
    if (p == nullptr) {
      ++out->failed;
      ++consecutive_failures;
      continue;
    }
    consecutive_failures = 0;
    ++out->ok;
    if (api == Api::kZeroed) {
      auto* b = static_cast<unsigned char*>(p);
      std::size_t step = n > 65536 ? 4093 : 1;
      for (std::size_t i = 0; i < n; i += step) {
        if (b[i] != 0) {
          ++out->not_zero;
          break;
        }
      }
    }
    if (align != 0 && reinterpret_cast<std::uintptr_t>(p) % align != 0) ++out->misaligned;
    std::uint64_t tag = rng.Next();
    testing::FillCookie(p, n, tag);
    blocks[n_blocks++] = {p, n, tag, align};
  }
  for (std::size_t i = 0; i < n_blocks; ++i) {
    if (!testing::CheckCookie(blocks[i].p, blocks[i].n, blocks[i].tag)) ++out->corrupt;
  }
  *count = n_blocks;
}

void FreeAll(Api api, Block* blocks, std::size_t count) {
  for (std::size_t i = 0; i < count; ++i) {
    if (api == Api::kPmr) {
      pmr::GlobalResource()->deallocate(blocks[i].p, blocks[i].n, blocks[i].align);
    } else {
      Free(blocks[i].p);
    }
  }
}

// The child: threads first (their stacks are mapped before the cap), then
// the cap, then the run; exit code 0 when every check passed.
[[noreturn]] void RunOom(Api api) {
  static Block* blocks[kThreads];
  for (auto& b : blocks) {
    b = static_cast<Block*>(malloc(sizeof(Block) * kMaxBlocks));  // glibc's, before the cap
    if (b == nullptr) _exit(90);
  }
  Outcome outcomes[kThreads];
  std::size_t counts[kThreads] = {};
  std::atomic<int> go{0};
  std::atomic<int> done{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      // This thread's glibc malloc arena (the test's own vectors and the
      // C++ runtime's exception buffers use glibc here) is created now,
      // before the cap: glibc reserves 64 MiB of address space per arena,
      // which would otherwise come out of the capped budget at random and
      // make the recovery check below flaky.
      free(malloc(64));
      while (go.load() == 0) sched_yield();
      Exhaust(api, t + 1, blocks[t], &outcomes[t], &counts[t]);
      done.fetch_add(1);
      while (go.load() == 1) sched_yield();
      FreeAll(api, blocks[t], counts[t]);
      FlushThreadCache();
    });
  }
  rlimit limit;
  limit.rlim_cur = limit.rlim_max = testing::VirtualSize() + kLimitBytes;
  if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(91);
  go.store(1);
  while (done.load() != kThreads) sched_yield();
  // Everything is exhausted now, at once, from all threads.
  go.store(2);
  for (auto& t : threads) t.join();
  Outcome total;
  for (const Outcome& o : outcomes) {
    total.ok += o.ok;
    total.failed += o.failed;
    total.corrupt += o.corrupt;
    total.not_zero += o.not_zero;
    total.misaligned += o.misaligned;
    total.realloc_lost += o.realloc_lost;
  }
  if (total.failed == 0) _exit(2);     // memory was never exhausted
  if (total.ok < 100) _exit(3);
  if (total.corrupt != 0) _exit(4);
  if (total.not_zero != 0) _exit(5);
  if (total.misaligned != 0) _exit(6);
  if (total.realloc_lost != 0) _exit(7);
  // Recovery: the same process allocates again after freeing: 80 MiB of
  // 1 MiB blocks, 40% of the capped budget. (Not all of it: the budget
  // also holds the regions the engine reserved while exhausting memory,
  // which stay reserved, and 1 MiB blocks pack three to a 4 MiB segment;
  // 120 blocks fitted only when the exhaustion happened to leave large
  // regions behind.)
  ReleaseMemory();
  std::vector<void*> again;
  again.reserve(200);
  for (int i = 0; i < 80; ++i) {
    auto* p = static_cast<char*>(Allocate(1 << 20));
    if (p == nullptr) _exit(8);
    p[0] = p[(1 << 20) - 1] = 1;
    again.push_back(p);
  }
  for (int i = 0; i < 1000; ++i) {
    void* p = Allocate(64);
    if (p == nullptr) _exit(9);
    Free(p);
  }
  for (void* p : again) Free(p);
  _exit(0);
}

struct Case {
  Api api;
  Mode mode;
};

class Oom : public ::testing::TestWithParam<Case> {};

TEST_P(Oom, ExhaustAndRecover) {
  ChildResult r = RunInChild([] { RunOom(GetParam().api); }, GetParam().mode, 50000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

std::string CaseName(const ::testing::TestParamInfo<Case>& info) {
  const char* api[] = {"Allocate", "AllocateZeroed", "Reallocate", "AllocateAligned", "Pmr"};
  return std::string(api[static_cast<int>(info.param.api)]) +
         (info.param.mode == Mode::kHardened ? "Hardened" : "Normal");
}

INSTANTIATE_TEST_SUITE_P(
    Apis, Oom,
    ::testing::Values(Case{Api::kAllocate, Mode::kNormal}, Case{Api::kZeroed, Mode::kNormal},
                      Case{Api::kReallocate, Mode::kNormal}, Case{Api::kAligned, Mode::kNormal},
                      Case{Api::kPmr, Mode::kNormal}, Case{Api::kAllocate, Mode::kHardened},
                      Case{Api::kZeroed, Mode::kHardened}, Case{Api::kReallocate, Mode::kHardened},
                      Case{Api::kAligned, Mode::kHardened}, Case{Api::kPmr, Mode::kHardened}),
    CaseName);

}  // namespace
}  // namespace strata
