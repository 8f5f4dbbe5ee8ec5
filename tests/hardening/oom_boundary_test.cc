// tests/hardening/oom_boundary_test.cc: out of memory at the C and C++
// boundaries, with strata as the process allocator (linked with
// malloc = "//alloc:malloc"). In a forked child capped with RLIMIT_AS
// (current size + 200 MiB), four threads exhaust memory through malloc,
// calloc, realloc, posix_memalign, aligned_alloc, operator new, new[],
// aligned new and nothrow new. Checked: the C functions return nullptr
// with errno == ENOMEM (posix_memalign returns ENOMEM and leaves *out
// alone), realloc leaves the old block intact; operator new throws
// std::bad_alloc, nothrow new returns nullptr; nothing crashes; after
// everything is freed the child allocates 120 MiB again. The whole binary
// runs on strata (gtest included), so the mode is the process's: the
// _hardened target sets STRATA_HARDENED=1. The sanitizers replace malloc:
// tagged no-sanitizer.
#include <errno.h>
#include <malloc.h>
#include <sys/resource.h>

#include <atomic>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <new>
#include <thread>
#include <vector>

#include <gtest/gtest.h>

#include "tests/hardening/child.h"
#include "tests/hardening/util.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

enum class Api { kMalloc, kCalloc, kRealloc, kPosixMemalign, kAlignedAlloc, kNew, kNewArray, kAlignedNew, kNothrowNew };
constexpr int kThreads = 4;
constexpr std::size_t kMaxBlocks = 1 << 18;

struct Block {
  void* p;
  std::size_t n;
  Api api;
  std::size_t align;
};

struct Outcome {
  std::uint64_t ok = 0, failed = 0, bad_errno = 0, bad_result = 0, lost = 0, corrupt = 0;
};

std::size_t PickSize(testing::Prng& rng, int failures) {
  if (failures > 50) return 16 + rng.Below(512);  // then small ones run out too
  switch (rng.Below(6)) {
    case 0: return (std::size_t{4} << 20) + rng.Below(std::size_t{8} << 20);
    case 1: return 300000 + rng.Below(std::size_t{2} << 20);
    case 2: return 4096 + rng.Below(250000);
    default: return 16 + rng.Below(4096);
  }
}

void Release(const Block& b) {
  switch (b.api) {
    case Api::kNew: ::operator delete(b.p, b.n); break;
    case Api::kNewArray: ::operator delete[](b.p); break;
    case Api::kAlignedNew: ::operator delete(b.p, b.n, std::align_val_t(b.align)); break;
    case Api::kNothrowNew: ::operator delete(b.p, std::nothrow); break;
    default: std::free(b.p); break;
  }
}

void Exhaust(Api api, int seed, Block* blocks, std::size_t* count, Outcome* out) {
  testing::Prng rng(seed);
  std::size_t n_blocks = 0;
  int failures = 0;
  while (n_blocks < kMaxBlocks && failures < 500) {
    std::size_t n = PickSize(rng, failures);
    std::size_t align = 0;
    void* p = nullptr;
    bool failed_ok = false;  // failed the way the API promises
    errno = 0;
    switch (api) {
      case Api::kMalloc:
        p = std::malloc(n);
        failed_ok = p == nullptr && errno == ENOMEM;
        break;
      case Api::kCalloc:
        p = std::calloc(4, n / 4 + 1);
        n = 4 * (n / 4 + 1);
        failed_ok = p == nullptr && errno == ENOMEM;
        if (p != nullptr && (static_cast<unsigned char*>(p)[0] != 0 || static_cast<unsigned char*>(p)[n - 1] != 0)) {
          ++out->bad_result;
        }
        break;
      case Api::kRealloc: {
        if (n_blocks > 0 && rng.OneIn(2)) {
          Block& b = blocks[rng.Below(n_blocks)];
          std::size_t bigger = b.n + n;
          void* q = std::realloc(b.p, bigger);
          if (q == nullptr) {
            ++out->failed;
            ++failures;
            if (errno != ENOMEM) ++out->bad_errno;
            if (static_cast<unsigned char*>(b.p)[0] != 0x5a) ++out->lost;  // the old block survived
            continue;
          }
          if (static_cast<unsigned char*>(q)[0] != 0x5a) ++out->lost;
          b.p = q;
          b.n = bigger;
          std::memset(q, 0x5a, 64 < bigger ? 64 : bigger);
          static_cast<unsigned char*>(q)[bigger - 1] = 0x5a;
          ++out->ok;
          failures = 0;
          continue;
        }
        p = std::realloc(nullptr, n);
        failed_ok = p == nullptr && errno == ENOMEM;
        break;
      }
      case Api::kPosixMemalign: {
        align = std::size_t{8} << rng.Below(12);
        void* sentinel = reinterpret_cast<void*>(0x1234);
        p = sentinel;
        int r = posix_memalign(&p, align, n);
        if (r != 0) {
          failed_ok = r == ENOMEM && p == sentinel;
          p = nullptr;
        }
        break;
      }
      case Api::kAlignedAlloc:
        align = std::size_t{16} << rng.Below(10);
        n = (n + align - 1) & ~(align - 1);
        p = aligned_alloc(align, n);
        failed_ok = p == nullptr && errno == ENOMEM;
        break;
      case Api::kNew:
      case Api::kNewArray:
      case Api::kAlignedNew:
        try {
          if (api == Api::kNew) {
            p = ::operator new(n);
          } else if (api == Api::kNewArray) {
            p = ::operator new[](n);
          } else {
            align = std::size_t{32} << rng.Below(10);
            p = ::operator new(n, std::align_val_t(align));
          }
        } catch (const std::bad_alloc&) {
          failed_ok = true;
          p = nullptr;
        }
        break;
      case Api::kNothrowNew:
        p = ::operator new(n, std::nothrow);
        failed_ok = p == nullptr;
        break;
    }
    if (p == nullptr) {
      ++out->failed;
      ++failures;
      if (!failed_ok) ++out->bad_errno;
      continue;
    }
    failures = 0;
    ++out->ok;
    if (align != 0 && reinterpret_cast<std::uintptr_t>(p) % align != 0) ++out->bad_result;
    std::memset(p, 0x5a, 64 < n ? 64 : n);
    static_cast<unsigned char*>(p)[n - 1] = 0x5a;
    blocks[n_blocks++] = {p, n, api, align};
  }
  for (std::size_t i = 0; i < n_blocks; ++i) {
    const Block& b = blocks[i];
    auto* c = static_cast<unsigned char*>(b.p);
    if (c[0] != 0x5a || c[b.n - 1] != 0x5a) ++out->corrupt;
  }
  *count = n_blocks;
}

