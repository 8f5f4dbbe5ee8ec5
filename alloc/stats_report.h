// alloc/stats_report.h: strata's counters as a text table, as JSON, and as
// named numeric properties (in the style of tcmalloc's
// "generic.current_allocated_bytes").
//
// Contract: the Write* functions format without allocating through malloc
// (a fixed stack buffer flushed to the file descriptor), so they are safe
// at exit, in a fork child and from inside the allocator's own exit hooks.
// The std::string helpers allocate and are for application code.
//
// Properties (all bytes unless named otherwise):
//   generic.current_allocated_bytes   live bytes (usable sizes)
//   generic.peak_allocated_bytes      high-water mark of live bytes
//   generic.heap_size                 committed bytes
//   strata.reserved_bytes             address space reserved from the OS
//   strata.committed_bytes            = generic.heap_size
//   strata.decommitted_bytes          cumulative bytes given back
//   strata.thread_cache_bytes         free bytes cached in threads
//   strata.central_cache_bytes        free bytes in central pools
//   strata.pageheap_free_bytes        free committed bytes in spans
//   strata.large_cache_bytes          freed huge blocks kept for reuse
//   strata.metadata_bytes             page maps
//   strata.fragmentation_bytes        committed minus live
//   strata.allocations / strata.frees / strata.live_objects (counts)
//   strata.large_allocations (count)  strata.threads (count)
//   strata.os_failures (count)        failed OS calls (mmap, madvise, munmap)
//
// Thread-safety: thread-safe (each call takes one GetStats() snapshot).
#ifndef STRATA_ALLOC_STATS_REPORT_H_
#define STRATA_ALLOC_STATS_REPORT_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "alloc/stats.h"

namespace strata {

enum class ReportFormat { kText, kJson };

// Writes the report of `stats` to `fd`. Returns false on a write error.
bool WriteStatsReport(int fd, const Stats& stats, ReportFormat format);
// The same for a fresh snapshot.
bool WriteStatsReport(int fd, ReportFormat format);

// Formats into `buf` (NUL-terminated, truncated to `capacity`); returns the
// length the whole report needs (excluding the NUL).
std::size_t FormatStatsReport(const Stats& stats, ReportFormat format, char* buf, std::size_t capacity);

// Application helpers (allocate the result).
std::string StatsReport(ReportFormat format = ReportFormat::kText);

// Looks a property up; false for an unknown name.
bool GetNumericProperty(const char* name, std::int64_t* value);
bool GetNumericProperty(const Stats& stats, const char* name, std::int64_t* value);

// Every property name, nullptr-terminated.
const char* const* NumericPropertyNames();

}  // namespace strata

#endif  // STRATA_ALLOC_STATS_REPORT_H_
