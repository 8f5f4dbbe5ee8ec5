// tests/hardening/kind_mismatch_test.cc: allocation/deallocation kind
// mismatches (malloc/operator delete, new/free, new[]/delete, new/delete[])
// through the real override: the binary runs on strata, linked with
// malloc = "//alloc:malloc" or with //alloc:libstrata.so preloaded, so the
// calls below are the process's operator new/delete and malloc/free.
//
// The mode is the process's (the engine is initialised before main): the
// BUILD file runs this source with and without STRATA_HARDENED=1.
//   hardened: each mismatch, in a forked child, dies of SIGABRT with
//             "strata: allocation/deallocation mismatch: pointer 0x...,
//             size N, allocated with X, freed with Y" and a stack;
//   normal:   mismatches are not detected (the kind is not recorded, so the
//             fast paths stay as they are; docs/HARDENING.md): the child
//             finishes and nothing is reported. Matching pairs never report.
// The sanitizers replace malloc: tagged no-sanitizer.
#include <dlfcn.h>
#include <stdlib.h>

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory_resource>
#include <new>
#include <regex>
#include <string>

#include <gtest/gtest.h>

#include "tests/hardening/child.h"

// Every mismatch below is on purpose.
#pragma GCC diagnostic ignored "-Wmismatched-new-delete"

namespace strata {
namespace {

using testing::ChildResult;
using testing::RunInChild;

// Keeps the compiler from proving a block unused.
void* volatile g_sink;

bool ProcessHardened() {
#if defined(STRATA_HARDENED_BUILD)
  return true;
#else
  const char* v = std::getenv("STRATA_HARDENED");
  return v != nullptr && v[0] != '\0' && !(v[0] == '0' && v[1] == '\0');
#endif
}

// Each case allocates with one function and frees with another.
struct Case {
  const char* name;
  std::size_t size;
  const char* allocated;  // as the report names it
  const char* freed;
  std::function<void()> body;
};

std::string RegexEscape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (std::strchr("()[]{}.*+?^$|\\", c) != nullptr) out += '\\';
    out += c;
  }
  return out;
}

void Check(const Case& c) {
  ChildResult r = RunInChild(c.body);
  if (!ProcessHardened()) {
    EXPECT_TRUE(r.exited && r.exit_code == 0) << c.name << ": " << r.Describe();
    EXPECT_EQ(r.err.find("strata:"), std::string::npos) << c.name << ": " << r.Describe();
    return;
  }
  ASSERT_TRUE(r.Aborted()) << c.name << ": " << r.Describe();
  std::regex line("(^|\n)strata: allocation/deallocation mismatch: pointer 0x[0-9a-f]+, size " +
                  std::to_string(c.size) + ", allocated with " + RegexEscape(c.allocated) +
                  ", freed with " + RegexEscape(c.freed) + "\n");
  EXPECT_TRUE(std::regex_search(r.err, line)) << c.name << ": " << r.Describe();
  EXPECT_NE(r.err.find("\nstrata:   at 0x"), std::string::npos) << c.name << ": no stack\n" << r.Describe();
}

// The test must run on strata, or it would pass for the wrong reason.
TEST(KindMismatch, ProcessAllocatorIsStrata) {
  EXPECT_NE(dlsym(RTLD_DEFAULT, "strata_stats_allocations"), nullptr)
      << "not linked with //alloc:malloc and libstrata.so not preloaded";
}

TEST(KindMismatch, MallocThenOperatorDelete) {
  Check({"malloc/delete", 64, "malloc", "operator delete", [] {
           void* p = std::malloc(64);
           g_sink = p;
           ::operator delete(p);
         }});
}

TEST(KindMismatch, MallocThenSizedOperatorDelete) {
  Check({"malloc/sized delete", 100, "malloc", "operator delete", [] {
           void* p = std::malloc(100);
           g_sink = p;
           ::operator delete(p, std::size_t{100});
         }});
}