[[noreturn]] void RunOom(Api api) {
  static Block* blocks[kThreads];
  for (auto& b : blocks) {
    b = static_cast<Block*>(std::malloc(sizeof(Block) * kMaxBlocks));
    if (b == nullptr) _exit(90);
    std::memset(static_cast<void*>(b), 0, sizeof(Block) * kMaxBlocks);  // touched before the cap
  }
  Outcome outcomes[kThreads];
  std::size_t counts[kThreads] = {};
  std::atomic<int> go{0}, done{0};
  std::vector<std::thread> threads;
  threads.reserve(kThreads);
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      while (go.load() == 0) sched_yield();
      Exhaust(api, t + 1, blocks[t], &counts[t], &outcomes[t]);
      done.fetch_add(1);
      while (go.load() == 1) sched_yield();
      for (std::size_t i = 0; i < counts[t]; ++i) Release(blocks[t][i]);
    });
  }
  rlimit limit;
  limit.rlim_cur = limit.rlim_max = testing::VirtualSize() + (std::size_t{200} << 20);
  if (setrlimit(RLIMIT_AS, &limit) != 0) _exit(91);
  go.store(1);
  while (done.load() != kThreads) sched_yield();
  go.store(2);
  for (auto& t : threads) t.join();
  Outcome total;
  for (const Outcome& o : outcomes) {
    total.ok += o.ok;
    total.failed += o.failed;
    total.bad_errno += o.bad_errno;
    total.bad_result += o.bad_result;
    total.lost += o.lost;
    total.corrupt += o.corrupt;
  }
  if (total.failed == 0) _exit(2);
  if (total.ok < 50) _exit(3);
  if (total.bad_errno != 0) _exit(4);
  if (total.bad_result != 0) _exit(5);
  if (total.lost != 0) _exit(6);
  if (total.corrupt != 0) _exit(7);
  malloc_trim(0);  // strata: releases what it can
  std::vector<void*> again;
  again.reserve(200);
  for (int i = 0; i < 120; ++i) {
    auto* p = static_cast<char*>(std::malloc(1 << 20));
    if (p == nullptr) _exit(8);
    p[0] = p[(1 << 20) - 1] = 1;
    again.push_back(p);
  }
  for (void* p : again) std::free(p);
  try {
    std::vector<int> v(1 << 20, 7);
    if (v[12345] != 7) _exit(9);
  } catch (...) {
    _exit(10);
  }
  _exit(0);
}

class OomBoundary : public ::testing::TestWithParam<Api> {};

TEST_P(OomBoundary, ExhaustAndRecover) {
  ChildResult r = RunInChild([] { RunOom(GetParam()); }, Mode::kInherit, 50000);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

std::string ApiName(const ::testing::TestParamInfo<Api>& info) {
  const char* api[] = {"Malloc", "Calloc", "Realloc", "PosixMemalign", "AlignedAlloc",
                       "OperatorNew", "OperatorNewArray", "AlignedNew", "NothrowNew"};
  return api[static_cast<int>(info.param)];
}

INSTANTIATE_TEST_SUITE_P(Apis, OomBoundary,
                         ::testing::Values(Api::kMalloc, Api::kCalloc, Api::kRealloc, Api::kPosixMemalign,
                                           Api::kAlignedAlloc, Api::kNew, Api::kNewArray, Api::kAlignedNew,
                                           Api::kNothrowNew),
                         ApiName);

}  // namespace
}  // namespace strata
