"""Pixel helpers for tests of rendered frames: decode a frame with the real ffmpeg, decode
storyc's own PNGs, and compare text by the shape of its bright pixels (no OCR)."""

from __future__ import annotations

import struct
import subprocess
import zlib
from pathlib import Path

from storyc.media import caption
from storyc.media import ffmpeg as media


def gray_frame(video: Path | str, n: int) -> bytes:
    """Frame `n` of `video` as 8-bit luma, row by row, at the video's size."""
    out = subprocess.run(
        [
            media.ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-i", str(video)),
            *("-vf", f"select=eq(n\\,{n})", "-frames:v", "1"),
            *("-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    assert out, f"no frame {n} in {video}"
    return out


def gray_image(path: Path | str) -> bytes:
    """A still image (PNG/JPEG) as 8-bit luma, decoded by ffmpeg."""
    return subprocess.run(
        [
            media.ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-i", str(path)),
            *("-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout


def frame_count(video: Path | str) -> int:
    """Frames really in the file: decoded, scaled to 8x8 gray, counted by bytes."""
    out = subprocess.run(
        [
            media.ffmpeg_exe(),
            *("-hide_banner", "-loglevel", "error", "-i", str(video)),
            *("-map", "0:v:0", "-vf", "scale=8:8", "-f", "rawvideo", "-pix_fmt", "gray", "-"),
        ],
        capture_output=True,
        check=True,
        timeout=60,
    ).stdout
    return len(out) // 64


def png_rgba(png: bytes) -> tuple[int, int, bytes]:
    """Decode a PNG written by `storyc.media.caption.Canvas` (RGBA, filter 0)."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, w, h = 8, b"", 0, 0
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos : pos + 4])
        kind, data = png[pos + 4 : pos + 8], png[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            w, h = struct.unpack(">II", data[:8])
        elif kind == b"IDAT":
            idat += data
        pos += 12 + length
    raw = zlib.decompress(idat)
    stride = w * 4
    rows = [raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)] for y in range(h)]
    assert all(raw[y * (stride + 1)] == 0 for y in range(h))
    return w, h, b"".join(rows)


def bright_over_black(png: bytes) -> tuple[int, int, list[bool]]:
    """Where an overlay PNG, laid over black, is bright (its text)."""
    w, h, px = png_rgba(png)
    mask = []
    for i in range(0, len(px), 4):
        r, g, b, a = px[i : i + 4]
        mask.append((0.299 * r + 0.587 * g + 0.114 * b) * a / 255 > 128)
    return w, h, mask


def bright(gray: bytes, width: int, box: tuple[int, int, int, int]) -> list[bool]:
    """The bright pixels of a luma frame inside box (x0, y0, x1, y1)."""
    x0, y0, x1, y1 = box
    return [gray[y * width + x] > 128 for y in range(y0, y1) for x in range(x0, x1)]


def iou(a: list[bool], b: list[bool]) -> float:
    assert len(a) == len(b)
    both = sum(1 for x, y in zip(a, b, strict=True) if x and y)
    either = sum(1 for x, y in zip(a, b, strict=True) if x or y)
    return both / either if either else 1.0


def band_reference(text: str, width: int, height: int, seconds: float, page: int = 0):  # type: ignore[no-untyped-def]
    """(band height, bright mask) of the caption band the renderer should draw for `text`."""
    layout = caption.layout_caption(text, width, height, seconds=seconds)
    _, bh, mask = bright_over_black(caption.caption_band_png(layout, width, page))
    return bh, mask


def black_png(path: Path, width: int, height: int) -> Path:
    canvas = caption.Canvas(width, height)
    canvas.fill(0, 0, width, height, (0, 0, 0, 255))
    path.write_bytes(canvas.png())
    return path


def mean_abs_diff(a: bytes, b: bytes) -> float:
    assert len(a) == len(b)
    return sum(abs(x - y) for x, y in zip(a, b, strict=True)) / len(a)