TEST(KindMismatch, NewThenFree) {
  Check({"new/free", 48, "operator new", "free", [] {
           void* p = ::operator new(48);
           g_sink = p;
           std::free(p);
         }});
}

TEST(KindMismatch, LargeNewThenFree) {
  Check({"new/free large", 1 << 20, "operator new", "free", [] {
           void* p = ::operator new(1 << 20);
           g_sink = p;
           std::free(p);
         }});
}

TEST(KindMismatch, NewArrayThenDelete) {
  Check({"new[]/delete", 80, "operator new[]", "operator delete", [] {
           void* p = ::operator new[](80);
           g_sink = p;
           ::operator delete(p);
         }});
}

TEST(KindMismatch, NewArrayThenSizedDelete) {
  Check({"new[]/sized delete", 80, "operator new[]", "operator delete", [] {
           void* p = ::operator new[](80);
           g_sink = p;
           ::operator delete(p, std::size_t{80});
         }});
}

// The expression form: new int[20] / delete p. GCC emits a sized delete of
// one element (4 bytes), a size of another class than the 80-byte block, so
// even normal mode reports it (as a sized free with the wrong size); hardened
// mode checks the size first too. Either way it is this pointer's report.
TEST(KindMismatch, NewArrayExpressionThenDeleteExpression) {
  ChildResult r = RunInChild([] {
    int* p = new int[20];
    g_sink = p;
    int* volatile q = p;
    delete q;
  });
  ASSERT_TRUE(r.Aborted()) << r.Describe();
  std::regex line(
      "(^|\n)strata: (allocation/deallocation mismatch|sized free with wrong size): "
      "pointer 0x[0-9a-f]+, size (4|80)[^\n]*\n");
  EXPECT_TRUE(std::regex_search(r.err, line)) << r.Describe();
}

TEST(KindMismatch, NewThenDeleteArray) {
  Check({"new/delete[]", 80, "operator new", "operator delete[]", [] {
           void* p = ::operator new(80);
           g_sink = p;
           ::operator delete[](p);
         }});
}

TEST(KindMismatch, NewThenSizedDeleteArray) {
  Check({"new/sized delete[]", 80, "operator new", "operator delete[]", [] {
           void* p = ::operator new(80);
           g_sink = p;
           ::operator delete[](p, std::size_t{80});
         }});
}

TEST(KindMismatch, AlignedNewThenAlignedDeleteArray) {
  Check({"aligned new/aligned delete[]", 256, "operator new", "operator delete[]", [] {
           void* p = ::operator new(256, std::align_val_t{64});
           g_sink = p;
           ::operator delete[](p, std::align_val_t{64});
         }});
}

TEST(KindMismatch, AlignedNewArrayThenSizedAlignedDelete) {
  Check({"aligned new[]/sized aligned delete", 256, "operator new[]", "operator delete", [] {
           void* p = ::operator new[](256, std::align_val_t{64});
           g_sink = p;
           ::operator delete(p, std::size_t{256}, std::align_val_t{64});
         }});
}

TEST(KindMismatch, NothrowNewThenFree) {
  Check({"nothrow new/free", 32, "operator new", "free", [] {
           void* p = ::operator new(32, std::nothrow);
           g_sink = p;
           std::free(p);
         }});
}

TEST(KindMismatch, AlignedAllocThenAlignedDelete) {
  Check({"aligned_alloc/aligned delete", 128, "malloc", "operator delete", [] {
           void* p = std::aligned_alloc(64, 128);
           g_sink = p;
           ::operator delete(p, std::align_val_t{64});
         }});
}

// --- Alignment mismatches ----------------------------------------------------
//
// An aligned delete must name the alignment its aligned new named
// ([new.delete]); a plain delete frees a plain new's block. Hardened mode
// records the alignment each block's allocation named (16 or less too) and
// reports every difference, at once:
//   strata: aligned free with wrong alignment: pointer 0x..., size N
//           [, alignment A], allocated with(out) ...
// Normal mode records only what it needs (over-aligned large blocks), so
// most of these go through; whatever it reports must be this report, and
// whatever it lets through must leave the process healthy.

