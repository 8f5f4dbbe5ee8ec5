// alloc/monitor.h: memory limits and the memory monitor (namespace strata).
//
// Purpose: what Go offers as debug.SetMemoryLimit plus a MemoryMonitor,
// for a process that allocates through strata:
//   - a soft limit: when committed memory passes kPressurePercent of it,
//     strata gives cached memory back to the OS (strata::ReleaseMemory) and
//     calls the registered pressure callbacks;
//   - a hard limit: spans and huge blocks that would take committed memory
//     beyond it are refused by the page heap (it first gives back its own
//     free memory), so the allocation fails as the API says: nullptr from
//     the engine, ENOMEM from malloc, std::bad_alloc from operator new.
//     Never a crash; freeing memory makes allocation succeed again;
//   - a monitor: samples strata's counters and the process's thread count
//     every interval, keeps a bounded history, raises warning / critical /
//     resolved alerts on thresholds (edge-triggered, with 10% hysteresis),
//     detects fast growth of live bytes and can write a heap profile when
//     it sees it. Alerts go to callbacks, to a bounded queue the program
//     polls, and (log_alerts) to stderr.
//
// Contract:
//   - One background thread ("strata-monitor", created with pthread_create)
//     runs only while the monitor is started or a soft limit is set. Its
//     loop never allocates through malloc/new: fixed global arrays, stack
//     buffers, raw logging, and strata::WriteHeapProfile (malloc-free).
//   - Committed bytes are the page heap's: everything taken from the OS,
//     including free memory still cached in thread caches, central pools
//     and the page heap. Thread caches of other threads are not released by
//     the soft limit (only the calling thread's cache can be flushed).
//   - The hard limit is exact for spans and huge blocks: committed bytes
//     as the page heap counts them (Stats::committed_bytes, segment
//     headers included) never exceed it. Memory cached in thread caches
//     and central pools counts as committed, so a program near its hard
//     limit should call strata::ReleaseMemory() (the soft limit does)
//     before giving up.
//   - Callbacks (pressure and alert) run on the thread that detected the
//     event: the monitor thread, or the caller of CheckMemoryLimitNow() /
//     MemoryMonitorTick(). They are serialised, hold no allocator lock and
//     may allocate. Inside a callback, the functions of this header that
//     would wait for the callback itself (Start/Stop/Configure/Tick,
//     (Un)Register*, CheckMemoryLimitNow) refuse and return false / do
//     nothing; SetMemoryLimit only stores the new value (a running monitor
//     thread picks it up; none is started or stopped). After Unregister*()
//     returns, the callback is not running and will not be called again.
//
// Environment (InitMonitorFromEnvironment; see docs/MONITOR.md):
//   STRATA_MEMORY_LIMIT=bytes|auto   soft limit (K/M/G/T suffixes; auto =
//                                    cgroup v2 memory.max of this process)
//   STRATA_HARD_MEMORY_LIMIT=bytes   hard limit
//   STRATA_MONITOR=1                 start the monitor (alerts to stderr)
//   STRATA_MONITOR_INTERVAL_MS, STRATA_MONITOR_WARN_BYTES,
//   STRATA_MONITOR_CRIT_BYTES, STRATA_MONITOR_WARN_COMMITTED,
//   STRATA_MONITOR_CRIT_COMMITTED, STRATA_MONITOR_WARN_THREADS,
//   STRATA_MONITOR_CRIT_THREADS, STRATA_MONITOR_GROWTH_BYTES,
//   STRATA_MONITOR_GROWTH_PERCENT, STRATA_MONITOR_GROWTH_WINDOW_MS,
//   STRATA_MONITOR_HISTORY, STRATA_MONITOR_PROFILE=path-prefix,
//   STRATA_MONITOR_LOG=0|1
//
// Thread-safety: every function is thread-safe. Fork: the monitor thread
// does not exist in a fork child; the child starts with the monitor
// stopped (limits stay set, the soft limit is not watched until
// SetMemoryLimit or StartMemoryMonitor is called again), whenever the fork
// happens: also during another thread's first start (the one-time
// registration of the monitor's fork handlers, or the thread's creation;
// the child can start its own monitor), and from a signal handler (the
// start, and every section holding a lock the fork handlers need, run
// with the thread's signals blocked: the signal waits until it is left).
// The child keeps the configuration, history and alerts; a fork while
// another thread was configuring may leave it a mix of the old and new
// settings until it configures again.
#ifndef STRATA_ALLOC_MONITOR_H_
#define STRATA_ALLOC_MONITOR_H_

