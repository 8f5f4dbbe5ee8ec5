// alloc/profile/pprof_writer.cc: see pprof_writer.h.
//
// Flow of one WriteHeapProfileToFd call, all state in one ScratchArena:
//   Init       intern the fixed strings; read the mappings (dl_iterate_phdr)
//   Add        per sample (SampleSource::ForEach): map each frame to a
//              Location (hash on address), then merge the stack into an
//              existing sample or append a new one (hash on location ids)
//   Symbolize  per unique location: mapping lookup, name -> Function
//   Emit       stream the Profile message through gzip to the fd; nested
//              messages are encoded into a reused arena buffer first (their
//              length prefixes need their size), the string table last.
#include "alloc/profile/pprof_writer.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include <cstdio>
#include <cstring>

#include "alloc/profile/arena_hash.h"
#include "alloc/profile/proto_encoder.h"
#include "alloc/profile/scratch_arena.h"
#include "alloc/profile/string_table.h"
#include "alloc/profile/system_libraries.h"
#include "concurrency/base/fast_math.h"

namespace strata::profile {
namespace {

// Field numbers of perftools.profiles (pprof's proto/profile.proto).
namespace pb {
enum ProfileField : std::uint32_t {
  kSampleType = 1,
  kSample = 2,
  kMapping = 3,
  kLocation = 4,
  kFunction = 5,
  kStringTable = 6,
  kTimeNanos = 9,
  kPeriodType = 11,
  kPeriod = 12,
};
enum ValueTypeField : std::uint32_t { kValueTypeType = 1, kValueTypeUnit = 2 };
enum SampleField : std::uint32_t {
  kSampleLocationId = 1,
  kSampleValue = 2,
  kSampleLabel = 3,
};
enum LabelField : std::uint32_t {
  kLabelKey = 1,
  kLabelStr = 2,
  kLabelNum = 3,
  kLabelNumUnit = 4,
};
enum MappingField : std::uint32_t {
  kMappingId = 1,
  kMappingStart = 2,
  kMappingLimit = 3,
  kMappingOffset = 4,
  kMappingFilename = 5,
  kMappingBuildId = 6,
  kMappingHasFunctions = 7,
};
enum LocationField : std::uint32_t {
  kLocationId = 1,
  kLocationMappingId = 2,
  kLocationAddress = 3,
  kLocationLine = 4,
};
enum LineField : std::uint32_t { kLineFunctionId = 1 };
enum FunctionField : std::uint32_t {
  kFunctionId = 1,
  kFunctionName = 2,
  kFunctionSystemName = 3,
};
}  // namespace pb

constexpr int kNumValues = 4;  // alloc_objects, alloc_space, inuse_*
// Longest symbol name kept; longer demangled names are truncated by the
// symbolizer. 1 KiB on the stack is fine for the writer's callers.
constexpr int kSymbolBufferBytes = 1024;
// Build ids are 20 bytes (SHA-1) in practice; anything over 64 is bogus.
constexpr std::size_t kMaxBuildIdBytes = 64;
// Staging buffer in front of zlib / write(2), and zlib's output buffer.
constexpr std::size_t kStageBytes = 64 << 10;
// zlib: gzip wrapper (15 window bits + 16), default level and memLevel.
constexpr int kGzipWindowBits = 15 + 16;
constexpr int kGzipMemLevel = 8;
// Largest input handed to one deflate() call (avail_in is 32-bit).
constexpr std::size_t kMaxDeflateChunk = std::size_t{1} << 30;

std::uint64_t SaturatingAdd(std::uint64_t a, std::uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

std::int64_t ClampToInt64(std::uint64_t v) {
  return v > static_cast<std::uint64_t>(INT64_MAX) ? INT64_MAX
                                                   : static_cast<std::int64_t>(v);
}

// Writes "0x" + lowercase hex of `v` and a NUL; returns the length.
std::size_t FormatHex(std::uint64_t v, char* out) {
  static constexpr char kDigits[] = "0123456789abcdef";
  char tmp[16];
  std::size_t n = 0;
  do {
    tmp[n++] = kDigits[v & 0xf];
    v >>= 4;
  } while (v != 0);
  out[0] = '0';
  out[1] = 'x';
  for (std::size_t i = 0; i < n; ++i) out[2 + i] = tmp[n - 1 - i];
  out[2 + n] = '\0';
  return 2 + n;
}

std::uintptr_t PageSize() {
  long v = sysconf(_SC_PAGESIZE);
  return v > 0 ? static_cast<std::uintptr_t>(v) : 4096;
}

// Writes all of [p, p+n) to `fd`, retrying on EINTR and short writes.
int WriteAllFd(int fd, const std::uint8_t* p, std::size_t n) {
  while (n > 0) {
    ssize_t w = write(fd, p, n);
    if (w < 0) {
      if (errno == EINTR) continue;
      return errno != 0 ? errno : EIO;
    }
    if (w == 0) return EIO;
    p += w;
    n -= static_cast<std::size_t>(w);
  }
  return 0;
}

// ---------------------------------------------------------------------------
// Output streams: a staging buffer in front of a Drain step.

class OutputStream {
 public:
  explicit OutputStream(std::uint8_t* stage) : stage_(stage) {}
  virtual ~OutputStream() = default;

  void Write(const void* data, std::size_t n) {
    const auto* p = static_cast<const std::uint8_t*>(data);
    while (n > 0 && error_ == 0) {
      std::size_t room = kStageBytes - used_;
      std::size_t take = n < room ? n : room;
      std::memcpy(stage_ + used_, p, take);
      used_ += take;
      p += take;
      n -= take;
      if (used_ == kStageBytes) FlushStage();
    }
  }

  // Drains what is staged and finishes the stream; returns the first error.
  int Finish() {
    FlushStage();
    if (error_ == 0) error_ = Close();
    return error_;
  }

  int error() const { return error_; }

 protected:
  virtual int Drain(const std::uint8_t* data, std::size_t n) = 0;
  virtual int Close() = 0;

 private:
  void FlushStage() {
    if (error_ == 0 && used_ > 0) error_ = Drain(stage_, used_);
    used_ = 0;
  }

  std::uint8_t* stage_;
  std::size_t used_ = 0;
  int error_ = 0;
};

class FdStream final : public OutputStream {
 public:
  FdStream(std::uint8_t* stage, int fd) : OutputStream(stage), fd_(fd) {}

 protected:
  int Drain(const std::uint8_t* data, std::size_t n) override {
    return WriteAllFd(fd_, data, n);
  }
  int Close() override { return 0; }

 private:
  int fd_;
};

// zlib allocation callbacks: everything comes from the scratch arena and
// is released with it, so zfree does nothing.
voidpf ArenaZalloc(voidpf opaque, uInt items, uInt size) {
  auto* arena = static_cast<ScratchArena*>(opaque);
  if (size != 0 && items > SIZE_MAX / size) return Z_NULL;
  void* p = arena->Allocate(static_cast<std::size_t>(items) * size);
  return p == nullptr ? Z_NULL : p;
}
void ArenaZfree(voidpf, voidpf) {}

class GzipStream final : public OutputStream {
 public:
  GzipStream(std::uint8_t* stage, std::uint8_t* out, int fd)
      : OutputStream(stage), out_(out), fd_(fd) {}

  ~GzipStream() override {
    if (initialized_) z_->deflate_end(&zs_);
  }

  // Returns 0 or an errno-style code (ENOSYS: zlib could not be loaded).
  int Init(ScratchArena* arena) {
    if (z_ == nullptr) return ENOSYS;
    std::memset(&zs_, 0, sizeof(zs_));
    zs_.zalloc = ArenaZalloc;
    zs_.zfree = ArenaZfree;
    zs_.opaque = arena;
    int rc = z_->deflate_init2(&zs_, Z_DEFAULT_COMPRESSION, Z_DEFLATED, kGzipWindowBits, kGzipMemLevel,
                               Z_DEFAULT_STRATEGY, ZLIB_VERSION, static_cast<int>(sizeof(z_stream)));
    if (rc == Z_MEM_ERROR) return ENOMEM;
    if (rc != Z_OK) return EIO;
    initialized_ = true;
    return 0;
  }

 protected:
  int Drain(const std::uint8_t* data, std::size_t n) override {
    while (n > 0) {
      std::size_t chunk = n < kMaxDeflateChunk ? n : kMaxDeflateChunk;
      zs_.next_in = const_cast<Bytef*>(data);
      zs_.avail_in = static_cast<uInt>(chunk);
      while (zs_.avail_in > 0) {
        if (int e = Deflate(Z_NO_FLUSH); e != 0) return e;
      }
      data += chunk;
      n -= chunk;
    }
    return 0;
  }

  int Close() override {
    for (;;) {
      zs_.next_in = nullptr;
      zs_.avail_in = 0;
      zs_.next_out = out_;
      zs_.avail_out = static_cast<uInt>(kStageBytes);
      int rc = z_->deflate(&zs_, Z_FINISH);
      if (rc != Z_OK && rc != Z_STREAM_END && rc != Z_BUF_ERROR) return EIO;
      if (int e = WriteAllFd(fd_, out_, kStageBytes - zs_.avail_out); e != 0) {
        return e;
      }
      if (rc == Z_STREAM_END) break;
    }
    z_->deflate_end(&zs_);
    initialized_ = false;
    return 0;
  }

 private:
  // One deflate() step into out_, then writes what it produced.
  int Deflate(int flush) {
    zs_.next_out = out_;
    zs_.avail_out = static_cast<uInt>(kStageBytes);
    int rc = z_->deflate(&zs_, flush);
    if (rc != Z_OK && rc != Z_BUF_ERROR) return EIO;
    return WriteAllFd(fd_, out_, kStageBytes - zs_.avail_out);
  }

  const ZlibFunctions* z_ = Zlib();
  z_stream zs_;
  std::uint8_t* out_;
  int fd_;
  bool initialized_ = false;
};

// ---------------------------------------------------------------------------
// The profile tables.

struct MappingRec {
  std::uint64_t start;
  std::uint64_t limit;
  std::uint64_t offset;
  std::int64_t filename;
  std::int64_t build_id;
  bool all_symbolized;
};

struct LocationRec {
  std::uint64_t address;
  std::uint32_t mapping_plus_one;   // 0 = no mapping
  std::uint32_t function_plus_one;  // 0 = no Line
};

struct FunctionRec {
  std::int64_t name;
};

struct SampleRec {
  std::uint64_t hash;
  std::uint32_t first_frame;  // index into frames_
  std::uint32_t depth;
  std::uint64_t requested_size;
  std::uint64_t values[kNumValues];
};

class ProfileBuilder {
 public:
  ProfileBuilder(ScratchArena* arena, const WriteOptions& opts)
      : arena_(arena),
        opts_(opts),
        strings_(arena),
        mappings_(arena),
        locations_(arena),
        location_index_(arena),
        functions_(arena),
        function_index_(arena),
        samples_(arena),
        sample_index_(arena),
        frames_(arena) {}

  int Init();
  static void AddThunk(const HeapSample& s, void* self) {
    static_cast<ProfileBuilder*>(self)->Add(s);
  }
  void Add(const HeapSample& s);
  int Symbolize();
  int Emit(OutputStream* out);
  int error() const { return error_; }

 private:
  static int OnObject(dl_phdr_info* info, std::size_t size, void* self);
  void AddObject(const dl_phdr_info* info);
  std::int64_t Intern(const char* s) { return Intern(s, std::strlen(s)); }
  std::int64_t Intern(const char* s, std::size_t n) {
    std::int64_t i = strings_.Intern(s, n);
    if (i == StringTable::kFailed) Fail(ENOMEM);
    return i < 0 ? 0 : i;
  }
  void Fail(int e) {
    if (error_ == 0) error_ = e;
  }
  // Location index for `address`, created on first use; kNotFound on OOM.
  std::uint32_t LocationFor(std::uint64_t address);
  std::uint32_t FunctionFor(std::int64_t name);
  std::uint32_t MappingFor(std::uint64_t address) const;
  void WriteMessage(OutputStream* out, std::uint32_t field,
                    const ProtoEncoder& message);
  void EncodeValueType(std::int64_t type, std::int64_t unit,
                       ProtoEncoder* enc);

  ScratchArena* arena_;
  const WriteOptions& opts_;
  StringTable strings_;
  ArenaVector<MappingRec> mappings_;
  ArenaVector<LocationRec> locations_;
  IndexHashSet location_index_;
  ArenaVector<FunctionRec> functions_;
  IndexHashSet function_index_;
  ArenaVector<SampleRec> samples_;
  IndexHashSet sample_index_;
  ArenaVector<std::uint32_t> frames_;  // location indices of all samples
  int error_ = 0;
  std::size_t objects_seen_ = 0;

  // Interned fixed strings.
  std::int64_t s_type_[kNumValues] = {};
  std::int64_t s_unit_[kNumValues] = {};
  std::int64_t s_space_ = 0;
  std::int64_t s_bytes_ = 0;
};

int ProfileBuilder::Init() {
  static constexpr const char* kTypes[kNumValues] = {
      "alloc_objects", "alloc_space", "inuse_objects", "inuse_space"};
  static constexpr const char* kUnits[kNumValues] = {"count", "bytes",
                                                     "count", "bytes"};
  for (int i = 0; i < kNumValues; ++i) {
    s_type_[i] = Intern(kTypes[i]);
    s_unit_[i] = Intern(kUnits[i]);
  }
  s_space_ = Intern("space");
  s_bytes_ = Intern("bytes");
  if (error_ == 0) dl_iterate_phdr(&ProfileBuilder::OnObject, this);
  return error_;
}

int ProfileBuilder::OnObject(dl_phdr_info* info, std::size_t, void* self) {
  static_cast<ProfileBuilder*>(self)->AddObject(info);
  return 0;  // keep iterating
}

void ProfileBuilder::AddObject(const dl_phdr_info* info) {
  const bool is_main = objects_seen_++ == 0;
  if (error_ != 0) return;

  // File name: the main program's comes from /proc/self/exe (the loader
  // reports it as ""); the vDSO gets the name pprof knows not to open.
  const char* name = info->dlpi_name != nullptr ? info->dlpi_name : "";
  char exe[PATH_MAX];
  if (name[0] == '\0' && is_main) {
    ssize_t n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
    if (n > 0) {
      exe[n] = '\0';
      name = exe;
    }
  } else if (std::strncmp(name, "linux-vdso", 10) == 0 ||
             std::strncmp(name, "linux-gate", 10) == 0) {
    name = "[vdso]";
  }

  // GNU build id, from the object's loaded PT_NOTE segments.
  char build_id[2 * kMaxBuildIdBytes + 1];
  build_id[0] = '\0';
  for (int i = 0; i < info->dlpi_phnum && build_id[0] == '\0'; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_NOTE) continue;
    const std::size_t align = ph.p_align == 8 ? 8 : 4;
    const char* p = reinterpret_cast<const char*>(info->dlpi_addr + ph.p_vaddr);
    std::size_t left = ph.p_memsz;
    while (left >= sizeof(ElfW(Nhdr))) {
      ElfW(Nhdr) note;
      std::memcpy(&note, p, sizeof(note));
      const std::size_t name_bytes = (note.n_namesz + align - 1) & ~(align - 1);
      const std::size_t desc_bytes = (note.n_descsz + align - 1) & ~(align - 1);
      if (name_bytes > left || desc_bytes > left ||
          sizeof(note) + name_bytes + desc_bytes > left) {
        break;
      }
      const char* note_name = p + sizeof(note);
      if (note.n_type == NT_GNU_BUILD_ID && note.n_namesz == 4 &&
          std::memcmp(note_name, "GNU", 4) == 0 && note.n_descsz > 0 &&
          note.n_descsz <= kMaxBuildIdBytes) {
        static constexpr char kDigits[] = "0123456789abcdef";
        const auto* desc =
            reinterpret_cast<const unsigned char*>(note_name + name_bytes);
        for (std::size_t k = 0; k < note.n_descsz; ++k) {
          build_id[2 * k] = kDigits[desc[k] >> 4];
          build_id[2 * k + 1] = kDigits[desc[k] & 0xf];
        }
        build_id[2 * note.n_descsz] = '\0';
        break;
      }
      const std::size_t step = sizeof(note) + name_bytes + desc_bytes;
      p += step;
      left -= step;
    }
  }

  const std::int64_t filename = Intern(name);
  const std::int64_t build = build_id[0] != '\0' ? Intern(build_id) : 0;
  const std::uintptr_t page = PageSize();
  for (int i = 0; i < info->dlpi_phnum; ++i) {
    const ElfW(Phdr)& ph = info->dlpi_phdr[i];
    if (ph.p_type != PT_LOAD || (ph.p_flags & PF_X) == 0 || ph.p_memsz == 0) {
      continue;
    }
    const std::uint64_t begin = info->dlpi_addr + ph.p_vaddr;
    const std::uint64_t end = begin + ph.p_memsz;
    MappingRec m{};
    m.start = begin & ~static_cast<std::uint64_t>(page - 1);
    m.limit = (end + page - 1) & ~static_cast<std::uint64_t>(page - 1);
    m.offset = ph.p_offset & ~static_cast<std::uint64_t>(page - 1);
    m.filename = filename;
    m.build_id = build;
    m.all_symbolized = true;
    if (!mappings_.PushBack(m)) Fail(ENOMEM);
  }
}

std::uint32_t ProfileBuilder::LocationFor(std::uint64_t address) {
  const std::uint64_t hash = MixHash(address);
  std::uint32_t i = location_index_.Find(
      hash, [&](std::uint32_t k) { return locations_[k].address == address; });
  if (i != IndexHashSet::kNotFound) return i;
  const std::size_t n = locations_.size();
  if (n >= IndexHashSet::kNotFound - 1 ||
      !locations_.PushBack(LocationRec{address, 0, 0})) {
    return IndexHashSet::kNotFound;
  }
  if (!location_index_.Insert(hash, static_cast<std::uint32_t>(n))) {
    locations_.Resize(n);
    return IndexHashSet::kNotFound;
  }
  return static_cast<std::uint32_t>(n);
}

void ProfileBuilder::Add(const HeapSample& s) {
  if (error_ != 0) return;
  if (s.depth < 0 || (s.depth > 0 && s.stack == nullptr)) {
    Fail(EINVAL);
    return;
  }
  const std::size_t first = frames_.size();
  if (first + static_cast<std::size_t>(s.depth) >= IndexHashSet::kNotFound) {
    Fail(ENOMEM);
    return;
  }
  std::uint64_t hash = MixHash(s.requested_size ^ 0x5157u);
  for (int d = 0; d < s.depth; ++d) {
    std::uint64_t address = reinterpret_cast<std::uintptr_t>(s.stack[d]);
    const bool exact = d == 0 && opts_.leaf_is_exact_pc;
    if (!exact && address > 0) --address;  // return address -> call site
    const std::uint32_t loc = LocationFor(address);
    if (loc == IndexHashSet::kNotFound || !frames_.PushBack(loc)) {
      frames_.Resize(first);
      Fail(ENOMEM);
      return;
    }
    hash = HashCombine(hash, loc);
  }
  const auto depth = static_cast<std::uint32_t>(s.depth);
  const std::uint32_t* stack = frames_.data() + first;
  const std::uint32_t found = sample_index_.Find(hash, [&](std::uint32_t k) {
    const SampleRec& r = samples_[k];
    return r.depth == depth && r.requested_size == s.requested_size &&
           (depth == 0 || std::memcmp(frames_.data() + r.first_frame, stack,
                                      depth * sizeof(std::uint32_t)) == 0);
  });
  const std::uint64_t values[kNumValues] = {s.alloc_objects, s.alloc_bytes,
                                            s.inuse_objects, s.inuse_bytes};
  if (found != IndexHashSet::kNotFound) {
    SampleRec& r = samples_[found];
    for (int v = 0; v < kNumValues; ++v) {
      r.values[v] = SaturatingAdd(r.values[v], values[v]);
    }
    frames_.Resize(first);  // the stack is already stored
    return;
  }
  SampleRec r{};
  r.hash = hash;
  r.first_frame = static_cast<std::uint32_t>(first);
  r.depth = depth;
  r.requested_size = s.requested_size;
  std::memcpy(r.values, values, sizeof(values));
  const std::size_t n = samples_.size();
  if (n >= IndexHashSet::kNotFound - 1 || !samples_.PushBack(r)) {
    frames_.Resize(first);
    Fail(ENOMEM);
    return;
  }
  if (!sample_index_.Insert(hash, static_cast<std::uint32_t>(n))) {
    samples_.Resize(n);
    frames_.Resize(first);
    Fail(ENOMEM);
  }
}

std::uint32_t ProfileBuilder::MappingFor(std::uint64_t address) const {
  for (std::size_t i = 0; i < mappings_.size(); ++i) {
    if (address >= mappings_[i].start && address < mappings_[i].limit) {
      return static_cast<std::uint32_t>(i);
    }
  }
  return IndexHashSet::kNotFound;
}

std::uint32_t ProfileBuilder::FunctionFor(std::int64_t name) {
  const std::uint64_t hash = MixHash(static_cast<std::uint64_t>(name));
  std::uint32_t i = function_index_.Find(
      hash, [&](std::uint32_t k) { return functions_[k].name == name; });
  if (i != IndexHashSet::kNotFound) return i;
  const std::size_t n = functions_.size();
  if (n >= IndexHashSet::kNotFound - 1 ||
      !functions_.PushBack(FunctionRec{name})) {
    return IndexHashSet::kNotFound;
  }
  if (!function_index_.Insert(hash, static_cast<std::uint32_t>(n))) {
    functions_.Resize(n);
    return IndexHashSet::kNotFound;
  }
  return static_cast<std::uint32_t>(n);
}

int ProfileBuilder::Symbolize() {
  char name[kSymbolBufferBytes];
  for (std::size_t i = 0; i < locations_.size() && error_ == 0; ++i) {
    LocationRec& loc = locations_[i];
    const std::uint32_t m = MappingFor(loc.address);
    if (m != IndexHashSet::kNotFound) loc.mapping_plus_one = m + 1;
    if (!opts_.symbolize) continue;

    const void* pc = reinterpret_cast<const void*>(
        static_cast<std::uintptr_t>(loc.address));
    name[0] = '\0';
    bool ok = opts_.symbolizer != nullptr
                  ? opts_.symbolizer(pc, name, kSymbolBufferBytes,
                                     opts_.symbolizer_arg)
                  : SymbolizeAddress(pc, name, kSymbolBufferBytes);
    name[kSymbolBufferBytes - 1] = '\0';
    if (!ok || name[0] == '\0') {
      ok = false;
      FormatHex(loc.address, name);
    }
    if (!ok && m != IndexHashSet::kNotFound) {
      mappings_[m].all_symbolized = false;
    }
    const std::uint32_t f = FunctionFor(Intern(name));
    if (f == IndexHashSet::kNotFound) {
      Fail(ENOMEM);
      break;
    }
    loc.function_plus_one = f + 1;
  }
  return error_;
}

void ProfileBuilder::WriteMessage(OutputStream* out, std::uint32_t field,
                                  const ProtoEncoder& message) {
  if (!message.ok()) {
    Fail(ENOMEM);
    return;
  }
  std::uint8_t header[kMaxFieldHeaderBytes];
  out->Write(header, EncodeFieldHeader(field, WireType::kLengthDelimited,
                                       message.size(), header));
  out->Write(message.data(), message.size());
  if (out->error() != 0) Fail(out->error());  // stops the emit loops
}

void ProfileBuilder::EncodeValueType(std::int64_t type, std::int64_t unit,
                                     ProtoEncoder* enc) {
  enc->Clear();
  enc->OptionalInt64(pb::kValueTypeType, type);
  enc->OptionalInt64(pb::kValueTypeUnit, unit);
}

int ProfileBuilder::Emit(OutputStream* out) {
  // Every string is interned before this point: the label key "bytes" and
  // its unit were interned by Init (s_bytes_).
  ProtoEncoder msg(arena_);
  ProtoEncoder sub(arena_);
  ArenaVector<std::uint64_t> ids(arena_);

  for (int v = 0; v < kNumValues && error_ == 0; ++v) {
    EncodeValueType(s_type_[v], s_unit_[v], &msg);
    WriteMessage(out, pb::kSampleType, msg);
  }

  for (std::size_t i = 0; i < samples_.size() && error_ == 0; ++i) {
    const SampleRec& r = samples_[i];
    msg.Clear();
    if (!ids.Resize(r.depth)) {
      Fail(ENOMEM);
      break;
    }
    for (std::uint32_t d = 0; d < r.depth; ++d) {
      ids[d] = std::uint64_t{frames_[r.first_frame + d]} + 1;
    }
    msg.PackedVarints(pb::kSampleLocationId, ids.data(), r.depth);
    std::int64_t values[kNumValues];
    for (int v = 0; v < kNumValues; ++v) values[v] = ClampToInt64(r.values[v]);
    msg.PackedInt64s(pb::kSampleValue, values, kNumValues);
    if (r.requested_size != 0) {
      sub.Clear();
      sub.OptionalInt64(pb::kLabelKey, s_bytes_);
      sub.OptionalInt64(pb::kLabelNum, ClampToInt64(r.requested_size));
      sub.OptionalInt64(pb::kLabelNumUnit, s_bytes_);
      if (!sub.ok()) Fail(ENOMEM);
      msg.Message(pb::kSampleLabel, sub);
    }
    WriteMessage(out, pb::kSample, msg);
  }

  for (std::size_t i = 0; i < mappings_.size() && error_ == 0; ++i) {
    const MappingRec& m = mappings_[i];
    msg.Clear();
    msg.Varint(pb::kMappingId, i + 1);
    msg.OptionalVarint(pb::kMappingStart, m.start);
    msg.OptionalVarint(pb::kMappingLimit, m.limit);
    msg.OptionalVarint(pb::kMappingOffset, m.offset);
    msg.OptionalInt64(pb::kMappingFilename, m.filename);
    msg.OptionalInt64(pb::kMappingBuildId, m.build_id);
    msg.OptionalBool(pb::kMappingHasFunctions,
                     opts_.symbolize && m.all_symbolized);
    WriteMessage(out, pb::kMapping, msg);
  }

  for (std::size_t i = 0; i < locations_.size() && error_ == 0; ++i) {
    const LocationRec& loc = locations_[i];
    msg.Clear();
    msg.Varint(pb::kLocationId, i + 1);
    msg.OptionalVarint(pb::kLocationMappingId, loc.mapping_plus_one);
    msg.OptionalVarint(pb::kLocationAddress, loc.address);
    if (loc.function_plus_one != 0) {
      sub.Clear();
      sub.Varint(pb::kLineFunctionId, loc.function_plus_one);
      if (!sub.ok()) Fail(ENOMEM);
      msg.Message(pb::kLocationLine, sub);
    }
    WriteMessage(out, pb::kLocation, msg);
  }

  for (std::size_t i = 0; i < functions_.size() && error_ == 0; ++i) {
    msg.Clear();
    msg.Varint(pb::kFunctionId, i + 1);
    msg.OptionalInt64(pb::kFunctionName, functions_[i].name);
    msg.OptionalInt64(pb::kFunctionSystemName, functions_[i].name);
    WriteMessage(out, pb::kFunction, msg);
  }

  if (error_ == 0) {
    std::int64_t now = opts_.time_nanos;
    if (now == 0) {
      timespec ts{};
      clock_gettime(CLOCK_REALTIME, &ts);
      now = static_cast<std::int64_t>(ts.tv_sec) * 1000000000 + ts.tv_nsec;
    }
    msg.Clear();
    msg.OptionalInt64(pb::kTimeNanos, now);
    if (!msg.ok()) Fail(ENOMEM);
    out->Write(msg.data(), msg.size());
    EncodeValueType(s_space_, s_bytes_, &msg);
    WriteMessage(out, pb::kPeriodType, msg);
    msg.Clear();
    msg.OptionalInt64(pb::kPeriod, opts_.sample_period);
    if (!msg.ok()) Fail(ENOMEM);
    out->Write(msg.data(), msg.size());
  }

  // The string table last, once every string is interned; entry 0 is "".
  for (std::size_t i = 0; i < strings_.size() && error_ == 0; ++i) {
    std::uint8_t header[kMaxFieldHeaderBytes];
    out->Write(header,
               EncodeFieldHeader(pb::kStringTable, WireType::kLengthDelimited,
                                 strings_.length(i), header));
    out->Write(strings_.str(i), strings_.length(i));
  }

  if (error_ != 0) return error_;
  return out->Finish();
}

// Appends the decimal form of `v` at `out` (room for 20 digits); returns
// the new end.
char* AppendDecimal(char* out, std::uint64_t v) {
  char tmp[20];
  int n = 0;
  do {
    tmp[n++] = static_cast<char>('0' + v % 10);
    v /= 10;
  } while (v != 0);
  while (n > 0) *out++ = tmp[--n];
  return out;
}

}  // namespace

void ArraySampleSource::ForEach(Visitor fn, void* arg) const {
  for (std::size_t i = 0; i < count_; ++i) fn(samples_[i], arg);
}

int WriteHeapProfileToFd(int fd, const SampleSource& samples,
                         const WriteOptions& opts) {
  if (fd < 0) return EBADF;
  LoadProfilerLibraries();  // allocates on the process's first profile only
  ScratchArena arena;
  ProfileBuilder builder(&arena, opts);
  if (int e = builder.Init(); e != 0) return e;
  samples.ForEach(&ProfileBuilder::AddThunk, &builder);
  if (int e = builder.error(); e != 0) return e;
  if (int e = builder.Symbolize(); e != 0) return e;

  auto* stage = static_cast<std::uint8_t*>(arena.Allocate(kStageBytes));
  if (stage == nullptr) return ENOMEM;
  if (!opts.gzip) {
    FdStream out(stage, fd);
    return builder.Emit(&out);
  }
  auto* zout = static_cast<std::uint8_t*>(arena.Allocate(kStageBytes));
  if (zout == nullptr) return ENOMEM;
  GzipStream out(stage, zout, fd);
  if (int e = out.Init(&arena); e != 0) return e;
  return builder.Emit(&out);
}

int WriteHeapProfile(const char* path, const SampleSource& samples,
                     const WriteOptions& opts) {
  if (path == nullptr || path[0] == '\0') return EINVAL;
  struct stat st;
  if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
    // A FIFO, a character device (/dev/stdout) ...: write in place.
    int fd = open(path, O_WRONLY | O_CLOEXEC | O_NOCTTY);
    if (fd < 0) return errno;
    int rc = WriteHeapProfileToFd(fd, samples, opts);
    if (close(fd) != 0 && rc == 0) rc = errno;
    return rc;
  }

