// The memory monitor and the limits (alloc/monitor.h).
//
// Layout: every piece of state is a constinit global with a trivial
// destructor (fixed arrays under spin locks, atomics), so nothing here
// allocates and everything works before main() and during exit.
//
// Locks, in the order they may nest (a lock is never taken while holding a
// lock listed after it):
//   g_control_lock   start/stop of the worker thread (held across
//                    pthread_create/pthread_join, with the thread's signals
//                    blocked; the worker never takes it)
//   g_tick_lock      the monitor's configuration and per-tick state
//   g_pressure_lock  serialises soft-limit releases and pressure callbacks
//   g_alert_callbacks.lock_ / g_pressure_callbacks.lock_
//                    held while callbacks run, so that Unregister waits
//   g_history_lock, g_queue_lock   leaves: short copies only, with the
//                    thread's signals blocked (the fork prepare takes them)
// Callbacks run with t_in_callback set; every entry point that could wait
// for a lock held around a callback refuses when it is set.
//
// Fork: the fork handlers (ForkPrepare/Parent/Child below) are registered
// by a one-time init (alloc/fork/layer_fork_init.h) that every entry point
// taking a lock runs first, so they are in place before any of these locks
// is held: a fork child never inherits one held by a thread it does not
// have (the prepare takes the leaves, the child forgets the others).
#include "alloc/monitor.h"

#include <fcntl.h>
#include <linux/futex.h>
#include <pthread.h>
#include <signal.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <cstdlib>
#include <cstring>
#include <type_traits>

#include "alloc/fork/layer_fork_init.h"
#include "alloc/heap_profiler.h"
#include "alloc/internal/globals.h"
#include "alloc/internal/thread_cache.h"
#include "alloc/stats.h"
#include "alloc/strata.h"
#include "concurrency/base/macros.h"
#include "concurrency/base/raw_log.h"
#include "concurrency/base/signals_blocked.h"
#include "concurrency/base/spin_lock.h"

namespace strata {
namespace {

constexpr std::uint64_t kNanosPerMilli = 1'000'000;
constexpr std::uint64_t kNanosPerSecond = 1'000'000'000;
// The worker wakes at least this often even with nothing to do, so a lost
// wake-up (impossible with the futex protocol, but cheap to bound) costs
// at most one second.
constexpr std::uint64_t kIdleWaitNs = kNanosPerSecond;
// Alerts one tick can raise: 3 metrics x (warning + critical) + growth.
constexpr int kMaxAlertsPerTick = 8;
// Hysteresis: a level is left when the value falls below 90% of it.
constexpr std::uint64_t kHysteresisDivisor = 10;
// /proc/self/status is about 1.5 KiB; a larger buffer costs nothing.
constexpr std::size_t kProcReadBytes = 4096;
constexpr std::size_t kPathBytes = 4096;
constexpr std::size_t kProfilePathBytes = kMaxProfilePrefix + 32;

std::uint64_t ClockNanos(clockid_t clock) {
  timespec ts;
  clock_gettime(clock, &ts);
  return static_cast<std::uint64_t>(ts.tv_sec) * kNanosPerSecond + static_cast<std::uint64_t>(ts.tv_nsec);
}
std::uint64_t MonotonicNanos() { return ClockNanos(CLOCK_MONOTONIC); }
std::uint64_t UnixNanos() { return ClockNanos(CLOCK_REALTIME); }

// Set while this thread runs user callbacks; marks the worker thread.
constinit thread_local bool t_in_callback STRATA_INITIAL_EXEC = false;
constinit thread_local bool t_is_worker STRATA_INITIAL_EXEC = false;

class CallbackScope {
 public:
  CallbackScope() : saved_(t_in_callback) { t_in_callback = true; }
  ~CallbackScope() { t_in_callback = saved_; }
  CallbackScope(const CallbackScope&) = delete;
  CallbackScope& operator=(const CallbackScope&) = delete;

 private:
  bool saved_;
};

// A fixed table of (fn, arg) pairs plus one "primary" entry (the monitor
// configuration's on_alert). Callbacks run under the table's lock, so
// Unregister returns only once the callback is not running.
template <typename Fn, typename Event>
class CallbackTable {
 public:
  constexpr CallbackTable() = default;

  bool Add(Fn fn, void* arg) {
    if (fn == nullptr) return false;
    SpinLockHolder h(&lock_);
    int slot = -1;
    for (int i = 0; i < kMaxCallbacks; ++i) {
      if (entries_[i].fn == fn && entries_[i].arg == arg) return false;
      if (entries_[i].fn == nullptr && slot < 0) slot = i;
    }
    if (slot < 0) return false;
    entries_[slot] = Entry{fn, arg};
    return true;
  }

  bool Remove(Fn fn, void* arg) {
    SpinLockHolder h(&lock_);
    for (Entry& e : entries_) {
      if (e.fn == fn && e.fn != nullptr && e.arg == arg) {
        e = Entry{};
        return true;
      }
    }
    return false;
  }

  void SetPrimary(Fn fn, void* arg) {
    SpinLockHolder h(&lock_);
    primary_ = Entry{fn, arg};
  }

  // Calls `before(event, arg)` then every callback, all under the lock (so
  // deliveries are serialised and ordered).
  void Call(Event& event, void (*before)(Event& event, void* arg), void* before_arg) {
    SpinLockHolder h(&lock_);
    if (before != nullptr) before(event, before_arg);
    CallbackScope scope;
    if (primary_.fn != nullptr) primary_.fn(event, primary_.arg);
    for (const Entry& e : entries_) {
      if (e.fn != nullptr) e.fn(event, e.arg);
    }
  }

  void ResetAfterFork() { lock_.ResetAfterFork(); }

