"""The look of preview animatics: caption overlays, frame sizes, background colours.

Stage: used by `storyc.media.ffmpeg.render_preview` (preview backend). In: caption text, an
aspect ratio, image paths. Out: RGBA PNG bytes (a transparent frame with a caption band
and a small "PREVIEW" tag), frame sizes, colours, filters that turn photos upright.
I/O: reads the EXIF header of images (`mediainfo.orientation`), nothing else; no fonts
from the system: drawtext needs a font file, and a
fresh machine may have none, so the glyphs live here and every machine draws the same
pixels (previews stay byte-identical across machines).
"""

from __future__ import annotations

import colorsys
import hashlib
import re
import struct
import textwrap
import zlib

from storyc.media.info import orientation

# Printable ASCII 0x20..0x7E, five columns per glyph, bit 0 = top row (the classic 5x7
# LCD font). Characters outside this range are drawn as "?".
_FONT = bytes.fromhex(
    "0000000000"
    "00005f0000"
    "0007000700"
    "147f147f14"
    "242a7f2a12"
    "2313086462"
    "3649552250"
    "0005030000"
    "001c224100"
    "0041221c00"
    "14083e0814"
    "08083e0808"
    "0050300000"
    "0808080808"
    "0060600000"
    "2010080402"
    "3e5149453e"
    "00427f4000"
    "4261514946"
    "2141454b31"
    "1814127f10"
    "2745454539"
    "3c4a494930"
    "0171090503"
    "3649494936"
    "064949291e"
    "0036360000"
    "0056360000"
    "0814224100"
    "1414141414"
    "0041221408"
    "0201510906"
    "324979413e"
    "7e1111117e"
    "7f49494936"
    "3e41414122"
    "7f4141221c"
    "7f49494941"
    "7f09090101"
    "3e41415132"
    "7f0808087f"
    "00417f4100"
    "2040413f01"
    "7f08142241"
    "7f40404040"
    "7f0204027f"
    "7f0408107f"
    "3e4141413e"
    "7f09090906"
    "3e4151215e"
    "7f09192946"
    "4649494931"
    "01017f0101"
    "3f4040403f"
    "1f2040201f"
    "7f2018207f"
    "6314081463"
    "0304780403"
    "6151494543"
    "007f414100"
    "0204081020"
    "0041417f00"
    "0402010204"
    "4040404040"
    "0001020400"
    "2054545478"
    "7f48444438"
    "3844444420"
    "384444487f"
    "3854545418"
    "087e090102"
    "0c5252523e"
    "7f08040478"
    "00447d4000"
    "2040443d00"
    "007f102844"
    "00417f4000"
    "7c04180478"
    "7c08040478"
    "3844444438"
    "7c14141408"
    "081414187c"
    "7c08040408"
    "4854545420"
    "043f444020"
    "3c4040207c"
    "1c2040201c"
    "3c4030403c"
    "4428102844"
    "0c5050503c"
    "4464544c44"
    "0008364100"
    "00007f0000"
    "0041360800"
    "0201020402"
)
_GLYPH_W, _GLYPH_H = 5, 7
_CELL_W, _CELL_H = 6, 9  # one column and two rows of spacing


def _glyph(ch: str) -> bytes:
    code = ord(ch)
    if not 0x20 <= code <= 0x7E:
        code = ord("?")
    i = (code - 0x20) * _GLYPH_W
    return _FONT[i : i + _GLYPH_W]


def _ascii(text: str) -> str:
    # Common typography to its ASCII look-alike; anything else becomes "?" in _glyph.
    table = str.maketrans(
        {
            "\u2018": "'",
            "\u2019": "'",
            "\u201c": '"',
            "\u201d": '"',
            "\u2013": "-",
            "\u2014": "-",
            "\u2026": "...",
            "\n": " ",
            "\t": " ",
            "\u00a0": " ",
        }
    )
    return " ".join(text.translate(table).split())


def wrap(text: str, columns: int, max_lines: int) -> list[str]:
    """Wrap `text` into at most `max_lines` lines of `columns` characters ("..." if cut)."""
    lines = textwrap.wrap(_ascii(text), width=max(columns, 4), break_long_words=True)
    if len(lines) > max_lines:
        lines = lines[:max_lines]
        last = lines[-1]
        lines[-1] = (last[: columns - 3].rstrip() if len(last) > columns - 3 else last) + "..."
    return lines


