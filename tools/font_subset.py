"""Build the preview captions' glyph file from GNU Unifont (`storyc/media/fonts/`).

Usage: python tools/font_subset.py UNIFONT.hex [OUT]

UNIFONT.hex is the `.hex` file of GNU Unifont (Debian's `unifont` package installs it as
/usr/share/unifont/unifont.hex; version 15.0.01 made the committed file). OUT defaults to
storyc/media/fonts/unifont-subset.bin.xz. The same input gives the same bytes.

Kept: the scripts a caption can be drawn in without shaping — Latin (with IPA, the
Vietnamese block and combining marks), Greek, Cyrillic, punctuation and common symbols,
CJK punctuation, kana, Bopomofo, Hangul syllables and compatibility jamo, the CJK Unified
Ideographs block, full- and half-width forms. Left out: scripts that need shaping or
right-to-left layout (Arabic, Hebrew, Indic), CJK extension A, private use.

Format (little endian): b"SCUF1", uint32 count, count × uint16 code points (ascending),
count × uint8 width in bytes per row (1 = 8 px, 2 = 16 px), then each glyph's 16 rows,
top first, most significant bit = leftmost pixel. The whole is xz-compressed.
"""

from __future__ import annotations

import lzma
import struct
import sys
from pathlib import Path

RANGES = [
    (0x0020, 0x007E),
    (0x00A0, 0x02FF),  # Latin-1, Latin Extended-A/B, IPA, spacing modifiers
    (0x0300, 0x036F),  # combining diacritical marks
    (0x0370, 0x03FF),  # Greek
    (0x0400, 0x052F),  # Cyrillic and its supplement
    (0x1E00, 0x1EFF),  # Latin Extended Additional (Vietnamese)
    (0x2000, 0x206F),  # general punctuation
    (0x20A0, 0x20CF),  # currency
    (0x2100, 0x21FF),  # letterlike, number forms, arrows
    (0x2200, 0x22FF),  # mathematical operators
    (0x2460, 0x27BF),  # enclosed alphanumerics, boxes, shapes, symbols, dingbats
    (0x3000, 0x312F),  # CJK punctuation, hiragana, katakana, bopomofo
    (0x3130, 0x318F),  # Hangul compatibility jamo
    (0x31F0, 0x32FF),  # katakana extension, enclosed CJK
    (0x4E00, 0x9FFF),  # CJK Unified Ideographs
    (0xAC00, 0xD7A3),  # Hangul syllables
    (0xFF00, 0xFFEF),  # half- and full-width forms
    (0xFFFD, 0xFFFD),  # the replacement character, drawn for anything not kept
]


def build(hex_path: Path) -> bytes:
    glyphs: dict[int, bytes] = {}
    for line in hex_path.read_text("ascii").splitlines():
        if not line.strip():
            continue
        cp_text, bits = line.split(":")
        cp = int(cp_text, 16)
        if any(a <= cp <= b for a, b in RANGES) and len(bits) in (32, 64):
            glyphs[cp] = bytes.fromhex(bits)
    cps = sorted(glyphs)
    head = b"SCUF1" + struct.pack("<I", len(cps))
    table = struct.pack(f"<{len(cps)}H", *cps) + bytes(len(glyphs[c]) // 16 for c in cps)
    raw = head + table + b"".join(glyphs[c] for c in cps)
    return lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)


def main(argv: list[str]) -> int:
    if not argv:
        print(__doc__)
        return 2
    out = Path(argv[1]) if len(argv) > 1 else Path("storyc/media/fonts/unifont-subset.bin.xz")
    data = build(Path(argv[0]))
    out.write_bytes(data)
    print(f"{out}: {len(data):,} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