// C23's free_aligned_sized, exported by strata (glibc 2.36 has none: looked
// up at run time, as the plain build is linked without strata).
void free_aligned_sized(void* ptr, std::size_t alignment, std::size_t size) {
  using Fn = void (*)(void*, std::size_t, std::size_t);
  static const auto fn = reinterpret_cast<Fn>(dlsym(RTLD_DEFAULT, "free_aligned_sized"));
  if (fn == nullptr) {
    std::fputs("free_aligned_sized: not found (not running on strata)\n", stderr);
    std::abort();
  }
  fn(ptr, alignment, size);
}

struct AlignCase {
  const char* name;
  std::string detail;  // the report's tail after "size N" (a regex)
  std::function<void()> body;
};

void CheckAlignment(const AlignCase& c) {
  ChildResult r = RunInChild([&c] {
    c.body();
    // Reaching here, the mismatch went through: the engine must still work.
    void* q = std::malloc(100);
    g_sink = q;
    std::free(q);
  });
  const std::regex line("(^|\n)strata: aligned free with wrong alignment: pointer 0x[0-9a-f]+, size [0-9]+" +
                        c.detail + "\n");
  if (!ProcessHardened()) std::printf("%s: normal mode %s\n", c.name, r.Aborted() ? "reports it" : "lets it through");
  if (!ProcessHardened() && !r.Aborted()) {
    EXPECT_TRUE(r.exited && r.exit_code == 0) << c.name << ": " << r.Describe();
    EXPECT_EQ(r.err.find("strata:"), std::string::npos) << c.name << ": " << r.Describe();
    return;
  }
  ASSERT_TRUE(r.Aborted()) << c.name << ": " << r.Describe();
  if (ProcessHardened()) {
    EXPECT_TRUE(std::regex_search(r.err, line)) << c.name << ": " << r.Describe();
  } else {
    EXPECT_NE(r.err.find("strata: aligned free with wrong alignment: "), std::string::npos)
        << c.name << ": " << r.Describe();
  }
  EXPECT_NE(r.err.find("\nstrata:   at 0x"), std::string::npos) << c.name << ": no stack\n" << r.Describe();
}

constexpr std::align_val_t A(std::size_t a) { return std::align_val_t{a}; }

// The case: the pointer is 16-aligned, only the record can tell.
TEST(AlignMismatch, New4096ThenDelete16) {
  CheckAlignment({"new(64, 4096)/delete(p, 16)", ", alignment 16, allocated with alignment 4096", [] {
                    void* p = ::operator new(64, A(4096));
                    g_sink = p;
                    ::operator delete(p, A(16));
                  }});
}

TEST(AlignMismatch, New4096ThenSizedDelete16) {
  CheckAlignment({"new(64, 4096)/delete(p, 64, 16)", ", alignment 16, allocated with alignment 4096", [] {
                    void* p = ::operator new(64, A(4096));
                    g_sink = p;
                    ::operator delete(p, std::size_t{64}, A(16));
                  }});
}

TEST(AlignMismatch, New128ThenDelete64Smaller) {
  CheckAlignment({"new(200, 128)/delete(p, 64)", ", alignment 64, allocated with alignment 128", [] {
                    void* p = ::operator new(200, A(128));
                    g_sink = p;
                    ::operator delete(p, A(64));
                  }});
}

TEST(AlignMismatch, New32ThenDelete256Larger) {
  CheckAlignment({"new(48, 32)/delete(p, 256)", ", alignment 256, allocated with alignment 32", [] {
                    void* p = ::operator new(48, A(32));
                    g_sink = p;
                    ::operator delete(p, A(256));
                  }});
}