 private:
  struct Entry {
    Fn fn = nullptr;
    void* arg = nullptr;
  };
  SpinLock lock_;
  Entry primary_;
  Entry entries_[kMaxCallbacks];
};

constinit CallbackTable<PressureCallback, const PressureEvent> g_pressure_callbacks;
constinit CallbackTable<AlertCallback, Alert> g_alert_callbacks;

// Holds a lock with the thread's signals blocked. For g_queue_lock and
// g_history_lock, which the fork prepare handler takes: a handler that
// forked on a thread holding one would wait in that prepare for its own
// thread. And for g_control_lock: a handler that forked on a thread inside
// pthread_create or pthread_join of the worker would leave the child
// recording a worker it does not have (the child handler's reset undone).
class STRATA_SCOPED_CAPABILITY NoSignalsLockHolder {
 public:
  explicit NoSignalsLockHolder(SpinLock* lock) STRATA_ACQUIRE(lock) : lock_(lock) { lock_->Lock(); }
  ~NoSignalsLockHolder() STRATA_RELEASE() { lock_->Unlock(); }
  NoSignalsLockHolder(const NoSignalsLockHolder&) = delete;
  NoSignalsLockHolder& operator=(const NoSignalsLockHolder&) = delete;

 private:
  SignalsBlocked blocked_;  // before the lock is taken, after it is released
  SpinLock* lock_;
};

// ---- counters ----

struct Counters {
  std::atomic<std::uint64_t> ticks{0};
  std::atomic<std::uint64_t> alerts_raised{0};
  std::atomic<std::uint64_t> alerts_dropped{0};
  std::atomic<std::uint64_t> profiles_written{0};
  std::atomic<std::uint64_t> profile_failures{0};
  std::atomic<std::uint64_t> pressure_events{0};
  std::atomic<std::uint64_t> pressure_released_bytes{0};
  std::atomic<std::uint64_t> by_kind_level[kAlertKindCount][kAlertLevelCount] = {};
};
constinit Counters g_counters;

// Statistics only: relaxed everywhere.
void Bump(std::atomic<std::uint64_t>& c, std::uint64_t n = 1) { c.fetch_add(n, std::memory_order_relaxed); }

// ---- the alert queue: a ring that overwrites its oldest entry ----

constinit SpinLock g_queue_lock;
constinit Alert g_queue[kAlertQueueCapacity] = {};
constinit std::uint32_t g_queue_head STRATA_GUARDED_BY(g_queue_lock) = 0;  // oldest
constinit std::uint32_t g_queue_count STRATA_GUARDED_BY(g_queue_lock) = 0;

void QueuePush(const Alert& alert) {
  NoSignalsLockHolder h(&g_queue_lock);
  if (g_queue_count >= kAlertQueueCapacity) {
    g_queue_head = (g_queue_head + 1) % kAlertQueueCapacity;
    g_queue_count = kAlertQueueCapacity - 1;
    Bump(g_counters.alerts_dropped);
  }
  g_queue[(g_queue_head + g_queue_count) % kAlertQueueCapacity] = alert;
  ++g_queue_count;
}

// The newest alerts, for GetRecentAlerts (never consumed). Under
// g_queue_lock too: both rings change together.
constinit Alert g_recent[kRecentAlerts] = {};
constinit std::uint32_t g_recent_next STRATA_GUARDED_BY(g_queue_lock) = 0;
constinit std::uint32_t g_recent_count STRATA_GUARDED_BY(g_queue_lock) = 0;

void QueueClear() {
  NoSignalsLockHolder h(&g_queue_lock);
  g_queue_head = g_queue_count = 0;
  g_recent_next = g_recent_count = 0;
}

void RecentPush(const Alert& alert) {
  NoSignalsLockHolder h(&g_queue_lock);
  g_recent[g_recent_next] = alert;
  g_recent_next = (g_recent_next + 1) % kRecentAlerts;
  if (g_recent_count < kRecentAlerts) ++g_recent_count;
}

// ---- the history: a ring of the newest `capacity` snapshots ----

constinit SpinLock g_history_lock;
constinit MemorySnapshot g_history[kMaxHistory] = {};
constinit std::uint32_t g_history_capacity STRATA_GUARDED_BY(g_history_lock) = 1;
constinit std::uint32_t g_history_next STRATA_GUARDED_BY(g_history_lock) = 0;  // slot to write
constinit std::uint32_t g_history_count STRATA_GUARDED_BY(g_history_lock) = 0;

void HistoryPush(const MemorySnapshot& s) {
  NoSignalsLockHolder h(&g_history_lock);
  g_history[g_history_next] = s;
  g_history_next = (g_history_next + 1) % g_history_capacity;
  if (g_history_count < g_history_capacity) ++g_history_count;
}

void HistoryReset(std::uint32_t capacity) {
  NoSignalsLockHolder h(&g_history_lock);
  g_history_capacity = capacity;
  g_history_next = g_history_count = 0;
}

// The lowest live_bytes among snapshots taken at or after `since_ns`.
std::int64_t HistoryMinLiveSince(std::uint64_t since_ns, std::int64_t current) {
  NoSignalsLockHolder h(&g_history_lock);
  std::int64_t low = current;
  for (std::uint32_t i = 0; i < g_history_count; ++i) {
    const MemorySnapshot& s = g_history[(g_history_next + g_history_capacity - 1 - i) % g_history_capacity];
    if (s.monotonic_ns < since_ns) break;  // newest first: the rest are older
    if (s.live_bytes < low) low = s.live_bytes;
  }
  return low;
}

// ---- logging ----

std::atomic<bool> g_log_alerts{false};

void LogAlert(const Alert& a, const char* note) {
  raw::Buffer b;
  b.Str("strata: monitor: ").Str(AlertLevelName(a.level)).Char(' ').Str(AlertKindName(a.kind));
  if (a.kind == AlertKind::kGrowth) {
    b.Str(": live bytes grew by ").Udec(a.value).Str(" (threshold ").Udec(a.threshold).Char(')');
  } else if (a.level == AlertLevel::kResolved) {
    b.Str(": ").Udec(a.value).Str(" back below ").Udec(a.threshold);
  } else {
    b.Str(": ").Udec(a.value).Str(" > ").Udec(a.threshold);
  }
  if (note != nullptr && *note != '\0') b.Str("; ").Str(note);
  b.Char('\n');
  b.WriteTo(2);
}

// ---- delivery ----

constinit std::atomic<std::uint64_t> g_alert_sequence{0};

struct DeliveryNote {
  const char* text;
};

void StampAndQueue(Alert& alert, void* arg) {
  // Under the alert table's lock: sequence numbers follow delivery order.
  alert.sequence = g_alert_sequence.fetch_add(1, std::memory_order_relaxed) + 1;
  QueuePush(alert);
  RecentPush(alert);
  Bump(g_counters.alerts_raised);
  const auto kind = static_cast<unsigned>(alert.kind);
  const auto level = static_cast<unsigned>(alert.level);
  if (kind < kAlertKindCount && level < kAlertLevelCount) Bump(g_counters.by_kind_level[kind][level]);
  if (g_log_alerts.load(std::memory_order_relaxed)) LogAlert(alert, static_cast<DeliveryNote*>(arg)->text);
}

void Deliver(Alert alert, const char* note) {
  DeliveryNote n{note};
  g_alert_callbacks.Call(alert, &StampAndQueue, &n);
}

// ---- soft limit ----

constinit std::atomic<std::size_t> g_soft_limit{0};
constinit std::atomic<std::uint64_t> g_pressure_sequence{0};
constinit SpinLock g_pressure_lock;

// Takes the page heap's lock: after the process init, which registers the
// engine's fork handlers (CheckMemoryLimitNow may be a program's first
// call into strata).
std::size_t CommittedBytes() {
  internal::EnsureProcessInit();
  return internal::g_page_heap.Stats().committed_bytes;
}

std::size_t PressureThreshold(std::size_t limit) {
  // limit * kPressurePercent / 100 without overflow.
  return limit / 100 * kPressurePercent + limit % 100 * kPressurePercent / 100;
}

// Releases memory and notifies when committed bytes exceed the threshold.
bool RelievePressure() {
  std::size_t limit = g_soft_limit.load(std::memory_order_relaxed);
  if (limit == 0) return false;
  std::size_t threshold = PressureThreshold(limit);
  SpinLockHolder h(&g_pressure_lock);
  std::size_t before = CommittedBytes();
  if (before <= threshold) return false;
  std::size_t released = ReleaseMemory();
  std::size_t after = CommittedBytes();
  PressureEvent event{};
  event.limit_bytes = limit;
  event.threshold_bytes = threshold;
  event.committed_before = before;
  event.committed_after = after;
  event.released_bytes = released;
  event.live_bytes = GetStats().live_bytes;
  event.sequence = g_pressure_sequence.fetch_add(1, std::memory_order_relaxed) + 1;
  event.monotonic_ns = MonotonicNanos();
  Bump(g_counters.pressure_events);
  Bump(g_counters.pressure_released_bytes, released);
  g_pressure_callbacks.Call(event, nullptr, nullptr);
  Alert alert{};
  alert.monotonic_ns = event.monotonic_ns;
  alert.unix_ns = UnixNanos();
  alert.value = before;
  alert.threshold = threshold;
  alert.kind = AlertKind::kMemoryLimit;
  alert.level = AlertLevel::kWarning;
  raw::Buffer note;
  note.Str("soft limit ").Udec(limit).Str(": released ").Udec(released).Str(" bytes, committed now ").Udec(after);
  note.Char('\0');
  Deliver(alert, note.data());
  return true;
}

// ---- monitor state (under g_tick_lock) ----

constexpr int kMetrics = 3;  // live, committed, threads

struct MonitorState {
  bool configured = false;
  MonitorConfig config;
  char prefix[kMaxProfilePrefix + 1] = {};
  AlertLevel levels[kMetrics] = {};
  std::uint64_t tick_sequence = 0;
  std::uint64_t growth_since_ns = 0;  // growth is measured from here on
  std::uint32_t profiles = 0;         // profile numbers handed out
};

constinit SpinLock g_tick_lock;
constinit MonitorState g_state STRATA_GUARDED_BY(g_tick_lock);
// Copies the worker reads without the tick lock.
constinit std::atomic<std::uint32_t> g_interval_ms{1000};
constinit std::atomic<bool> g_monitor_enabled{false};
constinit std::atomic<std::uint64_t> g_config_generation{0};

// The number after `field` ("\nThreads:") in /proc/self/status, or 0.
std::uint64_t StatusField(const char* status, const char* field) {
  const char* p = strstr(status, field);
  if (p == nullptr) return 0;
  p += strlen(field);
  while (*p == ' ' || *p == '\t') ++p;
  std::uint64_t v = 0;
  while (*p >= '0' && *p <= '9') v = v * 10 + static_cast<std::uint64_t>(*p++ - '0');
  return v;
}

struct ProcessStatus {
  std::uint32_t threads = 0;
  std::uint64_t resident_bytes = 0;
};

ProcessStatus ReadProcessStatus() {
  ProcessStatus out;
  int fd = open("/proc/self/status", O_RDONLY | O_CLOEXEC);
  if (fd < 0) return out;
  char buf[kProcReadBytes];
  std::size_t used = 0;
  while (used < sizeof(buf) - 1) {
    ssize_t n = read(fd, buf + used, sizeof(buf) - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  close(fd);
  buf[used] = '\0';
  out.threads = static_cast<std::uint32_t>(StatusField(buf, "\nThreads:"));
  out.resident_bytes = StatusField(buf, "\nVmRSS:") * 1024;  // "VmRSS:   1234 kB"
  return out;
}

MemorySnapshot TakeSnapshot(std::uint64_t sequence) {
  Stats s = GetStats();
  MemorySnapshot snap{};
  snap.sequence = sequence;
  snap.monotonic_ns = MonotonicNanos();
  snap.unix_ns = UnixNanos();
  snap.live_bytes = s.live_bytes;
  snap.live_objects = s.live_objects;
  snap.committed_bytes = s.committed_bytes;
  snap.reserved_bytes = s.reserved_bytes;
  snap.cached_bytes = s.thread_cache_bytes + s.central_cache_bytes + s.arena_free_bytes + s.large_cache_bytes;
  snap.allocations = s.allocations;
  snap.frees = s.frees;
  const ProcessStatus process = ReadProcessStatus();
  snap.threads = process.threads;
  snap.resident_bytes = process.resident_bytes;
  snap.threads_with_cache = static_cast<std::uint32_t>(s.threads_with_cache);
  return snap;
}

struct PendingAlerts {
  Alert alerts[kMaxAlertsPerTick];
  int count = 0;
  void Add(const MemorySnapshot& snap, AlertKind kind, AlertLevel level, std::uint64_t value,
           std::uint64_t threshold) {
    if (count >= kMaxAlertsPerTick) return;
    Alert& a = alerts[count++];
    a = Alert{};
    a.monotonic_ns = snap.monotonic_ns;
    a.unix_ns = snap.unix_ns;
    a.value = value;
    a.threshold = threshold;
    a.kind = kind;
    a.level = level;
  }
};

// Edge-triggered levels with hysteresis; see MonitorThresholds.
void EvaluateThresholds(const MemorySnapshot& snap, AlertKind kind, std::uint64_t value, const MonitorThresholds& t,
                        AlertLevel* level, PendingAlerts* out) {
  auto above = [value](std::uint64_t threshold) { return threshold != 0 && value > threshold; };
  auto holds = [value](std::uint64_t threshold) {
    return threshold != 0 && value >= threshold - threshold / kHysteresisDivisor;
  };
  AlertLevel current = *level;
  AlertLevel target = above(t.critical) ? AlertLevel::kCritical
                      : above(t.warning) ? AlertLevel::kWarning
                                         : AlertLevel::kResolved;
  if (target > current) {
    // Crossing both levels at once reports both, in order.
    if (current < AlertLevel::kWarning && target == AlertLevel::kCritical && above(t.warning)) {
      out->Add(snap, kind, AlertLevel::kWarning, value, t.warning);
    }
    out->Add(snap, kind, target, value, target == AlertLevel::kCritical ? t.critical : t.warning);
    *level = target;
    return;
  }
  if (target == current) return;
  AlertLevel next = target;
  if (current == AlertLevel::kCritical && holds(t.critical)) {
    next = AlertLevel::kCritical;
  } else if (holds(t.warning)) {
    next = AlertLevel::kWarning;
  }
  if (next == AlertLevel::kResolved) {
    out->Add(snap, kind, AlertLevel::kResolved, value, t.warning != 0 ? t.warning : t.critical);
  }
  *level = next;
}

// Formats "<prefix>.<n>.pb.gz" into `buf`.
void ProfilePath(const char* prefix, std::uint32_t n, char* buf, std::size_t capacity) {
  raw::Buffer b;
  b.Str(prefix).Char('.').Udec(n).Str(".pb.gz");
  std::size_t len = b.size() < capacity - 1 ? b.size() : capacity - 1;
  memcpy(buf, b.data(), len);
  buf[len] = '\0';
}

// ---- the worker thread ----

constinit std::atomic<std::uint32_t> g_wake{0};  // futex word
constinit std::atomic<bool> g_worker_stop{false};
constinit SpinLock g_control_lock;
constinit bool g_worker_running STRATA_GUARDED_BY(g_control_lock) = false;
constinit pthread_t g_worker_thread STRATA_GUARDED_BY(g_control_lock) = {};

std::uint32_t* FutexWord() { return reinterpret_cast<std::uint32_t*>(&g_wake); }

void WakeWorker() {
  // Release: the worker's acquire load of g_wake sees the settings stored
  // before this call.
  g_wake.fetch_add(1, std::memory_order_release);
  syscall(SYS_futex, FutexWord(), FUTEX_WAKE_PRIVATE, INT_MAX, nullptr, nullptr, 0);
}

void WaitForWake(std::uint32_t seen, std::uint64_t ns) {
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / kNanosPerSecond);
  ts.tv_nsec = static_cast<long>(ns % kNanosPerSecond);
  // Returns at once when g_wake no longer equals `seen` (EAGAIN).
  syscall(SYS_futex, FutexWord(), FUTEX_WAIT_PRIVATE, seen, &ts, nullptr, 0);
}

void* WorkerMain(void*) {
  t_is_worker = true;
  pthread_setname_np(pthread_self(), "strata-monitor");
  std::uint64_t generation = ~std::uint64_t{0};
  std::uint64_t next_tick = 0;
  std::uint64_t next_limit_check = 0;
  std::uint64_t last_pressure = 0;
  bool pressure_armed = true;  // false while above the threshold
  // Acquire: pairs with the release store in StopWorkerIfIdleLocked().
  while (!g_worker_stop.load(std::memory_order_acquire)) {
    // Acquire: pairs with WakeWorker()'s release increment.
    const std::uint32_t seen = g_wake.load(std::memory_order_acquire);
    std::uint64_t now = MonotonicNanos();
    const bool enabled = g_monitor_enabled.load(std::memory_order_acquire);
    const std::uint64_t gen = g_config_generation.load(std::memory_order_acquire);
    if (gen != generation) {  // (re)started: tick now
      generation = gen;
      next_tick = now;
    }
    if (enabled && now >= next_tick) {
      MemoryMonitorTick();
      next_tick = now + g_interval_ms.load(std::memory_order_relaxed) * kNanosPerMilli;
    }
    const std::size_t limit = g_soft_limit.load(std::memory_order_relaxed);
    if (limit != 0 && now >= next_limit_check) {
      if (CommittedBytes() <= PressureThreshold(limit)) {
        pressure_armed = true;
      } else if (pressure_armed || now - last_pressure >= kPressureRepeatMs * kNanosPerMilli) {
        RelievePressure();
        pressure_armed = false;
        last_pressure = now;
      }
      next_limit_check = now + kLimitPollMs * kNanosPerMilli;
    }
    now = MonotonicNanos();
    std::uint64_t deadline = now + kIdleWaitNs;
    if (enabled && next_tick < deadline) deadline = next_tick;
    if (limit != 0 && next_limit_check < deadline) deadline = next_limit_check;
    if (deadline > now) WaitForWake(seen, deadline - now);
  }
  return nullptr;
}

void ForkPrepare() STRATA_ACQUIRE(g_queue_lock, g_history_lock) {
  g_queue_lock.Lock();
  g_history_lock.Lock();
}
void ForkParent() STRATA_RELEASE(g_queue_lock, g_history_lock) {
  g_history_lock.Unlock();
  g_queue_lock.Unlock();
}
void ForkChild() STRATA_RELEASE(g_queue_lock, g_history_lock) {
  g_history_lock.Unlock();
  g_queue_lock.Unlock();
  // The worker does not exist in the child; locks it (or another vanished
  // thread) held are free again. Only the forking thread runs here.
  g_control_lock.ResetAfterFork();
  g_tick_lock.ResetAfterFork();
  g_pressure_lock.ResetAfterFork();
  g_pressure_callbacks.ResetAfterFork();
  g_alert_callbacks.ResetAfterFork();
  g_control_lock.Lock();
  g_worker_running = false;
  g_control_lock.Unlock();
  g_worker_stop.store(false, std::memory_order_relaxed);
  g_monitor_enabled.store(false, std::memory_order_relaxed);
}

struct MonitorForkLayer {
  static constexpr ForkInitLayer kLayer = ForkInitLayer::kMonitor;
  static void Prepare() STRATA_NO_THREAD_SAFETY_ANALYSIS { ForkPrepare(); }
  static void Parent() STRATA_NO_THREAD_SAFETY_ANALYSIS { ForkParent(); }
  static void Child() STRATA_NO_THREAD_SAFETY_ANALYSIS { ForkChild(); }
};

// First thing in every entry point that takes one of this file's locks.
void EnsureForkHandlers() { LayerForkInit<MonitorForkLayer>::Ensure(); }

bool EnsureWorkerLocked() STRATA_REQUIRES(g_control_lock) {
  if (g_worker_running) {
    WakeWorker();
    return true;
  }
  layer_fork_init::Observe(ForkInitLayer::kMonitor, ForkInitPoint::kStart);
  g_worker_stop.store(false, std::memory_order_relaxed);
  // The worker runs with every signal blocked (it inherits the mask of
  // this thread, which holds g_control_lock): handlers run on the
  // program's threads, and the worker's sleeps are never interrupted.
  pthread_t thread;
  int rc = pthread_create(&thread, nullptr, &WorkerMain, nullptr);
  if (rc != 0) {
    raw::Log("monitor: cannot create the monitor thread");
    return false;
  }
  g_worker_thread = thread;
  g_worker_running = true;
  return true;
}

void StopWorkerIfIdleLocked() STRATA_REQUIRES(g_control_lock) {
  if (!g_worker_running) return;
  if (g_monitor_enabled.load(std::memory_order_relaxed) || g_soft_limit.load(std::memory_order_relaxed) != 0) {
    WakeWorker();
    return;
  }
  if (t_is_worker) return;  // cannot join itself: it idles until stopped
  // Release: pairs with the worker's acquire load of g_worker_stop.
  g_worker_stop.store(true, std::memory_order_release);
  WakeWorker();
  pthread_join(g_worker_thread, nullptr);
  g_worker_running = false;
}

bool ValidConfig(const MonitorConfig& c) {
  if (c.interval_ms == 0) return false;
  if (c.history_size == 0 || c.history_size > kMaxHistory) return false;
  if (c.profile_prefix != nullptr && strlen(c.profile_prefix) > kMaxProfilePrefix) return false;
  return true;
}

bool ParseUnsigned(const char* s, std::uint64_t* out) {
  if (s == nullptr || *s < '0' || *s > '9') return false;
  std::uint64_t v = 0;
  for (; *s >= '0' && *s <= '9'; ++s) {
    std::uint64_t digit = static_cast<std::uint64_t>(*s - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  if (*s != '\0') return false;
  *out = v;
  return true;
}

char Lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool EqualsIgnoreCase(const char* a, const char* b) {
  for (; *a != '\0' && *b != '\0'; ++a, ++b) {
    if (Lower(*a) != Lower(*b)) return false;
  }
  return *a == *b;
}

// Reads a small file into `buf` (NUL-terminated). False when unreadable.
bool ReadSmallFile(const char* path, char* buf, std::size_t capacity) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return false;
  std::size_t used = 0;
  while (used < capacity - 1) {
    ssize_t n = read(fd, buf + used, capacity - 1 - used);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    used += static_cast<std::size_t>(n);
  }
  close(fd);
  buf[used] = '\0';
  return true;
}

// "<dir>/memory.max" as a number; 0 for "max", missing or malformed.
std::uint64_t ReadMemoryMax(const char* dir, std::size_t dir_len) {
  static constexpr char kFile[] = "/memory.max";
  char path[kPathBytes];
  if (dir_len + sizeof(kFile) > sizeof(path)) return 0;
  memcpy(path, dir, dir_len);
  memcpy(path + dir_len, kFile, sizeof(kFile));
  char text[64];
  if (!ReadSmallFile(path, text, sizeof(text))) return 0;
  std::size_t n = strlen(text);
  while (n > 0 && (text[n - 1] == '\n' || text[n - 1] == ' ' || text[n - 1] == '\t')) text[--n] = '\0';
  std::uint64_t v = 0;
  return ParseUnsigned(text, &v) ? v : 0;
}

void LogBadValue(const char* name, const char* value, const char* expected) {
  raw::Buffer b;
  b.Str("strata: ignoring ").Str(name).Char('=').Str(value).Str(": expected ").Str(expected).Char('\n');
  b.WriteTo(2);
}

}  // namespace

// ---------------------------------------------------------------------------
// Soft limit.

void SetMemoryLimit(std::size_t bytes) noexcept {
  EnsureForkHandlers();
  g_soft_limit.store(bytes, std::memory_order_relaxed);
  // Inside a callback only the value changes: taking g_control_lock there
  // could wait for a thread that joins the worker, which may wait for the
  // lock held around this callback.
  if (t_in_callback) return;
  NoSignalsLockHolder h(&g_control_lock);
  if (bytes != 0) {
    EnsureWorkerLocked();
  } else {
    StopWorkerIfIdleLocked();
  }
}

std::size_t MemoryLimit() noexcept { return g_soft_limit.load(std::memory_order_relaxed); }

bool RegisterMemoryPressureCallback(PressureCallback fn, void* arg) noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return false;
  return g_pressure_callbacks.Add(fn, arg);
}

bool UnregisterMemoryPressureCallback(PressureCallback fn, void* arg) noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return false;
  return g_pressure_callbacks.Remove(fn, arg);
}

bool CheckMemoryLimitNow() noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return false;
  return RelievePressure();
}

