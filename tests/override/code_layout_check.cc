// tests/override/code_layout_check.cc: run with libstrata.so preloaded (see
// layout_test.sh). Does what a typical program does with its allocator --
// threads allocating and freeing small, large and huge blocks, realloc,
// calloc, aligned allocation, new/delete, threads exiting -- then reads
// /proc/self/pagemap for strata's code and checks that at least one whole
// 64 KiB-aligned window of it was never mapped: the code such a program
// does not run (reports, profile writer, leak checker, hardened mode...)
// lies apart from the engine's (alloc/libstrata_order.txt), so the
// kernel's fault-around does not map it.
#include <dlfcn.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>
#include <string>
#include <thread>
#include <vector>

namespace {

constexpr std::uintptr_t kWindow = 64 * 1024;

void Work(unsigned seed) {
  std::vector<void*> live;
  unsigned x = seed;
  for (int i = 0; i < 20000; ++i) {
    x = x * 1103515245u + 12345u;
    const std::size_t size = (x >> 8) % 4 == 0 ? 16 + (x >> 12) % 300000 : 8 + (x >> 12) % 512;
    switch ((x >> 4) % 6) {
      case 0: live.push_back(std::malloc(size)); break;
      case 1: live.push_back(std::calloc(1, size)); break;
      case 2: {
        void* p = nullptr;
        if (posix_memalign(&p, 64, size) == 0) live.push_back(p);
        break;
      }
      case 3: live.push_back(::operator new(size)); break;
      case 4:
        if (!live.empty()) live.back() = std::realloc(live.back(), size * 2);
        break;
      default:
        if (!live.empty()) {
          std::free(live.back());
          live.pop_back();
        }
    }
    if (live.size() > 2000) {
      for (void* p : live) std::free(p);
      live.clear();
    }
  }
  void* huge = std::malloc(8 << 20);
  std::memset(huge, 1, 4096);
  std::free(huge);
  for (void* p : live) std::free(p);
}

}  // namespace

int main() {
  std::vector<std::thread> threads;
  for (unsigned t = 0; t < 4; ++t) threads.emplace_back(Work, t + 1);
  for (std::thread& th : threads) th.join();
  Work(99);

  Dl_info info;
  void* malloc_addr = dlsym(RTLD_DEFAULT, "malloc");
  if (malloc_addr == nullptr || dladdr(malloc_addr, &info) == 0 || info.dli_fname == nullptr ||
      std::strstr(info.dli_fname, "libstrata") == nullptr) {
    std::fprintf(stderr, "FAIL: malloc does not come from libstrata.so\n");
    return 1;
  }
  // The executable mapping of that file.
  FILE* maps = std::fopen("/proc/self/maps", "r");
  char line[4096];
  std::uintptr_t lo = 0, hi = 0;
  const std::string base = std::strrchr(info.dli_fname, '/') ? std::strrchr(info.dli_fname, '/') + 1
                                                              : info.dli_fname;
  while (maps != nullptr && std::fgets(line, sizeof line, maps)) {
    unsigned long a, b;
    char perms[8];
    if (std::sscanf(line, "%lx-%lx %7s", &a, &b, perms) == 3 && std::strcmp(perms, "r-xp") == 0 &&
        std::strstr(line, base.c_str()) != nullptr) {
      lo = a;
      hi = b;
    }
  }
  if (maps != nullptr) std::fclose(maps);
  if (lo == 0) {
    std::fprintf(stderr, "FAIL: no executable mapping of %s\n", base.c_str());
    return 1;
  }
  const long page = sysconf(_SC_PAGESIZE);
  const int fd = open("/proc/self/pagemap", O_RDONLY);
  if (fd < 0) {
    std::printf("SKIP: /proc/self/pagemap not readable\n");
    return 0;
  }
  std::string present;
  for (std::uintptr_t a = lo; a < hi; a += page) {
    std::uint64_t entry = 0;
    if (pread(fd, &entry, sizeof entry, static_cast<off_t>(a / page * sizeof entry)) != sizeof entry) {
      std::fprintf(stderr, "FAIL: pagemap read\n");
      return 1;
    }
    present += (entry >> 63) & 1 ? '#' : '.';
  }
  close(fd);
  std::printf("strata code pages mapped (# mapped, . not), %zu KiB:\n%s\n", (hi - lo) / 1024, present.c_str());
  // A whole aligned window, never mapped.
  for (std::uintptr_t w = (lo + kWindow - 1) & ~(kWindow - 1); w + kWindow <= hi; w += kWindow) {
    const std::size_t first = (w - lo) / page, n = kWindow / page;
    if (present.compare(first, n, std::string(n, '.')) == 0) {
      std::printf("PASS: the 64 KiB at offset 0x%lx were never mapped\n", static_cast<unsigned long>(w - lo));
      return 0;
    }
  }
  std::fprintf(stderr, "FAIL: every 64 KiB window of strata's code was mapped: the code this program "
                       "ran is spread over all of it (see alloc/libstrata_order.txt)\n");
  return 1;
}
