// alloc/internal/errors.h: reporting misuse and corruption.
//
// Contract: ReportError formats without allocating, into a stack buffer,
//   strata: <kind>: pointer 0x..., size N[, alignment A][, <detail>]
// then, on following lines that also start with "strata:", the current
// stack (return addresses, innermost first; module+offset for addr2line;
// named frame by frame, from the first frame outside the allocator, when
// the tracking layer installed its printer),
// the stack that freed the block when known (hardened mode records it), and
// whatever the installed describer adds (the tracking layer can print the
// allocation stack of a block it tracks). All of it goes to stderr with
// write(2). Then the installed hook runs (tests catch errors in-process
// this way; a hook that returns makes the faulting operation a no-op, or
// as close to one as the engine can make it) or, when none is installed,
// abort() (SIGABRT).
//
// Thread-safety: thread-safe. ReportError is never called with an engine
// lock held (callers collect errors and report after unlocking), so a hook
// may call back into the allocator.
#ifndef STRATA_ALLOC_INTERNAL_ERRORS_H_
#define STRATA_ALLOC_INTERNAL_ERRORS_H_

#include <cstddef>

#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"

namespace strata::internal {

enum class ErrorKind {
  kInvalidFree,        // a pointer strata never returned
  kInteriorFree,       // a pointer into the middle of a block
  kDoubleFree,
  kSizeMismatch,       // sized delete with a size of another class
  kAlignmentMismatch,  // aligned delete with the wrong alignment
  kInvalidRealloc,     // realloc of a pointer strata does not own
  kInvalidUsableSize,
  kCorruption,         // metadata that cannot be right
  kAllocDeallocMismatch,
  kMisalignedFree,     // a pointer that is not even 16-byte aligned
  kReallocFreed,       // realloc of a block that was freed
  kHeapOverflow,       // canary or trailer overwritten (hardened)
  kFreeListCorruption, // a free-list link overwritten (hardened)
};

const char* ErrorKindName(ErrorKind kind);

// Everything a report can say. Only kind and ptr are required.
struct ErrorReport {
  ErrorKind kind;
  const void* ptr;
  std::size_t size = 0;
  std::size_t alignment = 0;             // printed when non-zero
  const char* detail = nullptr;          // printed after the numbers
  void* const* free_stack = nullptr;     // stack that freed the block
  int free_frames = 0;
};

// Reports and (unless a hook returns) aborts.
STRATA_COLD void ReportError(ErrorKind kind, const void* ptr, std::size_t size);
STRATA_COLD void ReportError(const ErrorReport& report);

// `line` is the first line of the report, NUL-terminated, without the
// newline.
using ErrorHook = void (*)(ErrorKind kind, const void* ptr, std::size_t size, const char* line);
// Installs a hook (nullptr restores abort). Returns the previous one.
ErrorHook SetErrorHook(ErrorHook hook);

// Appends lines about `ptr` to a report (each starting with "strata:   " and
// ending with '\n'). Must not allocate or take engine locks. `out` holds
// one raw::Buffer's worth (1 KiB); a describer with more to say writes
// complete lines out itself (out->WriteTo(2), out->Clear()) as it goes.
// Whatever is left in `out` is written after it returns. Returns the
// previous describer.
using ErrorDescriber = void (*)(const void* ptr, raw::Buffer* out);
ErrorDescriber SetErrorDescriber(ErrorDescriber describer);

// Appends " 0x... (module+0x...)" for each frame.
void AppendFrames(raw::Buffer* b, void* const* frames, int n);

// Writes the report's stacks (the current one, "at", and the freeing one,
// "previously freed at"): complete lines starting with "strata:   " +
// title, written out with out->WriteTo(2) as they are made. The tracking
// layer installs one that drops the allocator's own frames from the top
// and names every frame; without one, a stack is one line of addresses
// with module+offset (what addr2line takes). Returns the previous printer.
using ErrorStackPrinter = void (*)(const char* title, void* const* frames, int depth, raw::Buffer* out);
ErrorStackPrinter SetErrorStackPrinter(ErrorStackPrinter printer);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_ERRORS_H_