// ---------------------------------------------------------------------------
// Hard limit.

void SetHardMemoryLimit(std::size_t bytes) noexcept { internal::g_page_heap.set_hard_limit(bytes); }

std::size_t HardMemoryLimit() noexcept { return internal::g_page_heap.hard_limit(); }

// ---------------------------------------------------------------------------
// Monitor.

const char* AlertKindName(AlertKind kind) noexcept {
  switch (kind) {
    case AlertKind::kLiveBytes:
      return "live_bytes";
    case AlertKind::kCommittedBytes:
      return "committed_bytes";
    case AlertKind::kThreads:
      return "threads";
    case AlertKind::kGrowth:
      return "growth";
    case AlertKind::kMemoryLimit:
      return "memory_limit";
  }
  return "unknown";
}

const char* AlertLevelName(AlertLevel level) noexcept {
  switch (level) {
    case AlertLevel::kResolved:
      return "RESOLVED";
    case AlertLevel::kWarning:
      return "WARNING";
    case AlertLevel::kCritical:
      return "CRITICAL";
  }
  return "UNKNOWN";
}

bool ConfigureMemoryMonitor(const MonitorConfig& config) noexcept {
  EnsureForkHandlers();
  if (t_in_callback || !ValidConfig(config)) return false;
  {
    SpinLockHolder h(&g_tick_lock);
    g_state.config = config;
    g_state.prefix[0] = '\0';
    if (config.profile_prefix != nullptr) {
      std::size_t n = strlen(config.profile_prefix);  // <= kMaxProfilePrefix (ValidConfig)
      memcpy(g_state.prefix, config.profile_prefix, n + 1);
    }
    g_state.config.profile_prefix = g_state.prefix;
    for (AlertLevel& l : g_state.levels) l = AlertLevel::kResolved;
    g_state.tick_sequence = 0;
    g_state.growth_since_ns = 0;
    g_state.profiles = 0;
    g_state.configured = true;
    HistoryReset(config.history_size);
    QueueClear();
    g_interval_ms.store(config.interval_ms, std::memory_order_relaxed);
    g_log_alerts.store(config.log_alerts, std::memory_order_relaxed);
  }
  g_alert_callbacks.SetPrimary(config.on_alert, config.on_alert_arg);
  // Release: the worker's acquire load sees the new interval.
  g_config_generation.fetch_add(1, std::memory_order_release);
  return true;
}

