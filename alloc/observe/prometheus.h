// alloc/observe/prometheus.h: strata's numbers in the Prometheus text
// exposition format (version 0.0.4), served as GET /metrics by the
// endpoint (alloc/pprof_http.h). docs/MONITOR.md lists every metric.
//
// Contract:
//   - Every metric is named strata_*, has HELP and TYPE lines, uses base
//     units (bytes; ratios as 0..1) and, when it is a counter, ends in
//     _total. Label values are ASCII without quotes or backslashes.
//   - Sources: one strata::GetStats() snapshot (lock-free with respect to
//     allocation), the monitor's counters and status (its spin locks, held
//     for a copy), the limits, the profiler's sample rate and
//     /proc/self/statm. Writing takes no allocator lock, so it never
//     blocks allocation, and allocates nothing: the snapshot and the
//     output buffer live on the caller's stack (about 20 KiB).
//
// Thread-safety: thread-safe.
#ifndef STRATA_ALLOC_OBSERVE_PROMETHEUS_H_
#define STRATA_ALLOC_OBSERVE_PROMETHEUS_H_

namespace strata::observe {

// Writes the exposition to `fd`; returns 0 or an errno value.
int WritePrometheusMetrics(int fd) noexcept;

}  // namespace strata::observe

#endif  // STRATA_ALLOC_OBSERVE_PROMETHEUS_H_
