// The leak checker's API in-process: scoped checks, still-reachable blocks,
// suppressions and the report of old live blocks (the seed's
// ReferenceTracker). Allocation goes through the engine API.
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstring>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "alloc/leak_check.h"
#include "alloc/strata.h"

namespace user_code {

void* volatile g_kept = nullptr;

__attribute__((noinline)) void LoseBlock(std::size_t n) {
  void* volatile p = strata::Allocate(n);
  std::memset(p, 0, n);
}

__attribute__((noinline)) void SuppressedSite() {
  void* volatile p = strata::Allocate(77);
  (void)p;
}

__attribute__((noinline)) void KeepBlock() { g_kept = strata::Allocate(123); }

__attribute__((noinline)) void ClobberStack() {
  volatile char buf[1 << 15];
  std::memset(const_cast<char*>(buf), 0, sizeof(buf));
  asm volatile("" ::"r"(buf) : "memory");
}

}  // namespace user_code

namespace strata {
namespace {

std::string ReadAll(int fd) {
  std::string out;
  char buf[4096];
  lseek(fd, 0, SEEK_SET);
  for (ssize_t n; (n = read(fd, buf, sizeof(buf))) > 0;) out.append(buf, static_cast<std::size_t>(n));
  return out;
}

int TempFd() {
  char path[] = "/tmp/leak_api_testXXXXXX";
  int fd = mkstemp(path);
  unlink(path);
  return fd;
}

TEST(LeakApi, ScopedCheckFindsTheLostBlockNotTheKeptOne) {
  LeakCheck check;
  std::thread([] {
    user_code::LoseBlock(300);
    user_code::KeepBlock();
  }).join();
  int fd = TempFd();
  LeakReport r = check.Check(fd);
  std::string text = ReadAll(fd);
  close(fd);
  EXPECT_EQ(r.definite_objects, 1u) << text;
  EXPECT_EQ(r.definite_bytes, 300u) << text;
  EXPECT_EQ(r.indirect_objects, 0u);
  EXPECT_GE(r.reachable_objects, 1u);  // g_kept
  EXPECT_NE(text.find("Direct leak of 300 byte(s) in 1 object(s)"), std::string::npos) << text;
  EXPECT_NE(text.find("user_code::LoseBlock"), std::string::npos) << text;
  EXPECT_NE(std::string(r.top_site).find("LoseBlock"), std::string::npos) << r.top_site;
  strata::Free(user_code::g_kept);
  user_code::g_kept = nullptr;  // a dangling copy would keep a reused block alive
}

TEST(LeakApi, CheckNoLiveBlocksCountsEverythingStillAllocated) {
  LeakCheck check;
  void* a = strata::Allocate(10);
  void* b = strata::Allocate(20);
  strata::Free(a);
  LeakReport r = check.CheckNoLiveBlocks(-1);
  EXPECT_EQ(r.definite_objects, 1u);
  EXPECT_EQ(r.definite_bytes, 20u);
  strata::Free(b);
  EXPECT_FALSE(check.CheckNoLiveBlocks(-1).HasLeaks());
}

TEST(LeakApi, SuppressionsHideMatchingSites) {
  char path[] = "/tmp/leak_suppXXXXXX";
  int fd = mkstemp(path);
  const char text[] = "# suppressions\nleak:SuppressedSite\n";
  ASSERT_EQ(write(fd, text, sizeof(text) - 1), static_cast<ssize_t>(sizeof(text) - 1));
  close(fd);
  setenv("STRATA_LEAK_SUPPRESSIONS", path, 1);
  LeakCheck check;
  // Allocating on a thread that has exited leaves no stale copy of the
  // pointers on any scanned stack.
  std::thread([] {
    user_code::SuppressedSite();
    user_code::LoseBlock(40);
  }).join();
  LeakReport r = check.Check(-1);
  unsetenv("STRATA_LEAK_SUPPRESSIONS");
  unlink(path);
  EXPECT_EQ(r.suppressed_objects, 1u);
  EXPECT_EQ(r.suppressed_bytes, 77u);
  EXPECT_EQ(r.definite_objects, 1u);
  EXPECT_EQ(r.definite_bytes, 40u);
}

TEST(LeakApi, OldAllocationsAreReportedWithTheirSite) {
  EnableLeakChecking();
  user_code::KeepBlock();
  int fd = TempFd();
  std::size_t n = ReportOldAllocations(0.0, fd);
  std::string text = ReadAll(fd);
  close(fd);
  EXPECT_GE(n, 1u);
  EXPECT_NE(text.find("user_code::KeepBlock"), std::string::npos) << text;
  fd = TempFd();
  EXPECT_EQ(ReportOldAllocations(3600.0, fd), 0u);  // nothing is an hour old
  close(fd);
  strata::Free(user_code::g_kept);
  user_code::g_kept = nullptr;  // a dangling copy would keep a reused block alive
}

}  // namespace
}  // namespace strata
