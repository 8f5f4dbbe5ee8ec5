// The leak checker: a conservative mark phase over the tracking layer's
// live records (see leak_check.h for the model and its limits).
#include "alloc/leak_check.h"

#include <fcntl.h>
#include <link.h>
#include <stdlib.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "alloc/internal/page_map.h"
#include "alloc/profile/scratch_arena.h"
#include "alloc/tracking/live_table.h"
#include "alloc/tracking/symbolize.h"
#include "alloc/tracking/tracker.h"
#include "concurrency/base/raw_log.h"
#include "concurrency/base/spin_lock.h"

namespace strata {
namespace {

using profile::ArenaVector;
using profile::ScratchArena;
using tracking::LiveInfo;
using tracking::StackEntry;

enum class State : std::uint8_t { kUnreached = 0, kReachable, kIndirect, kDefinite };

struct Node {
  std::uintptr_t start;
  std::size_t size;    // requested bytes (scanned)
  std::size_t usable;  // usable bytes (pointers into the slack count too)
  StackEntry* stack;
  std::uint64_t time_ns;
  State state;
  bool candidate;  // allocated inside the checked window
  bool suppressed;
};

constinit SpinLock g_check_lock;

class Graph {
 public:
  explicit Graph(ScratchArena* arena) : nodes_(arena), work_(arena) {}

  bool Collect(std::uint64_t since_ns) {
    Ctx ctx{this, since_ns, true};
    tracking::ForEachLive(
        [](const LiveInfo& r, void* arg) {
          auto* c = static_cast<Ctx*>(arg);
          Node n{r.ptr, r.size, r.usable, r.stack, r.time_ns, State::kUnreached, r.time_ns >= c->since, false};
          if (!c->g->nodes_.PushBack(n)) c->ok = false;
        },
        &ctx);
    std::sort(nodes_.begin(), nodes_.end(), [](const Node& a, const Node& b) { return a.start < b.start; });
    if (!nodes_.empty()) {
      lo_ = nodes_[0].start;
      hi_ = nodes_[nodes_.size() - 1].start + nodes_[nodes_.size() - 1].usable;
    }
    return ctx.ok;
  }

  // Index of the node whose block contains `addr`, or -1.
  std::ptrdiff_t Find(std::uintptr_t addr) const {
    if (addr < lo_ || addr >= hi_) return -1;
    const Node* b = nodes_.begin();
    const Node* e = nodes_.end();
    const Node* it = std::upper_bound(b, e, addr, [](std::uintptr_t a, const Node& n) { return a < n.start; });
    if (it == b) return -1;
    --it;
    // Only the requested bytes count (as valgrind and LSan do): the slack
    // up to the usable size holds no live data, so a stale word pointing
    // there keeps nothing alive.
    std::size_t extent = it->size > 0 ? it->size : 1;
    return addr < it->start + extent ? it - b : -1;
  }

  // Marks every block reachable from the words in [begin, end).
  void ScanRoot(std::uintptr_t begin, std::uintptr_t end) {
    ScanRange(begin, end, State::kReachable);
    Drain(State::kReachable, -1);
  }

