// tests/hardening/misuse_test.cc: every misuse strata promises to detect,
// each in a forked child that does the bad thing; the parent checks that
// the child died of SIGABRT and that stderr holds the one-line report
//   strata: <kind>: pointer 0x..., size N
// followed by the stack lines. Every case runs in normal mode (what is
// always on: some small-block cases are detected at flush time, so their
// child flushes its cache or lets a thread exit) and in hardened mode
// (STRATA_HARDENED=1: detected at the faulting call). Cases that only
// hardened mode detects (kind mismatches, overflows, writes after free)
// run only there. See alloc/internal/hardening.h for the design.
//
// The parent never calls strata (each child starts from a fresh engine and
// picks its mode through the environment before its first call).
#include <pthread.h>

#include <cstdint>
#include <cstring>
#include <regex>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "alloc/internal/errors.h"
#include "alloc/internal/hardening.h"
#include "alloc/strata.h"
#include "tests/hardening/child.h"

namespace strata {
namespace {

using internal::AllocKind;
using testing::ChildResult;
using testing::Mode;
using testing::RunInChild;

// Keeps the compiler from proving a block unused.
void* volatile g_sink;
int g_global_int;

// The mode a child really runs in (a --config=hardened build is hardened
// whatever the environment says).
bool EffectiveHardened(Mode mode) { return mode == Mode::kHardened || internal::kHardenedBuild; }

// Checks that the child aborted with `kind`'s report as a well-formed line.
void ExpectReport(const ChildResult& r, internal::ErrorKind kind, bool with_free_stack = false) {
  ASSERT_TRUE(r.Aborted()) << r.Describe();
  std::string name = internal::ErrorKindName(kind);
  std::string escaped;
  for (char c : name) {
    if (std::strchr("()[]{}.*+?^$|\\", c) != nullptr) escaped += '\\';
    escaped += c;
  }
  std::regex line("(^|\n)strata: " + escaped + ": pointer 0x[0-9a-f]+, size [0-9]+[^\n]*\n");
  EXPECT_TRUE(std::regex_search(r.err, line)) << "expected \"" << name << "\"\n" << r.Describe();
  EXPECT_NE(r.err.find("\nstrata:   at 0x"), std::string::npos) << "no stack\n" << r.Describe();
  if (with_free_stack) {
    EXPECT_NE(r.err.find("\nstrata:   previously freed at 0x"), std::string::npos) << r.Describe();
  }
}

class Misuse : public ::testing::TestWithParam<Mode> {
 protected:
  Mode mode() const { return GetParam(); }
  bool hardened() const { return EffectiveHardened(GetParam()); }
};

// --- double free ---------------------------------------------------------------

TEST_P(Misuse, DoubleFreeSmallSameThread) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(64);
        Free(p);
        Free(p);
        // Normal mode sees it when the cache hands the list back.
        FlushThreadCache();
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kDoubleFree, hardened());
}

TEST_P(Misuse, DoubleFreeSmallNotAdjacent) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(200);
        void* q = Allocate(200);
        Free(p);
        Free(q);
        Free(p);
        FlushThreadCache();
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kDoubleFree, hardened());
}

TEST_P(Misuse, DoubleFreeSmallAcrossThreads) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(48);
        // Each thread's exit flushes its cache (normal mode detects the
        // second copy when it reaches the span).
        std::thread([p] { Free(p); }).join();
        std::thread([p] { Free(p); }).join();
        FlushThreadCache();
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kDoubleFree, hardened());
}

TEST_P(Misuse, DoubleFreeLarge) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(1 << 20);
        Free(p);
        Free(p);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kDoubleFree, hardened());
}

TEST_P(Misuse, DoubleFreeLargeAcrossThreads) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(600000);
        std::thread([p] { Free(p); }).join();
        Free(p);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kDoubleFree, hardened());
}

TEST_P(Misuse, DoubleFreeHuge) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(std::size_t{12} << 20);
        Free(p);
        Free(p);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kDoubleFree, hardened());
}