bool StartMemoryMonitor(const MonitorConfig& config) noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return false;
  if (!ConfigureMemoryMonitor(config)) return false;
  NoSignalsLockHolder h(&g_control_lock);
  g_monitor_enabled.store(true, std::memory_order_release);
  if (!EnsureWorkerLocked()) {
    g_monitor_enabled.store(false, std::memory_order_relaxed);
    return false;
  }
  return true;
}

void StopMemoryMonitor() noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return;
  NoSignalsLockHolder h(&g_control_lock);
  g_monitor_enabled.store(false, std::memory_order_release);
  StopWorkerIfIdleLocked();
}

bool MemoryMonitorRunning() noexcept { return g_monitor_enabled.load(std::memory_order_acquire); }

bool MemoryMonitorTick() noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return false;
  PendingAlerts pending;
  char profile_path[kProfilePathBytes];
  profile_path[0] = '\0';
  int growth_index = -1;  // index in pending of the growth alert
  std::uint32_t profile_number = 0;
  {
    SpinLockHolder h(&g_tick_lock);
    if (!g_state.configured) return false;
    const MonitorConfig& c = g_state.config;
    MemorySnapshot snap = TakeSnapshot(++g_state.tick_sequence);
    HistoryPush(snap);
    EvaluateThresholds(snap, AlertKind::kLiveBytes,
                       snap.live_bytes > 0 ? static_cast<std::uint64_t>(snap.live_bytes) : 0, c.live_bytes,
                       &g_state.levels[0], &pending);
    EvaluateThresholds(snap, AlertKind::kCommittedBytes, snap.committed_bytes, c.committed_bytes, &g_state.levels[1],
                       &pending);
    if (snap.threads != 0) {
      EvaluateThresholds(snap, AlertKind::kThreads, snap.threads, c.threads, &g_state.levels[2], &pending);
    }
    if (c.growth_bytes != 0 || c.growth_percent != 0) {
      std::uint64_t window = static_cast<std::uint64_t>(c.growth_window_ms) * kNanosPerMilli;
      std::uint64_t since = snap.monotonic_ns > window ? snap.monotonic_ns - window : 0;
      if (since < g_state.growth_since_ns) since = g_state.growth_since_ns;
      std::int64_t low = HistoryMinLiveSince(since, snap.live_bytes);
      std::uint64_t grown = snap.live_bytes > low ? static_cast<std::uint64_t>(snap.live_bytes - low) : 0;
      std::uint64_t base = low > 0 ? static_cast<std::uint64_t>(low) : 0;
      std::uint64_t percent_bytes = base / 100 * c.growth_percent + base % 100 * c.growth_percent / 100;
      bool by_bytes = c.growth_bytes != 0 && grown > c.growth_bytes;
      bool by_percent = c.growth_percent != 0 && base != 0 && grown > percent_bytes;
      if (by_bytes || by_percent) {
        g_state.growth_since_ns = snap.monotonic_ns;
        growth_index = pending.count;
        pending.Add(snap, AlertKind::kGrowth, AlertLevel::kWarning, grown, by_bytes ? c.growth_bytes : percent_bytes);
        if (g_state.prefix[0] != '\0' && g_state.profiles < c.max_profiles) {
          profile_number = ++g_state.profiles;
          ProfilePath(g_state.prefix, profile_number, profile_path, sizeof(profile_path));
        }
      }
    }
  }
  Bump(g_counters.ticks);
  raw::Buffer note;
  if (profile_number != 0) {
    int rc = WriteHeapProfile(profile_path);
    if (rc == 0) {
      Bump(g_counters.profiles_written);
      note.Str("heap profile written to ").Str(profile_path);
    } else {
      Bump(g_counters.profile_failures);
      note.Str("cannot write heap profile ").Str(profile_path).Str(": error ").Dec(rc);
      profile_number = 0;
    }
  }
  note.Char('\0');
  for (int i = 0; i < pending.count; ++i) {
    if (i == growth_index) {
      pending.alerts[i].profile_index = profile_number;
      Deliver(pending.alerts[i], note.data());
    } else {
      Deliver(pending.alerts[i], nullptr);
    }
  }
  return true;
}

