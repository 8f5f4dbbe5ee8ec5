// alloc/observe/dashboard.h: GET /debug/strata, strata's live memory
// dashboard: one self-contained HTML page (alloc/observe/dashboard.html,
// embedded in the library at build time; no file from elsewhere, no
// framework) whose script polls /debug/strata/stats.json
// (alloc/observe/dashboard_json.h) every second and the heap profiles
// every 10 s, and draws live / committed / resident bytes over time, live
// bytes per size class, the monitor's alerts and the top allocation sites
// of the heap profile and of the peak heap profile. docs/MONITOR.md shows
// it.
//
// Contract: writing copies a constant string; nothing is allocated.
// Thread-safety: thread-safe.
#ifndef STRATA_ALLOC_OBSERVE_DASHBOARD_H_
#define STRATA_ALLOC_OBSERVE_DASHBOARD_H_

namespace strata::observe {

// Writes the page to `fd`; returns 0 or an errno value.
int WriteDashboardHtml(int fd) noexcept;

}  // namespace strata::observe

#endif  // STRATA_ALLOC_OBSERVE_DASHBOARD_H_
