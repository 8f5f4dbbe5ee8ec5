// alloc/override/new_delete.cc: the 20 replaceable global operator new and
// operator delete forms ([new.delete]), each a one-line forward to the
// policy layer (alloc/override/policy.h). No logic lives here.
//
// Failure: the throwing forms run the new_handler loop, then throw
// std::bad_alloc; the nothrow forms run the same loop, then return nullptr.
// Every definition has default visibility so that libstrata.so exports it.
// The single-object forms pass the kind kNew, the array forms kNewArray.
#include <cstddef>
#include <new>

#include "alloc/override/policy.h"
#include "concurrency/base/macros.h"

using strata::override_internal::AllocKind;
using strata::override_internal::CppNothrowPolicy;
using strata::override_internal::CppThrowPolicy;
using strata::override_internal::DeleteAlignedImpl;
using strata::override_internal::DeleteImpl;
using strata::override_internal::DeleteSizedAlignedImpl;
using strata::override_internal::DeleteSizedImpl;
using strata::override_internal::NewAlignedImpl;
using strata::override_internal::NewImpl;

namespace {
constexpr std::size_t Align(std::align_val_t a) { return static_cast<std::size_t>(a); }
// The allocation kinds (hardened mode reports a free of another kind).
constexpr AllocKind kNew = AllocKind::kNew;
constexpr AllocKind kArr = AllocKind::kNewArray;
}  // namespace

// Plain and array new.
STRATA_EXPORT void* operator new(std::size_t n) { return NewImpl<CppThrowPolicy, kNew>(n); }
STRATA_EXPORT void* operator new[](std::size_t n) { return NewImpl<CppThrowPolicy, kArr>(n); }
STRATA_EXPORT void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return NewImpl<CppNothrowPolicy, kNew>(n);
}
STRATA_EXPORT void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return NewImpl<CppNothrowPolicy, kArr>(n);
}

// Aligned new (C++17).
STRATA_EXPORT void* operator new(std::size_t n, std::align_val_t a) {
  return NewAlignedImpl<CppThrowPolicy, kNew>(n, Align(a));
}
STRATA_EXPORT void* operator new[](std::size_t n, std::align_val_t a) {
  return NewAlignedImpl<CppThrowPolicy, kArr>(n, Align(a));
}
STRATA_EXPORT void* operator new(std::size_t n, std::align_val_t a,
                                 const std::nothrow_t&) noexcept {
  return NewAlignedImpl<CppNothrowPolicy, kNew>(n, Align(a));
}
STRATA_EXPORT void* operator new[](std::size_t n, std::align_val_t a,
                                   const std::nothrow_t&) noexcept {
  return NewAlignedImpl<CppNothrowPolicy, kArr>(n, Align(a));
}

// Plain and array delete.
STRATA_EXPORT void operator delete(void* p) noexcept { DeleteImpl<kNew>(p); }
STRATA_EXPORT void operator delete[](void* p) noexcept { DeleteImpl<kArr>(p); }
STRATA_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { DeleteImpl<kNew>(p); }
STRATA_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { DeleteImpl<kArr>(p); }

// Sized delete (C++14).
STRATA_EXPORT void operator delete(void* p, std::size_t n) noexcept { DeleteSizedImpl<kNew>(p, n); }
STRATA_EXPORT void operator delete[](void* p, std::size_t n) noexcept { DeleteSizedImpl<kArr>(p, n); }

// Aligned delete (C++17). Unsized: the alignment is checked against the block.
STRATA_EXPORT void operator delete(void* p, std::align_val_t a) noexcept {
  DeleteAlignedImpl<kNew>(p, Align(a));
}
STRATA_EXPORT void operator delete[](void* p, std::align_val_t a) noexcept {
  DeleteAlignedImpl<kArr>(p, Align(a));
}
STRATA_EXPORT void operator delete(void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  DeleteAlignedImpl<kNew>(p, Align(a));
}
STRATA_EXPORT void operator delete[](void* p, std::align_val_t a, const std::nothrow_t&) noexcept {
  DeleteAlignedImpl<kArr>(p, Align(a));
}
STRATA_EXPORT void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept {
  DeleteSizedAlignedImpl<kNew>(p, n, Align(a));
}
STRATA_EXPORT void operator delete[](void* p, std::size_t n, std::align_val_t a) noexcept {
  DeleteSizedAlignedImpl<kArr>(p, n, Align(a));
}
