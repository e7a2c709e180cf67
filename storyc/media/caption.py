"""The look of preview animatics: caption bands, the scene tag, frame sizes, colours.

Stage: used by `storyc.media.ffmpeg.render_preview` (preview backend, loopback provider).
In: caption text, a tag (badge and title), a frame size, image paths. Out: RGBA PNG bytes
(caption bands, one per page of a long caption; the tag), frame sizes, colours, filters
that turn photos upright. I/O: reads the glyph file beside this module once per process
and the EXIF header of images (`mediainfo.orientation`); nothing else.

Text is drawn here, in pure Python, from a subset of GNU Unifont (`fonts/`, 8×16 and
16×16 bitmaps, SIL OFL 1.1): every machine draws the same pixels with no font installed
and no font library, so previews stay byte-identical across machines, and accented,
Greek, Cyrillic and CJK text reads as written. A character the subset lacks is drawn as
U+FFFD (a box), never silently dropped.
"""

from __future__ import annotations

import bisect
import colorsys
import hashlib
import lzma
import re
import struct
import unicodedata
import zlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from storyc.media.info import orientation

FONT_FILE = Path(__file__).with_name("fonts") / "unifont-subset.bin.xz"
GLYPH_H = 16
LINE_H = 18  # one glyph plus two rows of leading
WHITE = (255, 255, 255, 255)
MENTION = (255, 214, 80, 255)  # `@name` in the caption: the writer's names stand out
SHADOW = (0, 0, 0, 210)
BAND = (0, 0, 0, 160)
BADGE = (200, 30, 40, 220)
TITLE_BOX = (0, 0, 0, 170)
MUTED = (200, 200, 200, 255)

Run = tuple[int, int, int]  # (row, first column, column after the last) of set pixels


class FontError(Exception):
    """The glyph file is missing or damaged (a broken installation)."""


class _Font:
    """Glyph lookup over the packed subset (see tools/font_subset.py for the format)."""

    def __init__(self, raw: bytes) -> None:
        if raw[:5] != b"SCUF1" or len(raw) < 9:
            raise FontError("the caption font file is damaged")
        (count,) = struct.unpack_from("<I", raw, 5)
        table = 9
        self.codes = list(struct.unpack_from(f"<{count}H", raw, table))
        widths = raw[table + 2 * count : table + 3 * count]
        self.widths = widths
        self.offsets: list[int] = []
        pos = table + 3 * count
        for w in widths:
            self.offsets.append(pos)
            pos += 16 * w
        if pos != len(raw):
            raise FontError("the caption font file is damaged")
        self.raw = raw
        self._runs: dict[str, tuple[int, tuple[Run, ...]]] = {}

    def _index(self, code: int) -> int | None:
        i = bisect.bisect_left(self.codes, code)
        return i if i < len(self.codes) and self.codes[i] == code else None

    def has(self, ch: str) -> bool:
        return len(ch) == 1 and self._index(ord(ch)) is not None

    def glyph(self, ch: str) -> tuple[int, tuple[Run, ...]]:
        """(advance in pixels, runs of set pixels) of one character at scale 1."""
        found = self._runs.get(ch)
        if found is not None:
            return found
        i = self._index(ord(ch)) if len(ch) == 1 else None
        if i is None:
            i = self._index(0xFFFD)
            assert i is not None
        w = self.widths[i]
        start = self.offsets[i]
        runs: list[Run] = []
        for row in range(GLYPH_H):
            bits = int.from_bytes(self.raw[start + row * w : start + (row + 1) * w], "big")
            width = 8 * w
            col = 0
            while col < width:
                if bits >> (width - 1 - col) & 1:
                    end = col
                    while end < width and bits >> (width - 1 - end) & 1:
                        end += 1
                    runs.append((row, col, end))
                    col = end
                else:
                    col += 1
        advance = 0 if unicodedata.combining(ch) else 8 * w
        found = (advance, tuple(runs))
        self._runs[ch] = found
        return found


@lru_cache(maxsize=1)
def font() -> _Font:
    try:
        return _Font(lzma.decompress(FONT_FILE.read_bytes()))
    except (OSError, lzma.LZMAError) as exc:
        raise FontError(f"cannot read the caption font {FONT_FILE.name}: {exc}") from None


