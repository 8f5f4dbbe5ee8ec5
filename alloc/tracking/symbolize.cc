#include "alloc/tracking/symbolize.h"

#include <dlfcn.h>
#include <sys/auxv.h>

#include <atomic>
#include <cstdint>
#include <cstring>

#include "alloc/profile/system_libraries.h"
#include "concurrency/base/raw_log.h"

namespace strata::tracking {
namespace {

bool StartsWith(const char* s, const char* prefix) { return std::strncmp(s, prefix, std::strlen(prefix)) == 0; }

// Whether the name `s` is the function `name` itself: the name followed by
// its parameter list or nothing ("free" but not "freelist_push").
bool IsFunction(const char* s, const char* name) {
  const std::size_t n = std::strlen(name);
  return std::strncmp(s, name, n) == 0 && (s[n] == '\0' || s[n] == '(');
}

// strata's own module's load address, when strata is a shared object of
// its own (0: linked into the program, or not known yet).
constinit std::atomic<std::uintptr_t> g_own_base{0};
constinit std::atomic<bool> g_own_base_known{false};

std::uintptr_t OwnModuleBase() {
  if (g_own_base_known.load(std::memory_order_acquire)) return g_own_base.load(std::memory_order_relaxed);
  std::uintptr_t base = 0;
  Dl_info own;
  Dl_info program;
  const void* program_headers = reinterpret_cast<const void*>(getauxval(AT_PHDR));
  if (dladdr(reinterpret_cast<const void*>(&OwnModuleBase), &own) != 0 && program_headers != nullptr &&
      dladdr(program_headers, &program) != 0 && own.dli_fbase != program.dli_fbase) {
    base = reinterpret_cast<std::uintptr_t>(own.dli_fbase);
  }
  g_own_base.store(base, std::memory_order_relaxed);
  g_own_base_known.store(true, std::memory_order_release);
  return base;
}

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
      "strata::(anonymous namespace)::MoveBlock", "strata::Free", "strata::UsableSize", "strata::tracked_cache::",
      "strata::sampled_slices::", "strata::failure_injection::",
      "strata::pmr::", "strata::override", "absl::", "operator new", "operator delete",
      "malloc", "calloc", "realloc", "reallocarray", "posix_memalign", "aligned_alloc", "memalign",
      "valloc", "pvalloc", "__libc_", "strdup", "strndup", "std::__new_allocator", "__gnu_cxx::new_allocator",
      "std::allocator", "std::allocator_traits", "strata_",
  };
  for (const char* p : kPrefixes) {
    if (StartsWith(s, p)) return true;
  }
  return IsFunction(s, "free") || IsFunction(s, "cfree");
}

bool InStrataModule(const void* pc) {
  const std::uintptr_t base = OwnModuleBase();
  if (base == 0) return false;
  Dl_info info;
  return dladdr(static_cast<const char*>(pc) - 1, &info) != 0 &&
         reinterpret_cast<std::uintptr_t>(info.dli_fbase) == base;
}

int FirstUserFrame(void* const* frames, int depth) {
  char name[256];
  for (int i = 0; i < depth; ++i) {
    if (InStrataModule(frames[i])) continue;
    if (!Symbolize(frames[i], name, sizeof(name))) {
      // Unknown code (no module): not ours. Keep it only once the
      // allocator frames are behind us.
      if (i > 0) return i;
      continue;
    }
    if (!IsAllocatorFrame(name)) return i;
  }
  // Every frame is the allocator's (a walk that stopped early, in code
  // without frame pointers): the outermost says most (the libc or
  // libstdc++ function that allocated, rather than strata's internals).
  return depth > 0 ? depth - 1 : 0;
}

int ModuleFrames(void* const* frames, int depth) {
  for (int i = 1; i < depth; ++i) {
    Dl_info info;
    if (dladdr(static_cast<const char*>(frames[i]) - 1, &info) == 0) return i;
  }
  return depth;
}

void AppendFrame(raw::Buffer* b, int index, const void* pc) {
  char name[512];
  Symbolize(pc, name, sizeof(name));
  b->Char('#').Dec(index).Char(' ').Ptr(pc);
  char module[384];
  std::uintptr_t offset = 0;
  if (!profile::ModuleOfAddress(pc, module, sizeof(module), &offset, true)) {
    b->Str(" in ").Str(name);
    return;
  }
  // No symbol covers pc (Symbolize gave "module+0x..."): the module and
  // offset alone, as LeakSanitizer prints such a frame.
  const char* slash = std::strrchr(module, '/');
  const char* base = slash != nullptr ? slash + 1 : module;
  const std::size_t n = std::strlen(base);
  if (std::strncmp(name, base, n) != 0 || std::strncmp(name + n, "+0x", 3) != 0) b->Str(" in ").Str(name);
  b->Str(" (").Str(module).Char('+').Hex(offset).Char(')');
}

}  // namespace strata::tracking
