#include "alloc/profile/system_libraries.h"

#include <dlfcn.h>
#include <pthread.h>

#include <atomic>
#include <cstring>

namespace strata::profile {
namespace {

using SymbolizeFn = bool (*)(const void* pc, char* out, int out_size);
using InitializeSymbolizerFn = void (*)(const char* argv0);

constinit pthread_once_t g_once = PTHREAD_ONCE_INIT;
// Published with release stores once everything they point to is ready;
// read with acquire loads by callers that did not run the once routine.
constinit std::atomic<SymbolizeFn> g_symbolize{nullptr};
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
  void* lib = OpenFirst(kLibraries);
  if (lib == nullptr) return;
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

bool SymbolizeAddress(const void* pc, char* out, int out_size) noexcept {
  if (out_size <= 0) return false;
  if (SymbolizeFn symbolize = g_symbolize.load(std::memory_order_acquire)) {
    return symbolize(pc, out, out_size);
  }
  // The nearest exported symbol: no allocation (the loader's lock only).
  Dl_info info;
  if (dladdr(pc, &info) == 0 || info.dli_sname == nullptr) return false;
  std::size_t n = std::strlen(info.dli_sname);
  if (n >= static_cast<std::size_t>(out_size)) n = static_cast<std::size_t>(out_size) - 1;
  std::memcpy(out, info.dli_sname, n);
  out[n] = '\0';
  return true;
}

const ZlibFunctions* Zlib() noexcept { return g_zlib.load(std::memory_order_acquire); }

}  // namespace strata::profile
