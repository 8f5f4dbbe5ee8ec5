// alloc/os/os.h: the OS contract: reserve, commit, decommit, release.
//
// Contract: thin wrappers over mmap/madvise/munmap for Linux. Every function
// reports failure to its caller (nullptr / false) and never aborts, logs or
// allocates. Thread-safe (the kernel serialises). Reserved memory is
// readable and writable at once (Linux commits lazily on first touch), so
// "commit" only matters for memory that was decommitted, where it is a no-op
// too: MADV_DONTNEED leaves the range mapped, reading as zeros.
//
// Fault injection: tests may make the next N calls of a kind fail, to prove
// that every caller survives OS failures. Failures (real or injected) are
// counted per kind, so that they are surfaced even when the engine
// survives them silently (a failed decommit only leaves pages committed).
#ifndef STRATA_ALLOC_OS_OS_H_
#define STRATA_ALLOC_OS_OS_H_

#include <cstddef>
#include <cstdint>

namespace strata::os {

inline constexpr std::size_t kPageSize = 4096;
inline constexpr std::size_t kHugePageSize = std::size_t{2} << 20;

// Reserves `size` bytes aligned to `alignment` (a power of two, at least the
// page size). The range is zero-filled and usable. nullptr on failure.
void* Reserve(std::size_t size, std::size_t alignment) noexcept;

// Returns a reserved range to the OS. False on failure (the range stays).
bool Release(void* ptr, std::size_t size) noexcept;

// Gives the physical pages of a range back; the range stays reserved and
// reads as zeros afterwards. False on failure (the pages stay committed).
bool Decommit(void* ptr, std::size_t size) noexcept;

// Asks for transparent huge pages on a range (best effort, ignored when
// unsupported).
void AdviseHugePages(void* ptr, std::size_t size) noexcept;

// Fault injection for tests: the next `count` calls of Reserve (mmap),
// Decommit (madvise) or Release (munmap) fail as the OS would. Thread-safe.
enum class FaultKind { kReserve, kDecommit, kRelease };
inline constexpr int kNumFaultKinds = 3;
void InjectFaultsForTesting(FaultKind kind, int count) noexcept;

// Calls of a kind that failed so far (real or injected).
std::uint64_t FailureCount(FaultKind kind) noexcept;

}  // namespace strata::os

#endif  // STRATA_ALLOC_OS_OS_H_