class _Canvas:
    """An RGBA bitmap with rectangle fills and scaled text."""

    def __init__(self, width: int, height: int) -> None:
        self.w, self.h = width, height
        self.px = bytearray(width * height * 4)

    def fill(self, x0: int, y0: int, x1: int, y1: int, rgba: tuple[int, int, int, int]) -> None:
        x0, y0, x1, y1 = max(x0, 0), max(y0, 0), min(x1, self.w), min(y1, self.h)
        if x0 >= x1:
            return
        row = bytes(rgba) * (x1 - x0)
        for y in range(y0, y1):
            start = (y * self.w + x0) * 4
            self.px[start : start + len(row)] = row

    def text(self, x: int, y: int, s: str, scale: int, rgba: tuple[int, int, int, int]) -> None:
        for n, ch in enumerate(s):
            cols = _glyph(ch)
            gx = x + n * _CELL_W * scale
            for c, bits in enumerate(cols):
                for r in range(_GLYPH_H):
                    if bits >> r & 1:
                        px = gx + c * scale
                        py = y + r * scale
                        self.fill(px, py, px + scale, py + scale, rgba)

    def png(self) -> bytes:
        raw = b"".join(
            b"\x00" + bytes(self.px[y * self.w * 4 : (y + 1) * self.w * 4]) for y in range(self.h)
        )

        def chunk(kind: bytes, data: bytes) -> bytes:
            body = kind + data
            return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

        ihdr = struct.pack(">IIBBBBB", self.w, self.h, 8, 6, 0, 0, 0)  # 8-bit RGBA
        return (
            b"\x89PNG\r\n\x1a\n"
            + chunk(b"IHDR", ihdr)
            + chunk(b"IDAT", zlib.compress(raw, 6))
            + chunk(b"IEND", b"")
        )


def text_width(s: str, scale: int) -> int:
    return len(s) * _CELL_W * scale - scale


def overlay_png(width: int, height: int, caption: str, *, tag: str = "PREVIEW") -> bytes:
    """A transparent width x height PNG: caption in a dark band at the bottom, a tag top-left."""
    scale = max(1, min(width, height) // 180)
    canvas = _Canvas(width, height)
    margin = 4 * scale
    columns = max(4, (width - 2 * margin) // (_CELL_W * scale))
    max_lines = 3 if width >= height else 5
    lines = wrap(caption, columns, max_lines) if caption.strip() else []
    if lines:
        band = len(lines) * _CELL_H * scale + 2 * margin
        canvas.fill(0, height - band, width, height, (0, 0, 0, 150))
        for i, line in enumerate(lines):
            x = (width - text_width(line, scale)) // 2
            y = height - band + margin + i * _CELL_H * scale + scale
            canvas.text(x + scale, y + scale, line, scale, (0, 0, 0, 200))  # drop shadow
            canvas.text(x, y, line, scale, (255, 255, 255, 255))
    if tag:
        tw = text_width(tag, scale)
        canvas.fill(
            margin, margin, margin + tw + 4 * scale, margin + 11 * scale, (200, 30, 40, 190)
        )
        canvas.text(margin + 2 * scale, margin + 2 * scale, tag, scale, (255, 255, 255, 255))
    return canvas.png()


def frame_size(aspect: str, short: int) -> tuple[int, int]:
    """ "16:9" at 360 → (640, 360); "9:16" → (360, 640). `short` is the short side."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*:\s*(\d+(?:\.\d+)?)\s*", aspect)
    if m is None or float(m.group(1)) <= 0 or float(m.group(2)) <= 0:
        raise ValueError(f"aspect {aspect!r} is not like '16:9'")
    a, b = float(m.group(1)), float(m.group(2))
    if not 1 / 4 <= a / b <= 4:
        raise ValueError(f"aspect {aspect} is too extreme")
    long = round(short * max(a, b) / min(a, b) / 2) * 2
    return (long, short) if a >= b else (short, long)


def background_colours(caption: str) -> tuple[str, str]:
    """Two muted, related colours from a hash of the caption: same prompt, same look."""
    h = hashlib.sha256(caption.encode("utf-8")).digest()
    hue = h[0] / 255

    def rgb(shift: float, value: float) -> str:
        r, g, b = colorsys.hsv_to_rgb((hue + shift) % 1.0, 0.55, value)
        return f"0x{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"

    return rgb(0.0, 0.45 + h[1] / 2550), rgb(0.12, 0.22 + h[2] / 2550)


# EXIF orientation → the filters that show the picture upright (ffmpeg ignores EXIF).
_UPRIGHT = {
    2: "hflip,",
    3: "hflip,vflip,",
    4: "vflip,",
    5: "transpose=0,",
    6: "transpose=1,",
    7: "transpose=3,",
    8: "transpose=2,",
}


def upright(image: str) -> str:
    return _UPRIGHT.get(orientation(image), "")
