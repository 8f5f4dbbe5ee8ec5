// tools/heapdump/flame_svg.cc: see flame_svg.h.
#include "tools/heapdump/flame_svg.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <map>
#include <memory>

namespace strata::heapdump {
namespace {

// Layout, in pixels.
constexpr int kFrameHeight = 16;     // row pitch
constexpr int kFrameGap = 1;         // vertical gap between rows
constexpr int kSideMargin = 10;
constexpr int kHeaderHeight = 56;    // title and subtitle
constexpr int kFooterHeight = 10;
constexpr int kFontSize = 12;
// Average advance of a Verdana/DejaVu glyph at kFontSize, for fitting
// names into frames without measuring text.
constexpr double kCharWidth = 7.0;
constexpr double kTextPadding = 3.0;  // left inset of a frame's label
constexpr int kMinLabelChars = 3;     // shorter labels are not drawn

struct Node {
  std::string name;
  std::int64_t value = 0;
  std::map<std::string, std::unique_ptr<Node>> children;  // sorted by name
};

std::int64_t AddSaturating(std::int64_t a, std::int64_t b) {
  std::int64_t r;
  return __builtin_add_overflow(a, b, &r) ? INT64_MAX : r;  // b > 0 here
}

int Depth(const Node& n) {
  int d = 0;
  for (const auto& [name, child] : n.children) d = std::max(d, Depth(*child));
  return d + 1;
}

// A warm colour from a hash of the name (FNV-1a), as flame graphs use.
std::string ColorFor(const std::string& name) {
  std::uint32_t h = 2166136261u;
  for (unsigned char c : name) {
    h ^= c;
    h *= 16777619u;
  }
  const int r = 205 + static_cast<int>(h % 50);
  const int g = 80 + static_cast<int>((h >> 8) % 150);
  const int b = 30 + static_cast<int>((h >> 16) % 50);
  char buf[32];
  std::snprintf(buf, sizeof(buf), "rgb(%d,%d,%d)", r, g, b);
  return buf;
}

std::string Fixed2(double v) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.2f", v);
  return buf;
}

// The label that fits in `width` pixels, or "" when none does.
std::string FitLabel(const std::string& name, double width) {
  const double room = (width - 2 * kTextPadding) / kCharWidth;
  if (room < kMinLabelChars) return "";
  const auto max_chars = static_cast<std::size_t>(room);
  if (name.size() <= max_chars) return name;
  return name.substr(0, max_chars - 2) + "..";
}

class Renderer {
 public:
  Renderer(std::ostream& out, const FlameOptions& options, std::int64_t total,
           double scale, int image_height)
      : out_(out),
        options_(options),
        total_(total),
        scale_(scale),
        image_height_(image_height) {}

  void Draw(const Node& node, double x, int depth) {
    const double width = static_cast<double>(node.value) * scale_;
    if (width < kMinFrameWidth && depth > 0) return;
    const int y = image_height_ - kFooterHeight - (depth + 1) * kFrameHeight;
    const std::string name = XmlEscape(node.name);
    const double pct = total_ == 0 ? 0.0
                                   : 100.0 * static_cast<double>(node.value) /
                                         static_cast<double>(total_);
    out_ << "<g class=\"frame\"><title>" << name << " ("
         << FormatValue(node.value, options_.unit) << ", " << Fixed2(pct)
         << "%)</title><rect x=\"" << Fixed2(x) << "\" y=\"" << y
         << "\" width=\"" << Fixed2(width) << "\" height=\""
         << kFrameHeight - kFrameGap << "\" fill=\""
         << (depth == 0 ? std::string("rgb(200,200,200)") : ColorFor(node.name))
         << "\" rx=\"2\" ry=\"2\"/>";
    const std::string label = FitLabel(node.name, width);
    if (!label.empty()) {
      out_ << "<text x=\"" << Fixed2(x + kTextPadding) << "\" y=\""
           << y + kFrameHeight - 4 << "\">" << XmlEscape(label) << "</text>";
    }
    out_ << "</g>\n";
    double child_x = x;
    for (const auto& [child_name, child] : node.children) {
      Draw(*child, child_x, depth + 1);
      child_x += static_cast<double>(child->value) * scale_;
    }
  }