#include <cstddef>
#include <cstdint>

namespace strata {

// ---------------------------------------------------------------------------
// Soft limit.

// Pressure is declared when committed bytes exceed this share of the soft
// limit: the same headroom Go leaves before its limit, enough for a burst
// of allocation between two checks of the monitor thread.
inline constexpr int kPressurePercent = 90;
// The monitor thread checks the soft limit this often (one page-heap lock
// round trip per check: negligible at 50 per second).
inline constexpr std::uint32_t kLimitPollMs = 20;
// While committed memory stays above the threshold, the monitor thread
// releases memory again at most this often (releasing drains every central
// pool: repeating it more often only burns CPU, as Go's GC death spiral).
inline constexpr std::uint32_t kPressureRepeatMs = 1000;

// Sets the soft limit in bytes (0 = none) and starts watching it.
void SetMemoryLimit(std::size_t bytes) noexcept;
std::size_t MemoryLimit() noexcept;

struct PressureEvent {
  std::size_t limit_bytes;       // the soft limit
  std::size_t threshold_bytes;   // limit * kPressurePercent / 100
  std::size_t committed_before;  // committed bytes that crossed it
  std::size_t committed_after;   // after strata::ReleaseMemory()
  std::size_t released_bytes;    // what ReleaseMemory() returned
  std::int64_t live_bytes;       // at the time of the event
  std::uint64_t sequence;        // 1, 2, ... per process
  std::uint64_t monotonic_ns;    // CLOCK_MONOTONIC
};
using PressureCallback = void (*)(const PressureEvent& event, void* arg);

// At most kMaxCallbacks pressure (and, separately, alert) callbacks.
inline constexpr int kMaxCallbacks = 16;

// Registers `fn(event, arg)`; false when full, inside a callback, or for a
// null `fn`. The same (fn, arg) pair may be registered once.
bool RegisterMemoryPressureCallback(PressureCallback fn, void* arg) noexcept;
// False when the pair was not registered (or inside a callback).
bool UnregisterMemoryPressureCallback(PressureCallback fn, void* arg) noexcept;

// Checks the soft limit now, on the calling thread: when committed bytes
// exceed the threshold, releases memory, queues a kMemoryLimit alert and
// calls the pressure callbacks (not rate-limited). Returns true when
// pressure was declared.
bool CheckMemoryLimitNow() noexcept;

// ---------------------------------------------------------------------------
// Hard limit.

// Sets the hard limit in bytes of committed memory (0 = none). Setting it
// below what is committed now does not free anything: allocations that
// need new memory fail until enough is freed.
void SetHardMemoryLimit(std::size_t bytes) noexcept;
std::size_t HardMemoryLimit() noexcept;

// ---------------------------------------------------------------------------
// Monitor.

enum class AlertKind : std::uint8_t {
  kLiveBytes,       // strata::Stats::live_bytes
  kCommittedBytes,  // strata::Stats::committed_bytes
  kThreads,         // threads in the process (/proc/self/status)
  kGrowth,          // live bytes grew too fast
  kMemoryLimit,     // soft limit pressure (see PressureEvent)
};
enum class AlertLevel : std::uint8_t {
  kResolved,  // back below warning (minus hysteresis)
  kWarning,
  kCritical,
};
inline constexpr int kAlertKindCount = 5;   // AlertKind values are 0 .. 4
inline constexpr int kAlertLevelCount = 3;  // AlertLevel values are 0 .. 2

struct Alert {
  std::uint64_t sequence;      // 1, 2, ... in the order raised
  std::uint64_t monotonic_ns;  // CLOCK_MONOTONIC
  std::uint64_t unix_ns;       // CLOCK_REALTIME
  std::uint64_t value;         // the measured value (kGrowth: bytes grown)
  std::uint64_t threshold;     // the threshold crossed (kGrowth: bytes)
  AlertKind kind;
  AlertLevel level;
  // kGrowth: the number n of the heap profile written (<prefix>.<n>.pb.gz),
  // 0 when none was written.
  std::uint32_t profile_index;
};
using AlertCallback = void (*)(const Alert& alert, void* arg);

const char* AlertKindName(AlertKind kind) noexcept;     // "live_bytes" ...
const char* AlertLevelName(AlertLevel level) noexcept;  // "WARNING" ...

// One sample of the monitor's history.
struct MemorySnapshot {
  std::uint64_t sequence;      // tick number, 1, 2, ...
  std::uint64_t monotonic_ns;  // CLOCK_MONOTONIC
  std::uint64_t unix_ns;       // CLOCK_REALTIME
  std::int64_t live_bytes;
  std::int64_t live_objects;
  std::size_t committed_bytes;
  std::size_t reserved_bytes;
  // Free memory strata holds: thread caches, central pools, free committed
  // spans, cached huge blocks.
  std::size_t cached_bytes;
  std::uint64_t allocations;  // cumulative
  std::uint64_t frees;        // cumulative
  std::uint32_t threads;      // threads in the process (0: unknown)
  std::uint32_t threads_with_cache;
  // Resident set of the process (VmRSS of /proc/self/status; 0: unknown):
  // strata's committed memory plus everything else the process maps.
  std::uint64_t resident_bytes;
};

// Warning and critical levels of one metric; 0 turns a level off. A level
// is entered when the value exceeds it, left when the value falls below
// 90% of it.
struct MonitorThresholds {
  std::uint64_t warning = 0;
  std::uint64_t critical = 0;
};

inline constexpr std::uint32_t kMaxHistory = 1024;
inline constexpr std::uint32_t kAlertQueueCapacity = 256;
inline constexpr std::size_t kMaxProfilePrefix = 480;

struct MonitorConfig {
  std::uint32_t interval_ms = 1000;  // >= 1
  MonitorThresholds live_bytes;
  MonitorThresholds committed_bytes;
  MonitorThresholds threads;
  // Growth: an alert (and a heap profile) when live bytes grew by more than
  // growth_bytes, or by more than growth_percent of the lowest value, within
  // growth_window_ms. 0 turns each off. The window is bounded by the
  // history (history_size * interval_ms). After an alert, growth is
  // measured again from that moment.
  std::uint64_t growth_bytes = 0;
  std::uint32_t growth_percent = 0;
  std::uint32_t growth_window_ms = 60'000;
  // Where growth writes heap profiles: "<prefix>.<n>.pb.gz", n = 1, 2, ...
  // (copied; at most kMaxProfilePrefix bytes). nullptr or "": none.
  const char* profile_prefix = nullptr;
  std::uint32_t max_profiles = 16;  // stop writing after this many
  std::uint32_t history_size = 120;  // 1 .. kMaxHistory
  bool log_alerts = false;  // also write each alert to stderr
  AlertCallback on_alert = nullptr;  // in addition to registered callbacks
  void* on_alert_arg = nullptr;
};

// Replaces the configuration and clears the history, the alert queue, the
// recent alerts and the threshold states, without starting the thread
// (MemoryMonitorTick() then samples on demand). False for an invalid configuration or inside a
// callback.
bool ConfigureMemoryMonitor(const MonitorConfig& config) noexcept;
// Configures the monitor (as ConfigureMemoryMonitor) and starts sampling
// on the monitor thread, creating it if needed; a running monitor is
// reconfigured. False for an invalid configuration, inside a callback, or
// when the thread cannot be created.
bool StartMemoryMonitor(const MonitorConfig& config) noexcept;
// Stops sampling (the thread exits unless a soft limit is set). No-op
// inside a callback.
void StopMemoryMonitor() noexcept;
bool MemoryMonitorRunning() noexcept;

// One monitor step on the calling thread: sample, record, check thresholds
// and growth, deliver alerts. Needs a configuration (Configure or Start).
// Returns false when not configured or inside a callback.
bool MemoryMonitorTick() noexcept;

// Moves up to `max` queued alerts into `out`, oldest first; returns the
// count. The queue holds kAlertQueueCapacity alerts; when full, the oldest
// are overwritten (counted in MonitorCounters::alerts_dropped).
std::size_t PollAlerts(Alert* out, std::size_t max) noexcept;

// Copies the newest min(max, stored) snapshots into `out`, oldest first;
// returns the count.
std::size_t GetMemoryHistory(MemorySnapshot* out, std::size_t max) noexcept;

struct MonitorCounters {
  std::uint64_t ticks;
  std::uint64_t alerts_raised;
  std::uint64_t alerts_dropped;
  std::uint64_t profiles_written;
  std::uint64_t profile_failures;
  std::uint64_t pressure_events;
  std::uint64_t pressure_released_bytes;
  // alerts_raised split by [kind][level] (indices: the enums' values).
  std::uint64_t alerts_by_kind_level[kAlertKindCount][kAlertLevelCount];
};
MonitorCounters GetMonitorCounters() noexcept;

// What the monitor watches and where each threshold stands now, for
// dashboards. All zero (configured = false) before any configuration.
struct MonitorStatus {
  bool configured;
  bool running;  // sampling on the monitor thread
  std::uint32_t interval_ms;
  std::uint32_t history_size;
  MonitorThresholds live_bytes;
  MonitorThresholds committed_bytes;
  MonitorThresholds threads;
  std::uint64_t growth_bytes;
  std::uint32_t growth_percent;
  std::uint32_t growth_window_ms;
  // The current level of the live bytes, committed bytes and threads
  // thresholds (kResolved: below warning, or not watched).
  AlertLevel live_bytes_level;
  AlertLevel committed_bytes_level;
  AlertLevel threads_level;
};
MonitorStatus GetMonitorStatus() noexcept;

// The newest alerts raised (at most kRecentAlerts), oldest first, copied
// into `out` (up to `max`); returns the count. Unlike PollAlerts this
// consumes nothing: the program's own polling is unaffected.
inline constexpr std::uint32_t kRecentAlerts = 32;
std::size_t GetRecentAlerts(Alert* out, std::size_t max) noexcept;

// Registers an alert callback (in addition to MonitorConfig::on_alert).
// Same rules as the pressure callbacks.
bool RegisterAlertCallback(AlertCallback fn, void* arg) noexcept;
bool UnregisterAlertCallback(AlertCallback fn, void* arg) noexcept;

// ---------------------------------------------------------------------------
// Environment.

// Parses "<digits>[K|M|G|T][B|iB]" (case-insensitive suffixes, binary
// multiples). False on anything else or on overflow.
bool ParseByteSize(const char* text, std::uint64_t* bytes) noexcept;

// The cgroup v2 memory limit of this process: reads `proc_cgroup_file`
// (normally "/proc/self/cgroup") for the "0::<path>" line, then
// "<cgroup_root><path>/memory.max" and that of every ancestor up to the
// root, and returns the smallest number found. 0 when there is none ("max",
// missing files, cgroup v1).
std::uint64_t ReadCgroupMemoryLimit(const char* proc_cgroup_file, const char* cgroup_root) noexcept;

// The environment, parsed (nothing applied).
struct MonitorEnvironment {
  std::uint64_t memory_limit = 0;       // STRATA_MEMORY_LIMIT (0: none)
  std::uint64_t hard_memory_limit = 0;  // STRATA_HARD_MEMORY_LIMIT
  bool monitor = false;                 // STRATA_MONITOR
  MonitorConfig config;                 // log_alerts defaults to true here
  int errors = 0;                       // malformed values (each logged)
};
using GetEnvFunction = const char* (*)(const char* name);

// Parses the variables through `get_env` (e.g. a test's table; ::getenv in
// production) with `auto` resolved from the given cgroup paths. Malformed
// values are logged to stderr and ignored. profile_prefix points into the
// string `get_env` returned.
MonitorEnvironment ParseMonitorEnvironment(GetEnvFunction get_env, const char* proc_cgroup_file,
                                           const char* cgroup_root) noexcept;

// Reads the real environment ("/proc/self/cgroup", "/sys/fs/cgroup") and
// applies it: limits, then the monitor. Runs once per process (later calls
// return at once); called by the runtime layer at startup.
void InitMonitorFromEnvironment() noexcept;

}  // namespace strata

#endif  // STRATA_ALLOC_MONITOR_H_
