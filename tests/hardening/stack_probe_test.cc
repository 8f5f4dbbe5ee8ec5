// tests/hardening/stack_probe_test.cc: the stack-top probe behind the
// engine's frame-pointer walks (internal::CaptureStack) stops at the first
// page that cannot be read: a guard page (mapped, PROT_NONE) right above a
// stack must bound the walk, or a bogus frame pointer could send it there.
// The walker remembers the verified range of the thread's stack: a walk
// from deeper in that stack must still see every frame, and one from
// another stack (a fiber) must be bounded by that stack, not the thread's.
// A walk probes only the pages its frames lie on, once per thread, however
// much readable memory lies above the stack.
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <signal.h>
#include <stddef.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <ucontext.h>
#include <unistd.h>

#include <pthread.h>

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

// Containers and sandboxes often refuse process_vm_readv (seccomp). The
// probe must still stop below a guard page there, which mincore (mapped
// pages) would not, and must leave the signal mask alone (the fallback
// asks rt_sigprocmask). Checked in a child that installs such a filter.
TEST(StackProbeTest, StopsBelowAGuardPageWhenProcessVmReadvIsRefused) {
  char* base = MapPages(3);
  ASSERT_NE(base, nullptr);
  ASSERT_EQ(mprotect(base + 2 * kPage, kPage, PROT_NONE), 0);
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    sock_filter filter[] = {
        BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(seccomp_data, nr)),
        BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, SYS_process_vm_readv, 0, 1),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
        BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
    };
    sock_fprog prog{static_cast<unsigned short>(sizeof filter / sizeof filter[0]), filter};
    if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0 || prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog) != 0) {
      _exit(2);  // cannot install the filter here
    }
    char byte;
    iovec local{&byte, 1};
    iovec remote{base, 1};
    if (process_vm_readv(getpid(), &local, 1, &remote, 1, 0) != -1 || errno != EPERM) _exit(3);
    sigset_t before, after;
    pthread_sigmask(SIG_SETMASK, nullptr, &before);
    const auto top = internal::ProbeStackTop(reinterpret_cast<std::uintptr_t>(base + 100));
    pthread_sigmask(SIG_SETMASK, nullptr, &after);
    for (int sig = 1; sig < NSIG; ++sig) {
      if (sigismember(&before, sig) != sigismember(&after, sig)) _exit(4);
    }
    _exit(top == reinterpret_cast<std::uintptr_t>(base + 2 * kPage) ? 0 : 1);
  }
  int status = 0;
  ASSERT_EQ(waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 2) GTEST_SKIP() << "seccomp filters are not available here";
  EXPECT_EQ(WEXITSTATUS(status), 0) << "1: the probe walked into the guard page; 3: the filter did not refuse; 4: the signal mask changed";
  munmap(base, 3 * kPage);
}

TEST(StackProbeTest, CaptureStackFindsItsCallers) {
  void* frames[8];
  const int n = internal::CaptureStack(frames, 8, 0);
  EXPECT_GE(n, 2);  // this test body and gtest's caller at least
}

// Recurses `depth` times (each frame holding a buffer, so that the stack
// grows by several pages), then walks from the bottom.
__attribute__((noinline)) int CaptureDeep(int depth, void** frames, int max) {
  volatile char pad[256];
  pad[0] = static_cast<char>(depth);
  int n = depth == 0 ? internal::CaptureStack(frames, max, 0) : CaptureDeep(depth - 1, frames, max);
  return n + pad[0] * 0;
}

TEST(StackProbeTest, WalksFromDeeperInTheSameStackSeeEveryFrame) {
  void* frames[40];
  ASSERT_GE(internal::CaptureStack(frames, 40, 0), 2);  // the thread's range, from here
  // 200 frames of 256+ bytes: the walk starts 50+ KiB below that range.
  EXPECT_EQ(CaptureDeep(200, frames, 40), 40);
  EXPECT_EQ(CaptureDeep(200, frames, 40), 40);  // the range has grown down
}

// A thread whose stack lies at the bottom of a 4 MiB read-write mapping:
// the probe that bounded the first walk at the first unreadable page above
// would have scanned up to 1 MiB (256 system calls); the walk probes only
// the pages its frames span, and a second walk none.
struct ProbeCounts {
  std::uint64_t first = 0;
  std::uint64_t second = 0;
  int depth = 0;
};

