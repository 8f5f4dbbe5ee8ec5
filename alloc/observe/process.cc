#include "alloc/observe/process.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

namespace strata::observe {

std::uint64_t ResidentBytes() noexcept {
  int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return 0;
  char buf[256];
  std::size_t used = 0;
  while (used < sizeof(buf) - 1) {
    ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  close(fd);
  buf[used] = '\0';
  // "size resident shared text lib data dt", in pages.
  const char* p = buf;
  while (*p >= '0' && *p <= '9') ++p;
  if (*p != ' ') return 0;
  ++p;
  std::uint64_t pages = 0;
  bool digits = false;
  for (; *p >= '0' && *p <= '9'; ++p, digits = true) pages = pages * 10 + static_cast<std::uint64_t>(*p - '0');
  if (!digits) return 0;
  long page = sysconf(_SC_PAGESIZE);
  return pages * static_cast<std::uint64_t>(page > 0 ? page : 4096);
}

}  // namespace strata::observe
