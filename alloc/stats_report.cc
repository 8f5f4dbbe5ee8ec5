#include "alloc/stats_report.h"

#include <errno.h>
#include <unistd.h>

#include <cstring>

namespace strata {
namespace {

// Output that never allocates: appends into a fixed buffer and hands full
// chunks to a flush function (a file descriptor, or a caller's buffer).
class Sink {
 public:
  explicit Sink(int fd) : fd_(fd) {}
  Sink(char* out, std::size_t capacity) : out_(out), out_capacity_(capacity) {}
  ~Sink() { Flush(); }

  Sink& Str(const char* s) { return Bytes(s, std::strlen(s)); }
  Sink& Bytes(const char* s, std::size_t n) {
    for (std::size_t i = 0; i < n; ++i) {
      if (used_ == sizeof(buf_)) Flush();
      buf_[used_++] = s[i];
    }
    return *this;
  }
  Sink& Char(char c) { return Bytes(&c, 1); }
  Sink& Int(std::int64_t v) {
    char tmp[24];
    int i = sizeof(tmp);
    bool neg = v < 0;
    std::uint64_t u = neg ? 0 - static_cast<std::uint64_t>(v) : static_cast<std::uint64_t>(v);
    do {
      tmp[--i] = static_cast<char>('0' + u % 10);
      u /= 10;
    } while (u != 0);
    if (neg) tmp[--i] = '-';
    return Bytes(tmp + i, sizeof(tmp) - i);
  }
  // Right-aligned in `width` columns.
  Sink& Pad(std::int64_t v, int width) {
    char tmp[24];
    int n = 0;
    {
      Sink s(tmp, sizeof(tmp));
      s.Int(v);
      s.Flush();
      n = static_cast<int>(s.total());
    }
    for (int i = n; i < width; ++i) Char(' ');
    return Bytes(tmp, static_cast<std::size_t>(n));
  }
  Sink& PadStr(const char* s, int width) {
    int n = static_cast<int>(std::strlen(s));
    Str(s);
    for (int i = n; i < width; ++i) Char(' ');
    return *this;
  }
  // "12.3 MiB"-style human size.
  Sink& Human(std::int64_t bytes) {
    static const char* const kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    double v = static_cast<double>(bytes < 0 ? -bytes : bytes);
    int u = 0;
    while (v >= 1024 && u < 4) {
      v /= 1024;
      ++u;
    }
    if (bytes < 0) Char('-');
    auto whole = static_cast<std::int64_t>(v);
    Int(whole);
    if (u > 0) {
      Char('.');
      Int(static_cast<std::int64_t>((v - static_cast<double>(whole)) * 10));
    }
    return Char(' ').Str(kUnits[u]);
  }

  void Flush() {
    if (used_ == 0) return;
    if (fd_ >= 0) {
      const char* p = buf_;
      std::size_t n = used_;
      while (n > 0) {
        ssize_t w = write(fd_, p, n);
        if (w < 0) {
          if (errno == EINTR) continue;
          ok_ = false;
          break;
        }
        p += w;
        n -= static_cast<std::size_t>(w);
      }
    } else if (out_ != nullptr && out_capacity_ > 0) {
      for (std::size_t i = 0; i < used_; ++i) {
        if (total_ + i + 1 < out_capacity_) out_[total_ + i] = buf_[i];
      }
      std::size_t end = total_ + used_ < out_capacity_ - 1 ? total_ + used_ : out_capacity_ - 1;
      out_[end] = '\0';
    }
    total_ += used_;
    used_ = 0;
  }
  std::size_t total() const { return total_ + used_; }
  bool ok() const { return ok_; }

