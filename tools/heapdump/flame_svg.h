// tools/heapdump/flame_svg.h: renders folded stacks as a self-contained
// flame-graph SVG.
//
// Contract:
//   - Output is a complete, well-formed XML 1.0 SVG document with no
//     script, no external reference and no network access: rectangles
//     whose widths are proportional to value, the root ("all") at the
//     bottom, children left to right in name order, names as text
//     truncated to fit (".." marks a cut), and a hover <title> tooltip on
//     every frame with its full name, value and share of the total.
//   - Colours are a deterministic function of the frame name (a hash into
//     a warm palette), so the same function has the same colour in every
//     graph. Output is byte-for-byte deterministic for equal input.
//   - Names are XML-escaped; control and non-ASCII bytes become '?', so
//     arbitrary input cannot break well-formedness.
//   - Frames narrower than kMinFrameWidth pixels are not drawn (their
//     value still counts in their parents).
//   - Only positive values are drawn; an empty input yields a graph with
//     the root frame alone, valued 0.
//
// Thread-safety: pure function of its arguments.
#ifndef STRATA_TOOLS_HEAPDUMP_FLAME_SVG_H_
#define STRATA_TOOLS_HEAPDUMP_FLAME_SVG_H_

#include <ostream>
#include <string>
#include <vector>

#include "tools/heapdump/analysis.h"

namespace strata::heapdump {

// Below this width (pixels) a frame is not drawn.
inline constexpr double kMinFrameWidth = 0.1;

struct FlameOptions {
  std::string title = "Flame graph";
  std::string subtitle;        // e.g. the file and sample type
  std::string unit = "bytes";  // for tooltip values
  int width = 1200;            // pixels, clamped to [200, 20000]
};

void WriteFlameGraphSvg(std::ostream& out,
                        const std::vector<FoldedStack>& stacks,
                        const FlameOptions& options);

// Escapes `s` for XML text and attribute values (see the contract).
std::string XmlEscape(const std::string& s);

}  // namespace strata::heapdump

#endif  // STRATA_TOOLS_HEAPDUMP_FLAME_SVG_H_
