// tests/monitor/hard_limit_malloc_test.cc: the hard limit at the malloc and
// operator new boundary, with strata as the process allocator (malloc =
// //alloc:malloc): malloc returns nullptr with errno = ENOMEM, operator new
// throws std::bad_alloc, nothrow new returns nullptr; freeing recovers.
// Not under sanitizers (they own malloc).
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>
#include <vector>

#include "alloc/monitor.h"
#include "alloc/stats.h"
#include "gtest/gtest.h"

namespace strata {
namespace {

constexpr std::size_t kMiB = std::size_t{1} << 20;
constexpr std::size_t kHuge = 6 * kMiB;
constexpr int kMaxBlocks = 64;  // 384 MiB: far above the 32 MiB headroom

// Keeps the compiler from eliding allocations whose memory is unused.
void* volatile g_sink;

TEST(HardLimitMalloc, MallocSetsEnomemNewThrowsAndFreeingRecovers) {
  void* blocks[kMaxBlocks];
  int n = 0;
  int malloc_errno = 0;
  bool malloc_refused = false;
  bool new_threw = false;
  bool nothrow_null = false;
  bool calloc_refused = false;
  bool realloc_kept = false;

  const std::size_t limit = GetStats().committed_bytes + 32 * kMiB;
  SetHardMemoryLimit(limit);
  // From here until the blocks are freed, nothing may need new memory
  // except the calls under test: results go to locals, asserts come after.
  while (n < kMaxBlocks) {
    errno = 0;
    void* p = std::malloc(kHuge);
    if (p == nullptr) {
      malloc_refused = true;
      malloc_errno = errno;
      break;
    }
    std::memset(p, 1, 4096);
    blocks[n++] = p;
  }
  try {
    char* q = new char[kHuge];
    g_sink = q;
    delete[] q;
  } catch (const std::bad_alloc&) {
    new_threw = true;
  }
  char* r = new (std::nothrow) char[kHuge];
  g_sink = r;
  nothrow_null = r == nullptr;
  delete[] r;
  errno = 0;
  void* z = std::calloc(1, kHuge);
  g_sink = z;
  calloc_refused = z == nullptr && errno == ENOMEM;
  std::free(z);
  if (n > 0) {
    void* grown = std::realloc(blocks[0], 4 * kHuge);
    realloc_kept = grown == nullptr;  // the old block stays valid
    if (grown != nullptr) blocks[0] = grown;
  }
  const std::size_t committed_full = GetStats().committed_bytes;
  for (int i = 0; i < n; ++i) std::free(blocks[i]);

  void* again = std::malloc(kHuge);
  g_sink = again;
  const bool recovered = again != nullptr;
  std::free(again);
  SetHardMemoryLimit(0);

  EXPECT_GT(n, 0);
  EXPECT_LT(n, kMaxBlocks);
  EXPECT_TRUE(malloc_refused);
  EXPECT_EQ(malloc_errno, ENOMEM);
  EXPECT_TRUE(new_threw);
  EXPECT_TRUE(nothrow_null);
  EXPECT_TRUE(calloc_refused);
  EXPECT_TRUE(realloc_kept);
  EXPECT_LE(committed_full, limit);
  EXPECT_TRUE(recovered);
}

}  // namespace
}  // namespace strata
