// alloc/override/strata_c.cc: the exported C counters (strata_c.h) and the
// STRATA_PRELOAD_CHECK exit report.
#include "alloc/override/strata_c.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <unistd.h>

#include "alloc/stats.h"
#include "alloc/strata.h"
#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"

extern "C" {

STRATA_EXPORT uint64_t strata_stats_allocations(void) { return strata::GetStats().allocations; }
STRATA_EXPORT uint64_t strata_stats_frees(void) { return strata::GetStats().frees; }
STRATA_EXPORT int64_t strata_stats_live_bytes(void) { return strata::GetStats().live_bytes; }
STRATA_EXPORT size_t strata_release_memory(void) { return strata::ReleaseMemory(); }

}  // extern "C"

namespace {

// Runs when the process exits normally (exit() or return from main), in the
// executable or in libstrata.so alike. Reads the environment with getenv
// (no allocation) and writes one line with write(2).
__attribute__((destructor)) void PreloadCheckReport() {
  const char* mode = getenv("STRATA_PRELOAD_CHECK");
  if (mode == nullptr || mode[0] == '\0' || (mode[0] == '0' && mode[1] == '\0')) return;
  const int saved = errno;
  const strata::Stats s = strata::GetStats();
  strata::raw::Buffer b;
  b.Str("strata: pid=").Dec(getpid());
  b.Str(" allocations=").Udec(s.allocations);
  b.Str(" frees=").Udec(s.frees);
  b.Str(" live_bytes=").Dec(s.live_bytes).Char('\n');
  if (mode[0] == '/') {
    const int fd = open(mode, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
    if (fd >= 0) {
      b.WriteTo(fd);
      close(fd);
    }
  } else {
    b.WriteTo(STDERR_FILENO);
  }
  errno = saved;
}

}  // namespace
