// alloc/observe/limit_state.h: the state of a memory limit as the
// observability pages report it: "unset" (no limit), "pressure"
// (committed bytes above kPressurePercent of it: the soft limit's own
// trigger, alloc/monitor.h; the same share for the hard limit) or "ok".
//
// Thread-safety: pure functions.
#ifndef STRATA_ALLOC_OBSERVE_LIMIT_STATE_H_
#define STRATA_ALLOC_OBSERVE_LIMIT_STATE_H_

#include <cstdint>

#include "alloc/monitor.h"

namespace strata::observe {

enum class LimitState { kUnset, kOk, kPressure };
inline constexpr int kLimitStateCount = 3;

constexpr LimitState GetLimitState(std::uint64_t limit, std::uint64_t committed) {
  if (limit == 0) return LimitState::kUnset;
  // limit * kPressurePercent / 100 without overflow.
  const std::uint64_t threshold = limit / 100 * kPressurePercent + limit % 100 * kPressurePercent / 100;
  return committed > threshold ? LimitState::kPressure : LimitState::kOk;
}

constexpr const char* LimitStateName(LimitState state) {
  return state == LimitState::kUnset ? "unset" : state == LimitState::kOk ? "ok" : "pressure";
}

constexpr const char* LimitStateName(std::uint64_t limit, std::uint64_t committed) {
  return LimitStateName(GetLimitState(limit, committed));
}

}  // namespace strata::observe

#endif  // STRATA_ALLOC_OBSERVE_LIMIT_STATE_H_