  // Marks (and scans from) every block for which `is_root(node)` holds.
  template <typename Pred>
  void MarkRoots(Pred&& is_root) {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].state == State::kUnreached && is_root(nodes_[i])) {
        nodes_[i].state = State::kReachable;
        work_.PushBack(static_cast<std::uint32_t>(i));
      }
    }
    Drain(State::kReachable, -1);
  }

  // Splits the unreached blocks into definite leaders and indirect ones.
  void ClassifyLost() {
    for (std::size_t i = 0; i < nodes_.size(); ++i) {
      if (nodes_[i].state != State::kUnreached) continue;
      nodes_[i].state = State::kDefinite;
      leader_ = static_cast<std::ptrdiff_t>(i);
      ScanNode(i, State::kIndirect);
      Drain(State::kIndirect, leader_);
    }
  }

  ArenaVector<Node>& nodes() { return nodes_; }

 private:
  struct Ctx {
    Graph* g;
    std::uint64_t since;
    bool ok;
  };

  void Visit(std::uintptr_t word, State to) {
    std::ptrdiff_t i = Find(word);
    if (i < 0 || i == leader_) return;
    Node& n = nodes_[static_cast<std::size_t>(i)];
    bool take = to == State::kReachable ? n.state == State::kUnreached
                                        : (n.state == State::kUnreached || n.state == State::kDefinite);
    if (!take) return;
    n.state = to;
    work_.PushBack(static_cast<std::uint32_t>(i));
  }

  __attribute__((no_sanitize("address", "thread"))) void ScanRange(std::uintptr_t begin, std::uintptr_t end,
                                                                    State to) {
    begin = (begin + sizeof(void*) - 1) & ~(sizeof(void*) - 1);
    for (std::uintptr_t p = begin; p + sizeof(void*) <= end; p += sizeof(void*)) {
      std::uintptr_t word;
      std::memcpy(&word, reinterpret_cast<const void*>(p), sizeof(word));
      Visit(word, to);
    }
  }

  void ScanNode(std::size_t i, State to) {
    const Node& n = nodes_[i];
    ScanRange(n.start, n.start + n.size, to);
  }

  void Drain(State to, std::ptrdiff_t leader) {
    leader_ = leader;
    while (!work_.empty()) {
      std::uint32_t i = work_[work_.size() - 1];
      work_.Resize(work_.size() - 1);
      ScanNode(i, to);
    }
  }

  ArenaVector<Node> nodes_;
  ArenaVector<std::uint32_t> work_;
  std::uintptr_t lo_ = 0;
  std::uintptr_t hi_ = 0;
  std::ptrdiff_t leader_ = -1;
};

// ---- roots ----

// Reads a whole small file into the arena; returns its length or -1.
long ReadFile(const char* path, ScratchArena* arena, char** out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return -1;
  std::size_t cap = 1 << 16;
  char* buf = static_cast<char*>(arena->Allocate(cap, 1));
  std::size_t len = 0;
  for (;;) {
    if (buf == nullptr) break;
    if (len + 1 >= cap) {
      buf = static_cast<char*>(arena->Reallocate(buf, cap, cap * 2, 1));
      cap *= 2;
      if (buf == nullptr) break;
    }
    ssize_t n = read(fd, buf + len, cap - len - 1);
    if (n <= 0) break;
    len += static_cast<std::size_t>(n);
  }
  close(fd);
  if (buf == nullptr) return -1;
  buf[len] = '\0';
  *out = buf;
  return static_cast<long>(len);
}

std::uintptr_t ParseHex(const char*& s) {
  std::uintptr_t v = 0;
  if (s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) s += 2;
  for (;; ++s) {
    char c = *s;
    int d = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
    if (d < 0) break;
    v = v * 16 + static_cast<std::uintptr_t>(d);
  }
  return v;
}

struct Mapping {
  std::uintptr_t start, end;
  bool writable;
  bool is_heap;
};

bool ReadMaps(ScratchArena* arena, ArenaVector<Mapping>* maps) {
  char* text = nullptr;
  if (ReadFile("/proc/self/maps", arena, &text) < 0) return false;
  for (const char* s = text; *s != '\0';) {
    Mapping m{};
    m.start = ParseHex(s);
    if (*s == '-') ++s;
    m.end = ParseHex(s);
    while (*s == ' ') ++s;
    m.writable = s[0] == 'r' && s[1] == 'w';
    const char* eol = std::strchr(s, '\n');
    if (eol == nullptr) eol = s + std::strlen(s);
    const char* heap = std::strstr(s, "[heap]");
    m.is_heap = heap != nullptr && heap < eol;
    maps->PushBack(m);
    s = *eol ? eol + 1 : eol;
  }
  return true;
}

const Mapping* MappingOf(const ArenaVector<Mapping>& maps, std::uintptr_t addr) {
  for (const Mapping& m : maps) {
    if (addr >= m.start && addr < m.end) return &m;
  }
  return nullptr;
}

