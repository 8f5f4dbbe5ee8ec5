// alloc/override/introspection.cc: glibc's introspection entry points over
// strata::GetStats() (see introspection.h for the field mapping).
#include "alloc/override/introspection.h"

#include <errno.h>
#include <unistd.h>

#include <climits>
#include <cstddef>
#include <cstdint>

#include "alloc/stats.h"
#include "alloc/strata.h"
#include "concurrency/base/raw_log.h"

namespace strata::override_internal {
namespace {

std::size_t CachedFreeBytes(const Stats& s) {
  return s.thread_cache_bytes + s.central_cache_bytes + s.arena_free_bytes + s.large_cache_bytes;
}

std::size_t NonNegative(std::int64_t v) { return v > 0 ? static_cast<std::size_t>(v) : 0; }

int ClampToInt(std::size_t v) { return v > INT_MAX ? INT_MAX : static_cast<int>(v); }

void Put(FILE* stream, const raw::Buffer& b) { fwrite(b.data(), 1, b.size(), stream); }

// "  label ........ value\n" with the label left-aligned.
void Line(raw::Buffer& b, const char* label, std::uint64_t value) {
  constexpr std::size_t kLabelWidth = 20;
  constexpr int kValueWidth = 16;
  b.Str("  ").Str(label);
  for (std::size_t n = __builtin_strlen(label); n < kLabelWidth; ++n) b.Char(' ');
  b.PadDec(value, kValueWidth).Char('\n');
}

}  // namespace

struct mallinfo2 MallInfo2() noexcept {
  const Stats s = GetStats();
  struct mallinfo2 info = {};
  info.arena = s.committed_bytes;
  info.usmblks = NonNegative(s.peak_live_bytes);
  info.hblkhd = NonNegative(s.large_live_bytes);
  info.fsmblks = s.thread_cache_bytes + s.central_cache_bytes;
  info.uordblks = NonNegative(s.live_bytes);
  info.fordblks = CachedFreeBytes(s);
  info.keepcost = s.arena_free_bytes + s.large_cache_bytes;
  return info;
}

struct mallinfo MallInfo() noexcept {
  const struct mallinfo2 w = MallInfo2();
  struct mallinfo info = {};
  info.arena = ClampToInt(w.arena);
  info.ordblks = ClampToInt(w.ordblks);
  info.smblks = ClampToInt(w.smblks);
  info.hblks = ClampToInt(w.hblks);
  info.hblkhd = ClampToInt(w.hblkhd);
  info.usmblks = ClampToInt(w.usmblks);
  info.fsmblks = ClampToInt(w.fsmblks);
  info.uordblks = ClampToInt(w.uordblks);
  info.fordblks = ClampToInt(w.fordblks);
  info.keepcost = ClampToInt(w.keepcost);
  return info;
}

void MallocStats() noexcept {
  const int saved = errno;
  const Stats s = GetStats();
  raw::Buffer b;
  b.Str("strata malloc_stats:\n");
  Line(b, "allocations", s.allocations);
  Line(b, "frees", s.frees);
  Line(b, "live objects", NonNegative(s.live_objects));
  Line(b, "live bytes", NonNegative(s.live_bytes));
  Line(b, "peak live bytes", NonNegative(s.peak_live_bytes));
  Line(b, "large live bytes", NonNegative(s.large_live_bytes));
  Line(b, "cached free bytes", CachedFreeBytes(s));
  Line(b, "committed bytes", s.committed_bytes);
  Line(b, "reserved bytes", s.reserved_bytes);
  Line(b, "metadata bytes", s.metadata_bytes);
  Line(b, "threads with cache", s.threads_with_cache);
  b.WriteTo(STDERR_FILENO);
  errno = saved;
}

int MallocInfo(int options, FILE* stream) noexcept {
  if (options != 0) {
    errno = EINVAL;
    return -1;
  }
  if (stream == nullptr) {
    errno = EINVAL;
    return -1;
  }
  const Stats s = GetStats();
  raw::Buffer b;
  b.Str("<malloc version=\"1\" allocator=\"strata\">\n<heap nr=\"0\">\n<sizes>\n");
  Put(stream, b);
  for (int i = 0; i < s.num_size_classes && i < kMaxReportedSizeClasses; ++i) {
    const SizeClassStats& c = s.size_classes[i];
    if (c.size == 0 || (c.live_objects <= 0 && c.thread_cache_bytes == 0 && c.central_bytes == 0)) {
      continue;
    }
    b.Clear();
    b.Str("  <size from=\"").Udec(c.size).Str("\" to=\"").Udec(c.size);
    b.Str("\" total=\"").Udec(NonNegative(c.live_bytes));
    b.Str("\" count=\"").Udec(NonNegative(c.live_objects));
    b.Str("\" cached=\"").Udec(c.thread_cache_bytes + c.central_bytes).Str("\"/>\n");
    Put(stream, b);
  }
  b.Clear();
  b.Str("</sizes>\n");
  b.Str("<total type=\"live\" count=\"").Udec(NonNegative(s.live_objects));
  b.Str("\" size=\"").Udec(NonNegative(s.live_bytes)).Str("\"/>\n");
  b.Str("<total type=\"large\" size=\"").Udec(NonNegative(s.large_live_bytes)).Str("\"/>\n");
  b.Str("<total type=\"cached\" size=\"").Udec(CachedFreeBytes(s)).Str("\"/>\n");
  b.Str("<total type=\"peak\" size=\"").Udec(NonNegative(s.peak_live_bytes)).Str("\"/>\n");
  b.Str("<system type=\"current\" size=\"").Udec(s.committed_bytes).Str("\"/>\n");
  b.Str("<system type=\"max\" size=\"").Udec(s.reserved_bytes).Str("\"/>\n");
  b.Str("<aspace type=\"total\" size=\"").Udec(s.reserved_bytes).Str("\"/>\n");
  b.Str("<aspace type=\"mprotect\" size=\"").Udec(s.committed_bytes).Str("\"/>\n");
  b.Str("</heap>\n</malloc>\n");
  Put(stream, b);
  return 0;
}

int MallocTrim(std::size_t /*pad*/) noexcept {
  const int saved = errno;
  const std::size_t released = ReleaseMemory();
  errno = saved;
  return released > 0 ? 1 : 0;
}

int Mallopt(int /*param*/, int /*value*/) noexcept { return 1; }

}  // namespace strata::override_internal
