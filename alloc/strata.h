// alloc/strata.h: strata's public allocation API (namespace strata).
//
// Contract:
// - Every function is thread-safe and may be called from any thread,
//   including before main() and during exit, and from a fork child.
// - The core never throws and never calls malloc. Failure (out of memory,
//   size overflow, an alignment that is not a power of two) returns nullptr;
//   errno is left to the boundary (the malloc override sets ENOMEM).
// - Every block is at least 16-byte aligned; a request whose size is a power
//   of two no larger than the page size (4 KiB) is naturally aligned.
// - Free/Realloc/UsableSize take only pointers returned by this API (or by
//   the overrides built on it) and not yet freed; nullptr is accepted and
//   ignored by Free. Misuse that strata detects (a pointer it never returned,
//   an interior pointer, a double free it can see) is reported on stderr as
//   "strata: <error>: pointer 0x..." and aborts. What is detected in which
//   mode: alloc/internal/hardening.h, docs/HARDENING.md. STRATA_HARDENED=1
//   in the environment (or a --config=hardened build) checks every
//   operation; UsableSize then returns the requested size exactly.
#ifndef STRATA_ALLOC_STRATA_H_
#define STRATA_ALLOC_STRATA_H_

#include <cstddef>

namespace strata {

// Allocates at least `size` bytes (a unique pointer even for size 0).
void* Allocate(std::size_t size) noexcept;

// Allocates at least `size` bytes aligned to `alignment`, which must be a
// power of two (any size, also beyond the page size). Returns nullptr for an
// alignment that is not a power of two.
void* AllocateAligned(std::size_t size, std::size_t alignment) noexcept;

// Allocates `count * size` zeroed bytes; nullptr if the product overflows.
// Memory that is fresh from the OS is known to be zero and not cleared again.
void* AllocateZeroed(std::size_t count, std::size_t size) noexcept;

// Frees a block from Allocate*/Reallocate. nullptr is a no-op.
void Free(void* ptr) noexcept;

// Frees a block whose requested size (or any size between the requested and
// the usable size) is `size`. Faster than Free; a size that does not match
// the block is detected and reported.
void FreeSized(void* ptr, std::size_t size) noexcept;

// Frees a block from AllocateAligned(size, alignment).
void FreeAlignedSized(void* ptr, std::size_t size, std::size_t alignment) noexcept;

// Resizes a block, in place when the new size fits its size class or page
// run. Reallocate(nullptr, n) allocates; Reallocate(p, 0) frees p and
// returns nullptr (as glibc's realloc does). On failure returns nullptr and
// leaves the old block untouched.
void* Reallocate(void* ptr, std::size_t new_size) noexcept;

// Usable size of a live block (>= the requested size). 0 for nullptr.
std::size_t UsableSize(const void* ptr) noexcept;

// The usable size an Allocate(size) call would return, without allocating.
std::size_t GoodSize(std::size_t size) noexcept;

// Returns true if `ptr` lies in memory strata manages and is the start of a
// live block.
bool Owns(const void* ptr) noexcept;

// Returns the calling thread's cache to the central pools.
void FlushThreadCache() noexcept;

// Flushes the calling thread's cache, returns every free span and cached
// large block to the OS (decommits them). Other threads' caches are
// untouched. Returns the number of bytes released.
std::size_t ReleaseMemory() noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_STRATA_H_
