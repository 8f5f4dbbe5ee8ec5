// alloc/observe/dashboard_json.h: GET /debug/strata/stats.json, what the
// dashboard (alloc/observe/dashboard.h) polls: the stats report's JSON
// (the same object strata::WriteStatsReport writes with
// ReportFormat::kJson) plus the monitor's history, status and recent
// alerts, the limits and the process's resident bytes:
//
//   {"unix_ms": N,
//    "stats": { ...the stats report's JSON... },
//    "process": {"resident_bytes": N},
//    "limits": {"soft_bytes": N, "hard_bytes": N,
//               "soft_state": "unset"|"ok"|"pressure", "hard_state": ...},
//    "profiler": {"sample_rate_bytes": N},
//    "monitor": {"configured": B, "running": B, "interval_ms": N,
//                "history_size": N,
//                "thresholds": {"live_bytes": {"warning": N, "critical": N},
//                               "committed_bytes": {...}, "threads": {...}},
//                "levels": {"live_bytes": "RESOLVED"|"WARNING"|"CRITICAL",
//                           "committed_bytes": ..., "threads": ...},
//                "counters": {"ticks": N, "alerts_raised": N, ...},
//                "history": [{"unix_ms": N, "live_bytes": N,
//                             "committed_bytes": N, "resident_bytes": N,
//                             "cached_bytes": N, "threads": N}, ...],
//                "alerts": [{"sequence": N, "unix_ms": N, "kind": "...",
//                            "level": "...", "value": N, "threshold": N}, ...]}}
//
// History is oldest first (at most kMaxHistory); alerts are the newest
// kRecentAlerts (alloc/monitor.h), oldest first. With no monitor
// configured, "configured" is false and both lists are empty.
//
// Contract: allocates nothing through malloc (the history is copied into
// an mmap-backed scratch arena, the text formatted on the stack) and takes
// no allocator lock. Thread-safety: thread-safe.
#ifndef STRATA_ALLOC_OBSERVE_DASHBOARD_JSON_H_
#define STRATA_ALLOC_OBSERVE_DASHBOARD_JSON_H_

namespace strata::observe {

// Writes the JSON document to `fd`; returns 0 or an errno value.
int WriteDashboardJson(int fd) noexcept;

}  // namespace strata::observe

#endif  // STRATA_ALLOC_OBSERVE_DASHBOARD_JSON_H_