def clean_text(text: str) -> str:
    """One paragraph: NFC (so accents are one glyph), every run of whitespace one space."""
    return " ".join(unicodedata.normalize("NFC", text).split())


def text_width(s: str, scale: int = 1) -> int:
    f = font()
    return sum(f.glyph(ch)[0] for ch in s) * scale


def _is_wide_break(ch: str) -> bool:
    # CJK text has no spaces: a line may break before or after any of these.
    return unicodedata.east_asian_width(ch) in ("W", "F")


def _tokens(text: str) -> list[str]:
    """Words, single spaces, and single wide (CJK) characters, in order."""
    out: list[str] = []
    word = ""
    for ch in text:
        if ch == " " or _is_wide_break(ch):
            if word:
                out.append(word)
                word = ""
            out.append(ch)
        else:
            word += ch
    if word:
        out.append(word)
    return out


def wrap(text: str, width: int, scale: int = 1) -> list[str]:
    """Lines of `text` no wider than `width` pixels: breaks at spaces and around CJK
    characters, inside a word only when the word alone is wider than a line."""
    lines: list[str] = []
    line, used = "", 0
    for tok in _tokens(clean_text(text)):
        w = text_width(tok, scale)
        if tok == " ":
            if line:
                line, used = line + " ", used + w
            continue
        if used + w <= width:
            line, used = line + tok, used + w
            continue
        if line.strip():
            lines.append(line.rstrip())
        line, used = "", 0
        while text_width(tok, scale) > width:  # one word wider than the line: cut it
            cut = 1
            while cut < len(tok) and text_width(tok[: cut + 1], scale) <= width:
                cut += 1
            lines.append(tok[:cut])
            tok = tok[cut:]
        line, used = tok, text_width(tok, scale)
    if line.strip():
        lines.append(line.rstrip())
    return lines


_MENTION = re.compile(r"(?<![\w@])@[^\s@.,;:!?()\[\]{}\"'`]+")


def mention_spans(line: str) -> list[tuple[int, int]]:
    """Character ranges of `@name` mentions in a caption line (drawn highlighted)."""
    return [m.span() for m in _MENTION.finditer(line)]


