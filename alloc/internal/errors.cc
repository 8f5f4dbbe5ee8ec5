#include "alloc/internal/errors.h"

#include <stdlib.h>

#include <atomic>

#include "concurrency/base/raw_log.h"

namespace strata::internal {
namespace {
constinit std::atomic<ErrorHook> g_error_hook{nullptr};
}  // namespace

const char* ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kInvalidFree: return "invalid free (pointer not allocated by strata)";
    case ErrorKind::kInteriorFree: return "invalid free (interior pointer)";
    case ErrorKind::kDoubleFree: return "double free";
    case ErrorKind::kSizeMismatch: return "sized free with wrong size";
    case ErrorKind::kAlignmentMismatch: return "aligned free with wrong alignment";
    case ErrorKind::kInvalidRealloc: return "realloc of invalid pointer";
    case ErrorKind::kInvalidUsableSize: return "usable size of invalid pointer";
    case ErrorKind::kCorruption: return "heap corruption";
    case ErrorKind::kAllocDeallocMismatch: return "allocation/deallocation mismatch";
  }
  return "error";
}

void ReportError(ErrorKind kind, const void* ptr, std::size_t size) {
  raw::Buffer b;
  b.Str("strata: ").Str(ErrorKindName(kind)).Str(": pointer ").Ptr(ptr).Str(", size ").Udec(size).Char('\n');
  b.WriteTo(2);
  ErrorHook hook = g_error_hook.load(std::memory_order_acquire);
  if (hook != nullptr) {
    hook(kind, ptr, size, b.data());
    return;
  }
  abort();
}

ErrorHook SetErrorHook(ErrorHook hook) {
  return g_error_hook.exchange(hook, std::memory_order_acq_rel);
}

}  // namespace strata::internal