std::size_t PollAlerts(Alert* out, std::size_t max) noexcept {
  EnsureForkHandlers();
  NoSignalsLockHolder h(&g_queue_lock);
  std::size_t n = 0;
  while (n < max && g_queue_count > 0) {
    out[n++] = g_queue[g_queue_head];
    g_queue_head = (g_queue_head + 1) % kAlertQueueCapacity;
    --g_queue_count;
  }
  return n;
}

std::size_t GetMemoryHistory(MemorySnapshot* out, std::size_t max) noexcept {
  EnsureForkHandlers();
  NoSignalsLockHolder h(&g_history_lock);
  std::size_t n = g_history_count < max ? g_history_count : max;
  // The newest n, oldest first: start n slots behind the write position.
  std::uint32_t start = (g_history_next + g_history_capacity - static_cast<std::uint32_t>(n)) % g_history_capacity;
  for (std::size_t i = 0; i < n; ++i) out[i] = g_history[(start + i) % g_history_capacity];
  return n;
}

MonitorCounters GetMonitorCounters() noexcept {
  MonitorCounters c;
  c.ticks = g_counters.ticks.load(std::memory_order_relaxed);
  c.alerts_raised = g_counters.alerts_raised.load(std::memory_order_relaxed);
  c.alerts_dropped = g_counters.alerts_dropped.load(std::memory_order_relaxed);
  c.profiles_written = g_counters.profiles_written.load(std::memory_order_relaxed);
  c.profile_failures = g_counters.profile_failures.load(std::memory_order_relaxed);
  c.pressure_events = g_counters.pressure_events.load(std::memory_order_relaxed);
  c.pressure_released_bytes = g_counters.pressure_released_bytes.load(std::memory_order_relaxed);
  for (int k = 0; k < kAlertKindCount; ++k) {
    for (int l = 0; l < kAlertLevelCount; ++l) {
      c.alerts_by_kind_level[k][l] = g_counters.by_kind_level[k][l].load(std::memory_order_relaxed);
    }
  }
  return c;
}

