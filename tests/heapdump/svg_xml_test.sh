#!/usr/bin/env bash
# tests/heapdump/svg_xml_test.sh: `heapdump svg` writes well-formed XML that
# is an SVG holding the expected frames, with no script and no external
# reference. Checked with python3's xml.etree (Debian python3).
set -euo pipefail

heapdump="$1"
make_profile="$2"
dir="${TEST_TMPDIR:-$(mktemp -d)}"

"$make_profile" b "$dir/b.pb.gz"
"$heapdump" svg "$dir/b.pb.gz" -o "$dir/b.svg"
"$heapdump" svg --inuse_objects --title 'objects <&> "quoted"' "$dir/b.pb.gz" \
  > "$dir/b_objects.svg"

PYTHON=/usr/bin/python3
[ -x "$PYTHON" ] || PYTHON=python3

"$PYTHON" - "$dir/b.svg" "$dir/b_objects.svg" <<'PY'
import sys
import xml.etree.ElementTree as ET

NS = "{http://www.w3.org/2000/svg}"

def check(path, want_title, want_frames):
    root = ET.parse(path).getroot()  # raises on malformed XML
    assert root.tag == NS + "svg", root.tag
    width = float(root.get("width"))
    assert root.find(NS + "title").text == want_title, root.find(NS + "title").text
    frames = {}
    for g in root.iter(NS + "g"):
        title = g.find(NS + "title").text
        rect = g.find(NS + "rect")
        x, w = float(rect.get("x")), float(rect.get("width"))
        assert 0 <= x and x + w <= width + 0.01, (title, x, w)
        frames[title.rsplit(" (", 1)[0]] = (title, w)
    for name in want_frames:
        assert name in frames, (name, sorted(frames))
    # Widths are proportional to value: the root spans everything and
    # Leak (102400 of 139264 bytes) takes its share of it.
    all_w = frames["all"][1]
    for name, (title, w) in frames.items():
        assert w <= all_w + 0.01, (name, w, all_w)
    for bad in ("script", "foreignObject", "image", "use"):
        assert root.find(".//" + NS + bad) is None, bad
    text = open(path, encoding="utf-8").read()
    assert "http://" not in text.replace('xmlns="http://www.w3.org/2000/svg"', ""), "external reference"
    return frames

f = check(sys.argv[1], "Heap flame graph: inuse_space",
          ["all", "main", "Work", "AllocA", "AllocB", "Leak",
           "Cache<int, std::string>::Insert(K const&)"])
ratio = f["Leak"][1] / f["all"][1]
assert abs(ratio - 102400 / 139264) < 0.001, ratio
assert f["Leak"][0] == "Leak (100kB, 73.53%)", f["Leak"][0]

g = check(sys.argv[2], 'objects <&> "quoted"', ["all", "Leak"])
assert g["Leak"][0] == "Leak (100, 72.99%)", g["Leak"][0]
print("svg ok:", len(f), "and", len(g), "frames")
PY