void* WalkTwice(void* arg) {
  auto* counts = static_cast<ProbeCounts*>(arg);
  void* frames[16];
  std::uint64_t before = internal::StackProbes();
  counts->depth = internal::CaptureStack(frames, 16, 0);
  counts->first = internal::StackProbes() - before;
  before = internal::StackProbes();
  internal::CaptureStack(frames, 16, 0);
  counts->second = internal::StackProbes() - before;
  return nullptr;
}

TEST(StackProbeTest, AWalkProbesOnlyThePagesItsFramesLieOn) {
  // 1 MiB of stack (ThreadSanitizer refuses small ones), 3 MiB of readable
  // memory above it.
  constexpr std::size_t kStack = 1024 * 1024;
  constexpr std::size_t kMapping = 4 * 1024 * 1024;
  auto* region = static_cast<char*>(
      mmap(nullptr, kMapping, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(region, MAP_FAILED);
  pthread_attr_t attr;
  ASSERT_EQ(pthread_attr_init(&attr), 0);
  ASSERT_EQ(pthread_attr_setstack(&attr, region, kStack), 0);
  ProbeCounts counts;
  pthread_t thread;
  ASSERT_EQ(pthread_create(&thread, &attr, &WalkTwice, &counts), 0);
  ASSERT_EQ(pthread_join(thread, nullptr), 0);
  pthread_attr_destroy(&attr);
  EXPECT_GE(counts.depth, 1);
  EXPECT_LE(counts.first, 4u) << "the first walk probed far above its frames";
  EXPECT_EQ(counts.second, 0u) << "the second walk probed pages already verified";
  munmap(region, kMapping);
}

#if !defined(STRATA_SANITIZER_BUILD)
// A fiber's stack: [PROT_NONE guard][kFiberPages read-write][PROT_NONE guard].
constexpr std::size_t kFiberPages = 16;
char* g_fiber_top_guard = nullptr;
ucontext_t g_main_context;
ucontext_t g_fiber_context;
int g_fiber_depth = -1;

// Points this frame's saved frame pointer at a fake frame whose own saved
// frame pointer lies in the guard page above the fiber's stack: a walk
// bounded by the thread's (main) stack instead of the fiber's would read
// the guard page and crash.
__attribute__((noinline)) void WalkWithABogusChain() {
  auto** saved_fp = static_cast<std::uintptr_t**>(__builtin_frame_address(0));
  std::uintptr_t* const real = *saved_fp;
  auto* fake = reinterpret_cast<std::uintptr_t*>(g_fiber_top_guard - 16);
  fake[0] = reinterpret_cast<std::uintptr_t>(g_fiber_top_guard + 8);
  fake[1] = 0x5000;  // a plausible return address
  *static_cast<std::uintptr_t* volatile*>(static_cast<void*>(saved_fp)) = fake;
  void* frames[16];
  g_fiber_depth = internal::CaptureStack(frames, 16, 0);
  *static_cast<std::uintptr_t* volatile*>(static_cast<void*>(saved_fp)) = real;
}

void FiberMain() {
  WalkWithABogusChain();
  swapcontext(&g_fiber_context, &g_main_context);
}

TEST(StackProbeTest, AWalkOnAFiberStackIsBoundedByThatStack) {
  void* frames[8];
  ASSERT_GE(internal::CaptureStack(frames, 8, 0), 2);  // the thread's range
  const std::size_t bytes = (kFiberPages + 2) * kPage;
  auto* region = static_cast<char*>(
      mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  ASSERT_NE(region, MAP_FAILED);
  ASSERT_EQ(mprotect(region, kPage, PROT_NONE), 0);
  g_fiber_top_guard = region + (kFiberPages + 1) * kPage;
  ASSERT_EQ(mprotect(g_fiber_top_guard, kPage, PROT_NONE), 0);
  ASSERT_EQ(getcontext(&g_fiber_context), 0);
  g_fiber_context.uc_stack.ss_sp = region + kPage;
  g_fiber_context.uc_stack.ss_size = kFiberPages * kPage;
  g_fiber_context.uc_link = &g_main_context;
  makecontext(&g_fiber_context, FiberMain, 0);
  ASSERT_EQ(swapcontext(&g_main_context, &g_fiber_context), 0);
  // CaptureStack's frame, WalkWithABogusChain's, then the fake frame: the
  // walk stops at the guard page.
  EXPECT_EQ(g_fiber_depth, 3);
  munmap(region, bytes);
}
#endif

}  // namespace
}  // namespace strata