MonitorStatus GetMonitorStatus() noexcept {
  EnsureForkHandlers();
  MonitorStatus s{};
  s.running = g_monitor_enabled.load(std::memory_order_acquire);
  SpinLockHolder h(&g_tick_lock);
  if (!g_state.configured) return s;
  const MonitorConfig& c = g_state.config;
  s.configured = true;
  s.interval_ms = c.interval_ms;
  s.history_size = c.history_size;
  s.live_bytes = c.live_bytes;
  s.committed_bytes = c.committed_bytes;
  s.threads = c.threads;
  s.growth_bytes = c.growth_bytes;
  s.growth_percent = c.growth_percent;
  s.growth_window_ms = c.growth_window_ms;
  s.live_bytes_level = g_state.levels[0];
  s.committed_bytes_level = g_state.levels[1];
  s.threads_level = g_state.levels[2];
  return s;
}

std::size_t GetRecentAlerts(Alert* out, std::size_t max) noexcept {
  EnsureForkHandlers();
  NoSignalsLockHolder h(&g_queue_lock);
  std::size_t n = g_recent_count < max ? g_recent_count : max;
  // The newest n, oldest first.
  for (std::size_t i = 0; i < n; ++i) {
    out[i] = g_recent[(g_recent_next + kRecentAlerts - n + i) % kRecentAlerts];
  }
  return n;
}

