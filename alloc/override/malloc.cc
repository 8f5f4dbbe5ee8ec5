// alloc/override/malloc.cc: the C malloc family, glibc's __libc_* aliases,
// and glibc's introspection functions, each a one-line forward to the policy
// layer (policy.h) or to introspection.h. No logic lives here.
//
// Every function is extern "C", has default visibility (libstrata.so
// exports it, so LD_PRELOAD interposes it), and is noexcept to match glibc's
// __THROW declarations. A replacement must cover the whole family: one
// missing entry point (say pvalloc) would hand glibc memory to strata's free.
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>

#include <cstddef>

#include "alloc/override/introspection.h"
#include "alloc/override/policy.h"
#include "concurrency/base/macros.h"

namespace policy = strata::override_internal;

// Not declared by glibc 2.36's headers.
extern "C" {
void cfree(void* ptr) noexcept;
void free_sized(void* ptr, size_t size) noexcept;
void free_aligned_sized(void* ptr, size_t alignment, size_t size) noexcept;
void* __libc_malloc(size_t size) noexcept;
void __libc_free(void* ptr) noexcept;
void* __libc_calloc(size_t count, size_t size) noexcept;
void* __libc_realloc(void* ptr, size_t size) noexcept;
void* __libc_memalign(size_t alignment, size_t size) noexcept;
void* __libc_valloc(size_t size) noexcept;
void* __libc_pvalloc(size_t size) noexcept;
}

extern "C" {

// ISO C / POSIX.
STRATA_EXPORT void* malloc(size_t size) noexcept { return policy::MallocImpl(size); }
STRATA_EXPORT void free(void* ptr) noexcept { policy::FreeImpl(ptr); }
STRATA_EXPORT void* calloc(size_t n, size_t size) noexcept { return policy::CallocImpl(n, size); }
STRATA_EXPORT void* realloc(void* ptr, size_t size) noexcept {
  return policy::ReallocImpl(ptr, size);
}
STRATA_EXPORT void* reallocarray(void* ptr, size_t n, size_t size) noexcept {
  return policy::ReallocArrayImpl(ptr, n, size);
}
STRATA_EXPORT int posix_memalign(void** out, size_t alignment, size_t size) noexcept {
  return policy::PosixMemalignImpl(out, alignment, size);
}
STRATA_EXPORT void* aligned_alloc(size_t alignment, size_t size) noexcept {
  return policy::AlignedAllocImpl(alignment, size);
}
STRATA_EXPORT void free_sized(void* ptr, size_t size) noexcept { policy::FreeSizedImpl(ptr, size); }
STRATA_EXPORT void free_aligned_sized(void* ptr, size_t alignment, size_t size) noexcept {
  policy::FreeAlignedSizedImpl(ptr, alignment, size);
}

// Obsolete and GNU extensions.
STRATA_EXPORT void* memalign(size_t alignment, size_t size) noexcept {
  return policy::MemalignImpl(alignment, size);
}
STRATA_EXPORT void* valloc(size_t size) noexcept { return policy::VallocImpl(size); }
STRATA_EXPORT void* pvalloc(size_t size) noexcept { return policy::PvallocImpl(size); }
STRATA_EXPORT void cfree(void* ptr) noexcept { policy::FreeImpl(ptr); }
STRATA_EXPORT size_t malloc_usable_size(void* ptr) noexcept { return policy::UsableSizeImpl(ptr); }

// glibc's internal names (used by glibc itself and by some programs that
// wrap malloc).
STRATA_EXPORT void* __libc_malloc(size_t size) noexcept { return policy::MallocImpl(size); }
STRATA_EXPORT void __libc_free(void* ptr) noexcept { policy::FreeImpl(ptr); }
STRATA_EXPORT void* __libc_calloc(size_t n, size_t size) noexcept {
  return policy::CallocImpl(n, size);
}
STRATA_EXPORT void* __libc_realloc(void* ptr, size_t size) noexcept {
  return policy::ReallocImpl(ptr, size);
}
STRATA_EXPORT void* __libc_memalign(size_t alignment, size_t size) noexcept {
  return policy::MemalignImpl(alignment, size);
}
STRATA_EXPORT void* __libc_valloc(size_t size) noexcept { return policy::VallocImpl(size); }
STRATA_EXPORT void* __libc_pvalloc(size_t size) noexcept { return policy::PvallocImpl(size); }

// glibc introspection.
STRATA_EXPORT struct mallinfo mallinfo(void) noexcept { return policy::MallInfo(); }
STRATA_EXPORT struct mallinfo2 mallinfo2(void) noexcept { return policy::MallInfo2(); }
STRATA_EXPORT int malloc_trim(size_t pad) noexcept { return policy::MallocTrim(pad); }
STRATA_EXPORT void malloc_stats(void) noexcept { policy::MallocStats(); }
STRATA_EXPORT int malloc_info(int options, FILE* stream) noexcept {
  return policy::MallocInfo(options, stream);
}
STRATA_EXPORT int mallopt(int param, int value) noexcept { return policy::Mallopt(param, value); }

}  // extern "C"
