#include "alloc/tracking/symbolize.h"

#include <cstdint>
#include <cstring>

#include "alloc/profile/system_libraries.h"
#include "concurrency/base/raw_log.h"

namespace strata::tracking {
namespace {

bool StartsWith(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

}  // namespace

void InitSymbolizer() { profile::LoadProfilerLibraries(); }

bool Symbolize(const void* pc, char* out, std::size_t out_size) {
  InitSymbolizer();
  const void* lookup = static_cast<const char*>(pc) - 1;
  if (profile::SymbolizeAddress(lookup, out, static_cast<int>(out_size))) return true;
  raw::Buffer b;
  b.Ptr(pc);
  std::size_t n = b.size() < out_size - 1 ? b.size() : out_size - 1;
  std::memcpy(out, b.data(), n);
  out[n] = '\0';
  return false;
}

bool IsAllocatorFrame(const char* s) {
  static const char* const kPrefixes[] = {
      "strata::internal::", "strata::tracking::", "strata::Allocate", "strata::Reallocate",
      "strata::pmr::", "strata::override", "absl::", "operator new", "operator delete",
      "malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign",
      "valloc", "pvalloc", "__libc_", "strdup", "strndup", "std::__new_allocator", "__gnu_cxx::new_allocator",
      "std::allocator", "std::allocator_traits",
  };
  for (const char* p : kPrefixes) {
    if (StartsWith(s, p)) return true;
  }
  return false;
}

int FirstUserFrame(void* const* frames, int depth) {
  char name[256];
  for (int i = 0; i < depth; ++i) {
    if (!Symbolize(frames[i], name, sizeof(name))) {
      // Unknown code (a stripped library): not ours, strata is built with
      // symbols. Keep it only once the allocator frames are behind us.
      if (i > 0) return i;
      continue;
    }
    if (!IsAllocatorFrame(name)) return i;
  }
  return 0;
}

}  // namespace strata::tracking
