// Run by listener_test.sh: one clean test and one that leaks; the listener
// must fail exactly the leaking one and name its allocation site.
#include <cstring>

#include <gtest/gtest.h>

#include "alloc/leak_check_gtest.h"

namespace user_code {
__attribute__((noinline)) int* LeakSomeInts() {
  int* p = new int[100];
  std::memset(p, 0, 100 * sizeof(int));
  return p;
}
__attribute__((noinline)) void ClobberStack() {
  volatile char buf[1 << 15];
  std::memset(const_cast<char*>(buf), 0, sizeof(buf));
  // Keep the "dead" stores: the buffer escapes to the compiler's eyes.
  asm volatile("" ::"r"(buf) : "memory");
}
}  // namespace user_code

TEST(ListenerDemo, CleanTest) {
  int* p = new int[10];
  delete[] p;
}

TEST(ListenerDemo, LeakyTest) {
  int* volatile lost = user_code::LeakSomeInts();
  (void)lost;
  lost = nullptr;
  user_code::ClobberStack();
}

int main(int argc, char** argv) {
  ::testing::InitGoogleTest(&argc, argv);
  strata::testing::InstallLeakCheckListener();
  return RUN_ALL_TESTS();
}