 private:
  int fd_ = -1;
  char* out_ = nullptr;
  std::size_t out_capacity_ = 0;
  char buf_[4096];
  std::size_t used_ = 0;
  std::size_t total_ = 0;
  bool ok_ = true;
};

struct Property {
  const char* name;
  std::int64_t (*get)(const Stats& s);
};

const Property kProperties[] = {
    {"generic.current_allocated_bytes", [](const Stats& s) { return s.live_bytes; }},
    {"generic.peak_allocated_bytes", [](const Stats& s) { return s.peak_live_bytes; }},
    {"generic.heap_size", [](const Stats& s) { return static_cast<std::int64_t>(s.committed_bytes); }},
    {"strata.reserved_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.reserved_bytes); }},
    {"strata.committed_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.committed_bytes); }},
    {"strata.decommitted_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.decommitted_bytes); }},
    {"strata.thread_cache_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.thread_cache_bytes); }},
    {"strata.central_cache_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.central_cache_bytes); }},
    {"strata.pageheap_free_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.arena_free_bytes); }},
    {"strata.large_cache_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.large_cache_bytes); }},
    {"strata.metadata_bytes", [](const Stats& s) { return static_cast<std::int64_t>(s.metadata_bytes); }},
    {"strata.fragmentation_bytes", [](const Stats& s) { return s.fragmentation_bytes; }},
    {"strata.allocations", [](const Stats& s) { return static_cast<std::int64_t>(s.allocations); }},
    {"strata.frees", [](const Stats& s) { return static_cast<std::int64_t>(s.frees); }},
    {"strata.live_objects", [](const Stats& s) { return s.live_objects; }},
    {"strata.large_allocations", [](const Stats& s) { return static_cast<std::int64_t>(s.large_allocations); }},
    {"strata.large_live_bytes", [](const Stats& s) { return s.large_live_bytes; }},
    {"strata.threads", [](const Stats& s) { return static_cast<std::int64_t>(s.threads_with_cache); }},
    {"strata.os_failures", [](const Stats& s) { return static_cast<std::int64_t>(s.os_failures); }},
    {"strata.injected_allocation_failures",
     [](const Stats& s) { return static_cast<std::int64_t>(s.injected_allocation_failures); }},
};

const char* const kPropertyNames[] = {
    "generic.current_allocated_bytes", "generic.peak_allocated_bytes", "generic.heap_size",
    "strata.reserved_bytes", "strata.committed_bytes", "strata.decommitted_bytes",
    "strata.thread_cache_bytes", "strata.central_cache_bytes", "strata.pageheap_free_bytes",
    "strata.large_cache_bytes", "strata.metadata_bytes", "strata.fragmentation_bytes",
    "strata.allocations", "strata.frees", "strata.live_objects", "strata.large_allocations",
    "strata.large_live_bytes", "strata.threads", "strata.os_failures", "strata.injected_allocation_failures",
    nullptr,
};
static_assert(sizeof(kPropertyNames) / sizeof(kPropertyNames[0]) == sizeof(kProperties) / sizeof(kProperties[0]) + 1);

void WriteText(Sink& o, const Stats& s) {
  o.Str("------------------------------------------------------------------------\n");
  o.Str("strata memory statistics\n");
  o.Str("------------------------------------------------------------------------\n");
  auto line = [&o](const char* label, std::int64_t bytes) {
    o.PadStr(label, 34).Pad(bytes, 16).Str("  (").Human(bytes).Str(")\n");
  };
  auto count = [&o](const char* label, std::int64_t n) { o.PadStr(label, 34).Pad(n, 16).Char('\n'); };
  line("live (in use by the program)", s.live_bytes);
  line("peak live", s.peak_live_bytes);
  line("large blocks live", s.large_live_bytes);
  line("free in thread caches", static_cast<std::int64_t>(s.thread_cache_bytes));
  line("free in central pools", static_cast<std::int64_t>(s.central_cache_bytes));
  line("free in page heap (committed)", static_cast<std::int64_t>(s.arena_free_bytes));
  line("freed large blocks kept", static_cast<std::int64_t>(s.large_cache_bytes));
  line("committed", static_cast<std::int64_t>(s.committed_bytes));
  line("reserved", static_cast<std::int64_t>(s.reserved_bytes));
  line("decommitted (cumulative)", static_cast<std::int64_t>(s.decommitted_bytes));
  line("metadata", static_cast<std::int64_t>(s.metadata_bytes));
  line("fragmentation (committed - live)", s.fragmentation_bytes);
  count("allocations", static_cast<std::int64_t>(s.allocations));
  count("frees", static_cast<std::int64_t>(s.frees));
  count("live objects", s.live_objects);
  count("large allocations", static_cast<std::int64_t>(s.large_allocations));
  count("threads with a cache", static_cast<std::int64_t>(s.threads_with_cache));
  count("failed OS calls", static_cast<std::int64_t>(s.os_failures));
  count("injected allocation failures", static_cast<std::int64_t>(s.injected_allocation_failures));
  o.Str("------------------------------------------------------------------------\n");
  o.Str("class      size      allocations            frees     live objects       live bytes  cached bytes\n");
  for (int i = 0; i < s.num_size_classes && i < kMaxReportedSizeClasses; ++i) {
    const SizeClassStats& c = s.size_classes[i];
    if (c.allocations == 0 && c.thread_cache_bytes == 0 && c.central_bytes == 0) continue;
    o.Pad(i + 1, 5).Pad(static_cast<std::int64_t>(c.size), 10).Pad(static_cast<std::int64_t>(c.allocations), 17)
        .Pad(static_cast<std::int64_t>(c.frees), 17).Pad(c.live_objects, 17).Pad(c.live_bytes, 17)
        .Pad(static_cast<std::int64_t>(c.thread_cache_bytes + c.central_bytes), 14).Char('\n');
  }
  o.Str("------------------------------------------------------------------------\n");
}

void WriteJson(Sink& o, const Stats& s) {
  o.Str("{");
  bool first = true;
  for (const Property& p : kProperties) {
    if (!first) o.Char(',');
    first = false;
    o.Char('"').Str(p.name).Str("\":").Int(p.get(s));
  }
  o.Str(",\"size_classes\":[");
  bool first_class = true;
  for (int i = 0; i < s.num_size_classes && i < kMaxReportedSizeClasses; ++i) {
    const SizeClassStats& c = s.size_classes[i];
    if (!first_class) o.Char(',');
    first_class = false;
    o.Str("{\"class\":").Int(i + 1).Str(",\"size\":").Int(static_cast<std::int64_t>(c.size))
        .Str(",\"allocations\":").Int(static_cast<std::int64_t>(c.allocations))
        .Str(",\"frees\":").Int(static_cast<std::int64_t>(c.frees))
        .Str(",\"live_objects\":").Int(c.live_objects).Str(",\"live_bytes\":").Int(c.live_bytes)
        .Str(",\"thread_cache_bytes\":").Int(static_cast<std::int64_t>(c.thread_cache_bytes))
        .Str(",\"central_bytes\":").Int(static_cast<std::int64_t>(c.central_bytes)).Char('}');
  }
  o.Str("]}\n");
}

void Write(Sink& o, const Stats& s, ReportFormat format) {
  if (format == ReportFormat::kJson) {
    WriteJson(o, s);
  } else {
    WriteText(o, s);
  }
}

}  // namespace

bool WriteStatsReport(int fd, const Stats& stats, ReportFormat format) {
  Sink o(fd);
  Write(o, stats, format);
  o.Flush();
  return o.ok();
}

bool WriteStatsReport(int fd, ReportFormat format) {
  Stats s = GetStats();
  return WriteStatsReport(fd, s, format);
}

std::size_t FormatStatsReport(const Stats& stats, ReportFormat format, char* buf, std::size_t capacity) {
  Sink o(buf, capacity);
  Write(o, stats, format);
  o.Flush();
  return o.total();
}

std::string StatsReport(ReportFormat format) {
  Stats s = GetStats();
  std::size_t n = FormatStatsReport(s, format, nullptr, 0);
  std::string out(n + 1, '\0');
  FormatStatsReport(s, format, out.data(), out.size());
  out.resize(n);
  return out;
}

bool GetNumericProperty(const Stats& stats, const char* name, std::int64_t* value) {
  for (const Property& p : kProperties) {
    if (std::strcmp(p.name, name) == 0) {
      *value = p.get(stats);
      return true;
    }
  }
  return false;
}

bool GetNumericProperty(const char* name, std::int64_t* value) {
  Stats s = GetStats();
  return GetNumericProperty(s, name, value);
}

const char* const* NumericPropertyNames() { return kPropertyNames; }

}  // namespace strata
