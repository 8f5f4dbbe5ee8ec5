// alloc/internal/hooks.h: where the engine's slow paths meet the tracking
// layer (sampling heap profiler, leak checker, in alloc/tracking).
//
// How tracked allocations stay off the fast path:
//   - Allocation: each thread counts down bytes_until_sample on its fast
//     path (see thread_cache.h). When it crosses zero the slow path asks
//     NextSampleCountdown() for the next stride and decides: when sampling
//     is on and the stride was crossed, or when every allocation is tracked
//     (leak checking; the countdown is then -1, so every allocation
//     crosses), the block is served from a *tracked pool*
//     (g_tracked_central), or for a sampled small block (mostly) from the
//     thread's own list of its class, or for the smaller classes from the
//     4608-byte blocks the thread keeps for their samples, with its slice
//     marked (sampled_slices.h), or flagged as a tracked large block, and
//     the hooks record it.
//   - Free: tracked small blocks live in spans the class map does not know
//     (class 0), so their frees always reach the slow path, which calls
//     hooks->on_free. Untracked blocks are never looked up. Sampled blocks
//     kept in place are the exception: they stay in the normal spans, and
//     the slice each starts in is marked (class 0 in the class map while
//     it holds sampled blocks, sampled_slices.h); frees of a marked
//     slice's blocks ask on_sampled_free. When every allocation is
//     tracked, small blocks go through a per-thread cache
//     (tracked_cache.h); sampled ones of the tracked pools too, within a
//     small bound. Tracked small blocks use the on_small_* hooks (their
//     records sit at the block's place: no lookup); on_allocate and
//     on_free serve large and huge blocks.
//   - Realloc: a tracked large or huge block grown into the free space
//     after it stays tracked, and hooks->on_resize gives its record the new
//     sizes. A realloc within the usable size changes nothing (the record
//     keeps the size last recorded, which is at most the usable size),
//     but for a sampled small request in a bigger class's block, which
//     always moves (sampled_slices.h). A block that moves is a free of the
//     old block and an allocation of the new.
//   - Failure injection (failure_injection.h) forces the slow path the same
//     way (a countdown of -1) and keeps the real countdown itself.
//   - Mode changes reach every thread at its next countdown crossing; with
//     sampling off the countdown is at most kIdleCountdown bytes, so a
//     thread notices within that much allocation.
//
// Thread-safety: all functions are thread-safe. Hooks must never allocate
// through malloc (they run inside it) and must be installed before the
// modes that need them are switched on.
#ifndef STRATA_ALLOC_INTERNAL_HOOKS_H_
#define STRATA_ALLOC_INTERNAL_HOOKS_H_

#include <atomic>
#include <bit>
#include <cstddef>
#include <cstdint>