// --- pointers strata never returned ------------------------------------------

TEST_P(Misuse, FreeOfStackPointer) {
  ChildResult r = RunInChild(
      [] {
        int local = 0;
        g_sink = &local;
        Free(&local);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kInvalidFree);
}

TEST_P(Misuse, FreeOfGlobalPointer) {
  ChildResult r = RunInChild([] { Free(&g_global_int); }, mode());
  ExpectReport(r, internal::ErrorKind::kInvalidFree);
}

TEST_P(Misuse, FreeOfGarbagePointer) {
  ChildResult r = RunInChild(
      [] {
        Allocate(10);  // the engine is up, its maps exist
        Free(reinterpret_cast<void*>(std::uintptr_t{0x5deadbeef000}));
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kInvalidFree);
}

TEST_P(Misuse, FreeOfNonCanonicalPointer) {
  ChildResult r = RunInChild([] { Free(reinterpret_cast<void*>(~std::uintptr_t{0} - 4095)); }, mode());
  ExpectReport(r, internal::ErrorKind::kInvalidFree);
}

// --- interior and misaligned pointers ------------------------------------------

TEST_P(Misuse, InteriorFreeSmall) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(64));
        Free(p + 16);
        FlushThreadCache();
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kInteriorFree);
}

TEST_P(Misuse, InteriorFreeLarge) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(1 << 20));
        Free(p + 4096);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kInteriorFree);
}

TEST_P(Misuse, InteriorFreeHuge) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(std::size_t{10} << 20));
        Free(p + (std::size_t{5} << 20));
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kInteriorFree);
}

TEST_P(Misuse, MisalignedFreeSmall) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(64));
        Free(p + 3);
        FlushThreadCache();
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kMisalignedFree);
}

TEST_P(Misuse, MisalignedFreeLarge) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(1 << 20));
        Free(p + 1);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kMisalignedFree);
}

// --- sized and aligned frees -----------------------------------------------------

TEST_P(Misuse, SizedFreeWithASmallerClass) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(100);  // class 112
        FreeSized(p, 16);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kSizeMismatch);
}

TEST_P(Misuse, SizedFreeWithALargerClass) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(64);
        FreeSized(p, 1000);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kSizeMismatch);
}

TEST_P(Misuse, SizedFreeOfALargeBlock) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(1 << 20);
        FreeSized(p, 100);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kSizeMismatch);
}

TEST_P(Misuse, SizedDeleteThroughTheKindEntryPoint) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNew, 24, 0);
        internal::FreeSizedAs(AllocKind::kNew, p, 4000);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kSizeMismatch);
}

TEST_P(Misuse, AlignedFreeWithTheWrongAlignment) {
  ChildResult r = RunInChild(
      [] {
        void* p = AllocateAligned(100, 256);
        FreeAlignedSized(p, 100, 4096);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kAlignmentMismatch);
}

TEST_P(Misuse, AlignedFreeOfALargeBlockWithTheWrongAlignment) {
  ChildResult r = RunInChild(
      [] {
        void* p = AllocateAligned(1 << 20, 1 << 20);
        FreeAlignedSized(p, 1 << 20, 64);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kAlignmentMismatch);
}

TEST_P(Misuse, AlignedDeleteWithANonPowerOfTwo) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNew, 64, 64);
        internal::FreeAlignedAs(AllocKind::kNew, p, 48);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kAlignmentMismatch);
}

// --- realloc of a freed block ------------------------------------------------------

TEST_P(Misuse, ReallocOfFreedSmallBlock) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(64);
        Free(p);
        g_sink = Reallocate(p, 1000);
        FlushThreadCache();
      },
      mode());
  // Normal mode cannot tell a freed small block from a live one: the
  // realloc frees it a second time, seen at flush time.
  if (hardened()) {
    ExpectReport(r, internal::ErrorKind::kReallocFreed, true);
  } else {
    ExpectReport(r, internal::ErrorKind::kDoubleFree);
  }
}

