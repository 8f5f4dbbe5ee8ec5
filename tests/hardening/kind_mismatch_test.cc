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
#include <cstdlib>
#include <cstring>
#include <functional>
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
