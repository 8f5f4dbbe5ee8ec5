// tests/failure/override_failure_test.cc: injected failures follow each
// replaced entry point's contract (strata as the program's allocator):
// null and ENOMEM from the malloc family (realloc keeps the block),
// std::bad_alloc after the new_handler from operator new, null from the
// nothrow forms.
#include <errno.h>
#include <malloc.h>
#include <stdlib.h>

#include <cstdint>
#include <cstring>
#include <new>
#include <vector>

#include <gtest/gtest.h>

#include "alloc/failure_injection.h"

namespace {

void* volatile g_sink;

// Inside a scope every allocation of this thread fails, the test
// framework's too: the calls only record, the checks come after.
TEST(OverrideFailures, MallocFamilyReturnsNullWithEnomem) {
  void* old = malloc(100);
  ASSERT_NE(old, nullptr);
  std::memset(old, 7, 100);
  struct Result {
    void* p;
    int error;
  };
  Result r[8];
  int memalign_rc = 0;
  std::uint64_t injected = 0;
  {
    strata::ScopedFailureInjection scope({.fail_after = 0});
    auto call = [](void* (*f)()) {
      errno = 0;
      void* p = f();
      return Result{p, errno};
    };
    r[0] = call([] { return malloc(10); });
    r[1] = call([] { return calloc(10, 10); });
    r[2] = call([] { return calloc(1000, 1000); });
    errno = 0;
    r[3] = Result{realloc(old, 100000), errno};
    r[4] = call([] { return aligned_alloc(4096, 4096); });
    r[5] = call([] { return memalign(256, 10); });
    r[6] = call([] { return valloc(10); });
    r[7] = call([] { return malloc(10 << 20); });
    void* p = reinterpret_cast<void*>(1);
    memalign_rc = posix_memalign(&p, 64, 100);
    injected = scope.injected();
  }
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(r[i].p, nullptr) << i;
    EXPECT_EQ(r[i].error, ENOMEM) << i;
  }
  EXPECT_EQ(memalign_rc, ENOMEM);
  EXPECT_EQ(injected, 9u);
  // The block realloc could not move is intact.
  for (int i = 0; i < 100; ++i) ASSERT_EQ(static_cast<unsigned char*>(old)[i], 7);
  free(old);
}

int g_handler_calls = 0;
void CountingHandler() {
  if (++g_handler_calls == 2) std::set_new_handler(nullptr);
}

TEST(OverrideFailures, OperatorNewRunsTheNewHandlerThenThrows) {
  int thrown = 0;
  void* nothrow[2] = {reinterpret_cast<void*>(1), reinterpret_cast<void*>(1)};
  g_handler_calls = 0;
  {
    strata::ScopedFailureInjection scope({.fail_after = 0});
    try { g_sink = ::operator new(100); } catch (const std::bad_alloc&) { ++thrown; }
    try { g_sink = ::operator new[](100); } catch (const std::bad_alloc&) { ++thrown; }
    try { g_sink = ::operator new(100, std::align_val_t(256)); } catch (const std::bad_alloc&) { ++thrown; }
    std::set_new_handler(&CountingHandler);
    try { g_sink = ::operator new(100); } catch (const std::bad_alloc&) { ++thrown; }
    nothrow[0] = ::operator new(100, std::nothrow);
    nothrow[1] = ::operator new[](100, std::align_val_t(64), std::nothrow);
  }
  EXPECT_EQ(thrown, 4);
  EXPECT_EQ(g_handler_calls, 2);  // then it uninstalled itself
  EXPECT_EQ(nothrow[0], nullptr);
  EXPECT_EQ(nothrow[1], nullptr);
}

// A standard container sees std::bad_alloc once its growth fails.
TEST(OverrideFailures, ContainersSeeBadAlloc) {
  std::vector<int> v;
  v.reserve(1);
  bool thrown = false;
  std::uint64_t injected = 0;
  {
    strata::ScopedFailureInjection scope({.fail_after = 3});
    try {
      for (int i = 0; i < 1000; ++i) v.push_back(i);
    } catch (const std::bad_alloc&) {
      thrown = true;
    }
    injected = scope.injected();
  }
  EXPECT_TRUE(thrown);
  // The growth to 16 failed (and the exception's own allocation, which
  // then comes from libstdc++'s emergency pool).
  EXPECT_GE(injected, 1u);
  EXPECT_EQ(v.size(), 8u);  // capacities 2, 4 and 8 fitted
}

}  // namespace