class Canvas:
    """An RGBA bitmap with rectangle fills and text, written out as PNG."""

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

    def text(
        self,
        x: int,
        y: int,
        s: str,
        scale: int,
        rgba: tuple[int, int, int, int],
        *,
        colours: dict[int, tuple[int, int, int, int]] | None = None,
        shadow: bool = False,
    ) -> int:
        """Draw `s` with its top-left at (x, y); returns the x after it. `colours` gives
        other colours by character index; `shadow` draws a one-pixel drop shadow first."""
        if shadow:
            self.text(x + scale, y + scale, s, scale, SHADOW)
        f = font()
        pen = prev = x
        for i, ch in enumerate(s):
            advance, runs = f.glyph(ch)
            gx = pen if advance else prev  # a combining mark sits on the character before
            colour = colours.get(i, rgba) if colours else rgba
            for row, c0, c1 in runs:
                py = y + row * scale
                self.fill(gx + c0 * scale, py, gx + c1 * scale, py + scale, colour)
            if advance:
                prev = pen
                pen += advance * scale
        return pen

    def png(self) -> bytes:
        stride = self.w * 4
        raw = b"".join(
            b"\x00" + bytes(self.px[y * stride : (y + 1) * stride]) for y in range(self.h)
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


def scale_for(width: int, height: int) -> int:
    """Pixels per font pixel: 1 up to 719 px on the short side, 2 from 720, and so on."""
    return max(1, min(width, height) // 360)


@dataclass(frozen=True)
class CaptionLayout:
    """How a caption is cut into pages for a frame: lines per page and the pages."""

    scale: int
    pages: tuple[tuple[str, ...], ...]
    band_height: int


def layout_caption(
    caption: str, width: int, height: int, *, seconds: float, min_page_seconds: float = 1.5
) -> CaptionLayout:
    """Wrap the caption to the frame and cut it into pages.

    A caption that fits in 3 lines (5 in portrait) is one page. A longer one is shown a
    page at a time rather than cut: pages of up to 3 (5) lines while each page stays on
    screen for at least `min_page_seconds`, up to twice as many lines per page when the
    clip is too short for that, and as many pages as it takes after that.
    """
    scale = scale_for(width, height)
    margin = 6 * scale
    base = 3 if width >= height else 5
    text = clean_text(caption)
    if not text:
        return CaptionLayout(scale, (), 0)
    lines = wrap(text, width - 2 * margin, scale)
    per_page = base
    if len(lines) > base:
        # Room on both sides for the page number ("12/12" at the top right), so that
        # centred lines never run into it.
        lines = wrap(text, width - 2 * margin - 2 * text_width(" 00/00", scale), scale)
        per_page = base
        while per_page < 2 * base and -(-len(lines) // per_page) * min_page_seconds > seconds:
            per_page += 1
    pages = tuple(tuple(lines[i : i + per_page]) for i in range(0, len(lines), per_page))
    rows = max(len(p) for p in pages)
    return CaptionLayout(scale, pages, rows * LINE_H * scale + 2 * margin)


def caption_band_png(layout: CaptionLayout, width: int, page: int) -> bytes:
    """The band for one page: dark translucent, lines centred, `@names` highlighted, the
    page number ("2/3") at the top right when there are several pages."""
    s = layout.scale
    margin = 6 * s
    canvas = Canvas(width, layout.band_height)
    canvas.fill(0, 0, width, layout.band_height, BAND)
    lines = layout.pages[page]
    # The lines of a short last page sit at the bottom, where the eye already is.
    top = layout.band_height - margin - len(lines) * LINE_H * s
    for i, line in enumerate(lines):
        colours = {k: MENTION for a, b in mention_spans(line) for k in range(a, b)}
        x = (width - text_width(line, s)) // 2
        canvas.text(x, top + i * LINE_H * s + s, line, s, WHITE, colours=colours, shadow=True)
    if len(layout.pages) > 1:
        label = f"{page + 1}/{len(layout.pages)}"
        canvas.text(width - margin - text_width(label, s), margin + s, label, s, MUTED)
    return canvas.png()


def tag_png(badge: str, title: str, scale: int) -> tuple[bytes, int, int]:
    """The top-left tag: a red badge ("PREVIEW") and the title ("arrival · take 2").
    Returns (PNG, width, height)."""
    pad = 3 * scale
    badge, title = clean_text(badge), clean_text(title)
    bw = text_width(badge, scale) + 2 * pad if badge else 0
    tw = text_width(title, scale) + 2 * pad if title else 0
    h = GLYPH_H * scale + 2 * pad
    w = max(1, bw + tw)
    canvas = Canvas(w, h)
    if badge:
        canvas.fill(0, 0, bw, h, BADGE)
        canvas.text(pad, pad, badge, scale, WHITE)
    if title:
        canvas.fill(bw, 0, bw + tw, h, TITLE_BOX)
        canvas.text(bw + pad, pad, title, scale, WHITE)
    return canvas.png(), w, h


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


def background_colours(caption: str, variant: int = 0) -> tuple[str, str]:
    """Two muted, related colours from a hash of the caption: same prompt, same look.
    Each variant (another take of the same shot) turns the hue by about a third."""
    h = hashlib.sha256(caption.encode("utf-8")).digest()
    hue = h[0] / 255 + variant * 0.37

    def rgb(shift: float, value: float) -> str:
        r, g, b = colorsys.hsv_to_rgb((hue + shift) % 1.0, 0.55, value)
        return f"0x{round(r * 255):02x}{round(g * 255):02x}{round(b * 255):02x}"

    return rgb(0.0, 0.45 + h[1] / 2550), rgb(0.12, 0.22 + h[2] / 2550)


# Where each take's slow zoom heads (fractions of the free margin, x then y), and how far
# it goes: take 1 zooms to the centre, later takes to other parts of the picture, so the
# takes of a shot differ the way a model's takes do (same start, different movement).
_FOCUS = (
    (0.5, 0.5, 0.12),
    (0.1, 0.2, 0.2),
    (0.9, 0.8, 0.16),
    (0.15, 0.85, 0.22),
    (0.85, 0.15, 0.18),
)


def camera_move(variant: int) -> tuple[float, float, float]:
    """(focus x, focus y, zoom amount) of the slow zoom for take `variant + 1`."""
    if variant < len(_FOCUS):
        return _FOCUS[variant]
    h = hashlib.sha256(f"camera:{variant}".encode()).digest()
    return h[0] / 255, h[1] / 255, 0.1 + h[2] / 255 * 0.15


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
