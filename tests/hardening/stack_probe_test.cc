// tests/hardening/stack_probe_test.cc: the stack-top probe behind the
// engine's frame-pointer walks (internal::CaptureStack) stops at the first
// page that cannot be read: a guard page (mapped, PROT_NONE) right above a
// stack must bound the walk, or a bogus frame pointer could send it there.
#include <sys/mman.h>
#include <unistd.h>

#include <cstdint>

#include <gtest/gtest.h>

#include "alloc/internal/hardening.h"

namespace strata {
namespace {

TEST(StackProbeTest, StopsBelowAGuardPage) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  // [readable][readable][PROT_NONE guard][unmapped]
  auto* base = static_cast<char*>(mmap(nullptr, 4 * page, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(base, MAP_FAILED);
  ASSERT_EQ(munmap(base + 3 * page, page), 0);
  ASSERT_EQ(mprotect(base + 2 * page, page, PROT_NONE), 0);
  const auto from = reinterpret_cast<std::uintptr_t>(base + 100);
  EXPECT_EQ(internal::ProbeStackTop(from), reinterpret_cast<std::uintptr_t>(base + 2 * page));
  munmap(base, 3 * page);
}

TEST(StackProbeTest, StopsAtTheEndOfTheMapping) {
  const std::size_t page = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));
  auto* base = static_cast<char*>(mmap(nullptr, 3 * page, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(base, MAP_FAILED);
  ASSERT_EQ(munmap(base + 2 * page, page), 0);
  EXPECT_EQ(internal::ProbeStackTop(reinterpret_cast<std::uintptr_t>(base + page + 8)),
            reinterpret_cast<std::uintptr_t>(base + 2 * page));
  munmap(base, 2 * page);
}

TEST(StackProbeTest, CaptureStackFindsItsCallers) {
  void* frames[8];
  const int n = internal::CaptureStack(frames, 8, 0);
  EXPECT_GE(n, 2);  // this test body and gtest's caller at least
}

}  // namespace
}  // namespace strata
