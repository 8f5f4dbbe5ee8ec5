#include "alloc/internal/errors.h"

#include <dlfcn.h>
#include <stdlib.h>

#include <atomic>
#include <cstring>

#include "alloc/internal/hardening.h"
#include "concurrency/base/raw_log.h"

namespace strata::internal {
namespace {
constinit std::atomic<ErrorHook> g_error_hook{nullptr};
constinit std::atomic<ErrorDescriber> g_error_describer{nullptr};
constinit std::atomic<ErrorStackPrinter> g_stack_printer{nullptr};

void PrintStack(const char* title, void* const* frames, int depth, raw::Buffer* b) {
  b->Clear();
  if (ErrorStackPrinter printer = g_stack_printer.load(std::memory_order_acquire)) {
    printer(title, frames, depth, b);
    b->Clear();
    return;
  }
  b->Str("strata:   ").Str(title);
  AppendFrames(b, frames, depth);
  b->Char('\n');
  b->WriteTo(2);
  b->Clear();
}
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
    case ErrorKind::kMisalignedFree: return "invalid free (misaligned pointer)";
    case ErrorKind::kReallocFreed: return "realloc of freed pointer";
    case ErrorKind::kHeapOverflow: return "heap overflow (canary overwritten)";
    case ErrorKind::kFreeListCorruption: return "heap corruption (free-list pointer overwritten)";
  }
  return "error";
}

void AppendFrames(raw::Buffer* b, void* const* frames, int n) {
  for (int i = 0; i < n; ++i) {
    b->Char(' ').Ptr(frames[i]);
    // dladdr neither allocates nor takes an engine lock: module+offset lets
    // addr2line symbolize a position-independent binary.
    Dl_info info;
    if (dladdr(frames[i], &info) != 0 && info.dli_fname != nullptr) {
      const char* name = info.dli_fname;
      const char* slash = strrchr(name, '/');
      b->Str(" (").Str(slash != nullptr ? slash + 1 : name).Char('+');
      b->Hex(reinterpret_cast<std::uintptr_t>(frames[i]) - reinterpret_cast<std::uintptr_t>(info.dli_fbase));
      b->Char(')');
    }
  }
}

void ReportError(ErrorKind kind, const void* ptr, std::size_t size) {
  ErrorReport r{kind, ptr};
  r.size = size;
  ReportError(r);
}

void ReportError(const ErrorReport& r) {
  raw::Buffer b;
  b.Str("strata: ").Str(ErrorKindName(r.kind)).Str(": pointer ").Ptr(r.ptr).Str(", size ").Udec(r.size);
  if (r.alignment != 0) b.Str(", alignment ").Udec(r.alignment);
  if (r.detail != nullptr) b.Str(", ").Str(r.detail);
  // The first line, NUL-terminated, for the hook.
  char line[512];
  std::size_t n = b.size() < sizeof(line) - 1 ? b.size() : sizeof(line) - 1;
  memcpy(line, b.data(), n);
  line[n] = '\0';
  b.Char('\n');
  b.WriteTo(2);

  void* frames[kMaxReportFrames];
  int depth = CaptureStack(frames, kMaxReportFrames, 1);
  if (depth > 0) PrintStack("at", frames, depth, &b);
  if (r.free_frames > 0) PrintStack("previously freed at", r.free_stack, r.free_frames, &b);
  ErrorDescriber describer = g_error_describer.load(std::memory_order_acquire);
  if (describer != nullptr) {
    b.Clear();
    describer(r.ptr, &b);
    b.WriteTo(2);
  }
  ErrorHook hook = g_error_hook.load(std::memory_order_acquire);
  if (hook != nullptr) {
    hook(r.kind, r.ptr, r.size, line);
    return;
  }
  abort();
}

ErrorHook SetErrorHook(ErrorHook hook) {
  return g_error_hook.exchange(hook, std::memory_order_acq_rel);
}

ErrorStackPrinter SetErrorStackPrinter(ErrorStackPrinter printer) {
  return g_stack_printer.exchange(printer, std::memory_order_acq_rel);
}

ErrorDescriber SetErrorDescriber(ErrorDescriber describer) {
  return g_error_describer.exchange(describer, std::memory_order_acq_rel);
}

}  // namespace strata::internal
