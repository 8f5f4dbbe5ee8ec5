// GET /debug/strata/stats.json (alloc/observe/dashboard_json.h).
#include "alloc/observe/dashboard_json.h"

#include <errno.h>
#include <time.h>

#include "alloc/heap_profiler.h"
#include "alloc/monitor.h"
#include "alloc/observe/fd_writer.h"
#include "alloc/observe/limit_state.h"
#include "alloc/observe/process.h"
#include "alloc/profile/scratch_arena.h"
#include "alloc/stats.h"
#include "alloc/stats_report.h"

namespace strata::observe {
namespace {

std::uint64_t UnixMs() {
  timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * 1000 + static_cast<std::uint64_t>(ts.tv_nsec) / 1'000'000;
}

void Thresholds(FdWriter& w, const char* name, const MonitorThresholds& t) {
  w.JsonString(name).Str(":{\"warning\":").Uint(t.warning).Str(",\"critical\":").Uint(t.critical).Char('}');
}

void WriteMonitor(FdWriter& w, profile::ScratchArena* arena) {
  const MonitorStatus st = GetMonitorStatus();
  const MonitorCounters c = GetMonitorCounters();
  w.Str("{\"configured\":").Str(st.configured ? "true" : "false");
  w.Str(",\"running\":").Str(st.running ? "true" : "false");
  w.Str(",\"interval_ms\":").Uint(st.interval_ms).Str(",\"history_size\":").Uint(st.history_size);
  w.Str(",\"thresholds\":{");
  Thresholds(w, "live_bytes", st.live_bytes);
  w.Char(',');
  Thresholds(w, "committed_bytes", st.committed_bytes);
  w.Char(',');
  Thresholds(w, "threads", st.threads);
  w.Str("},\"growth\":{\"bytes\":").Uint(st.growth_bytes).Str(",\"percent\":").Uint(st.growth_percent);
  w.Str(",\"window_ms\":").Uint(st.growth_window_ms).Char('}');
  w.Str(",\"levels\":{\"live_bytes\":").JsonString(AlertLevelName(st.live_bytes_level));
  w.Str(",\"committed_bytes\":").JsonString(AlertLevelName(st.committed_bytes_level));
  w.Str(",\"threads\":").JsonString(AlertLevelName(st.threads_level)).Char('}');
  w.Str(",\"counters\":{\"ticks\":").Uint(c.ticks).Str(",\"alerts_raised\":").Uint(c.alerts_raised);
  w.Str(",\"alerts_dropped\":").Uint(c.alerts_dropped).Str(",\"profiles_written\":").Uint(c.profiles_written);
  w.Str(",\"pressure_events\":").Uint(c.pressure_events);
  w.Str(",\"pressure_released_bytes\":").Uint(c.pressure_released_bytes).Char('}');

  w.Str(",\"history\":[");
  auto* history = arena->AllocateArray<MemorySnapshot>(kMaxHistory);
  const std::size_t n = history != nullptr ? GetMemoryHistory(history, kMaxHistory) : 0;
  for (std::size_t i = 0; i < n; ++i) {
    const MemorySnapshot& s = history[i];
    if (i != 0) w.Char(',');
    w.Str("{\"unix_ms\":").Uint(s.unix_ns / 1'000'000).Str(",\"live_bytes\":").Int(s.live_bytes);
    w.Str(",\"committed_bytes\":").Uint(s.committed_bytes).Str(",\"resident_bytes\":").Uint(s.resident_bytes);
    w.Str(",\"cached_bytes\":").Uint(s.cached_bytes).Str(",\"threads\":").Uint(s.threads).Char('}');
  }
  w.Str("],\"alerts\":[");
  Alert alerts[kRecentAlerts];
  const std::size_t m = GetRecentAlerts(alerts, kRecentAlerts);
  for (std::size_t i = 0; i < m; ++i) {
    const Alert& a = alerts[i];
    if (i != 0) w.Char(',');
    w.Str("{\"sequence\":").Uint(a.sequence).Str(",\"unix_ms\":").Uint(a.unix_ns / 1'000'000);
    w.Str(",\"kind\":").JsonString(AlertKindName(a.kind)).Str(",\"level\":").JsonString(AlertLevelName(a.level));
    w.Str(",\"value\":").Uint(a.value).Str(",\"threshold\":").Uint(a.threshold).Char('}');
  }
  w.Str("]}");
}

}  // namespace

int WriteDashboardJson(int fd) noexcept {
  const Stats stats = GetStats();
  profile::ScratchArena arena;
  FdWriter w(fd);
  w.Str("{\"unix_ms\":").Uint(UnixMs()).Str(",\"stats\":");
  // The stats report's own JSON, unchanged (it ends in a newline, which is
  // JSON white space).
  if (int rc = w.Finish(); rc != 0) return rc;
  if (!WriteStatsReport(fd, stats, ReportFormat::kJson)) return errno != 0 ? errno : EIO;
  w.Str(",\"process\":{\"resident_bytes\":").Uint(ResidentBytes()).Char('}');
  const std::uint64_t soft = MemoryLimit();
  const std::uint64_t hard = HardMemoryLimit();
  w.Str(",\"limits\":{\"soft_bytes\":").Uint(soft).Str(",\"hard_bytes\":").Uint(hard);
  w.Str(",\"soft_state\":").JsonString(LimitStateName(soft, stats.committed_bytes));
  w.Str(",\"hard_state\":").JsonString(LimitStateName(hard, stats.committed_bytes)).Char('}');
  w.Str(",\"profiler\":{\"sample_rate_bytes\":").Int(ProfileSampleRate()).Char('}');
  w.Str(",\"monitor\":");
  WriteMonitor(w, &arena);
  w.Str("}\n");
  return w.Finish();
}

}  // namespace strata::observe
