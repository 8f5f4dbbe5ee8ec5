// GET /metrics (alloc/observe/prometheus.h): one pass over a stats
// snapshot and the monitor's state, formatted straight into an FdWriter.
#include "alloc/observe/prometheus.h"

#include "alloc/heap_profiler.h"
#include "alloc/monitor.h"
#include "alloc/observe/fd_writer.h"
#include "alloc/observe/limit_state.h"
#include "alloc/observe/process.h"
#include "alloc/stats.h"

namespace strata::observe {
namespace {

void Family(FdWriter& w, const char* name, const char* type, const char* help) {
  w.Str("# HELP ").Str(name).Char(' ').Str(help).Char('\n');
  w.Str("# TYPE ").Str(name).Char(' ').Str(type).Char('\n');
}

void Gauge(FdWriter& w, const char* name, std::int64_t value, const char* help) {
  Family(w, name, "gauge", help);
  w.Str(name).Char(' ').Int(value).Char('\n');
}

void Counter(FdWriter& w, const char* name, std::uint64_t value, const char* help) {
  Family(w, name, "counter", help);
  w.Str(name).Char(' ').Uint(value).Char('\n');
}

std::int64_t Signed(std::size_t v) { return static_cast<std::int64_t>(v); }

// A state set: one series per state, 1 for the current one.
void WriteLimitState(FdWriter& w, const char* limit_label, std::uint64_t limit, std::uint64_t committed) {
  const LimitState state = GetLimitState(limit, committed);
  for (int i = 0; i < kLimitStateCount; ++i) {
    const auto s = static_cast<LimitState>(i);
    w.Str("strata_memory_limit_state{limit=\"").Str(limit_label).Str("\",state=\"").Str(LimitStateName(s));
    w.Str("\"} ").Char(s == state ? '1' : '0').Char('\n');
  }
}

const char* LevelLabel(AlertLevel level) {
  switch (level) {
    case AlertLevel::kResolved:
      return "resolved";
    case AlertLevel::kWarning:
      return "warning";
    case AlertLevel::kCritical:
      return "critical";
  }
  return "unknown";
}

}  // namespace

int WritePrometheusMetrics(int fd) noexcept {
  const Stats s = GetStats();
  const MonitorCounters mc = GetMonitorCounters();
  const MonitorStatus ms = GetMonitorStatus();
  FdWriter w(fd);

  // Memory in use and held.
  Gauge(w, "strata_live_bytes", s.live_bytes, "Usable bytes of the blocks the program holds (allocated, not freed).");
  Gauge(w, "strata_peak_live_bytes", s.peak_live_bytes, "High-water mark of strata_live_bytes since start.");
  Gauge(w, "strata_live_objects", s.live_objects, "Blocks the program holds.");
  Gauge(w, "strata_large_live_bytes", s.large_live_bytes,
        "Bytes of live blocks above the largest size class (served as whole spans).");
  Gauge(w, "strata_committed_bytes", Signed(s.committed_bytes),
        "Bytes strata has committed from the OS (live, cached and free in spans; segment headers included).");
  Gauge(w, "strata_reserved_bytes", Signed(s.reserved_bytes), "Address space strata has reserved from the OS.");
  Gauge(w, "strata_metadata_bytes", Signed(s.metadata_bytes), "Bytes of strata's own metadata (page maps).");
  Family(w, "strata_cached_bytes", "gauge",
         "Free bytes strata keeps for reuse, by tier: thread caches, central pools, free committed spans of the "
         "page heap, freed large blocks.");
  w.Str("strata_cached_bytes{tier=\"thread_cache\"} ").Uint(s.thread_cache_bytes).Char('\n');
  w.Str("strata_cached_bytes{tier=\"central\"} ").Uint(s.central_cache_bytes).Char('\n');
  w.Str("strata_cached_bytes{tier=\"page_heap\"} ").Uint(s.arena_free_bytes).Char('\n');
  w.Str("strata_cached_bytes{tier=\"large\"} ").Uint(s.large_cache_bytes).Char('\n');
  Gauge(w, "strata_fragmentation_bytes", s.fragmentation_bytes, "Committed bytes not live: committed minus live.");
  Family(w, "strata_fragmentation_ratio", "gauge", "strata_fragmentation_bytes / strata_committed_bytes (0 to 1).");
  const double ratio = s.committed_bytes == 0 || s.fragmentation_bytes <= 0
                           ? 0.0
                           : static_cast<double>(s.fragmentation_bytes) / static_cast<double>(s.committed_bytes);
  w.Str("strata_fragmentation_ratio ").Fixed(ratio, 6).Char('\n');
  Gauge(w, "strata_resident_bytes", static_cast<std::int64_t>(ResidentBytes()),
        "Resident set size of the whole process (/proc/self/statm), strata's memory and everything else.");

  // Activity.
  Counter(w, "strata_allocations_total", s.allocations, "Allocations since start (all sizes).");
  Counter(w, "strata_frees_total", s.frees, "Frees since start (all sizes).");
  Counter(w, "strata_large_allocations_total", s.large_allocations,
          "Allocations above the largest size class since start.");
  Counter(w, "strata_decommitted_bytes_total", s.decommitted_bytes, "Bytes given back to the OS since start.");
  Counter(w, "strata_os_failures_total", s.os_failures,
          "OS calls (mmap, madvise, munmap) that failed since start; strata survives them.");
  Gauge(w, "strata_threads_with_cache", Signed(s.threads_with_cache), "Threads that have a strata thread cache.");

  // Limits.
  const std::uint64_t soft = MemoryLimit();
  const std::uint64_t hard = HardMemoryLimit();
  Gauge(w, "strata_memory_limit_bytes", static_cast<std::int64_t>(soft),
        "Soft memory limit on committed bytes (0: none); above 90% strata releases memory.");
  Gauge(w, "strata_hard_memory_limit_bytes", static_cast<std::int64_t>(hard),
        "Hard memory limit on committed bytes (0: none); allocations beyond it fail.");
  Family(w, "strata_memory_limit_state", "gauge",
         "1 for the limit's current state: unset, ok, or pressure (committed bytes above 90% of the limit).");
  WriteLimitState(w, "soft", soft, s.committed_bytes);
  WriteLimitState(w, "hard", hard, s.committed_bytes);
  Counter(w, "strata_memory_limit_pressure_events_total", mc.pressure_events,
          "Times committed bytes passed 90% of the soft limit and strata released memory.");
  Counter(w, "strata_memory_limit_released_bytes_total", mc.pressure_released_bytes,
          "Bytes released to the OS because of soft limit pressure.");

  // Monitor and alerts.
  Gauge(w, "strata_monitor_running", ms.running ? 1 : 0, "1 while the memory monitor samples on its thread.");
  Counter(w, "strata_monitor_ticks_total", mc.ticks, "Samples the memory monitor has taken.");
  Family(w, "strata_alerts_total", "counter", "Alerts raised by the monitor and the soft limit, by kind and level.");
  for (int k = 0; k < kAlertKindCount; ++k) {
    for (int l = 0; l < kAlertLevelCount; ++l) {
      w.Str("strata_alerts_total{kind=\"").Str(AlertKindName(static_cast<AlertKind>(k)));
      w.Str("\",level=\"").Str(LevelLabel(static_cast<AlertLevel>(l))).Str("\"} ");
      w.Uint(mc.alerts_by_kind_level[k][l]).Char('\n');
    }
  }
  Counter(w, "strata_alerts_dropped_total", mc.alerts_dropped,
          "Alerts overwritten in the alert queue before the program polled them.");
  Family(w, "strata_alert_level", "gauge",
         "Current level of each monitored threshold: 0 below warning (or not watched), 1 warning, 2 critical.");
  const struct {
    AlertKind kind;
    AlertLevel level;
  } levels[] = {{AlertKind::kLiveBytes, ms.live_bytes_level},
                {AlertKind::kCommittedBytes, ms.committed_bytes_level},
                {AlertKind::kThreads, ms.threads_level}};
  for (const auto& l : levels) {
    w.Str("strata_alert_level{kind=\"").Str(AlertKindName(l.kind)).Str("\"} ");
    w.Uint(static_cast<unsigned>(l.level)).Char('\n');
  }
  Counter(w, "strata_monitor_profiles_written_total", mc.profiles_written,
          "Heap profiles the monitor wrote on growth alerts.");

  // Profiler.
  Gauge(w, "strata_profile_sample_rate_bytes", ProfileSampleRate(),
        "Mean bytes between sampled allocations of the heap profiler (0: off, 1: every allocation).");

  // Per size class.
  Family(w, "strata_size_class_live_objects", "gauge", "Live blocks per size class (label size: the block size).");
  for (int i = 0; i < s.num_size_classes && i < kMaxReportedSizeClasses; ++i) {
    const SizeClassStats& c = s.size_classes[i];
    if (c.size == 0) continue;
    w.Str("strata_size_class_live_objects{class=\"").Int(i + 1).Str("\",size=\"").Uint(c.size).Str("\"} ");
    w.Int(c.live_objects).Char('\n');
  }
  Family(w, "strata_size_class_live_bytes", "gauge", "Live bytes per size class (label size: the block size).");
  for (int i = 0; i < s.num_size_classes && i < kMaxReportedSizeClasses; ++i) {
    const SizeClassStats& c = s.size_classes[i];
    if (c.size == 0) continue;
    w.Str("strata_size_class_live_bytes{class=\"").Int(i + 1).Str("\",size=\"").Uint(c.size).Str("\"} ");
    w.Int(c.live_bytes).Char('\n');
  }
  return w.Finish();
}

}  // namespace strata::observe
