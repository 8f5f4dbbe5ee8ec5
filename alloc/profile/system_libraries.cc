#include "alloc/profile/system_libraries.h"

#include <dlfcn.h>
#include <errno.h>
#include <link.h>
#include <pthread.h>
#include <sys/auxv.h>
#include <unistd.h>

#include <atomic>
#include <cstring>

namespace strata::profile {
namespace {

using SymbolizeFn = bool (*)(const void* pc, char* out, int out_size);
using DemangleFn = bool (*)(const char* mangled, char* out, int out_size);
using InitializeSymbolizerFn = void (*)(const char* argv0);

constinit pthread_once_t g_once = PTHREAD_ONCE_INIT;
// Published with release stores once everything they point to is ready;
// read with acquire loads by callers that did not run the once routine.
constinit std::atomic<SymbolizeFn> g_symbolize{nullptr};
constinit std::atomic<DemangleFn> g_demangle{nullptr};
constinit std::atomic<const ZlibFunctions*> g_zlib{nullptr};
constinit ZlibFunctions g_zlib_functions{};

// The first library of `names` (nullptr-terminated) that dlopen opens.
void* OpenFirst(const char* const* names) {
  for (; *names != nullptr; ++names) {
    if (void* handle = dlopen(*names, RTLD_LAZY | RTLD_LOCAL)) return handle;
  }
  return nullptr;
}

// The first symbol of `names` (nullptr-terminated) that `handle` defines.
void* FindFirst(void* handle, const char* const* names) {
  for (; *names != nullptr; ++names) {
    if (void* sym = dlsym(handle, *names)) return sym;
  }
  return nullptr;
}

void LoadZlib() {
  static const char* const kNames[] = {"libz.so.1", "libz.so", nullptr};
  void* z = OpenFirst(kNames);
  if (z == nullptr) return;
  g_zlib_functions.deflate_init2 = reinterpret_cast<decltype(g_zlib_functions.deflate_init2)>(dlsym(z, "deflateInit2_"));
  g_zlib_functions.deflate = reinterpret_cast<decltype(g_zlib_functions.deflate)>(dlsym(z, "deflate"));
  g_zlib_functions.deflate_end = reinterpret_cast<decltype(g_zlib_functions.deflate_end)>(dlsym(z, "deflateEnd"));
  if (g_zlib_functions.deflate_init2 == nullptr || g_zlib_functions.deflate == nullptr ||
      g_zlib_functions.deflate_end == nullptr) {
    return;
  }
  g_zlib.store(&g_zlib_functions, std::memory_order_release);
}

void LoadSymbolizer() {
  static const char* const kLibraries[] = {"libabsl_symbolize.so.20220623", "libabsl_symbolize.so", nullptr};
  static const char* const kSymbolize[] = {"_ZN4absl7debian39SymbolizeEPKvPci", "_ZN4absl9SymbolizeEPKvPci",
                                           nullptr};
  static const char* const kInitialize[] = {"_ZN4absl7debian320InitializeSymbolizerEPKc",
                                            "_ZN4absl20InitializeSymbolizerEPKc", nullptr};
  static const char* const kDemangle[] = {"_ZN4absl7debian318debugging_internal8DemangleEPKcPci",
                                          "_ZN4absl18debugging_internal8DemangleEPKcPci", nullptr};
  void* lib = OpenFirst(kLibraries);
  if (lib == nullptr) return;
  // The symbolizer's own dependency; found through its handle.
  if (auto demangle = reinterpret_cast<DemangleFn>(FindFirst(lib, kDemangle))) {
    g_demangle.store(demangle, std::memory_order_release);
  }
  auto symbolize = reinterpret_cast<SymbolizeFn>(FindFirst(lib, kSymbolize));
  auto initialize = reinterpret_cast<InitializeSymbolizerFn>(FindFirst(lib, kInitialize));
  if (symbolize == nullptr) return;
  // Needed on some platforms, harmless on Linux; it may allocate (a copy of
  // the path), which is allowed here.
  if (initialize != nullptr) initialize("/proc/self/exe");
  g_symbolize.store(symbolize, std::memory_order_release);
}

void LoadOnce() {
  LoadZlib();
  LoadSymbolizer();
}

}  // namespace

void LoadProfilerLibraries() noexcept { pthread_once(&g_once, &LoadOnce); }

namespace {

// Copies `s` into out (truncated, NUL-terminated); returns its length.
int Copy(const char* s, char* out, int out_size) {
  std::size_t n = std::strlen(s);
  if (n >= static_cast<std::size_t>(out_size)) n = static_cast<std::size_t>(out_size) - 1;
  std::memcpy(out, s, n);
  out[n] = '\0';
  return static_cast<int>(n);
}

// The file name of a module path (what follows the last '/').
const char* BaseName(const char* path) {
  const char* slash = std::strrchr(path, '/');
  return slash != nullptr ? slash + 1 : path;
}

// The main program's path, for a dladdr that reports it as "" or as the
// relative path it was started by: absolute (/proc/self/exe), so that a
// tool can open it from anywhere.
constinit pthread_once_t g_program_once = PTHREAD_ONCE_INIT;
constinit char g_program_path[4096] = {};

void ReadProgramPath() {
  const ssize_t n = readlink("/proc/self/exe", g_program_path, sizeof(g_program_path) - 1);
  if (n > 0) {
    g_program_path[n] = '\0';
  } else {
    Copy(::program_invocation_name != nullptr ? ::program_invocation_name : "exe", g_program_path,
         static_cast<int>(sizeof(g_program_path)));
  }
}

const char* ProgramPath() {
  pthread_once(&g_program_once, &ReadProgramPath);
  return g_program_path;
}

bool IsMainProgram(const void* base) {
  Dl_info program;
  const void* headers = reinterpret_cast<const void*>(getauxval(AT_PHDR));
  return headers != nullptr && dladdr(headers, &program) != 0 && program.dli_fbase == base;
}

}  // namespace

bool ModuleOfAddress(const void* pc, char* out, int out_size, std::uintptr_t* offset, bool full_path) noexcept {
  if (out_size <= 0) return false;
  Dl_info info;
  if (dladdr(pc, &info) == 0) return false;
  const char* path = info.dli_fname != nullptr ? info.dli_fname : "";
  // The main program may come as "" or as the relative path it was run by.
  if (path[0] != '/' && IsMainProgram(info.dli_fbase)) path = ProgramPath();
  Copy(full_path ? path : BaseName(path), out, out_size);
  *offset = reinterpret_cast<std::uintptr_t>(pc) - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  return true;
}

bool SymbolizeAddress(const void* pc, char* out, int out_size) noexcept {
  if (out_size <= 0) return false;
  if (SymbolizeFn symbolize = g_symbolize.load(std::memory_order_acquire)) {
    if (symbolize(pc, out, out_size)) return true;
  }
  // What the loader knows (no allocation; the loader's lock only): the
  // dynamic symbol that contains `pc` (its size tells: the nearest symbol
  // below a local function is another function), demangled when Abseil's
  // demangler is open; else module+offset ("libstdc++.so.6+0xd44a3"), for
  // addr2line.
  Dl_info info;
  void* extra = nullptr;
  if (dladdr1(pc, &info, &extra, RTLD_DL_SYMENT) == 0) return false;
  const auto* sym = static_cast<const ElfW(Sym)*>(extra);
  const auto addr = reinterpret_cast<std::uintptr_t>(pc);
  const auto start = reinterpret_cast<std::uintptr_t>(info.dli_saddr);
  if (info.dli_sname != nullptr && sym != nullptr && addr >= start && addr - start < sym->st_size) {
    DemangleFn demangle = g_demangle.load(std::memory_order_acquire);
    if (demangle == nullptr || !demangle(info.dli_sname, out, out_size)) Copy(info.dli_sname, out, out_size);
    return true;
  }
  const char* path = info.dli_fname != nullptr && info.dli_fname[0] != '\0' ? info.dli_fname : ProgramPath();
  int n = Copy(BaseName(path), out, out_size);
  // "+0x" and the hex offset, if they fit.
  char hex[24];
  int h = 0;
  std::uintptr_t off = addr - reinterpret_cast<std::uintptr_t>(info.dli_fbase);
  do {
    hex[h++] = "0123456789abcdef"[off & 0xf];
    off >>= 4;
  } while (off != 0);
  if (n + 3 + h < out_size) {
    out[n++] = '+';
    out[n++] = '0';
    out[n++] = 'x';
    while (h > 0) out[n++] = hex[--h];
    out[n] = '\0';
  }
  return true;
}

const ZlibFunctions* Zlib() noexcept { return g_zlib.load(std::memory_order_acquire); }

}  // namespace strata::profile
