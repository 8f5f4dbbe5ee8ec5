// tests/override/fd_list.cc: prints the file descriptors open in this
// process (but the one reading the list), one per line, sorted. See
// no_extra_fd_test.sh.
#include <dirent.h>

#include <cstdio>
#include <cstdlib>
#include <set>

int main() {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return 2;
  std::set<long> fds;
  while (dirent* e = readdir(dir)) {
    if (e->d_name[0] == '.') continue;
    const long fd = std::strtol(e->d_name, nullptr, 10);
    if (fd != dirfd(dir)) fds.insert(fd);
  }
  closedir(dir);
  for (long fd : fds) std::printf("%ld\n", fd);
  return 0;
}