TEST(AlignMismatch, New8ThenDelete16BothFundamental) {
  CheckAlignment({"new(64, 8)/delete(p, 16)", ", alignment 16, allocated with alignment 8", [] {
                    void* p = ::operator new(64, A(8));
                    g_sink = p;
                    ::operator delete(p, A(16));
                  }});
}

TEST(AlignMismatch, NewArray16ThenSizedDeleteArray4) {
  CheckAlignment({"new[](100, 16)/delete[](p, 100, 4)", ", alignment 4, allocated with alignment 16", [] {
                    void* p = ::operator new[](100, A(16));
                    g_sink = p;
                    ::operator delete[](p, std::size_t{100}, A(4));
                  }});
}

TEST(AlignMismatch, PlainNewThenAlignedDelete) {
  CheckAlignment({"new(64)/delete(p, 16)", ", alignment 16, allocated without an alignment", [] {
                    void* p = ::operator new(64);
                    g_sink = p;
                    ::operator delete(p, A(16));
                  }});
}

TEST(AlignMismatch, AlignedNewThenPlainDelete) {
  CheckAlignment({"new(64, 64)/delete(p)", ", allocated with alignment 64, freed without one", [] {
                    void* p = ::operator new(64, A(64));
                    g_sink = p;
                    ::operator delete(p);
                  }});
}

TEST(AlignMismatch, AlignedNewThenPlainSizedDelete) {
  CheckAlignment({"new(64, 8)/delete(p, 64)", ", allocated with alignment 8, freed without one", [] {
                    void* p = ::operator new(64, A(8));
                    g_sink = p;
                    ::operator delete(p, std::size_t{64});
                  }});
}

TEST(AlignMismatch, LargeNew4096ThenDelete16) {
  CheckAlignment({"new(1 MiB, 4096)/delete(p, 16)", ", alignment 16, allocated with alignment 4096", [] {
                    void* p = ::operator new(1 << 20, A(4096));
                    g_sink = p;
                    ::operator delete(p, A(16));
                  }});
}

TEST(AlignMismatch, LargeNew1MiBThenSizedDelete4096) {
  CheckAlignment({"new(1 MiB, 1 MiB)/delete(p, 1 MiB, 4096)", ", alignment 4096, allocated with alignment 1048576",
                  [] {
                    void* p = ::operator new(1 << 20, A(1 << 20));
                    g_sink = p;
                    ::operator delete(p, std::size_t{1} << 20, A(4096));
                  }});
}

TEST(AlignMismatch, LargeNew8ThenDelete64) {
  CheckAlignment({"new(300 KiB, 8)/delete(p, 64)", ", alignment 64, allocated with alignment 8", [] {
                    void* p = ::operator new(300 << 10, A(8));
                    g_sink = p;
                    ::operator delete(p, A(64));
                  }});
}

TEST(AlignMismatch, HugeNew64ThenDelete128) {
  CheckAlignment({"new(64 MiB, 64)/delete(p, 128)", ", alignment 128, allocated with alignment 64", [] {
                    void* p = ::operator new(std::size_t{64} << 20, A(64));
                    g_sink = p;
                    ::operator delete(p, A(128));
                  }});
}

TEST(AlignMismatch, HugeNewArrayThenPlainDeleteArray) {
  CheckAlignment({"new[](64 MiB, 16)/delete[](p)", ", allocated with alignment 16, freed without one", [] {
                    void* p = ::operator new[](std::size_t{64} << 20, A(16));
                    g_sink = p;
                    ::operator delete[](p);
                  }});
}

// The malloc family records alignments above 16 (free_aligned_sized's
// smaller claim is then caught too).
TEST(AlignMismatch, AlignedAllocThenFreeAlignedSizedSmaller) {
  CheckAlignment({"aligned_alloc(4096, 64)/free_aligned_sized(p, 16, 64)",
                  ", alignment 16, allocated with alignment 4096", [] {
                    void* p = std::aligned_alloc(4096, 64);
                    g_sink = p;
                    free_aligned_sized(p, 16, 64);
                  }});
}