int ScanGlobals(struct dl_phdr_info* info, std::size_t, void* arg) {
  auto* g = static_cast<Graph*>(arg);
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_W) == 0) continue;
    std::uintptr_t begin = info->dlpi_addr + ph.p_vaddr;
    g->ScanRoot(begin, begin + ph.p_memsz);
  }
  return 0;
}

// Scans every thread's stack from its stack pointer to the end of the
// mapping that holds it (glibc keeps a thread's static TLS there too).
// `self_sp` is where the calling thread's scan starts: the frame of the
// public entry point, whose prologue spilled the caller's registers (frames
// below it are the checker's own and hold copies of block addresses).
void ScanThreads(Graph* g, ScratchArena* arena, const ArenaVector<Mapping>& maps, std::uintptr_t self_sp) {
  pid_t self = static_cast<pid_t>(syscall(SYS_gettid));
  // glibc's opendir allocates: read the directory with getdents64.
  int fd = open("/proc/self/task", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  const Mapping* m = MappingOf(maps, self_sp);
  if (m != nullptr) g->ScanRoot(self_sp, m->end);
  if (fd < 0) return;
  char buf[4096];
  for (;;) {
    long n = syscall(SYS_getdents64, fd, buf, sizeof(buf));
    if (n <= 0) break;
    for (long off = 0; off < n;) {
      struct Dirent64 {
        std::uint64_t ino;
        std::int64_t off;
        unsigned short reclen;
        unsigned char type;
        char name[1];
      };
      auto* d = reinterpret_cast<Dirent64*>(buf + off);
      off += d->reclen;
      if (d->name[0] < '0' || d->name[0] > '9') continue;
      pid_t tid = static_cast<pid_t>(atoi(d->name));
      if (tid == self) continue;
      char path[64];
      raw::Buffer p;
      p.Str("/proc/self/task/").Str(d->name).Str("/syscall");
      std::size_t len = p.size() < sizeof(path) - 1 ? p.size() : sizeof(path) - 1;
      std::memcpy(path, p.data(), len);
      path[len] = '\0';
      char* text = nullptr;
      if (ReadFile(path, arena, &text) < 0) continue;
      // "nr a1 a2 a3 a4 a5 a6 sp pc" for a blocked thread; "running" else.
      const char* s = text;
      int field = 0;
      std::uintptr_t sp = 0;
      while (*s != '\0' && field < 8) {
        while (*s == ' ') ++s;
        if (field == 7) {
          sp = ParseHex(s);
          break;
        }
        while (*s != ' ' && *s != '\0' && *s != '\n') ++s;
        ++field;
      }
      if (sp == 0) continue;  // running: its stack cannot be located safely
      const Mapping* tm = MappingOf(maps, sp);
      if (tm != nullptr && tm->writable) g->ScanRoot(sp > tm->start + 128 ? sp - 128 : tm->start, tm->end);
    }
  }
  close(fd);
}

// ---- suppressions ----

struct Suppressions {
  char* text = nullptr;
  const char* patterns[256];
  int count = 0;
};

void LoadSuppressions(ScratchArena* arena, Suppressions* s) {
  const char* path = getenv("STRATA_LEAK_SUPPRESSIONS");
  if (path == nullptr || *path == '\0') return;
  if (ReadFile(path, arena, &s->text) < 0) {
    raw::Log("leak check: cannot read STRATA_LEAK_SUPPRESSIONS file");
    return;
  }
  for (char* line = s->text; *line != '\0' && s->count < 256;) {
    char* eol = std::strchr(line, '\n');
    if (eol != nullptr) *eol = '\0';
    while (*line == ' ' || *line == '\t') ++line;
    if (std::strncmp(line, "leak:", 5) == 0 && line[5] != '\0') s->patterns[s->count++] = line + 5;
    if (eol == nullptr) break;
    line = eol + 1;
  }
}

bool Suppressed(const Suppressions& s, const StackEntry* stack) {
  if (s.count == 0 || stack == nullptr) return false;
  char name[512];
  for (int f = 0; f < stack->depth; ++f) {
    tracking::Symbolize(stack->frames[f], name, sizeof(name));
    for (int i = 0; i < s.count; ++i) {
      if (std::strstr(name, s.patterns[i]) != nullptr) return true;
    }
  }
  return false;
}

// ---- report ----

struct Group {
  StackEntry* stack;
  State state;
  std::uint64_t bytes;
  std::uint64_t objects;
  std::uint64_t oldest_ns;
};

void PrintStack(int fd, const StackEntry* stack) {
  if (stack == nullptr || stack->depth == 0) {
    raw::Buffer b;
    b.Str("    <stack unavailable>\n");
    b.WriteTo(fd);
    return;
  }
  const int end = tracking::ModuleFrames(stack->frames, stack->depth);
  int first = tracking::FirstUserFrame(stack->frames, end);
  for (int f = first; f < end; ++f) {
    raw::Buffer b;
    b.Str("    ");
    tracking::AppendFrame(&b, f - first, stack->frames[f]);
    b.Char('\n');
    b.WriteTo(fd);
  }
}

void PrintGroups(int fd, ArenaVector<Group>& groups, State state, const char* title, int max_sites,
                 std::uint64_t now) {
  int shown = 0;
  for (const Group& g : groups) {
    if (g.state != state) continue;
    if (shown++ >= max_sites) break;
    raw::Buffer b;
    std::uint64_t age_ms = now > g.oldest_ns ? (now - g.oldest_ns) / 1'000'000 : 0;
    b.Char('\n').Str(title).Str(" of ").Udec(g.bytes).Str(" byte(s) in ").Udec(g.objects)
        .Str(" object(s) allocated from (oldest ").Udec(age_ms / 1000).Char('.').Udec(age_ms % 1000 / 100)
        .Str(" s ago):\n");
    b.WriteTo(fd);
    PrintStack(fd, g.stack);
  }
}

// Code range of the dynamic loader: its allocations (DTVs, link maps) are
// reachable from places no scan sees (cached thread stacks), as LSan also
// assumes.
int FindLoader(struct dl_phdr_info* info, std::size_t, void* arg) {
  auto* range = static_cast<std::uintptr_t*>(arg);
  if (info->dlpi_name == nullptr || std::strstr(info->dlpi_name, "/ld-linux") == nullptr) return 0;
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0) continue;
    range[0] = info->dlpi_addr + ph.p_vaddr;
    range[1] = range[0] + ph.p_memsz;
  }
  return 1;
}

