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

const std::size_t kPage = static_cast<std::size_t>(sysconf(_SC_PAGESIZE));

// `readable` read-write pages followed by one unmapped page.
char* MapPages(std::size_t readable) {
  auto* base = static_cast<char*>(mmap(nullptr, (readable + 1) * kPage, PROT_READ | PROT_WRITE,
                                       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (base == MAP_FAILED) return nullptr;
  if (munmap(base + readable * kPage, kPage) != 0) return nullptr;
  return base;
}

TEST(StackProbeTest, StopsBelowAGuardPage) {
  // [readable][readable][PROT_NONE guard][unmapped]
  char* base = MapPages(3);
  ASSERT_NE(base, nullptr);
  ASSERT_EQ(mprotect(base + 2 * kPage, kPage, PROT_NONE), 0);
  const auto from = reinterpret_cast<std::uintptr_t>(base + 100);
  EXPECT_EQ(internal::ProbeStackTop(from), reinterpret_cast<std::uintptr_t>(base + 2 * kPage));
  munmap(base, 3 * kPage);
}

TEST(StackProbeTest, StopsAtTheEndOfTheMapping) {
  char* base = MapPages(2);
  ASSERT_NE(base, nullptr);
  EXPECT_EQ(internal::ProbeStackTop(reinterpret_cast<std::uintptr_t>(base + kPage + 8)),
            reinterpret_cast<std::uintptr_t>(base + 2 * kPage));
  munmap(base, 2 * kPage);
}

TEST(StackProbeTest, CaptureStackFindsItsCallers) {
  void* frames[8];
  const int n = internal::CaptureStack(frames, 8, 0);
  EXPECT_GE(n, 2);  // this test body and gtest's caller at least
}

}  // namespace
}  // namespace strata