bool RegisterAlertCallback(AlertCallback fn, void* arg) noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return false;
  return g_alert_callbacks.Add(fn, arg);
}

bool UnregisterAlertCallback(AlertCallback fn, void* arg) noexcept {
  EnsureForkHandlers();
  if (t_in_callback) return false;
  return g_alert_callbacks.Remove(fn, arg);
}

// ---------------------------------------------------------------------------
// Environment.

bool ParseByteSize(const char* text, std::uint64_t* bytes) noexcept {
  if (text == nullptr || *text < '0' || *text > '9') return false;
  std::uint64_t v = 0;
  const char* s = text;
  for (; *s >= '0' && *s <= '9'; ++s) {
    std::uint64_t digit = static_cast<std::uint64_t>(*s - '0');
    if (v > (UINT64_MAX - digit) / 10) return false;
    v = v * 10 + digit;
  }
  int shift = 0;
  switch (Lower(*s)) {
    case 'k':
      shift = 10;
      break;
    case 'm':
      shift = 20;
      break;
    case 'g':
      shift = 30;
      break;
    case 't':
      shift = 40;
      break;
    default:
      break;
  }
  if (shift != 0) {
    ++s;
    if (Lower(*s) == 'i' && Lower(s[1]) == 'b') s += 2;
  }
  if (Lower(*s) == 'b' && (shift != 0 || s[1] == '\0')) ++s;
  if (*s != '\0') return false;
  if (shift != 0 && v > (UINT64_MAX >> shift)) return false;
  *bytes = v << shift;
  return true;
}