bool AllocatedByLoader(const StackEntry* stack, const std::uintptr_t* range) {
  if (stack == nullptr || range[0] == range[1]) return false;
  for (int f = 0; f < stack->depth && f < 8; ++f) {
    auto pc = reinterpret_cast<std::uintptr_t>(stack->frames[f]);
    if (pc >= range[0] && pc < range[1]) return true;
  }
  return false;
}

LeakReport RunCheck(const LeakCheckOptions& options, bool live_is_leak, std::uintptr_t self_sp) {
  LeakReport report;
  SpinLockHolder hold(&g_check_lock);
  if (!tracking::TrackAll()) {
    if (options.report_fd >= 0) raw::Log("leak check: leak checking is not enabled (STRATA_LEAKCHECK=1)");
    return report;
  }
  tracking::InitSymbolizer();
  ScratchArena arena;
  Graph graph(&arena);
  if (!graph.Collect(options.since_ns)) {
    raw::Log("leak check: out of scratch memory");
    return report;
  }
  ArenaVector<Mapping> maps(&arena);
  ReadMaps(&arena, &maps);
  if (!live_is_leak) {
    std::uintptr_t loader[2] = {0, 0};
    dl_iterate_phdr(&FindLoader, loader);
    graph.MarkRoots([&loader](const Node& n) { return AllocatedByLoader(n.stack, loader); });
    dl_iterate_phdr(&ScanGlobals, &graph);
    // The brk heap, minus the class map's flat array if it lies there.
    const std::uintptr_t map_begin = internal::g_class_map.flat_begin();
    const std::uintptr_t map_end = internal::g_class_map.flat_end();
    for (const Mapping& m : maps) {
      if (!m.is_heap || !m.writable) continue;
      if (map_end <= m.start || map_begin >= m.end) {
        graph.ScanRoot(m.start, m.end);
        continue;
      }
      if (m.start < map_begin) graph.ScanRoot(m.start, map_begin);
      if (map_end < m.end) graph.ScanRoot(map_end, m.end);
    }
    ScanThreads(&graph, &arena, maps, self_sp);
    graph.ClassifyLost();
  } else {
    for (Node& n : graph.nodes()) n.state = State::kDefinite;
  }
  Suppressions sup;
  LoadSuppressions(&arena, &sup);

  // Group candidates by (state, stack).
  ArenaVector<Node>& nodes = graph.nodes();
  std::sort(nodes.begin(), nodes.end(), [](const Node& a, const Node& b) {
    if (a.state != b.state) return a.state < b.state;
    return a.stack < b.stack;
  });
  ArenaVector<Group> groups(&arena);
  for (const Node& n : nodes) {
    if (!n.candidate) continue;
    if (groups.empty() || groups[groups.size() - 1].stack != n.stack ||
        groups[groups.size() - 1].state != n.state) {
      groups.PushBack(Group{n.stack, n.state, 0, 0, n.time_ns});
    }
    Group& g = groups[groups.size() - 1];
    g.bytes += n.size;
    g.objects += 1;
    if (n.time_ns < g.oldest_ns) g.oldest_ns = n.time_ns;
  }
  // Suppressions apply per site.
  ArenaVector<Group> kept(&arena);
  for (const Group& g : groups) {
    bool lost = g.state == State::kDefinite || g.state == State::kIndirect;
    if (lost && Suppressed(sup, g.stack)) {
      report.suppressed_bytes += g.bytes;
      report.suppressed_objects += g.objects;
      continue;
    }
    switch (g.state) {
      case State::kDefinite:
        report.definite_bytes += g.bytes;
        report.definite_objects += g.objects;
        break;
      case State::kIndirect:
        report.indirect_bytes += g.bytes;
        report.indirect_objects += g.objects;
        break;
      default:
        report.reachable_bytes += g.bytes;
        report.reachable_objects += g.objects;
        break;
    }
    kept.PushBack(g);
  }
  std::sort(kept.begin(), kept.end(), [](const Group& a, const Group& b) { return a.bytes > b.bytes; });
  for (const Group& g : kept) {
    if (g.state != State::kDefinite && g.state != State::kIndirect) continue;
    if (g.stack != nullptr && g.stack->depth > 0) {
      int first = tracking::FirstUserFrame(g.stack->frames, g.stack->depth);
      tracking::Symbolize(g.stack->frames[first], report.top_site, sizeof(report.top_site));
    }
    break;
  }

  int fd = options.report_fd;
  if (fd < 0) return report;
  std::uint64_t now = tracking::NowNs();
  raw::Buffer b;
  if (report.HasLeaks()) {
    b.Str("\n=================================================================\n")
        .Str("strata: detected memory leaks\n");
    b.WriteTo(fd);
    PrintGroups(fd, kept, State::kDefinite, "Direct leak", options.max_sites, now);
    PrintGroups(fd, kept, State::kIndirect, "Indirect leak", options.max_sites, now);
  }
  if (options.show_reachable) PrintGroups(fd, kept, State::kReachable, "Still reachable", options.max_sites, now);
  b.Clear();
  b.Str("\nstrata leak check:\n   definitely lost: ").Udec(report.definite_bytes).Str(" bytes in ")
      .Udec(report.definite_objects).Str(" blocks\n   indirectly lost: ").Udec(report.indirect_bytes)
      .Str(" bytes in ").Udec(report.indirect_objects).Str(" blocks\n   still reachable: ")
      .Udec(report.reachable_bytes).Str(" bytes in ").Udec(report.reachable_objects).Str(" blocks\n        suppressed: ")
      .Udec(report.suppressed_bytes).Str(" bytes in ").Udec(report.suppressed_objects).Str(" blocks\n");
  b.WriteTo(fd);
  b.Clear();
  if (report.HasLeaks()) {
    b.Str("SUMMARY: strata: ").Udec(report.definite_bytes + report.indirect_bytes).Str(" byte(s) leaked in ")
        .Udec(report.definite_objects + report.indirect_objects).Str(" allocation(s).\n");
  } else {
    b.Str("SUMMARY: strata: no leaks.\n");
  }
  b.WriteTo(fd);
  return report;
}

}  // namespace

