// alloc/override/introspection.h: the glibc introspection entry points
// (mallinfo, mallinfo2, malloc_stats, malloc_info, malloc_trim, mallopt)
// computed from strata::GetStats(), and the C counters of strata_c.h.
//
// Thread-safety: all functions are thread-safe. None allocates through
// malloc (malloc_info writes through the caller's FILE*, whose buffer stdio
// may allocate; that is ordinary reentry into our malloc, not recursion
// under a lock).
#ifndef STRATA_ALLOC_OVERRIDE_INTROSPECTION_H_
#define STRATA_ALLOC_OVERRIDE_INTROSPECTION_H_

#include <malloc.h>
#include <stdio.h>

#include <cstddef>

namespace strata::override_internal {

// mallinfo2 fields from strata's counters:
//   arena    committed bytes          uordblks  live (in-use) bytes
//   fordblks free bytes held (thread caches + central + free spans + large cache)
//   fsmblks  bytes in thread and central caches
//   hblkhd   live bytes of large (page-run) blocks
//   usmblks  peak live bytes          keepcost  bytes malloc_trim could release
// ordblks, smblks, hblks are 0 (strata has no such notion).
struct mallinfo2 MallInfo2() noexcept;
// The same, each field clamped to INT_MAX.
struct mallinfo MallInfo() noexcept;
// Prints a short summary to stderr with write(2).
void MallocStats() noexcept;
// Writes an XML summary (glibc's shape: <malloc><heap>...</heap></malloc>)
// to `stream`. options must be 0 (else EINVAL, -1).
int MallocInfo(int options, FILE* stream) noexcept;
// strata::ReleaseMemory(); 1 if any memory was released, else 0.
int MallocTrim(std::size_t pad) noexcept;
// Accepts and ignores every parameter; returns 1 (success).
int Mallopt(int param, int value) noexcept;

}  // namespace strata::override_internal

#endif  // STRATA_ALLOC_OVERRIDE_INTROSPECTION_H_
