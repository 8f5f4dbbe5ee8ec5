#include "alloc/failure_injection.h"

namespace strata {
namespace {

failure_injection::ThreadFailureScope ScopeOf(const FailureInjectionOptions& options) {
  failure_injection::ThreadFailureScope scope;
  scope.scoped = true;
  scope.settings.fail_after = options.fail_after;
  scope.settings.rate = options.rate < 0 ? 0 : (options.rate > 1 ? 1 : options.rate);
  scope.settings.seed = options.seed;
  scope.settings.min_size = options.min_size;
  return scope;
}

}  // namespace

ScopedFailureInjection::ScopedFailureInjection(const FailureInjectionOptions& options)
    : outer_(failure_injection::ExchangeThreadFailureScope(ScopeOf(options))) {}

ScopedFailureInjection::~ScopedFailureInjection() { failure_injection::ExchangeThreadFailureScope(outer_); }

std::uint64_t ScopedFailureInjection::injected() const { return failure_injection::ThreadInjectedFailures(); }

std::uint64_t InjectedAllocationFailures() noexcept { return failure_injection::InjectedFailures(); }

}  // namespace strata
