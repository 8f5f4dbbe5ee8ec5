#include "tools/heapdump/source_lines.h"

#include <dwarf.h>
#include <elfutils/libdw.h>
#include <elfutils/libdwfl.h>
#include <fcntl.h>
#include <gelf.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <regex>
#include <vector>

namespace strata::heapdump {

struct SourceLines::Module {
  Dwfl* dwfl = nullptr;
  Dwfl_Module* module = nullptr;
  struct Segment {
    std::uint64_t vaddr, offset, filesz;
  };
  std::vector<Segment> loads;  // PT_LOAD segments, in file order
  ~Module() {
    if (dwfl != nullptr) dwfl_end(dwfl);
  }
};

namespace {

const Dwfl_Callbacks kCallbacks = {
    .find_elf = dwfl_build_id_find_elf,
    .find_debuginfo = dwfl_standard_find_debuginfo,
    .section_address = dwfl_offline_section_address,
    .debuginfo_path = nullptr,
};

constexpr std::uint64_t kPage = 4096;

}  // namespace

SourceLines::SourceLines() = default;
SourceLines::~SourceLines() = default;

SourceLines::Module* SourceLines::Open(const std::string& path) {
  auto it = modules_.find(path);
  if (it != modules_.end()) return it->second.get();
  auto m = std::make_unique<Module>();
  Module* result = nullptr;
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    elf_version(EV_CURRENT);
    if (Elf* elf = elf_begin(fd, ELF_C_READ, nullptr)) {
      std::size_t n = 0;
      if (elf_getphdrnum(elf, &n) == 0) {
        for (std::size_t i = 0; i < n; ++i) {
          GElf_Phdr ph;
          if (gelf_getphdr(elf, static_cast<int>(i), &ph) != nullptr && ph.p_type == PT_LOAD) {
            m->loads.push_back({ph.p_vaddr, ph.p_offset, ph.p_filesz});
          }
        }
      }
      elf_end(elf);
    }
    close(fd);
    m->dwfl = dwfl_begin(&kCallbacks);
    if (m->dwfl != nullptr && !m->loads.empty()) {
      // Bias 0: addresses are the file's link-time addresses.
      int efd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
      if (efd >= 0) {
        m->module = dwfl_report_elf(m->dwfl, path.c_str(), path.c_str(), efd, 0, false);
        if (m->module == nullptr) close(efd);  // on success libdwfl owns it
      }
      dwfl_report_end(m->dwfl, nullptr, nullptr);
      if (m->module != nullptr) result = m.get();
    }
  }
  modules_[path] = std::move(m);
  return result;
}

namespace {

// The line in the function the symbol names (the outermost function, not
// one inlined into it): the call site of the outermost inlined subroutine
// that contains `vaddr`. False when `vaddr` is in no inlined code.
bool OuterCallSite(Dwfl_Module* module, std::uint64_t vaddr, std::string* file, int* line) {
  Dwarf_Addr bias = 0;
  Dwarf_Die* cu = dwfl_module_addrdie(module, vaddr, &bias);
  if (cu == nullptr) return false;
  Dwarf_Die* scopes = nullptr;
  const int n = dwarf_getscopes(cu, vaddr - bias, &scopes);
  if (n <= 0) return false;
  // The innermost inlined instance; past it dwarf_getscopes follows its
  // abstract origin, so the physical callers come from the DIE tree.
  int innermost = -1;
  for (int i = 0; i < n && innermost < 0; ++i) {
    if (dwarf_tag(&scopes[i]) == DW_TAG_inlined_subroutine) innermost = i;
  }
  Dwarf_Die* chain = nullptr;
  const int m = innermost < 0 ? 0 : dwarf_getscopes_die(&scopes[innermost], &chain);
  free(scopes);
  Dwarf_Die* outer = nullptr;
  for (int j = 0; j < m; ++j) {
    const int tag = dwarf_tag(&chain[j]);
    if (tag == DW_TAG_subprogram) break;
    if (tag == DW_TAG_inlined_subroutine) outer = &chain[j];
  }
  bool ok = false;
  Dwarf_Attribute attr;
  Dwarf_Word call_file = 0;
  Dwarf_Word call_line = 0;
  Dwarf_Files* files = nullptr;
  std::size_t nfiles = 0;
  if (outer != nullptr && dwarf_formudata(dwarf_attr(outer, DW_AT_call_file, &attr), &call_file) == 0 &&
      dwarf_formudata(dwarf_attr(outer, DW_AT_call_line, &attr), &call_line) == 0 && call_line > 0 &&
      dwarf_getsrcfiles(cu, &files, &nfiles) == 0 && call_file < nfiles) {
    if (const char* name = dwarf_filesrc(files, call_file, nullptr, nullptr)) {
      *file = name;
      *line = static_cast<int>(call_line);
      ok = true;
    }
  }
  free(chain);
  return ok;
}

}  // namespace

