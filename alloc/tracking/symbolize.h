// alloc/tracking/symbolize.h: names for recorded stacks, and trimming of
// the allocator's own frames.
//
// Contract: Symbolize() writes a demangled function name for a code
// address into a caller buffer (Abseil's symbolizer, opened at first use:
// alloc/profile/system_libraries.h; hex when unknown). It never allocates
// through malloc... except on the process's first use (dlopen), which the
// caller must make outside the allocator's locks. UserFrames()
// returns the index of the first frame of a stack that is not inside
// strata (the allocation entry points, the engine, the tracking hooks), so
// reports start at the user's call site.
//
// Thread-safety: thread-safe (Abseil's symbolizer is).
#ifndef STRATA_ALLOC_TRACKING_SYMBOLIZE_H_
#define STRATA_ALLOC_TRACKING_SYMBOLIZE_H_

#include <cstddef>

namespace strata::tracking {

// Opens the symbolizer (and zlib) for this process: dlopen, which
// allocates; idempotent.
void InitSymbolizer();

// Writes the symbol for `pc` (a return address; looked up at pc - 1) into
// `out`; returns false and writes "0x..." when unknown.
bool Symbolize(const void* pc, char* out, std::size_t out_size);

// True when a symbol names an allocator frame (strata's internals, the
// malloc family, operator new/delete and std::allocator plumbing).
bool IsAllocatorFrame(const char* symbol);

// Index of the first user frame in frames[0, depth).
int FirstUserFrame(void* const* frames, int depth);

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_SYMBOLIZE_H_
