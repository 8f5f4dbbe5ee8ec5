// alloc/tracking/symbolize.h: names for recorded stacks, and trimming of
// the allocator's own frames.
//
// Contract: Symbolize() writes a demangled function name for a code
// address into a caller buffer (Abseil's symbolizer, opened at first use:
// alloc/profile/system_libraries.h; the dynamic symbol that contains it,
// or "module+0xoffset" when no symbol does; hex only outside every
// module). It never allocates through malloc... except on the process's
// first use (dlopen), which the caller must make outside the allocator's
// locks. FirstUserFrame() returns the index of the first frame of a stack
// that is not inside strata (the allocation entry points, the engine, the
// tracking hooks), so reports start at the user's call site: a frame is
// strata's when it lies in strata's own shared object (when strata is
// one: libstrata.so) or when its name is one of the allocator's
// (IsAllocatorFrame). AppendFrame() formats one frame of a report the way
// LeakSanitizer does, "#N 0xADDR in NAME (MODULE+0xOFFSET)", with the
// module's full path, so that a tool can add file:line from the module's
// debug info (tools/heapdump's `symbolize`).
//
// Thread-safety: thread-safe (Abseil's symbolizer is).
#ifndef STRATA_ALLOC_TRACKING_SYMBOLIZE_H_
#define STRATA_ALLOC_TRACKING_SYMBOLIZE_H_

#include <cstddef>

#include "concurrency/base/raw_log.h"

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

// True when `pc` lies in strata's own shared object (false when strata is
// linked into the program: names then tell, see IsAllocatorFrame).
bool InStrataModule(const void* pc);

// Index of the first user frame in frames[0, depth) (0 when every frame
// is the allocator's).
int FirstUserFrame(void* const* frames, int depth);

// The number of leading frames that lie in a loaded module: a frame-pointer
// walk that passed through code built without frame pointers may have read
// words that are no return address (0x80000000, 0xfff) past that point,
// and reports stop there. Always at least min(depth, 1).
int ModuleFrames(void* const* frames, int depth);

// Appends "#<index> 0x<pc> in <name> (<module path>+0x<offset>)" to `b`
// (no newline; the parenthesis is left out when no module contains pc).
void AppendFrame(raw::Buffer* b, int index, const void* pc);

}  // namespace strata::tracking

#endif  // STRATA_ALLOC_TRACKING_SYMBOLIZE_H_