void EnableLeakChecking() noexcept { tracking::SetTrackAll(true); }
bool LeakCheckingEnabled() noexcept { return tracking::TrackAll(); }
std::uint64_t LeakCheckClockNs() noexcept { return tracking::WindowStartNs(); }

// The public entry points spill the caller's registers (their prologue
// saves every callee-saved register, just below the frame address) and
// start the scan of this thread's stack there.
#define STRATA_ENTRY_SP() \
  (__builtin_unwind_init(), reinterpret_cast<std::uintptr_t>(__builtin_frame_address(0)) - 64)

STRATA_NOINLINE LeakReport CheckForLeaks(const LeakCheckOptions& options) noexcept {
  return RunCheck(options, false, STRATA_ENTRY_SP());
}
STRATA_NOINLINE LeakReport CheckForLeaks() noexcept { return RunCheck(LeakCheckOptions{}, false, STRATA_ENTRY_SP()); }

LeakCheck::LeakCheck() noexcept {
  EnableLeakChecking();
  // Make this thread notice the mode at once (others notice at their next
  // slow path).
  start_ns_ = tracking::WindowStartNs();
}

STRATA_NOINLINE LeakReport LeakCheck::Check(int report_fd) noexcept {
  std::uintptr_t sp = STRATA_ENTRY_SP();
  LeakCheckOptions o;
  o.since_ns = start_ns_;
  o.report_fd = report_fd;
  return RunCheck(o, false, sp);
}