std::uint64_t ReadCgroupMemoryLimit(const char* proc_cgroup_file, const char* cgroup_root) noexcept {
  if (proc_cgroup_file == nullptr || cgroup_root == nullptr) return 0;
  char text[kProcReadBytes];
  if (!ReadSmallFile(proc_cgroup_file, text, sizeof(text))) return 0;
  // The cgroup v2 entry: "0::<path>".
  const char* line = text;
  const char* path = nullptr;
  while (*line != '\0') {
    if (strncmp(line, "0::", 3) == 0) {
      path = line + 3;
      break;
    }
    const char* nl = strchr(line, '\n');
    if (nl == nullptr) break;
    line = nl + 1;
  }
  if (path == nullptr) return 0;
  std::size_t path_len = strcspn(path, "\n");
  char dir[kPathBytes];
  std::size_t root_len = strlen(cgroup_root);
  while (root_len > 0 && cgroup_root[root_len - 1] == '/') --root_len;
  if (root_len + path_len + 1 >= sizeof(dir)) return 0;
  memcpy(dir, cgroup_root, root_len);
  std::size_t len = root_len;
  if (path_len > 0 && path[0] != '/') dir[len++] = '/';
  memcpy(dir + len, path, path_len);
  len += path_len;
  // Walk from the process's cgroup up to the root: the tightest limit wins.
  std::uint64_t best = 0;
  for (;;) {
    while (len > root_len && dir[len - 1] == '/') --len;
    std::uint64_t v = ReadMemoryMax(dir, len);
    if (v != 0 && (best == 0 || v < best)) best = v;
    if (len <= root_len) break;
    while (len > root_len && dir[len - 1] != '/') --len;
  }
  return best;
}

MonitorEnvironment ParseMonitorEnvironment(GetEnvFunction get_env, const char* proc_cgroup_file,
                                           const char* cgroup_root) noexcept {
  MonitorEnvironment env;
  env.config.log_alerts = true;
  if (get_env == nullptr) return env;
  auto bad = [&env](const char* name, const char* value, const char* expected) {
    LogBadValue(name, value, expected);
    ++env.errors;
  };
  auto bytes_var = [&](const char* name, std::uint64_t* out) {
    const char* v = get_env(name);
    if (v == nullptr || *v == '\0') return;
    if (!ParseByteSize(v, out)) bad(name, v, "bytes (suffixes K, M, G, T)");
  };
  auto number_var = [&](const char* name, std::uint64_t min, std::uint64_t max, auto* out) {
    const char* v = get_env(name);
    if (v == nullptr || *v == '\0') return;
    std::uint64_t n = 0;
    if (!ParseUnsigned(v, &n) || n < min || n > max) {
      bad(name, v, "a number in range");
      return;
    }
    *out = static_cast<std::remove_reference_t<decltype(*out)>>(n);
  };
  auto bool_var = [&](const char* name, bool* out) {
    const char* v = get_env(name);
    if (v == nullptr || *v == '\0') return;
    if (EqualsIgnoreCase(v, "1") || EqualsIgnoreCase(v, "true") || EqualsIgnoreCase(v, "yes") ||
        EqualsIgnoreCase(v, "on")) {
      *out = true;
    } else if (EqualsIgnoreCase(v, "0") || EqualsIgnoreCase(v, "false") || EqualsIgnoreCase(v, "no") ||
               EqualsIgnoreCase(v, "off")) {
      *out = false;
    } else {
      bad(name, v, "0 or 1");
    }
  };

  if (const char* v = get_env("STRATA_MEMORY_LIMIT"); v != nullptr && *v != '\0') {
    if (EqualsIgnoreCase(v, "auto")) {
      env.memory_limit = ReadCgroupMemoryLimit(proc_cgroup_file, cgroup_root);
    } else if (!ParseByteSize(v, &env.memory_limit)) {
      bad("STRATA_MEMORY_LIMIT", v, "bytes (suffixes K, M, G, T) or auto");
    }
  }
  bytes_var("STRATA_HARD_MEMORY_LIMIT", &env.hard_memory_limit);
  bool_var("STRATA_MONITOR", &env.monitor);
  MonitorConfig& c = env.config;
  number_var("STRATA_MONITOR_INTERVAL_MS", 1, UINT32_MAX, &c.interval_ms);
  bytes_var("STRATA_MONITOR_WARN_BYTES", &c.live_bytes.warning);
  bytes_var("STRATA_MONITOR_CRIT_BYTES", &c.live_bytes.critical);
  bytes_var("STRATA_MONITOR_WARN_COMMITTED", &c.committed_bytes.warning);
  bytes_var("STRATA_MONITOR_CRIT_COMMITTED", &c.committed_bytes.critical);
  number_var("STRATA_MONITOR_WARN_THREADS", 0, UINT64_MAX, &c.threads.warning);
  number_var("STRATA_MONITOR_CRIT_THREADS", 0, UINT64_MAX, &c.threads.critical);
  bytes_var("STRATA_MONITOR_GROWTH_BYTES", &c.growth_bytes);
  number_var("STRATA_MONITOR_GROWTH_PERCENT", 0, UINT32_MAX, &c.growth_percent);
  number_var("STRATA_MONITOR_GROWTH_WINDOW_MS", 1, UINT32_MAX, &c.growth_window_ms);
  number_var("STRATA_MONITOR_HISTORY", 1, kMaxHistory, &c.history_size);
  if (const char* v = get_env("STRATA_MONITOR_PROFILE"); v != nullptr && *v != '\0') {
    if (strlen(v) > kMaxProfilePrefix) {
      bad("STRATA_MONITOR_PROFILE", v, "a shorter path prefix");
    } else {
      c.profile_prefix = v;
    }
  }
  bool_var("STRATA_MONITOR_LOG", &c.log_alerts);
  return env;
}

void InitMonitorFromEnvironment() noexcept {
  static constinit std::atomic<bool> done{false};
  if (done.exchange(true, std::memory_order_acq_rel)) return;
  MonitorEnvironment env = ParseMonitorEnvironment([](const char* name) -> const char* { return getenv(name); },
                                                   "/proc/self/cgroup", "/sys/fs/cgroup");
  if (env.hard_memory_limit != 0) SetHardMemoryLimit(env.hard_memory_limit);
  if (env.memory_limit != 0) SetMemoryLimit(env.memory_limit);
  g_log_alerts.store(env.config.log_alerts && (env.monitor || getenv("STRATA_MONITOR_LOG") != nullptr),
                     std::memory_order_relaxed);
  if (env.monitor && !StartMemoryMonitor(env.config)) raw::Log("monitor: cannot start the memory monitor");
}

}  // namespace strata