bool SourceLines::Lookup(const std::string& path, std::uint64_t vaddr, std::string* file, int* line) {
  Module* m = Open(path);
  if (m == nullptr) return false;
  if (OuterCallSite(m->module, vaddr, file, line)) return true;
  Dwfl_Line* l = dwfl_module_getsrc(m->module, vaddr);
  if (l == nullptr) return false;
  int lineno = 0;
  const char* f = dwfl_lineinfo(l, nullptr, &lineno, nullptr, nullptr, nullptr);
  if (f == nullptr || lineno <= 0) return false;
  *file = f;
  *line = lineno;
  return true;
}

bool SourceLines::LookupOffset(const std::string& path, std::uint64_t offset, std::string* file, int* line) {
  Module* m = Open(path);
  if (m == nullptr) return false;
  // The load address is that of the first segment (page aligned).
  return Lookup(path, offset + (m->loads.front().vaddr & ~(kPage - 1)), file, line);
}

bool SourceLines::MappingAddress(const std::string& path, std::uint64_t memory_start, std::uint64_t file_offset,
                                 std::uint64_t address, std::uint64_t* vaddr) {
  Module* m = Open(path);
  if (m == nullptr || address < memory_start) return false;
  for (const Module::Segment& s : m->loads) {
    if ((s.offset & ~(kPage - 1)) == file_offset) {
      *vaddr = address - memory_start + (s.vaddr & ~(kPage - 1));
      return true;
    }
  }
  return false;
}

int ResolveProfileLines(Profile* profile, SourceLines* lines) {
  int resolved = 0;
  for (Location& loc : profile->locations) {
    if (loc.lines.empty() || loc.lines.front().line > 0) continue;
    const Mapping* mapping = profile->FindMapping(loc.mapping_id);
    if (mapping == nullptr || mapping->filename.empty() || mapping->filename[0] != '/') continue;
    std::uint64_t vaddr = 0;
    if (!lines->MappingAddress(mapping->filename, mapping->memory_start, mapping->file_offset, loc.address,
                               &vaddr)) {
      continue;
    }
    std::string file;
    int line = 0;
    if (!lines->Lookup(mapping->filename, vaddr, &file, &line)) continue;
    loc.lines.front().line = line;
    for (Function& fn : profile->functions) {
      if (fn.id == loc.lines.front().function_id && fn.filename.empty()) fn.filename = DisplayPath(file);
    }
    ++resolved;
  }
  return resolved;
}

std::string SymbolizeReportLine(const std::string& line, SourceLines* lines) {
  static const std::regex kFrame(R"( \((/[^()]*)\+0x([0-9a-fA-F]+)\))");
  std::string out;
  auto begin = line.cbegin();
  for (std::sregex_iterator it(line.begin(), line.end(), kFrame), end; it != end; ++it) {
    const std::smatch& m = *it;
    out.append(begin, m[0].first);
    std::string file;
    int lineno = 0;
    const std::uint64_t offset = std::stoull(m[2].str(), nullptr, 16);
    if (offset > 0 && lines->LookupOffset(m[1].str(), offset - 1, &file, &lineno)) {
      out += " " + DisplayPath(file) + ":" + std::to_string(lineno);
    }
    out.append(m[0].first, m[0].second);
    begin = m[0].second;
  }
  out.append(begin, line.cend());
  return out;
}

std::string DisplayPath(const std::string& file) {
  static const std::string kCwd = "/proc/self/cwd/";
  return file.compare(0, kCwd.size(), kCwd) == 0 ? file.substr(kCwd.size()) : file;
}

}  // namespace strata::heapdump
