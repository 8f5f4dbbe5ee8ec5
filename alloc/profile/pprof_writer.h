// alloc/profile/pprof_writer.h: writes a heap profile in pprof's
// profile.proto format (gzipped by default), from inside the allocator.
//
// Purpose: strata's sampling heap profiler hands its allocation sites to
// WriteHeapProfile; the file opens in `go tool pprof`, the standalone
// pprof, and tools/heapdump.
//
// Contract:
//   - Never calls malloc/new (once LoadProfilerLibraries() has run: the
//     first profile of a process opens zlib and the symbolizer, see
//     below), never throws, never aborts: every table
//     (strings, locations, functions, mappings, merged samples) and zlib's
//     state live in a ScratchArena (mmap) that is unmapped before return.
//     Returns 0 on success or an errno-style code (ENOMEM, EINVAL, EBADF,
//     EIO for zlib failures, ENOSYS for gzip output without zlib, or
//     whatever open/write/rename reported).
//   - Output: sample types alloc_objects/count, alloc_space/bytes,
//     inuse_objects/count, inuse_space/bytes in that order (no
//     default_sample_type, so pprof shows inuse_space); period_type
//     space/bytes and period = WriteOptions::sample_period;
//     string_table[0] = ""; location, function and mapping ids are dense
//     and start at 1. Samples with identical stacks (and identical
//     requested_size) are merged by adding their values.
//   - Addresses: every frame is taken to be a return address, and the
//     location's address is `return address - 1` (inside the call
//     instruction, so symbolization names the calling line even when the
//     call is the last instruction of a function). If the caller's leaf
//     frame is an exact PC (e.g. from a signal context), set
//     WriteOptions::leaf_is_exact_pc and the leaf keeps its address.
//   - Mappings: one per executable PT_LOAD segment of every loaded object
//     (dl_iterate_phdr), page-aligned like /proc/self/maps (start, limit,
//     file offset), with the object's path (the main program's from
//     /proc/self/exe) and its GNU build id read from its in-memory
//     PT_NOTE segment. The main program comes first.
//   - Symbolization (WriteOptions::symbolize): each location gets one Line
//     whose Function name is the demangled name from Abseil's symbolizer
//     (opened at first use, see system_libraries.h; or from
//     WriteOptions::symbolizer). The first profile a process writes opens
//     zlib and the symbolizer, which allocates: a caller that must not
//     allocate calls LoadProfilerLibraries() beforehand.
//     When a PC cannot be symbolized the function is named by its hex
//     address ("0x55d0c0ffee12"). A mapping's has_functions is set when
//     every one of its locations was symbolized; the standalone pprof then
//     trusts our names, and `pprof -symbolize=force` re-symbolizes from the
//     mappings with addr2line (file:line). Mappings with failures keep
//     has_functions unset, so pprof re-symbolizes them on its own.
//   - Deadlock note: dl_iterate_phdr takes the dynamic loader's lock.
//     Do not call the writer while holding a lock that a thread inside
//     dlopen/dlclose (which call malloc) may wait for.
//
// Thread-safety: WriteHeapProfile* are thread-safe with respect to each
// other (no shared state besides the loader lock and Abseil's
// symbolizer, both thread-safe). The SampleSource must stay valid and
// consistent for the duration of ForEach.
#ifndef STRATA_ALLOC_PROFILE_PPROF_WRITER_H_
#define STRATA_ALLOC_PROFILE_PPROF_WRITER_H_

#include <cstddef>
#include <cstdint>

namespace strata::profile {

// One allocation site (or one sampled object). Values are already
// unsampled (see ScaleSample).
struct HeapSample {
  const void* const* stack = nullptr;  // return addresses, leaf first
  int depth = 0;
  std::uint64_t alloc_objects = 0;
  std::uint64_t alloc_bytes = 0;
  std::uint64_t inuse_objects = 0;
  std::uint64_t inuse_bytes = 0;
  // When non-zero, the sample carries the label bytes=<requested_size>
  // (unit "bytes"), as Go heap profiles do; samples merge only with equal
  // requested sizes.
  std::uint64_t requested_size = 0;
};

// Where the samples come from. ForEach calls `fn(sample, arg)` once per
// sample; a sample (and its stack array) need only live during that call.
// `fn` never allocates through malloc.
class SampleSource {
 public:
  using Visitor = void (*)(const HeapSample& sample, void* arg);
  virtual ~SampleSource() = default;
  virtual void ForEach(Visitor fn, void* arg) const = 0;
};

// A SampleSource over a caller-owned array.
class ArraySampleSource final : public SampleSource {
 public:
  ArraySampleSource(const HeapSample* samples, std::size_t count)
      : samples_(samples), count_(count) {}
  void ForEach(Visitor fn, void* arg) const override;

 private:
  const HeapSample* samples_;
  std::size_t count_;
};

// Symbolizer hook: writes the NUL-terminated name of the function holding
// `pc` into `out` (`out_size` bytes) and returns true, or returns false.
// Must not call malloc when the writer runs inside the allocator.
using SymbolizeFn = bool (*)(const void* pc, char* out, int out_size,
                             void* arg);

struct WriteOptions {
  // Average sampling stride in bytes, written as the profile's period
  // (1 = every allocation recorded). Informational: values are not scaled
  // by the writer (see ScaleSample).
  std::int64_t sample_period = 1;
  // Profile timestamp; 0 means "now" (CLOCK_REALTIME).
  std::int64_t time_nanos = 0;
  // Write Function/Line entries (names) for every location.
  bool symbolize = true;
  // gzip the output (pprof reads both; raw is handy for protoc --decode).
  bool gzip = true;
  // The leaf frame of each stack is an exact PC, not a return address.
  bool leaf_is_exact_pc = false;
  // Symbolizer; nullptr means SymbolizeAddress (system_libraries.h).
  SymbolizeFn symbolizer = nullptr;
  void* symbolizer_arg = nullptr;
};

// Writes the profile to `path`. A regular (or new) file is written to
// "<path>.tmp.<pid>" first and renamed into place, so a reader never sees
// a partial profile; a non-regular existing path (a FIFO, /dev/stdout) is
// written directly. Returns 0 or an errno-style code.
int WriteHeapProfile(const char* path, const SampleSource& samples,
                     const WriteOptions& opts);

// Writes the profile to an open file descriptor (a file, pipe or socket);
// does not close it. Returns 0 or an errno-style code.
int WriteHeapProfileToFd(int fd, const SampleSource& samples,
                         const WriteOptions& opts);

// Unsampling, as pprof and Go's runtime do it for heap profiles sampled
// with an exponentially distributed stride of mean R bytes: a site with
// `objects` sampled objects totalling `bytes` (average size s) was sampled
// with probability 1 - exp(-s/R) per object, so both counts are
// multiplied by 1 / (1 - exp(-s/R)), rounded to nearest. R <= 1 (every
// allocation recorded) and empty sites return the inputs unchanged.
struct ScaledCounts {
  std::uint64_t objects;
  std::uint64_t bytes;
};
ScaledCounts ScaleSample(std::uint64_t objects, std::uint64_t bytes,
                         std::int64_t sampling_stride);

// Applies ScaleSample to the alloc and inuse pairs of `sample` (each pair
// with its own average size).
void ScaleHeapSample(std::int64_t sampling_stride, HeapSample* sample);

}  // namespace strata::profile

#endif  // STRATA_ALLOC_PROFILE_PPROF_WRITER_H_
