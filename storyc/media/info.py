"""Media facts read from file headers: kind, dimensions, duration, frame rate.

Stage: used by the resolver (to validate inputs) and by the planner (the real length
of a video to edit). In: a path. Out: `MediaInfo` or None when the header is not
understood. I/O: reads only the bytes of the header it needs, never the whole file.

PNG, JPEG, WebP and GIF images; MP4/MOV (ISO BMFF) videos. Pure Python, no ffmpeg:
checking a 10,000-scene project must not start 10,000 processes. Sizes are the shown
sizes: a JPEG whose EXIF orientation or an MP4 whose display matrix turns the picture a
quarter reports height x width, as phones' files are seen.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from typing import BinaryIO, Literal

from storyc.base.reading import open_regular


@dataclass(frozen=True, slots=True)
class MediaInfo:
    kind: Literal["image", "video"]
    format: str  # "png", "jpeg", "webp", "gif", "mp4", "mov"
    width: int | None = None
    height: int | None = None
    duration: float | None = None  # seconds, videos only
    fps: float | None = None  # videos only
    has_audio: bool | None = None  # videos only


_MAX_MOOV = 64 << 20  # a moov bigger than this is not a file we should trust
_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"edts", b"dinf"}


def probe(path: str | os.PathLike[str]) -> MediaInfo | None:
    """Header facts about an image or video; None when not understood (or not a regular
    file: a FIFO or a device must not block or feed the reader). Never raises."""
    try:
        fd, _ = open_regular(path)
        with open(fd, "rb") as f:
            head = f.read(32)
            if head.startswith(b"\x89PNG\r\n\x1a\n"):
                return _png(head)
            if head.startswith(b"\xff\xd8"):
                return _jpeg(f)
            if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
                return _webp(f)
            if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
                w, h = struct.unpack_from("<HH", head, 6)
                return _image("gif", w, h)
            if head[4:8] in (b"ftyp", b"moov", b"free", b"mdat", b"wide", b"skip"):
                return _isobmff(f)
    except Exception:  # any surprise in a foreign file means "not understood"
        return None
    return None


def _image(fmt: str, w: int, h: int) -> MediaInfo | None:
    return MediaInfo(kind="image", format=fmt, width=w, height=h) if w > 0 and h > 0 else None


def _png(head: bytes) -> MediaInfo | None:
    if head[12:16] != b"IHDR":
        return None
    w, h = struct.unpack_from(">II", head, 16)
    return _image("png", w, h)


# Start-of-frame markers carry the size; C4 (DHT), C8 (JPG) and CC (DAC) are not frames.
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


def _jpeg(f: BinaryIO) -> MediaInfo | None:
    size, turn = _jpeg_walk(f)
    if size is None:
        return None
    w, h = size
    # EXIF orientations 5-8 turn the picture a quarter: it is shown h x w.
    return _image("jpeg", h, w) if turn >= 5 else _image("jpeg", w, h)


def _jpeg_walk(f: BinaryIO) -> tuple[tuple[int, int] | None, int]:
    """((width, height) from the frame header or None, EXIF orientation)."""
    f.seek(2)
    turn = 1
    for _ in range(10_000):  # segments before the frame header; a bound against junk
        if f.read(1) != b"\xff":
            return None, turn
        marker = f.read(1)
        while marker == b"\xff":  # fill bytes
            marker = f.read(1)
        if not marker:
            return None, turn
        m = marker[0]
        if m == 0x01 or 0xD0 <= m <= 0xD7:  # standalone markers, no length
            continue
        if m in (0xD9, 0xDA):  # end of image / start of scan before any frame header
            return None, turn
        raw = f.read(2)
        if len(raw) < 2 or (length := struct.unpack(">H", raw)[0]) < 2:
            return None, turn
        if m in _SOF:
            seg = f.read(5)
            if len(seg) < 5:
                return None, turn
            h, w = struct.unpack_from(">HH", seg, 1)
            return (w, h), turn
        if m == 0xE1 and turn == 1:
            turn = _exif_orientation(f.read(length - 2))
            continue
        f.seek(length - 2, os.SEEK_CUR)
    return None, turn


def _exif_orientation(app1: bytes) -> int:
    """The EXIF Orientation (1-8) in an APP1 body; 1 (as stored) when absent."""
    if not app1.startswith(b"Exif\0\0"):
        return 1
    tiff = app1[6:]
    end = {b"II": "<", b"MM": ">"}.get(tiff[:2])
    if end is None:
        return 1
    ifd = struct.unpack_from(end + "I", tiff, 4)[0]
    count = struct.unpack_from(end + "H", tiff, ifd)[0]
    for i in range(min(count, 512)):
        tag, _type, _n, value = struct.unpack_from(end + "HHIH", tiff, ifd + 2 + 12 * i)
        if tag == 0x0112:
            return value if 1 <= value <= 8 else 1
    return 1


def orientation(path: str | os.PathLike[str]) -> int:
    """EXIF orientation of a JPEG (1-8; 1 for anything else or when unreadable)."""
    try:
        with open(path, "rb") as f:
            if f.read(2) != b"\xff\xd8":
                return 1
            return _jpeg_walk(f)[1]
    except Exception:  # same contract as probe: a foreign file never raises
        return 1


def _webp(f: BinaryIO) -> MediaInfo | None:
    f.seek(12)
    chunk = f.read(18)
    kind, data = chunk[:4], chunk[8:]
    if kind == b"VP8 " and data[3:6] == b"\x9d\x01\x2a":
        w, h = struct.unpack_from("<HH", data, 6)
        return _image("webp", w & 0x3FFF, h & 0x3FFF)
    if kind == b"VP8L" and data[:1] == b"\x2f":
        bits = int.from_bytes(data[1:5], "little")
        return _image("webp", (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1)
    if kind == b"VP8X":
        w = int.from_bytes(data[4:7], "little") + 1
        h = int.from_bytes(data[7:10], "little") + 1
        return _image("webp", w, h)
    return None


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> list[tuple[bytes, int, int]]:
    """(type, content start, content end) of the boxes in data[start:end]."""
    end = len(data) if end is None else end
    out = []
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            if pos + 16 > end:
                break
            size, header = struct.unpack_from(">Q", data, pos + 8)[0], 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            break
        out.append((kind, pos + header, pos + size))
        pos += size
    return out


def top_boxes(f: BinaryIO) -> Iterator[tuple[bytes, int, int, bytes]]:
    """The top-level boxes of an ISO BMFF file, without reading their bodies (mdat can be
    gigabytes): (kind, size, header length, the box's first 16 bytes), the file positioned
    at the box's body. A box that runs past the end (truncated or corrupt) is yielded with
    kind b"" and ends the walk."""
    f.seek(0, os.SEEK_END)
    file_size = f.tell()
    pos = 0
    while pos + 8 <= file_size:
        f.seek(pos)
        hdr = f.read(16)
        size, kind = struct.unpack_from(">I4s", hdr)
        header = 8
        if size == 1:
            size, header = struct.unpack_from(">Q", hdr, 8)[0], 16
        elif size == 0:
            size = file_size - pos
        if size < header or pos + size > file_size:
            yield b"", size, header, hdr
            return
        f.seek(pos + header)
        yield kind, size, header, hdr
        pos += size


def _isobmff(f: BinaryIO) -> MediaInfo | None:
    """Walk the top-level boxes, skipping mdat, and read moov into memory."""
    brand, moov = b"", None
    for kind, size, header, hdr in top_boxes(f):
        if not kind:
            return None  # truncated or corrupt
        if kind == b"ftyp":
            brand = hdr[header : header + 4]
        elif kind == b"moov":
            if size > _MAX_MOOV:
                return None
            moov = f.read(size - header)
            break
    if moov is None:
        return None
    return _moov(moov, "mov" if brand == b"qt  " else "mp4")


def _moov(moov: bytes, fmt: str) -> MediaInfo | None:
    duration: float | None = None
    video: tuple[int, int, float | None, float | None] | None = None
    has_audio = False
    for kind, s, e in _boxes(moov):
        if kind == b"mvhd":
            duration = _time(moov, s)
        elif kind == b"trak":
            handler, w, h, fps, tdur = _trak(moov, s, e)
            if handler == b"soun":
                has_audio = True
            elif handler == b"vide" and video is None and w > 0 and h > 0:
                video = (w, h, fps, tdur)
    if video is None:
        return None
    w, h, fps, tdur = video
    if not duration:
        duration = tdur
    return MediaInfo(
        kind="video",
        format=fmt,
        width=w,
        height=h,
        duration=round(duration, 6) if duration is not None else None,
        fps=fps,
        has_audio=has_audio,
    )


def _time(data: bytes, s: int) -> float | None:
    """Duration in seconds from an mvhd/mdhd box body (version 0 or 1)."""
    if data[s] == 1:
        timescale, dur = struct.unpack_from(">IQ", data, s + 20)
    else:
        timescale, dur = struct.unpack_from(">II", data, s + 12)
    return dur / timescale if timescale else None


def _trak(data: bytes, s: int, e: int) -> tuple[bytes, int, int, float | None, float | None]:
    handler, w, h = b"", 0, 0
    timescale, tdur, fps = 0, None, None
    stack = [(s, e)]
    found: dict[bytes, int] = {}
    while stack:
        a, b = stack.pop()
        for kind, cs, ce in _boxes(data, a, b):
            if kind in _CONTAINERS:
                stack.append((cs, ce))
            elif kind in (b"tkhd", b"hdlr", b"mdhd", b"stts"):
                found.setdefault(kind, cs)
    if (at := found.get(b"tkhd")) is not None:
        off = at + (88 if data[at] == 1 else 76)
        w, h = (v >> 16 for v in struct.unpack_from(">II", data, off))
        a, b, _u, c, d = struct.unpack_from(">iiiii", data, off - 36)
        if a == 0 and d == 0 and b != 0 and c != 0:  # a quarter turn: shown as h x w
            w, h = h, w
    if (at := found.get(b"hdlr")) is not None:
        handler = data[at + 8 : at + 12]
    if (at := found.get(b"mdhd")) is not None:
        timescale = struct.unpack_from(">I", data, at + (20 if data[at] == 1 else 12))[0]
        tdur = _time(data, at)
    if (at := found.get(b"stts")) is not None and timescale:
        count = struct.unpack_from(">I", data, at + 4)[0]
        frames = ticks = 0
        for i in range(min(count, 1_000_000)):
            n, delta = struct.unpack_from(">II", data, at + 8 + 8 * i)
            frames, ticks = frames + n, ticks + n * delta
        if ticks:
            fps = round(frames * timescale / ticks, 3)
    return handler, w, h, fps, tdur