 private:
  std::ostream& out_;
  const FlameOptions& options_;
  std::int64_t total_;
  double scale_;
  int image_height_;
};

}  // namespace

std::string XmlEscape(const std::string& s) {
  std::string out;
  out.reserve(s.size());
  for (char ch : s) {
    const auto c = static_cast<unsigned char>(ch);
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&apos;"; break;
      default:
        out += (c < 0x20 || c >= 0x7f) ? '?' : ch;
    }
  }
  return out;
}

void WriteFlameGraphSvg(std::ostream& out,
                        const std::vector<FoldedStack>& stacks,
                        const FlameOptions& options) {
  Node root;
  root.name = "all";
  for (const FoldedStack& s : stacks) {
    if (s.value <= 0) continue;
    Node* n = &root;
    n->value = AddSaturating(n->value, s.value);
    for (const std::string& f : s.frames) {
      std::unique_ptr<Node>& child = n->children[f];
      if (!child) {
        child = std::make_unique<Node>();
        child->name = f;
      }
      child->value = AddSaturating(child->value, s.value);
      n = child.get();
    }
  }

  const int width = std::clamp(options.width, 200, 20000);
  const int depth = Depth(root);
  const int height = kHeaderHeight + depth * kFrameHeight + kFooterHeight;
  const double usable = width - 2.0 * kSideMargin;
  const double scale =
      root.value > 0 ? usable / static_cast<double>(root.value) : 0.0;

  out << "<?xml version=\"1.0\" encoding=\"UTF-8\" standalone=\"no\"?>\n"
      << "<svg xmlns=\"http://www.w3.org/2000/svg\" version=\"1.1\" width=\""
      << width << "\" height=\"" << height << "\" viewBox=\"0 0 " << width
      << ' ' << height << "\" font-family=\"Verdana, DejaVu Sans, sans-serif\""
      << " font-size=\"" << kFontSize << "\">\n"
      << "<title>" << XmlEscape(options.title) << "</title>\n"
      << "<desc>Flame graph drawn by strata heapdump. Width of a frame is "
         "its share of the total; hover a frame for its value.</desc>\n"
      << "<rect x=\"0\" y=\"0\" width=\"" << width << "\" height=\"" << height
      << "\" fill=\"rgb(248,248,240)\"/>\n"
      << "<text x=\"" << width / 2 << "\" y=\"24\" text-anchor=\"middle\" "
      << "font-size=\"17\">" << XmlEscape(options.title) << "</text>\n";
  if (!options.subtitle.empty()) {
    out << "<text x=\"" << width / 2 << "\" y=\"44\" text-anchor=\"middle\" "
        << "fill=\"rgb(90,90,90)\">" << XmlEscape(options.subtitle)
        << "</text>\n";
  }
  Renderer renderer(out, options, root.value, scale, height);
  // The root is drawn full-width even when the total is 0.
  if (root.value == 0) {
    const int y = height - kFooterHeight - kFrameHeight;
    out << "<g class=\"frame\"><title>all (0, 0.00%)</title><rect x=\""
        << kSideMargin << "\" y=\"" << y << "\" width=\"" << Fixed2(usable)
        << "\" height=\"" << kFrameHeight - kFrameGap
        << "\" fill=\"rgb(200,200,200)\" rx=\"2\" ry=\"2\"/><text x=\""
        << Fixed2(kSideMargin + kTextPadding) << "\" y=\""
        << y + kFrameHeight - 4 << "\">all</text></g>\n";
  } else {
    renderer.Draw(root, kSideMargin, 0);
  }
  out << "</svg>\n";
}

}  // namespace strata::heapdump
