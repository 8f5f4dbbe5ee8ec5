// tools/heapdump/source_lines.h: file:line for code addresses, from the
// DWARF line tables of the binaries (elfutils' libdw; a tool-side library,
// never linked into the allocator).
//
// Two ways addresses arrive:
//   - a heap profile's locations: a runtime address inside a Mapping
//     (memory_start, file_offset, filename), which ResolveProfileLines
//     turns into the file's link-time address and looks up, filling the
//     profile's Line.line and Function.filename where they are missing;
//   - a report line's frame "(/path/to/module+0xOFFSET)" (strata's leak
//     and misuse reports, LeakSanitizer's format), where OFFSET is from the
//     module's load address (SymbolizeReportLine).
// Debug info is found in the binary itself or where elfutils looks for
// separate debug files (/usr/lib/debug, build ids). A module without line
// tables, or that cannot be opened, is left as it is.
//
// Thread-safety: a SourceLines object is not thread-safe (it caches opened
// modules).
#ifndef STRATA_TOOLS_HEAPDUMP_SOURCE_LINES_H_
#define STRATA_TOOLS_HEAPDUMP_SOURCE_LINES_H_

#include <cstdint>
#include <map>
#include <memory>
#include <string>

#include "tools/heapdump/profile_reader.h"

namespace strata::heapdump {

class SourceLines {
 public:
  SourceLines();
  ~SourceLines();
  SourceLines(const SourceLines&) = delete;
  SourceLines& operator=(const SourceLines&) = delete;

  // file:line of the code at link-time address `vaddr` of the binary at
  // `path`. False when unknown.
  bool Lookup(const std::string& path, std::uint64_t vaddr, std::string* file, int* line);
  // As Lookup, for an offset from the module's load address (what a
  // report prints as module+0xOFFSET).
  bool LookupOffset(const std::string& path, std::uint64_t offset, std::string* file, int* line);
  // The link-time address of runtime `address` in a mapping of `path` at
  // `memory_start` that maps the file from `file_offset`. False when the
  // file has no such segment.
  bool MappingAddress(const std::string& path, std::uint64_t memory_start, std::uint64_t file_offset,
                      std::uint64_t address, std::uint64_t* vaddr);

 private:
  struct Module;
  Module* Open(const std::string& path);
  std::map<std::string, std::unique_ptr<Module>> modules_;
};

// Fills in file:line for every location of `profile` whose mapping names a
// binary with line tables (the location's innermost Line gets the line,
// its Function the file, when they lack them). Returns how many locations
// got a line.
int ResolveProfileLines(Profile* profile, SourceLines* lines);

// `line` with " FILE:LINE" inserted before each "(/path+0xOFF)" frame
// suffix whose module has line tables (the offset is a return address:
// looked up at OFF - 1).
std::string SymbolizeReportLine(const std::string& line, SourceLines* lines);

// A source path as shown: the build's "/proc/self/cwd/" prefix (Bazel's
// working directory) removed.
std::string DisplayPath(const std::string& file);

}  // namespace strata::heapdump

#endif  // STRATA_TOOLS_HEAPDUMP_SOURCE_LINES_H_
