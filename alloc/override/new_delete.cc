// alloc/override/new_delete.cc: the 20 replaceable global operator new and
// operator delete forms ([new.delete]), each a one-line forward to the
// policy layer (alloc/override/policy.h). No logic lives here.
//
// Failure: the throwing forms run the new_handler loop, then throw
// std::bad_alloc; the nothrow forms run the same loop, then return nullptr.
// Every definition has default visibility so that libstrata.so exports it.
#include <cstddef>
#include <new>

#include "alloc/override/policy.h"
#include "concurrency/base/macros.h"

using strata::override_internal::CppNothrowPolicy;
using strata::override_internal::CppThrowPolicy;
using strata::override_internal::DeleteImpl;
using strata::override_internal::DeleteSizedAlignedImpl;
using strata::override_internal::DeleteSizedImpl;
using strata::override_internal::NewImpl;

namespace {
constexpr std::size_t Align(std::align_val_t a) { return static_cast<std::size_t>(a); }
}  // namespace

// Plain and array new.
STRATA_EXPORT void* operator new(std::size_t n) { return NewImpl<CppThrowPolicy>(n); }
STRATA_EXPORT void* operator new[](std::size_t n) { return NewImpl<CppThrowPolicy>(n); }
STRATA_EXPORT void* operator new(std::size_t n, const std::nothrow_t&) noexcept {
  return NewImpl<CppNothrowPolicy>(n);
}
STRATA_EXPORT void* operator new[](std::size_t n, const std::nothrow_t&) noexcept {
  return NewImpl<CppNothrowPolicy>(n);
}

// Aligned new (C++17).
STRATA_EXPORT void* operator new(std::size_t n, std::align_val_t a) {
  return NewImpl<CppThrowPolicy>(n, Align(a));
}
STRATA_EXPORT void* operator new[](std::size_t n, std::align_val_t a) {
  return NewImpl<CppThrowPolicy>(n, Align(a));
}
STRATA_EXPORT void* operator new(std::size_t n, std::align_val_t a,
                                 const std::nothrow_t&) noexcept {
  return NewImpl<CppNothrowPolicy>(n, Align(a));
}
STRATA_EXPORT void* operator new[](std::size_t n, std::align_val_t a,
                                   const std::nothrow_t&) noexcept {
  return NewImpl<CppNothrowPolicy>(n, Align(a));
}

// Plain and array delete.
STRATA_EXPORT void operator delete(void* p) noexcept { DeleteImpl(p); }
STRATA_EXPORT void operator delete[](void* p) noexcept { DeleteImpl(p); }
STRATA_EXPORT void operator delete(void* p, const std::nothrow_t&) noexcept { DeleteImpl(p); }
STRATA_EXPORT void operator delete[](void* p, const std::nothrow_t&) noexcept { DeleteImpl(p); }

// Sized delete (C++14).
STRATA_EXPORT void operator delete(void* p, std::size_t n) noexcept { DeleteSizedImpl(p, n); }
STRATA_EXPORT void operator delete[](void* p, std::size_t n) noexcept { DeleteSizedImpl(p, n); }

// Aligned delete (C++17). Unsized: Free finds the block itself.
STRATA_EXPORT void operator delete(void* p, std::align_val_t) noexcept { DeleteImpl(p); }
STRATA_EXPORT void operator delete[](void* p, std::align_val_t) noexcept { DeleteImpl(p); }
STRATA_EXPORT void operator delete(void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  DeleteImpl(p);
}
STRATA_EXPORT void operator delete[](void* p, std::align_val_t, const std::nothrow_t&) noexcept {
  DeleteImpl(p);
}
STRATA_EXPORT void operator delete(void* p, std::size_t n, std::align_val_t a) noexcept {
  DeleteSizedAlignedImpl(p, n, Align(a));
}
STRATA_EXPORT void operator delete[](void* p, std::size_t n, std::align_val_t a) noexcept {
  DeleteSizedAlignedImpl(p, n, Align(a));
}