namespace strata::internal {

struct TrackingHooks {
  // A tracked large or huge block was handed out. `sampled` is true when it
  // was chosen by the sampler (its weight is the sampling stride), false
  // when every allocation is tracked.
  void (*on_allocate)(void* ptr, std::size_t requested, std::size_t usable, bool sampled);
  // A tracked large or huge block is being freed (before the engine reuses
  // it).
  void (*on_free)(void* ptr);
  // A tracked large or huge block was grown in place (realloc extended it
  // into the free space after it): it keeps its record (stack, time,
  // sampled or not) with the new sizes.
  void (*on_resize)(void* ptr, std::size_t requested, std::size_t usable);
  // Tracked small blocks (the tracked cache, tracked_cache.h, and hardened
  // mode; the tracking layer keeps their records at the block's place,
  // alloc/tracking/block_records.h).
  // A tracked small block of class `size_class` is handed out. `record`:
  // its record when known (what on_small_free gave when the block was
  // parked: only the thread whose cache holds the block touches a parked
  // record), else null.
  void (*on_small_allocate)(void* ptr, int size_class, std::size_t requested, bool sampled, void* record);
  // A tracked small block is being freed: into a cache (`park`: its record
  // stays, marked free, and *record is the token for on_small_allocate and
  // on_small_release) or to the pool. Returns 1 when done, 0 when the block
  // has no record, -1 when its record says it is free already (a double
  // free: nothing changed).
  int (*on_small_free)(void* ptr, int size_class, bool park, void** record);
  // A parked block (its token) leaves its cache for the pool.
  void (*on_small_release)(void* record);
  // Sampled small blocks kept in place (sampled_slices.h), recorded in the
  // slot of their slice's word that names them (`slot`, 0..kSlots-1), or by
  // address for a block in no slot (slot < 0).
  // A sampled block of class `size_class` was handed out. False when it
  // could not be recorded (the caller then unmarks it). `frame`: the
  // caller's frame (__builtin_frame_address(0)), where the walk of the
  // allocation's stack starts (the frames below it are the hook's own).
  bool (*on_sampled_allocate)(void* ptr, int size_class, std::size_t requested, int slot, const void* frame);
  // A block of a slice that holds sampled blocks, named by slot `slot` of
  // its word (or by none while the word overflows), is being freed: its
  // record, if it has one, is ended. True when it had one (it was one of
  // the sampled blocks the slice counts).
  bool (*on_sampled_free)(void* ptr, int size_class, int slot);
};

namespace hooks_detail {
// The installed hooks, the sampling stride and the leak-check mode, on one
// line (a sample reads them all), with copies of the two hooks a sample
// kept in place calls (sampled_slices.h): no line of the hook table to
// bring in at its allocation and its free; and the fork generation that
// sampled_slices.h's slice locks name (read at each mark and unmark);
// and the tracking layer's floor of record times (its leak-check windows'
// latest start, alloc/tracking/tracker.h RecordTimeNs), which every tracked
// allocation reads: on this line, read by the sample's countdown already,
// it brings no line of its own in. Written by the setters below,
// sampled_slices::ForkChild and the tracking layer's WindowStartNs only.
struct alignas(64) Modes {
  std::atomic<const TrackingHooks*> hooks{nullptr};
  std::atomic<std::int64_t> sample_rate{0};
  std::atomic<double> inv_sample_rate{0.0};  // 1 / sample_rate (0 when off)
  std::atomic<bool> track_all{false};
  std::atomic<decltype(TrackingHooks::on_sampled_allocate)> on_sampled_allocate{nullptr};
  std::atomic<decltype(TrackingHooks::on_sampled_free)> on_sampled_free{nullptr};
  std::atomic<std::uint32_t> fork_generation{0};
  std::atomic<std::uint64_t> window_floor{0};
};
static_assert(sizeof(Modes) == 64);
extern constinit Modes g_modes;
}  // namespace hooks_detail

// Installs the hooks (once, from the tracking layer's init).
void InstallTrackingHooks(const TrackingHooks* hooks);
const TrackingHooks* InstalledTrackingHooks();

// Mean sampling stride in bytes (0: sampling off, 1: every allocation).
void SetSampleRate(std::int64_t bytes);
std::int64_t SampleRate();
// Leak-check mode: every allocation is tracked. Both setters apply to the
// calling thread at once.
void SetTrackAll(bool on);
bool TrackAll();
// The same two reads inline, for the tracking layer's per-sample work (the
// engine calls the functions above: its slow paths stay as compact as
// they are).
inline std::int64_t SampleRateInline() { return hooks_detail::g_modes.sample_rate.load(std::memory_order_relaxed); }
// 1 / SampleRate() (0 with sampling off): a sample's weight multiplies by it.
inline double InvSampleRateInline() { return hooks_detail::g_modes.inv_sample_rate.load(std::memory_order_relaxed); }
// The installed hooks' on_sampled_allocate and on_sampled_free (null
// before the installation; acquire, as InstalledTrackingHooks).
inline auto SampledAllocateHook() { return hooks_detail::g_modes.on_sampled_allocate.load(std::memory_order_acquire); }
inline auto SampledFreeHook() { return hooks_detail::g_modes.on_sampled_free.load(std::memory_order_acquire); }
inline bool TrackAllInline() { return hooks_detail::g_modes.track_all.load(std::memory_order_relaxed); }

namespace hooks_detail {
// The floating-point constants of a sample's arithmetic (StrideFromBits
// and SampleStride here, the peak tracker's weight in
// alloc/tracking/peak_tracker.cc), on two lines of their own: constants
// the compiler places itself were some five cold lines of the read-only
// data (among other functions' constants). The weight (of a sample well
// below the stride: none) reads them through SampleConstants(), whose
// pointer the compiler cannot see through (it would fold values it knows
// into constants of its own again); the stride, computed at every sample,
// builds its own from immediates (ImmediateConstant).
enum SampleConstant : int {
  kTwoToMinus53, kOne, kNinth, kSeventh, kFifth, kThird, kLn2, kMostStride,  // the stride
  kHalf, kTwelfth, kSixth, k24th, k120th, k720th, k30240th,                 // the weight
  kInverseCheck,                                                            // (1e-6)^2
  kNumSampleConstants
};
extern const double kSampleConstants[16];
static_assert(kNumSampleConstants <= 16);
inline const double* SampleConstants() {
  const double* k = kSampleConstants;
  asm("" : "+r"(k));
  return k;
}
// Their values (kSampleConstants is a copy).
inline constexpr double kSampleConstantValues[16] = {
    1.0 / 9007199254740992.0, 1.0, 1.0 / 9, 1.0 / 7, 1.0 / 5, 1.0 / 3, 0.6931471805599453, 9e15,
    0.5, 1.0 / 12, 1.0 / 6, 1.0 / 24, 1.0 / 120, 1.0 / 720, 1.0 / 30240, 1e-12};
// Constant `i` built from an immediate in the code (a move and a register
// copy) where the compiler would load it from memory: the stride's
// constants, needed once a sample, cost no line of data (their line was
// half a cache miss a sample: cold again by the next sample). The asm
// keeps the compiler from folding the value back into a constant of its
// own.
inline double ImmediateConstant(SampleConstant i) {
  auto bits = std::bit_cast<std::uint64_t>(kSampleConstantValues[i]);
  asm("" : "+r"(bits));
  return std::bit_cast<double>(bits);
}
}  // namespace hooks_detail

// -ln(v) for v = (bits53 + 1) / 2^53 (bits53 < 2^53, uniform: v is
// uniform in (0, 1], so the result is exponential with mean 1): the
// sampling stride in units of the rate. To about 1e-9 absolute, in some 25
// instructions (one division, off the chain that the allocation waits
// for: the stride only feeds the next countdown); base::NegLogOneMinus's
// 1e-13 costs five times that on every sample, for nothing a stride can
// use. Every constant is an immediate of the code (ImmediateConstant).
inline double StrideFromBits(std::uint64_t bits53) {
  using namespace hooks_detail;  // NOLINT: the constants' names
  const auto k = [](SampleConstant i) { return ImmediateConstant(i); };
  // v = (bits53 + 1) / 2^53 in (0, 1]: uniform like 1 - u, and never 0.
  const double v = static_cast<double>(bits53 + 1) * k(kTwoToMinus53);
  const std::uint64_t b = std::bit_cast<std::uint64_t>(v);
  const std::uint64_t fraction = b & 0x000fffffffffffffull;
  // m in [sqrt(1/2), sqrt(2)): the fraction of v with exponent 0, or -1
  // above sqrt(2) (whose fraction bits these are): an integer compare, and
  // m / 2 by its exponent, both exact.
  const bool high = fraction > 0x6a09e667f3bcdull;
  const int e = static_cast<int>(b >> 52) - 1023 + static_cast<int>(high);
  const double m = std::bit_cast<double>(fraction | (high ? 0x3fe0000000000000ull : 0x3ff0000000000000ull));
  // ln(m) = 2 atanh(s), |s| < 0.172: the odd series to s^9 (next term
  // below 1e-9 of ln 2).
  const double one = k(kOne);
  const double s = (m - one) / (m + one);
  const double s2 = s * s;
  const double ln_m =
      (s + s) * (one + s2 * (k(kThird) + s2 * (k(kFifth) + s2 * (k(kSeventh) + s2 * k(kNinth)))));
  return static_cast<double>(-e) * k(kLn2) - ln_m;
}

// The next sampling stride in bytes (exponential with mean SampleRate();
// kIdleCountdown with sampling off), whatever forces the slow path.
std::int64_t SampleStride();

// With sampling off, threads still reach the slow path this often so that
// they notice a mode change.
inline constexpr std::int64_t kIdleCountdown = std::int64_t{8} << 20;

// The tracking layer's optional one-time init, called as the engine's
// process init's last step when the layer is linked in (weak symbol): with
// the init's thread's signals blocked, while other threads' first calls
// wait for it; it must not start threads or wait for other threads.
extern "C" void StrataTrackingInit() __attribute__((weak));

}  // namespace strata::internal

#endif  // STRATA_ALLOC_INTERNAL_HOOKS_H_
