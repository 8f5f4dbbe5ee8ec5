// alloc/profile/system_libraries.h: the shared libraries that only profiles
// and reports need -- zlib (gzip output) and Abseil's symbolizer (function
// names) -- opened with dlopen at first use instead of linked. A process
// that never writes a profile or a report then never maps them: every
// process that preloads strata is about 0.2 MiB smaller (resident pages of
// six libraries: zlib, and Abseil's symbolize, demangle, malloc_internal,
// base and spinlock_wait).
//
// Contract:
//   - LoadProfilerLibraries() opens both libraries (once) and initialises
//     the symbolizer for /proc/self/exe. dlopen allocates: call it where
//     malloc is allowed and no allocator lock is held, before a section
//     that must not allocate (the profile writer, a leak report). A library
//     that cannot be opened is simply absent (see below).
//   - SymbolizeAddress(), ModuleOfAddress() and Zlib() never load anything
//     and never allocate: they use what LoadProfilerLibraries() opened.
//     Where Abseil's symbolizer finds no name (or is absent),
//     SymbolizeAddress falls back to the dynamic symbol that contains the
//     address (dladdr1; its size is checked, so a local function is not
//     named after its exported neighbour; demangled by Abseil's demangler
//     when open), then to module+offset ("libstdc++.so.6+0xd44a3"), so
//     that no frame of a mapped module is a bare address. Without zlib,
//     Zlib() is nullptr and gzip output fails.
//   - The library names are Debian bookworm's (libz.so.1,
//     libabsl_symbolize.so.20220623, with the unversioned names as a
//     fallback), as are Abseil's mangled names (inline namespace debian3,
//     or none).
//
// Thread-safety: all functions are thread-safe; the libraries are opened
// once (pthread_once) and never closed.
#ifndef STRATA_ALLOC_PROFILE_SYSTEM_LIBRARIES_H_
#define STRATA_ALLOC_PROFILE_SYSTEM_LIBRARIES_H_

#include <zlib.h>

#include <cstdint>

namespace strata::profile {

void LoadProfilerLibraries() noexcept;

// Writes the (demangled) name of the function containing the exact code
// address `pc` into `out` (NUL-terminated, truncated to `out_size`), or
// "module+0xoffset" when no symbol covers it. False, with `out`
// unspecified, when the address is in no mapped module.
bool SymbolizeAddress(const void* pc, char* out, int out_size) noexcept;

// The module (shared object or program) that contains `pc`: its path
// (`full_path`) or file name into `out`, and pc's offset from the
// module's load address into *offset (what addr2line takes). False when
// `pc` is in no module.
bool ModuleOfAddress(const void* pc, char* out, int out_size, std::uintptr_t* offset, bool full_path) noexcept;

// The zlib entry points the profile writer uses (deflateInit2 is a macro
// over deflateInit2_).
struct ZlibFunctions {
  int (*deflate_init2)(z_streamp strm, int level, int method, int window_bits, int mem_level,
                       int strategy, const char* version, int stream_size);
  int (*deflate)(z_streamp strm, int flush);
  int (*deflate_end)(z_streamp strm);
};

// nullptr until LoadProfilerLibraries() has opened zlib.
const ZlibFunctions* Zlib() noexcept;

}  // namespace strata::profile

#endif  // STRATA_ALLOC_PROFILE_SYSTEM_LIBRARIES_H_