TEST_P(Misuse, ReallocOfFreedLargeBlock) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(1 << 20);
        Free(p);
        g_sink = Reallocate(p, 2 << 20);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kReallocFreed);
}

TEST_P(Misuse, ReallocOfForeignPointer) {
  ChildResult r = RunInChild(
      [] {
        int local;
        g_sink = Reallocate(&local, 100);
      },
      mode());
  ExpectReport(r, internal::ErrorKind::kInvalidRealloc);
}

INSTANTIATE_TEST_SUITE_P(BothModes, Misuse, ::testing::Values(Mode::kNormal, Mode::kHardened),
                         testing::ModeParamName());

// --- hardened mode only ----------------------------------------------------------------

TEST(HardenedOnly, MallocFreedWithOperatorDelete) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(64);
        internal::FreeAs(AllocKind::kNew, p);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAllocDeallocMismatch);
  EXPECT_NE(r.err.find("allocated with malloc, freed with operator delete"), std::string::npos) << r.err;
}

TEST(HardenedOnly, NewArrayFreedWithDelete) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNewArray, 80, 0);
        internal::FreeAs(AllocKind::kNew, p);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAllocDeallocMismatch);
  EXPECT_NE(r.err.find("allocated with operator new[], freed with operator delete"), std::string::npos)
      << r.err;
}

TEST(HardenedOnly, NewFreedWithDeleteArray) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNew, 80, 0);
        internal::FreeSizedAs(AllocKind::kNewArray, p, 80);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAllocDeallocMismatch);
}

TEST(HardenedOnly, NewFreedWithFree) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNew, 2 << 20, 0);  // a large block
        Free(p);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAllocDeallocMismatch);
}

TEST(HardenedOnly, NewReallocated) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNew, 32, 0);
        g_sink = Reallocate(p, 64);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAllocDeallocMismatch);
}

// Aligned frees naming another alignment than the allocation did, where the
// pointer satisfies both (only the record can tell): the kind entry points
// the override calls, and the API's FreeAlignedSized.
TEST(HardenedOnly, AlignedDeleteWithASmallerAlignment) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNew, 64, 4096);
        internal::FreeAlignedAs(AllocKind::kNew, p, 16);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAlignmentMismatch);
  EXPECT_NE(r.err.find("alignment 16, allocated with alignment 4096"), std::string::npos) << r.err;
}

TEST(HardenedOnly, AlignedDeleteWithALargerFundamentalAlignment) {
  ChildResult r = RunInChild(
      [] {
        void* p = internal::AllocateAs(AllocKind::kNewArray, 24, 4);
        internal::FreeAlignedSizedAs(AllocKind::kNewArray, p, 24, 8);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAlignmentMismatch);
  EXPECT_NE(r.err.find("alignment 8, allocated with alignment 4"), std::string::npos) << r.err;
}

TEST(HardenedOnly, AlignedFreeOfALargeBlockWithASmallerAlignment) {
  ChildResult r = RunInChild(
      [] {
        void* p = AllocateAligned(1 << 20, 8192);
        FreeAlignedSized(p, 1 << 20, 16);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kAlignmentMismatch);
  EXPECT_NE(r.err.find("alignment 16, allocated with alignment 8192"), std::string::npos) << r.err;
}

TEST(HardenedOnly, OneByteOverflowOfASmallBlock) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(40));
        std::memset(p, 'x', 40);
        // A one-byte overflow that surely changes the byte after the block
        // (writing a fixed value misses when the canary byte equals it).
        p[40] = static_cast<char>(~p[40]);
        Free(p);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kHeapOverflow);
}

TEST(HardenedOnly, OverflowIntoTheTrailerOfAnExactFit) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(120));  // class 128: no canary bytes, only the trailer
        std::memset(p, 'x', 128);
        Free(p);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kHeapOverflow);
}

TEST(HardenedOnly, OverflowOfALargeBlock) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<char*>(Allocate(300000));
        // Flip the byte after the block: a fixed value would miss whenever
        // the (random, per-process) canary byte equals it (1 run in 254).
        p[300000] = static_cast<char>(~p[300000]);
        Free(p);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kHeapOverflow);
}

