// tools/heapdump/heapdump_main.cc: the heapdump command line.
//
//   heapdump top    [TYPE] [-n N] [--cum] FILE
//   heapdump diff   [--alloc] [--by_function] [-n N] [--fail_on_growth=B] A B
//   heapdump folded [TYPE] FILE
//   heapdump svg    [TYPE] [--title=T] [--width=PX] [-o OUT.svg] FILE
//   heapdump symbolize [--no-lines]        (a filter: stdin to stdout)
//
// Exit status: 0 success, 1 growth above --fail_on_growth (diff), 2 usage
// or input errors (the message names the file and the problem).
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>
#include <string>
#include <vector>

#include "tools/heapdump/analysis.h"
#include "tools/heapdump/flame_svg.h"
#include "tools/heapdump/profile_reader.h"
#include "tools/heapdump/source_lines.h"

namespace strata::heapdump {
namespace {

constexpr int kExitOk = 0;
constexpr int kExitGrowth = 1;
constexpr int kExitError = 2;

constexpr char kUsage[] =
    R"(heapdump: inspect strata heap profiles (pprof profile.proto, gzipped or raw)

Usage:
  heapdump top    [TYPE] [-n N] [--cum] FILE
      Top functions by flat value (value where the function allocates
      itself) and cumulative value (value of every stack it is on).
  heapdump diff   [--alloc] [--by_function] [-n N] [--fail_on_growth=SIZE] A B
      What grew from profile A to profile B, per allocation site (stack),
      or per allocating function with --by_function: the change of in-use
      bytes and objects (allocated ones with --alloc), largest growth first,
      with totals.
  heapdump folded [TYPE] FILE
      Folded stacks, one 'root;caller;leaf value' line per stack.
  heapdump svg    [TYPE] [--title=TEXT] [--width=PX] [-o OUT.svg] FILE
      A self-contained flame-graph SVG (stdout without -o).
  heapdump symbolize [--no-lines]
      A filter: copies standard input to standard output, adding FILE:LINE
      to each report frame ending in (/path/module+0xOFFSET) (strata's
      leak and misuse reports, LeakSanitizer's) whose binary has line
      tables.
  heapdump --help

TYPE selects the value (default --inuse_space):
  --inuse_space  --inuse_objects  --alloc_space  --alloc_objects
Options:
  -n N, --nodecount=N     rows to show (0 = all; default 20)
  --cum                   top: sort by cumulative value
  --fail_on_growth=SIZE   diff: exit 1 when total bytes grew by more than
                          SIZE (bytes; k, M, G suffixes are 1024-based)
  --no-lines              name frames by function only; by default a frame
                          whose binary has debug info (DWARF line tables)
                          also shows FILE:LINE
FILE may be '-' for standard input.
Exit status: 0 ok, 1 growth above --fail_on_growth, 2 usage or input error.
)";

struct Args {
  std::string command;
  std::vector<std::string> files;
  std::string sample_type = "inuse_space";
  int node_count = 20;
  bool cum = false;
  bool alloc = false;
  bool by_function = false;
  bool has_growth_limit = false;
  std::int64_t growth_limit = 0;
  std::string output;
  std::string title;
  int width = 1200;
  bool lines = true;
};

int UsageError(const std::string& message) {
  std::cerr << "heapdump: " << message << "\nRun 'heapdump --help' for usage.\n";
  return kExitError;
}

bool ParseInt(const std::string& s, std::int64_t* out) {
  if (s.empty()) return false;
  errno = 0;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  if (errno != 0 || end == s.c_str() || *end != '\0') return false;
  *out = v;
  return true;
}

// "1048576", "512k", "4M", "1G" (1024-based).
bool ParseSize(std::string s, std::int64_t* out) {
  std::int64_t mult = 1;
  if (!s.empty()) {
    switch (s.back()) {
      case 'k': case 'K': mult = std::int64_t{1} << 10; break;
      case 'm': case 'M': mult = std::int64_t{1} << 20; break;
      case 'g': case 'G': mult = std::int64_t{1} << 30; break;
      default: break;
    }
    if (mult != 1) s.pop_back();
  }
  std::int64_t v;
  if (!ParseInt(s, &v) || v < 0 || v > INT64_MAX / mult) return false;
  *out = v * mult;
  return true;
}

// Parses argv; returns -1 to continue, else an exit code.
int ParseArgs(int argc, char** argv, Args* args) {
  if (argc < 2) {
    std::cerr << kUsage;
    return kExitError;
  }
  const std::string first = argv[1];
  if (first == "--help" || first == "-h" || first == "help") {
    std::cout << kUsage;
    return kExitOk;
  }
  args->command = first;
  if (first != "top" && first != "diff" && first != "folded" &&
      first != "svg" && first != "symbolize") {
    return UsageError("unknown command '" + first + "'");
  }
  bool flags_done = false;
  for (int i = 2; i < argc; ++i) {
    std::string a = argv[i];
    if (flags_done || a == "-" || a.empty() || a[0] != '-') {
      args->files.push_back(a);
      continue;
    }
    if (a == "--") {
      flags_done = true;
      continue;
    }
    // --name=value or --name value (for options that take a value).
    std::string name = a;
    std::string value;
    bool has_value = false;
    if (const auto eq = a.find('='); eq != std::string::npos) {
      name = a.substr(0, eq);
      value = a.substr(eq + 1);
      has_value = true;
    }
    auto take_value = [&]() -> bool {
      if (has_value) return true;
      if (i + 1 >= argc) return false;
      value = argv[++i];
      return true;
    };
    if (name == "--help" || name == "-h") {
      std::cout << kUsage;
      return kExitOk;
    } else if (name == "--inuse_space" || name == "--inuse_objects" ||
               name == "--alloc_space" || name == "--alloc_objects") {
      args->sample_type = name.substr(2);
    } else if (name == "-n" || name == "--nodecount") {
      std::int64_t n;
      if (!take_value() || !ParseInt(value, &n) || n < 0 || n > 1000000000) {
        return UsageError(name + " needs a count >= 0");
      }
      args->node_count = static_cast<int>(n);
    } else if (name == "--no-lines") {
      args->lines = false;
    } else if (name == "--cum") {
      args->cum = true;
    } else if (name == "--alloc") {
      args->alloc = true;
    } else if (name == "--by_function") {
      args->by_function = true;
    } else if (name == "--fail_on_growth") {
      if (!take_value() || !ParseSize(value, &args->growth_limit)) {
        return UsageError("--fail_on_growth needs a size in bytes");
      }
      args->has_growth_limit = true;
    } else if (name == "-o" || name == "--output") {
      if (!take_value() || value.empty()) {
        return UsageError(name + " needs a file name");
      }
      args->output = value;
    } else if (name == "--title") {
      if (!take_value()) return UsageError("--title needs a value");
      args->title = value;
    } else if (name == "--width") {
      std::int64_t w;
      if (!take_value() || !ParseInt(value, &w) || w < 200 || w > 20000) {
        return UsageError("--width needs a number of pixels in [200, 20000]");
      }
      args->width = static_cast<int>(w);
    } else {
      return UsageError("unknown option '" + a + "' for " + args->command);
    }
  }
  if (args->command == "symbolize") {
    if (!args->files.empty()) return UsageError("symbolize reads standard input; it takes no file");
    return -1;
  }
  const std::size_t want = args->command == "diff" ? 2 : 1;
  if (args->files.size() != want) {
    return UsageError(args->command + " takes " +
                      (want == 2 ? std::string("two profiles (A B)")
                                 : std::string("one profile FILE")) +
                      ", got " + std::to_string(args->files.size()));
  }
  return -1;
}

bool Load(const std::string& path, Profile* profile, bool lines) {
  std::string error;
  bool ok;
  if (path == "-") {
    std::string data((std::istreambuf_iterator<char>(std::cin)),
                     std::istreambuf_iterator<char>());
    ok = DecodeProfile(data, profile, &error);
  } else {
    ok = ReadProfileFile(path, profile, &error);
  }
  if (!ok) {
    std::cerr << "heapdump: " << (path == "-" ? "<stdin>" : path) << ": "
              << error << '\n';
  }
  if (ok && lines) {
    SourceLines source_lines;
    ResolveProfileLines(profile, &source_lines);
  }
  return ok;
}

int FileError(const std::string& path, const std::string& message) {
  std::cerr << "heapdump: " << path << ": " << message << '\n';
  return kExitError;
}

// Loads a single-profile command's input and resolves its sample type.
int LoadOne(const Args& args, Profile* profile, int* index) {
  const std::string& path = args.files[0];
  if (!Load(path, profile, args.lines)) return kExitError;
  if (profile->samples.empty()) {
    return FileError(path, "profile has no samples (nothing to report)");
  }
  std::string error;
  *index = FindSampleType(*profile, args.sample_type, &error);
  if (*index < 0) return FileError(path, error);
  return -1;
}

int RunTop(const Args& args) {
  Profile profile;
  int index;
  if (int rc = LoadOne(args, &profile, &index); rc >= 0) return rc;
  TopOptions options;
  options.node_count = args.node_count;
  options.sort_by_cum = args.cum;
  PrintTop(std::cout, profile, index, options);
  return kExitOk;
}

int RunFolded(const Args& args) {
  Profile profile;
  int index;
  if (int rc = LoadOne(args, &profile, &index); rc >= 0) return rc;
  PrintFolded(std::cout, profile, index);
  return kExitOk;
}

int RunSvg(const Args& args) {
  Profile profile;
  int index;
  if (int rc = LoadOne(args, &profile, &index); rc >= 0) return rc;
  FlameOptions options;
  const ValueType& vt = profile.sample_types[static_cast<std::size_t>(index)];
  options.title = args.title.empty() ? "Heap flame graph: " + vt.type
                                     : args.title;
  std::int64_t total = 0;
  for (const Sample& s : profile.samples) {
    if (__builtin_add_overflow(total, s.values[static_cast<std::size_t>(index)],
                               &total)) {
      total = INT64_MAX;
    }
  }
  const std::string& path = args.files[0];
  options.subtitle = (path == "-" ? std::string("<stdin>") : path) + ", " +
                     vt.type + ", total " + FormatValue(total, vt.unit);
  options.unit = vt.unit;
  options.width = args.width;
  const std::vector<FoldedStack> stacks = FoldStacks(profile, index);
  if (args.output.empty() || args.output == "-") {
    WriteFlameGraphSvg(std::cout, stacks, options);
    return kExitOk;
  }
  std::ofstream out(args.output, std::ios::binary | std::ios::trunc);
  if (!out) {
    return FileError(args.output, std::string("cannot write: ") +
                                      std::strerror(errno));
  }
  WriteFlameGraphSvg(out, stacks, options);
  out.close();
  if (!out) return FileError(args.output, "write failed");
  return kExitOk;
}

int RunDiff(const Args& args) {
  Profile a;
  Profile b;
  if (!Load(args.files[0], &a, args.lines) || !Load(args.files[1], &b, args.lines)) return kExitError;
  if (a.samples.empty() && b.samples.empty()) {
    return FileError(args.files[0] + " and " + args.files[1],
                     "neither profile has samples (nothing to compare)");
  }
  DiffOptions options;
  if (args.alloc) {
    options.objects_type = "alloc_objects";
    options.bytes_type = "alloc_space";
  }
  options.by_function = args.by_function;
  options.node_count = args.node_count;
  DiffResult result;
  std::string error;
  if (!ComputeDiff(a, b, options, &result, &error)) {
    std::cerr << "heapdump: " << error << '\n';
    return kExitError;
  }
  std::cout << "A: " << args.files[0] << "\nB: " << args.files[1] << '\n';
  PrintDiff(std::cout, result, options);
  if (args.has_growth_limit) {
    std::int64_t growth;
    if (__builtin_sub_overflow(result.bytes_b, result.bytes_a, &growth)) {
      growth = result.bytes_b > result.bytes_a ? INT64_MAX : INT64_MIN;
    }
    if (growth > args.growth_limit) {
      std::cout << "GROWTH: " << options.bytes_type << " grew by "
                << FormatValue(growth, result.bytes_unit) << ", above the limit "
                << FormatValue(args.growth_limit, result.bytes_unit) << '\n';
      return kExitGrowth;
    }
  }
  return kExitOk;
}

// Copies stdin to stdout line by line (flushed, so that a report piped
// through interleaves with the program's other output as it comes).
int RunSymbolize(const Args& args) {
  SourceLines source_lines;
  std::string line;
  while (std::getline(std::cin, line)) {
    std::cout << (args.lines ? SymbolizeReportLine(line, &source_lines) : line);
    if (!std::cin.eof()) std::cout << '\n';
    std::cout.flush();
  }
  return kExitOk;
}

}  // namespace

int Main(int argc, char** argv) {
  Args args;
  if (int rc = ParseArgs(argc, argv, &args); rc >= 0) return rc;
  int rc;
  if (args.command == "top") {
    rc = RunTop(args);
  } else if (args.command == "diff") {
    rc = RunDiff(args);
  } else if (args.command == "folded") {
    rc = RunFolded(args);
  } else if (args.command == "symbolize") {
    rc = RunSymbolize(args);
  } else {
    rc = RunSvg(args);
  }
  std::cout.flush();
  if (!std::cout) {
    std::cerr << "heapdump: error writing standard output\n";
    return kExitError;
  }
  return rc;
}

}  // namespace strata::heapdump

int main(int argc, char** argv) { return strata::heapdump::Main(argc, argv); }
