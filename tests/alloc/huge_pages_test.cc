// tests/alloc/huge_pages_test.cc: a fresh huge block (4 MiB or more, and
// 2 MiB or more while huge pages are on) asks for transparent huge pages
// over the whole 2 MiB pages it uses, unless STRATA_HUGE_PAGES=0
// (alloc/internal/page_heap.h). What the kernel then
// records is checked, not the call: the mapping that holds the block
// carries the `hg` flag (VM_HUGEPAGE) in /proc/self/smaps, or not. Small
// blocks never ask. Each case runs in a forked child with a fresh engine
// (the variable is read at process init), so the parent never calls
// strata. Skipped on kernels without transparent huge pages.
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include <gtest/gtest.h>

#include "alloc/strata.h"
#include "tests/hardening/child.h"

namespace strata {
namespace {

using testing::ChildResult;
using testing::RunInChild;

bool KernelHasTransparentHugePages() { return access("/sys/kernel/mm/transparent_hugepage/enabled", F_OK) == 0; }

// 1: the mapping holding `p` is advised for huge pages; 0: it is not;
// -1: not found. Reads /proc/self/smaps with stdio and a fixed buffer
// (the allocations stdio makes go to strata and do not matter here).
int AdvisedHuge(const void* p) {
  const auto addr = reinterpret_cast<std::uintptr_t>(p);
  std::FILE* f = std::fopen("/proc/self/smaps", "r");
  if (f == nullptr) return -1;
  char line[512];
  bool inside = false;
  int result = -1;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long lo = 0, hi = 0;
    if (std::sscanf(line, "%lx-%lx ", &lo, &hi) == 2) {  // a mapping's first line
      inside = lo <= addr && addr < hi;
      continue;
    }
    if (inside && std::strncmp(line, "VmFlags:", 8) == 0) {
      result = std::strstr(line, " hg") != nullptr ? 1 : 0;
      break;
    }
  }
  std::fclose(f);
  return result;
}

// The child's exit code: 0 when a 16 MiB and a 3 MiB block's mappings are
// advised as expected and a small block's is not; else the number of the
// failed check.
ChildResult RunHugeBlockChild(bool expect_huge, const char* setting) {
  return RunInChild([expect_huge, setting] {
    if (setting != nullptr) {
      setenv("STRATA_HUGE_PAGES", setting, 1);
    } else {
      unsetenv("STRATA_HUGE_PAGES");
    }
    const std::size_t size = std::size_t{16} << 20;
    auto* big = static_cast<unsigned char*>(Allocate(size));
    if (big == nullptr) _exit(2);
    std::memset(big, 1, size);
    const int advised = AdvisedHuge(big);
    if (advised < 0) _exit(3);
    if (advised != (expect_huge ? 1 : 0)) {
      std::fprintf(stderr, "16 MiB block at %p: hg flag %d, expected %d\n", static_cast<void*>(big), advised, expect_huge);
      _exit(4);
    }
    // A block of a whole huge page or more that a segment could hold
    // (3 MiB) takes the huge path while huge pages are on, and stays in a
    // segment (whose mapping is never advised) when they are off.
    const std::size_t mid_size = std::size_t{3} << 20;
    auto* mid = static_cast<unsigned char*>(Allocate(mid_size));
    if (mid == nullptr) _exit(7);
    std::memset(mid, 2, mid_size);
    const int mid_advised = AdvisedHuge(mid);
    if (mid_advised != (expect_huge ? 1 : 0)) {
      std::fprintf(stderr, "3 MiB block at %p: hg flag %d, expected %d\n", static_cast<void*>(mid), mid_advised, expect_huge);
      _exit(8);
    }
    Free(mid);
    void* small = Allocate(256);
    if (small == nullptr) _exit(5);
    if (AdvisedHuge(small) != 0) {
      std::fprintf(stderr, "a 256-byte block's mapping is advised for huge pages\n");
      _exit(6);
    }
    Free(small);
    Free(big);
    _exit(0);
  });
}

TEST(HugePagesTest, HugeBlocksAskForTransparentHugePages) {
  if (!KernelHasTransparentHugePages()) GTEST_SKIP() << "no transparent huge pages in this kernel";
  ChildResult r = RunHugeBlockChild(true, nullptr);
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

TEST(HugePagesTest, OffWithStrataHugePagesZero) {
  if (!KernelHasTransparentHugePages()) GTEST_SKIP() << "no transparent huge pages in this kernel";
  ChildResult r = RunHugeBlockChild(false, "0");
  EXPECT_TRUE(r.exited && r.exit_code == 0) << r.Describe();
}

}  // namespace
}  // namespace strata
