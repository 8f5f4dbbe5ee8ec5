// alloc/internal/errors.h: reporting misuse and corruption.
//
// Contract: ReportError formats one line without allocating,
//   strata: <kind>: pointer 0x..., size N
// writes it to stderr with write(2), then calls the installed hook (tests
// catch errors in-process this way; a hook that returns makes the faulting
// operation a no-op) or aborts when none is installed. Thread-safe.
#ifndef STRATA_ALLOC_INTERNAL_ERRORS_H_
#define STRATA_ALLOC_INTERNAL_ERRORS_H_

#include <cstddef>

#include "concurrency/base/macros.h"

namespace strata::internal {

enum class ErrorKind {
  kInvalidFree,       // a pointer strata never returned
  kInteriorFree,      // a pointer into the middle of a block
  kDoubleFree,
  kSizeMismatch,      // sized delete with a size of another class
  kAlignmentMismatch, // aligned delete with the wrong alignment
  kInvalidRealloc,    // realloc of a pointer strata does not own / freed
  kInvalidUsableSize,
  kCorruption,        // overwritten canary or free-list pointer
  kAllocDeallocMismatch,
};

const char* ErrorKindName(ErrorKind kind);

// Reports and (unless a hook returns) aborts.
STRATA_COLD void ReportError(ErrorKind kind, const void* ptr, std::size_t size);

using ErrorHook = void (*)(ErrorKind kind, const void* ptr, std::size_t size, const char* line);
// Installs a hook (nullptr restores abort). Returns the previous one.
ErrorHook SetErrorHook(ErrorHook hook);

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_ERRORS_H_
