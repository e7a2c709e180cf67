"""Track facts of an MP4 or MOV file from its `moov` box, in pure Python.

Stage: used by `storyc.media.edit` (clip facts for joining cuts). In: a path. Out: for the
first video and the first sound track, what ffmpeg would say of them after reading every
packet (codec, size, time base, frame count and length, parameter sets, track id, sample
rate, channels), or None when the file is anything this reader does not fully understand
(fragmented, edited by an edit list that drops frames, an unknown codec...): the caller
then asks ffmpeg. Reads the headers only: a clip of any length costs a few kilobytes.
"""

from __future__ import annotations

import hashlib
import os
import struct
from dataclasses import dataclass

from storyc.media.info import _MAX_MOOV, _boxes, top_boxes

_CONTAINERS = {b"trak", b"mdia", b"minf", b"stbl", b"edts"}
_VIDEO_CODECS = {b"avc1": "h264", b"avc3": "h264", b"hvc1": "hevc", b"hev1": "hevc"}
_AUDIO_CODECS = {b"mp4a": "aac"}
_LAYOUTS = {1: "mono", 2: "stereo"}


@dataclass(frozen=True)
class VideoTrack:
    codec: str
    width: int
    height: int
    timescale: int
    frames: int
    ticks: int  # the track's length in its time scale
    delta: int  # the most common frame duration
    extradata_md5: str
    track_id: int


@dataclass(frozen=True)
class AudioTrack:
    codec: str
    rate: int
    layout: str
    extradata_md5: str


def _moov(path: str | os.PathLike[str]) -> bytes | None:
    with open(path, "rb") as f:
        for kind, box, header, _ in top_boxes(f):
            if not kind or kind == b"moof":
                return None  # corrupt, or fragmented: not every sample is listed in moov
            if kind == b"moov":
                return f.read(box - header) if box <= _MAX_MOOV else None
    return None


def _find(data: bytes, s: int, e: int) -> dict[bytes, tuple[int, int]]:
    found: dict[bytes, tuple[int, int]] = {}
    stack = [(s, e)]
    while stack:
        a, b = stack.pop()
        for kind, cs, ce in _boxes(data, a, b):
            if kind in _CONTAINERS:
                stack.append((cs, ce))
            else:
                found.setdefault(kind, (cs, ce))
    return found


def _child(data: bytes, s: int, e: int, kind: bytes) -> tuple[int, int] | None:
    return next(((cs, ce) for k, cs, ce in _boxes(data, s, e) if k == kind), None)


def _esds_config(data: bytes, s: int, e: int) -> bytes | None:
    """The DecoderSpecificInfo (AudioSpecificConfig) inside an esds box."""
    pos = s + 4  # version and flags

    def descriptor(pos: int) -> tuple[int, int, int]:
        tag = data[pos]
        pos += 1
        size = 0
        for _ in range(4):
            b = data[pos]
            pos += 1
            size = (size << 7) | (b & 0x7F)
            if not b & 0x80:
                break
        return tag, pos, size

    while pos < e:
        tag, body, size = descriptor(pos)
        if tag == 0x03:  # ES descriptor: id, flags, then nested descriptors
            flags = data[body + 2]
            pos = body + 3 + (2 if flags & 0x80 else 0)
            if flags & 0x40:
                pos += 1 + data[pos]
            if flags & 0x20:
                pos += 2
        elif tag == 0x04:  # decoder config: 13 bytes, then nested
            pos = body + 13
        elif tag == 0x05:
            return data[body : body + size]
        else:
            pos = body + size
    return None


def tracks(path: str | os.PathLike[str]) -> tuple[VideoTrack, AudioTrack | None] | None:
    try:
        moov = _moov(path)
        if moov is None:
            return None
        return _tracks(moov)
    except (OSError, struct.error, IndexError, ValueError):
        return None


