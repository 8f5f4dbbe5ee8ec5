// alloc/observe/process.h: the process's resident memory, read from
// /proc/self/statm, for the observability pages.
//
// Contract: one open/read/close of a small file into a stack buffer; never
// allocates. Returns 0 when the file cannot be read (no /proc).
// Thread-safety: thread-safe.
#ifndef STRATA_ALLOC_OBSERVE_PROCESS_H_
#define STRATA_ALLOC_OBSERVE_PROCESS_H_

#include <cstdint>

namespace strata::observe {

// Resident set size in bytes (statm's second field times the page size).
std::uint64_t ResidentBytes() noexcept;

}  // namespace strata::observe

#endif  // STRATA_ALLOC_OBSERVE_PROCESS_H_