LeakReport LeakCheck::CheckNoLiveBlocks(int report_fd) noexcept {
  LeakCheckOptions o;
  o.since_ns = start_ns_;
  o.report_fd = report_fd;
  return RunCheck(o, true, 0);
}

std::size_t ReportOldAllocations(double min_age_seconds, int fd) noexcept {
  SpinLockHolder hold(&g_check_lock);
  tracking::InitSymbolizer();
  ScratchArena arena;
  Graph graph(&arena);
  graph.Collect(0);
  std::uint64_t now = tracking::NowNs();
  auto min_age = static_cast<std::uint64_t>(min_age_seconds * 1e9);
  ArenaVector<Node>& nodes = graph.nodes();
  std::sort(nodes.begin(), nodes.end(), [](const Node& a, const Node& b) { return a.stack < b.stack; });
  ArenaVector<Group> groups(&arena);
  std::size_t count = 0;
  for (const Node& n : nodes) {
    if (now - n.time_ns < min_age) continue;
    ++count;
    if (groups.empty() || groups[groups.size() - 1].stack != n.stack) {
      groups.PushBack(Group{n.stack, State::kReachable, 0, 0, n.time_ns});
    }
    Group& g = groups[groups.size() - 1];
    g.bytes += n.size;
    g.objects += 1;
    if (n.time_ns < g.oldest_ns) g.oldest_ns = n.time_ns;
  }
  std::sort(groups.begin(), groups.end(), [](const Group& a, const Group& b) { return a.bytes > b.bytes; });
  raw::Buffer b;
  b.Str("strata: ").Udec(count).Str(" live tracked block(s) older than ").Udec(static_cast<std::uint64_t>(min_age_seconds))
      .Str(" s\n");
  b.WriteTo(fd);
  PrintGroups(fd, groups, State::kReachable, "Live", 50, now);
  return count;
}

}  // namespace strata