// Every aligned new/delete pair that matches, over the alignments 1 to 16
// an aligned new may name and a few above, small, large and huge: silent in
// both modes; so are the malloc family's aligned frees and pmr's
// new_delete_resource (aligned new/delete on every call).
TEST(AlignMismatch, MatchingAlignedPairsAreQuiet) {
  ChildResult r = RunInChild([] {
    for (std::size_t n : {std::size_t{1}, std::size_t{64}, std::size_t{5000}, std::size_t{300} << 10,
                          std::size_t{40} << 20}) {
      for (std::size_t a : {1, 2, 4, 8, 16, 32, 64, 4096}) {
        void* p;
        p = ::operator new(n, A(a)); g_sink = p; ::operator delete(p, A(a));
        p = ::operator new(n, A(a)); g_sink = p; ::operator delete(p, n, A(a));
        p = ::operator new(n, A(a), std::nothrow); g_sink = p; ::operator delete(p, A(a), std::nothrow);
        p = ::operator new[](n, A(a)); g_sink = p; ::operator delete[](p, A(a));
        p = ::operator new[](n, A(a)); g_sink = p; ::operator delete[](p, n, A(a));
        if (a >= sizeof(void*)) {
          p = std::aligned_alloc(a, n); g_sink = p; free_aligned_sized(p, a, n);
          p = std::aligned_alloc(a, n); g_sink = p; std::free(p);
        }
      }
      void* p = std::malloc(n); g_sink = p; free_aligned_sized(p, 16, n);
    }
    std::pmr::memory_resource* r = std::pmr::new_delete_resource();
    for (std::size_t a : {1, 2, 4, 8, 16, 64}) {
      void* p = r->allocate(100, a);
      g_sink = p;
      r->deallocate(p, 100, a);
    }
  });
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
  EXPECT_EQ(r.err.find("strata:"), std::string::npos) << r.Describe();
}

// Every matching pair of the 20 forms: never a report, in either mode.
TEST(KindMismatch, MatchingPairsAreQuiet) {
  ChildResult r = RunInChild([] {
    for (std::size_t n : {std::size_t{1}, std::size_t{24}, std::size_t{1000}, std::size_t{70000},
                          std::size_t{1} << 20}) {
      const auto a = std::align_val_t{64};
      void* p;
      p = ::operator new(n); g_sink = p; ::operator delete(p);
      p = ::operator new(n); g_sink = p; ::operator delete(p, n);
      p = ::operator new(n, std::nothrow); g_sink = p; ::operator delete(p, std::nothrow);
      p = ::operator new[](n); g_sink = p; ::operator delete[](p);
      p = ::operator new[](n); g_sink = p; ::operator delete[](p, n);
      p = ::operator new[](n, std::nothrow); g_sink = p; ::operator delete[](p, std::nothrow);
      p = ::operator new(n, a); g_sink = p; ::operator delete(p, a);
      p = ::operator new(n, a); g_sink = p; ::operator delete(p, n, a);
      p = ::operator new(n, a, std::nothrow); g_sink = p; ::operator delete(p, a, std::nothrow);
      p = ::operator new[](n, a); g_sink = p; ::operator delete[](p, a);
      p = ::operator new[](n, a); g_sink = p; ::operator delete[](p, n, a);
      p = ::operator new[](n, a, std::nothrow); g_sink = p; ::operator delete[](p, a, std::nothrow);
      p = std::malloc(n); g_sink = p; std::free(p);
      p = std::aligned_alloc(64, n); g_sink = p; std::free(p);
      p = std::calloc(1, n); g_sink = p; p = std::realloc(p, n + 100), g_sink = p, std::free(p);
    }
  });
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
  EXPECT_EQ(r.err.find("strata:"), std::string::npos) << r.Describe();
}

}  // namespace
}  // namespace strata