def _tracks(moov: bytes) -> tuple[VideoTrack, AudioTrack | None] | None:
    mvhd = _child(moov, 0, len(moov), b"mvhd")
    if mvhd is None:
        return None
    s = mvhd[0]
    movie_scale = struct.unpack_from(">I", moov, s + (20 if moov[s] == 1 else 12))[0]
    video: VideoTrack | None = None
    audio: AudioTrack | None = None
    for kind, s, e in _boxes(moov):
        if kind != b"trak":
            continue
        f = _find(moov, s, e)
        if b"hdlr" not in f or b"mdhd" not in f or b"stsd" not in f or b"tkhd" not in f:
            continue
        handler = moov[f[b"hdlr"][0] + 8 : f[b"hdlr"][0] + 12]
        if handler == b"vide" and video is None:
            video = _video(moov, f, movie_scale)
            if video is None:
                return None  # a first video track this reader does not understand
        elif handler == b"soun" and audio is None:
            audio = _audio(moov, f)
            if audio is None:
                return None
    return (video, audio) if video is not None else None


def _video(m: bytes, f: dict[bytes, tuple[int, int]], movie_scale: int) -> VideoTrack | None:
    md = f[b"mdhd"][0]
    timescale = struct.unpack_from(">I", m, md + (20 if m[md] == 1 else 12))[0]
    tk = f[b"tkhd"][0]
    track_id = struct.unpack_from(">I", m, tk + (20 if m[tk] == 1 else 12))[0]
    if b"stts" not in f or not timescale:
        return None
    st = f[b"stts"][0]
    count = struct.unpack_from(">I", m, st + 4)[0]
    frames = ticks = 0
    runs: dict[int, int] = {}
    for i in range(count):
        n, delta = struct.unpack_from(">II", m, st + 8 + 8 * i)
        frames, ticks = frames + n, ticks + n * delta
        runs[delta] = runs.get(delta, 0) + n
    if not frames or not ticks:
        return None
    delta = max(runs, key=lambda d: runs[d])
    if b"elst" in f:  # one edit over the whole track (a B-frame delay) is harmless
        es = f[b"elst"][0]
        version = m[es]
        n = struct.unpack_from(">I", m, es + 4)[0]
        if n != 1:
            return None
        if version == 1:
            seg, media_time = struct.unpack_from(">Qq", m, es + 8)
        else:
            seg, media_time = struct.unpack_from(">Ii", m, es + 8)
        shown = seg * timescale / movie_scale if movie_scale else 0
        if media_time < 0 or (seg and shown < ticks - delta):
            return None
    sd_s, sd_e = f[b"stsd"]
    entries = _boxes(m, sd_s + 8, sd_e)
    if len(entries) != 1:
        return None
    fourcc, es_, ee = entries[0]
    codec = _VIDEO_CODECS.get(fourcc)
    if codec is None:
        return None
    width, height = struct.unpack_from(">HH", m, es_ + 24)
    config = _child(m, es_ + 78, ee, b"avcC" if codec == "h264" else b"hvcC")
    if config is None:
        return None
    extradata = hashlib.md5(m[config[0] : config[1]], usedforsecurity=False).hexdigest()
    return VideoTrack(codec, width, height, timescale, frames, ticks, delta, extradata, track_id)


def _audio(m: bytes, f: dict[bytes, tuple[int, int]]) -> AudioTrack | None:
    sd_s, sd_e = f[b"stsd"]
    entries = _boxes(m, sd_s + 8, sd_e)
    if len(entries) != 1:
        return None
    fourcc, es_, ee = entries[0]
    codec = _AUDIO_CODECS.get(fourcc)
    if codec is None:
        return None
    version = struct.unpack_from(">H", m, es_ + 8)[0]
    channels = struct.unpack_from(">H", m, es_ + 16)[0]
    rate = struct.unpack_from(">I", m, es_ + 24)[0] >> 16
    start = es_ + 28 + {0: 0, 1: 16, 2: 36}.get(version, 0)
    esds = _child(m, start, ee, b"esds")
    if esds is None or channels not in _LAYOUTS:
        return None
    config = _esds_config(m, *esds)
    if config is None:
        return None
    extradata = hashlib.md5(config, usedforsecurity=False).hexdigest()
    return AudioTrack(codec, rate, _LAYOUTS[channels], extradata)
