// tests/override/route_test.cc: with malloc = "//alloc:malloc" (the same
// mechanism as --custom_malloc=//alloc:malloc), operator new/delete and the
// malloc family reach strata: strata::GetStats() counts them.
//
// Compiled with -fno-builtin and volatile sinks so that GCC keeps every
// allocation it could otherwise elide.
#include <malloc.h>
#include <stdlib.h>

#include <cstddef>
#include <map>
#include <memory>
#include <new>
#include <string>
#include <vector>

#include "alloc/stats.h"
#include "alloc/strata.h"
#include "gtest/gtest.h"

namespace {

void* volatile g_sink;

template <typename F>
void ExpectCounted(F&& body, std::uint64_t min_allocations, std::uint64_t min_frees) {
  const strata::Stats before = strata::GetStats();
  body();
  const strata::Stats after = strata::GetStats();
  EXPECT_GE(after.allocations - before.allocations, min_allocations);
  EXPECT_GE(after.frees - before.frees, min_frees);
}

TEST(RouteTest, OperatorNewAndDeleteReachStrata) {
  ExpectCounted(
      [] {
        int* p = new int(1);
        g_sink = p;
        EXPECT_TRUE(strata::Owns(p));
        delete p;
      },
      1, 1);
  ExpectCounted(
      [] {
        auto* a = new std::string[8];
        g_sink = a;
        delete[] a;
      },
      1, 1);
  ExpectCounted(
      [] {
        void* p = ::operator new (100, std::align_val_t{256});
        g_sink = p;
        EXPECT_EQ(reinterpret_cast<std::uintptr_t>(p) % 256, 0u);
        EXPECT_TRUE(strata::Owns(p));
        ::operator delete (p, 100, std::align_val_t{256});
      },
      1, 1);
  ExpectCounted(
      [] {
        void* p = ::operator new[](100, std::nothrow);
        g_sink = p;
        ::operator delete[](p, std::nothrow);
      },
      1, 1);
}

TEST(RouteTest, StandardContainersReachStrata) {
  ExpectCounted(
      [] {
        std::vector<std::unique_ptr<int>> v;
        std::map<int, std::string> m;
        for (int i = 0; i < 100; ++i) {
          v.push_back(std::make_unique<int>(i));
          m[i] = std::string(40, 'x');
        }
      },
      200, 200);
}

TEST(RouteTest, MallocFamilyReachesStrata) {
  ExpectCounted(
      [] {
        void* p = malloc(10);
        g_sink = p;
        EXPECT_TRUE(strata::Owns(p));
        EXPECT_EQ(malloc_usable_size(p), strata::UsableSize(p));
        free(p);
        p = calloc(10, 10);
        g_sink = p;
        free(p);
        p = aligned_alloc(64, 64);
        g_sink = p;
        free(p);
      },
      3, 3);
}

TEST(RouteTest, MixedNewAndMallocInterop) {
  // Not legal C++, but real programs do it: both sides are strata.
  void* p = malloc(64);
  g_sink = p;
  ::operator delete(p);
  void* q = ::operator new(64);
  g_sink = q;
  free(q);
}

}  // namespace