TEST(HardenedOnly, WriteAfterFreeCorruptsTheFreeList) {
  ChildResult r = RunInChild(
      [] {
        void* p = Allocate(64);
        Free(p);
        // A use-after-free write of a pointer into the freed block's link.
        *static_cast<void**>(p) = &g_global_int;
        g_sink = Allocate(64);  // pops p, checks its link
        g_sink = Allocate(64);
      },
      Mode::kHardened);
  ExpectReport(r, internal::ErrorKind::kFreeListCorruption);
}

// Not misuse: hardened mode junk-fills freed blocks, keeps natural
// alignment, reports usable sizes exactly, and catches errors in-process
// through the hook (then the allocator goes on working).
TEST(HardenedOnly, JunkFillAlignmentUsableSizeAndHook) {
  ChildResult r = RunInChild(
      [] {
        auto* p = static_cast<unsigned char*>(Allocate(200));
        std::memset(p, 0x11, 200);
        Free(p);
        if (p[100] != internal::kFreeJunk) _exit(10);
        for (std::size_t n = 32; n <= 4096; n *= 2) {
          void* q = Allocate(n);
          if (reinterpret_cast<std::uintptr_t>(q) % n != 0) _exit(11);
          if (UsableSize(q) != n) _exit(12);
          Free(q);
        }
        static int errors = 0;
        internal::SetErrorHook([](internal::ErrorKind, const void*, std::size_t, const char*) { ++errors; });
        void* q = Allocate(64);
        Free(q);
        Free(q);  // reported, then a no-op
        if (errors != 1) _exit(13);
        void* a = Allocate(64);
        void* b = Allocate(64);
        if (a == b) _exit(14);
        Free(a);
        Free(b);
        _exit(0);
      },
      Mode::kHardened);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

// Not misuse: a correct program produces no report in either mode, through
// every entry point (the kind entry points included).
TEST(BothModes, CorrectUseIsSilent) {
  for (Mode mode : {Mode::kNormal, Mode::kHardened}) {
    ChildResult r = RunInChild(
        [] {
          for (int round = 0; round < 3; ++round) {
            for (std::size_t n : {std::size_t{0}, std::size_t{1}, std::size_t{24}, std::size_t{100},
                                  std::size_t{4096}, std::size_t{70000}, std::size_t{262144},
                                  std::size_t{300000}, std::size_t{5} << 20}) {
              Free(Allocate(n));
              FreeSized(Allocate(n), n);
              void* a = AllocateAligned(n, 256);
              FreeAlignedSized(a, n, 256);
              void* z = AllocateZeroed(1, n);
              FreeSized(z, n);
              void* o = internal::AllocateAs(AllocKind::kNew, n, 0);
              internal::FreeSizedAs(AllocKind::kNew, o, n);
              void* arr = internal::AllocateAs(AllocKind::kNewArray, n, 0);
              internal::FreeAs(AllocKind::kNewArray, arr);
              void* al = internal::AllocateAs(AllocKind::kNew, n, 128);
              internal::FreeAlignedAs(AllocKind::kNew, al, 128);
              void* al2 = internal::AllocateAs(AllocKind::kNewArray, n, 64);
              internal::FreeAlignedSizedAs(AllocKind::kNewArray, al2, n, 64);
              void* g = Reallocate(nullptr, n + 1);
              g = Reallocate(g, 2 * n + 1);
              g = Reallocate(g, n / 2 + 1);
              FreeSized(g, n / 2 + 1);
            }
          }
          std::thread([] {
            void* p = Allocate(5000);
            FreeSized(p, 5000);
          }).join();
          FlushThreadCache();
          ReleaseMemory();
          _exit(0);
        },
        mode);
    EXPECT_TRUE(r.exited && r.exit_code == 0 && r.err.empty())
        << (mode == Mode::kHardened ? "hardened: " : "normal: ") << r.Describe();
  }
}

}  // namespace
}  // namespace strata