  // "<path>.tmp.<pid>", then rename(2) over `path`.
  static constexpr char kTmpInfix[] = ".tmp.";
  char tmp[PATH_MAX];
  const std::size_t len = std::strlen(path);
  if (len + sizeof(kTmpInfix) + 20 >= sizeof(tmp)) return ENAMETOOLONG;
  std::memcpy(tmp, path, len);
  std::memcpy(tmp + len, kTmpInfix, sizeof(kTmpInfix) - 1);
  char* end = AppendDecimal(tmp + len + sizeof(kTmpInfix) - 1,
                            static_cast<std::uint64_t>(getpid()));
  *end = '\0';

  int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOCTTY, 0644);
  if (fd < 0) return errno;
  int rc = WriteHeapProfileToFd(fd, samples, opts);
  if (close(fd) != 0 && rc == 0) rc = errno;
  if (rc == 0 && rename(tmp, path) != 0) rc = errno;
  if (rc != 0) unlink(tmp);
  return rc;
}

ScaledCounts ScaleSample(std::uint64_t objects, std::uint64_t bytes,
                         std::int64_t sampling_stride) {
  if (objects == 0 || bytes == 0 || sampling_stride <= 1) {
    return ScaledCounts{objects, bytes};
  }
  const double average = static_cast<double>(bytes) / static_cast<double>(objects);
  // 1 - exp(-s/R), by a series for small s/R so it keeps its precision
  // (base::OneMinusExpNeg, not libm: see fast_math.h).
  const double probability = base::OneMinusExpNeg(average / static_cast<double>(sampling_stride));
  if (!(probability > 0.0)) return ScaledCounts{objects, bytes};
  const double scale = 1.0 / probability;
  auto scaled = [scale](std::uint64_t v) -> std::uint64_t {
    const double r = static_cast<double>(v) * scale + 0.5;
    // 2^64 as a double: anything at or above saturates.
    if (!(r < 18446744073709551616.0)) return UINT64_MAX;
    return static_cast<std::uint64_t>(r);
  };
  return ScaledCounts{scaled(objects), scaled(bytes)};
}

void ScaleHeapSample(std::int64_t sampling_stride, HeapSample* sample) {
  const ScaledCounts alloc =
      ScaleSample(sample->alloc_objects, sample->alloc_bytes, sampling_stride);
  const ScaledCounts inuse =
      ScaleSample(sample->inuse_objects, sample->inuse_bytes, sampling_stride);
  sample->alloc_objects = alloc.objects;
  sample->alloc_bytes = alloc.bytes;
  sample->inuse_objects = inuse.objects;
  sample->inuse_bytes = inuse.bytes;
}

}  // namespace strata::profile
