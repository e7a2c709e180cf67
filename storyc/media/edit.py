"""Editing with ffmpeg: clip facts, normalised clips, crossfades, slates, joins, measures.

Stage: used by `storyc.film` (cuts assembled into one video, exported for editors) and by
the tests that check those videos. In: paths and numbers. Out: `ClipFacts`, files written
atomically (whole or absent), measurements of decoded streams. I/O: starts ffmpeg, always
through `storyc.media.ffmpeg` (`run`, `run_output`, `write_atomically`).

How a cut is put together (see docs/film.md):

- **Stream copy** when every clip has the same codec parameters (the H.264 parameter sets
  themselves, compared by digest), size, frame rate, time base, stream id and audio layout:
  the pictures are copied packet for packet by the concat demuxer.
- Otherwise each clip is **normalised** once (`normalise`): trimmed, scaled to fit the cut's
  frame (black bars, nothing cropped), at the cut's frame rate, `yuv420p`, H.264 without
  B-frames (so a cut at a forced key frame is exact by decoding timestamp) and its sound, or
  silence, as 48 kHz stereo PCM: exactly `frames` pictures and the same length of samples.
- The **sound is always made once for the whole cut**, sample-exact: AAC's 1024-sample frames
  never line up with video frames, so copied AAC drifts or overlaps at every join. Each
  clip's sound is cut or padded to exactly its pictures' length, crossfades overlap by
  exactly their length, and the result is encoded once.
"""

from __future__ import annotations

import math
import re
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from fractions import Fraction
from pathlib import Path
from typing import Any

from storyc.media import ffmpeg, mp4
from storyc.media.caption import (
    BADGE,
    GLYPH_H,
    LINE_H,
    MUTED,
    WHITE,
    Canvas,
    scale_for,
    text_width,
    wrap,
)
from storyc.media.ffmpeg import MediaError, StrPath

AUDIO_RATE = 48000
AUDIO_LAYOUT = "stereo"
SLATE_COLOUR = "0x15181d"
# Normalised clips: every one encoded alike, so their parameter sets are identical and a
# join of them is a plain stream copy. No B-frames: decoding order is display order, so
# the concat demuxer's out point (a decoding timestamp) cuts exactly at a key frame.
NORMAL_X264 = [
    "-c:v",
    "libx264",
    "-threads",
    "1",
    "-preset",
    "veryfast",
    "-crf",
    "18",
    "-bf",
    "0",
    "-pix_fmt",
    "yuv420p",
]
_EXACT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact"]
# Filters on one thread: clips are made several at a time, one per core, already.
_ONE_FILTER_THREAD = ["-filter_threads", "1", "-filter_complex_threads", "1"]


@dataclass(frozen=True)
class VideoFacts:
    codec: str
    width: int
    height: int
    timebase: str  # "1/12288"
    fps: str  # exact, as a fraction: "24/1", "24000/1001"
    frames: int  # packets = pictures
    duration: str  # exact, as a fraction of seconds
    extradata: str  # digest of the codec's parameter sets ("" when there are none)
    stream_id: int | None  # the container's id of the stream (the concat demuxer maps it)

    @property
    def seconds(self) -> float:
        return float(Fraction(self.duration))


@dataclass(frozen=True)
class AudioFacts:
    codec: str
    rate: int
    layout: str
    extradata: str


@dataclass(frozen=True)
class ClipFacts:
    video: VideoFacts
    audio: AudioFacts | None

    def join_signature(self) -> tuple[object, ...]:
        """What must be equal in every clip of a cut joined by stream copy."""
        v = self.video
        a = self.audio
        return (
            v.codec,
            v.width,
            v.height,
            v.timebase,
            v.fps,
            v.extradata,
            v.stream_id,
            None if a is None else (a.codec, a.rate, a.layout),
        )

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, raw: Any) -> ClipFacts | None:
        """From `to_json`'s output; None when damaged (a damaged record is a miss)."""
        try:
            audio = raw["audio"]
            v = VideoFacts(**raw["video"])
            a = AudioFacts(**audio) if audio is not None else None
            Fraction(v.fps), Fraction(v.duration)  # noqa: B018 - validates both
            if not (isinstance(v.frames, int) and v.frames >= 0):
                return None
            return cls(v, a)
        except (KeyError, TypeError, ValueError, ZeroDivisionError):
            return None


_STREAM_ID = re.compile(r"Stream #(\d+):\d+(?:\[0x([0-9a-fA-F]+)\])?.*?: Video:")
# inputs per ffmpeg run when reading facts: a process start costs more than reading a
# clip's packets, but one process over very many inputs interleaves them slowly (measured:
# 100 clips took 4.2 s one by one, 2.6 s eight at a time, 4.9 s 25 at a time)
_BATCH = 8


def clip_facts(path: StrPath) -> ClipFacts:
    """A clip's first video and audio stream, from one pass over its packets (no decoding)."""
    return clips_facts([path])[0]


def clips_facts(paths: Sequence[StrPath]) -> list[ClipFacts]:
    """`clip_facts` of many clips: from the MP4 headers where `storyc.media.mp4` reads
    them whole (the same facts, without reading a packet), else by one ffmpeg run per
    batch of clips."""
    found: dict[int, ClipFacts] = {}
    for i, p in enumerate(paths):
        facts = _from_headers(p)
        if facts is not None:
            found[i] = facts
    rest = [i for i in range(len(paths)) if i not in found]
    for k in range(0, len(rest), _BATCH):
        batch = rest[k : k + _BATCH]
        for i, facts in zip(batch, _facts_batch([Path(paths[i]) for i in batch]), strict=True):
            found[i] = facts
    return [found[i] for i in range(len(paths))]


def _from_headers(path: StrPath) -> ClipFacts | None:
    read = mp4.tracks(path)
    if read is None:
        return None
    v, a = read
    tb = Fraction(1, v.timescale)
    fps = 1 / (v.delta * tb)
    video = VideoFacts(
        codec=v.codec,
        width=v.width,
        height=v.height,
        timebase=str(tb),
        fps=f"{fps.numerator}/{fps.denominator}",
        frames=v.frames,
        duration=str(v.ticks * tb),
        extradata=v.extradata_md5,
        stream_id=v.track_id,
    )
    audio = AudioFacts(a.codec, a.rate, a.layout, a.extradata_md5) if a is not None else None
    return ClipFacts(video, audio)


def _facts_batch(paths: Sequence[Path]) -> list[ClipFacts]:
    what = f"cannot read {paths[0].name}" if len(paths) == 1 else "cannot read the clips"
    args: list[str] = []
    for p in paths:
        args += ["-i", str(p)]
    for k in range(len(paths)):
        args += ["-map", f"{k}:v:0", "-map", f"{k}:a:0?"]
    stdout, err = ffmpeg.run_output(
        [*args, "-c", "copy", "-f", "framemd5", "-"], what, loglevel="info"
    )
    head: dict[tuple[str, int], str] = {}
    extradata: dict[int, str] = {}
    packets: dict[int, list[tuple[int, int]]] = {}
    for line in stdout.decode("utf-8", "replace").splitlines():
        if line.startswith("#extradata"):
            idx, _, md5 = (x.strip() for x in line[len("#extradata") :].split(","))
            extradata[int(idx)] = md5
        elif line.startswith("#"):
            key, _, value = line[1:].partition(":")
            name, _, idx = key.strip().rpartition(" ")
            if idx.isdigit():
                head[(name, int(idx))] = value.strip()
        elif line.strip():
            cols = [c.strip() for c in line.split(",")]
            packets.setdefault(int(cols[0]), []).append((int(cols[2]), int(cols[3])))
    ids: dict[int, int] = {}
    for m in _STREAM_ID.finditer(err):
        if m.group(2):
            ids.setdefault(int(m.group(1)), int(m.group(2), 16))
    # output streams in map order: each clip's video, then its sound if it has one
    streams = sorted({i for _, i in head})
    groups: list[tuple[int, int | None]] = []
    for i in streams:
        kind = head.get(("media_type", i))
        if kind == "video":
            groups.append((i, None))
        elif kind == "audio" and groups and groups[-1][1] is None:
            groups[-1] = (groups[-1][0], i)
    if len(groups) != len(paths):
        raise MediaError(f"{what}: a clip has no video stream")
    facts = []
    for k, (v, a) in enumerate(groups):
        name = paths[k].name
        vp = packets.get(v, [])
        durations = sorted(d for _, d in vp if d > 0)
        step = durations[len(durations) // 2] if durations else 0
        if step <= 0:
            raise MediaError(f"cannot read {name}: the video has no frame rate")
        tb = Fraction(head[("tb", v)])
        fps = 1 / (step * tb)
        first = min(pts for pts, _ in vp)
        end = max(pts + dur for pts, dur in vp)
        width, height = (int(x) for x in head[("dimensions", v)].split("x"))
        video = VideoFacts(
            codec=head[("codec_id", v)],
            width=width,
            height=height,
            timebase=str(tb),
            fps=f"{fps.numerator}/{fps.denominator}",
            frames=len(vp),
            duration=str((end - first) * tb),
            extradata=extradata.get(v, ""),
            stream_id=ids.get(k),
        )
        audio = None
        if a is not None:
            audio = AudioFacts(
                codec=head.get(("codec_id", a), ""),
                rate=int(head.get(("sample_rate", a), "0") or 0),
                layout=head.get(("channel_layout_name", a), ""),
                extradata=extradata.get(a, ""),
            )
        facts.append(ClipFacts(video, audio))
    return facts


def slate_png(width: int, height: int, scene: str, why: str) -> bytes:
    """A transparent card: the scene's name large in the middle, why it has no video
    below, and a "NOT RENDERED" badge at the top left, like the preview's own tag."""
    canvas = Canvas(width, height)
    small = scale_for(width, height)
    big = 2 * small
    y = height // 2 - GLYPH_H * big
    canvas.text((width - text_width(scene, big)) // 2, y, scene, big, WHITE, shadow=True)
    y += GLYPH_H * big + LINE_H * small
    for line in wrap(why, width * 9 // 10, small)[:3]:
        canvas.text((width - text_width(line, small)) // 2, y, line, small, MUTED)
        y += LINE_H * small
    pad = 3 * small
    badge = "NOT RENDERED"
    canvas.fill(0, 0, text_width(badge, small) + 2 * pad, GLYPH_H * small + 2 * pad, BADGE)
    canvas.text(pad, pad, badge, small, WHITE)
    return canvas.png()


def samples_for(frames: int, fps: Fraction, rate: int = AUDIO_RATE) -> int:
    """Samples of sound that last exactly as long as `frames` pictures (rounded once)."""
    return round(Fraction(frames) / fps * rate)


def _keyframe_expr(frames: Sequence[int]) -> list[str]:
    wanted = sorted({f for f in frames if f > 0})
    if not wanted:
        return []
    return ["-force_key_frames", "expr:" + "+".join(f"eq(n,{f})" for f in wanted)]


def normalise(
    src: StrPath | None,
    out: StrPath,
    *,
    frames: int,
    width: int,
    height: int,
    fps: Fraction,
    start: float = 0.0,
    sound: bool = True,
    slate: tuple[str, str] | None = None,
    keyframes: Sequence[int] = (),
    audio: bool = True,
) -> None:
    """Write exactly `frames` pictures of `src` from `start` s, fitted into `width`x`height`
    at `fps`, with its sound (or silence when `sound` is false) as PCM of exactly the same
    length; or, with `src` None, a slate naming `slate` = (scene, why it has no video). A clip shorter than asked
    holds its last picture. `keyframes`: frame numbers that must start a GOP (where a
    crossfade will cut). Output: MOV (H.264 + PCM), or MP4 (H.264 + AAC) when `out` ends
    in `.mp4` (for people, not for joining), written atomically; with `audio` false, the
    pictures only (a cut makes its sound in one piece: `encode_sound`)."""
    if frames < 1 or width < 2 or height < 2 or fps <= 0:
        raise MediaError(f"cannot normalise to {frames} frames of {width}x{height} at {fps} fps")
    name = Path(src).name if src is not None else "a slate"
    what = f"cannot normalise {name}"
    samples = samples_for(frames, fps)
    rate = f"{fps.numerator}/{fps.denominator}"
    fit = (
        f"scale={width}:{height}:force_original_aspect_ratio=decrease:flags=bicubic,"
        f"pad={width}:{height}:(ow-iw)/2:(oh-ih)/2:color=black,setsar=1"
    )
    hold = f"format=yuv420p,tpad=stop_mode=clone:stop=-1,trim=end_frame={frames}"
    silence = f"anullsrc=r={AUDIO_RATE}:cl={AUDIO_LAYOUT},atrim=end_sample={samples}[a]"
    container = ["-c:a", "pcm_s16le", "-f", "mov"]
    if str(out).endswith(".mp4"):
        container = ["-c:a", "aac", "-b:a", "192k", "-f", "mp4", "-movflags", "+faststart"]
    with tempfile.TemporaryDirectory(prefix="storyc-film-") as tmpdir:
        if src is None:
            card = Path(tmpdir) / "slate.png"
            card.write_bytes(slate_png(width, height, *(slate or ("", ""))))
            inputs = ["-f", "lavfi", "-i", f"color=c={SLATE_COLOUR}:s={width}x{height}:r={rate}"]
            inputs += ["-i", str(card)]
            graph = [
                f"[1:v]format=rgba[card];[0:v][card]overlay=eof_action=repeat,setsar=1,{hold}[v]",
                silence,
            ]
        else:
            inputs = ["-i", str(src)]
            graph = [
                f"[0:v:0]trim=start={start:.6f},setpts=PTS-STARTPTS,fps={rate},{fit},{hold}[v]",
                f"[0:a:0]atrim=start={start:.6f},asetpts=PTS-STARTPTS,"
                f"aresample={AUDIO_RATE}:first_pts=0,"
                f"aformat=sample_fmts=s16:channel_layouts={AUDIO_LAYOUT},"
                f"apad,atrim=end_sample={samples}[a]"
                if sound
                else silence,
            ]
        ffmpeg.write_atomically(
            out,
            lambda tmp: [
                *_ONE_FILTER_THREAD,
                *inputs,
                "-filter_complex",
                ";".join(graph if audio else graph[:1]),
                "-map",
                "[v]",
                *(["-map", "[a]", *container] if audio else ["-an", "-f", "mov"]),
                "-frames:v",
                str(frames),
                *NORMAL_X264,
                *_keyframe_expr(keyframes),
                *_EXACT,
                tmp,
            ],
            what,
        )


def crossfade(
    a: StrPath, a_frames: int, b: StrPath, frames: int, out: StrPath, *, fps: Fraction
) -> None:
    """The pictures of a dissolve from the last `frames` of normalised clip `a` (of
    `a_frames` pictures) to the first `frames` of normalised clip `b`, encoded like a
    normalised clip (no sound: the cut's sound is made in one piece). MOV, atomically."""
    if frames < 1 or a_frames < frames:
        raise MediaError(f"cannot crossfade {frames} frames out of a clip of {a_frames}")
    rate = f"{fps.numerator}/{fps.denominator}"
    secs = Fraction(frames) / fps
    graph = (
        f"[0:v]trim=start_frame={a_frames - frames},setpts=PTS-STARTPTS[x];"
        f"[1:v]trim=end_frame={frames},setpts=PTS-STARTPTS[y];"
        f"[x][y]xfade=transition=fade:duration={float(secs):.6f}:offset=0,"
        f"fps={rate},format=yuv420p,trim=end_frame={frames}[v]"
    )
    ffmpeg.write_atomically(
        out,
        lambda tmp: [
            *_ONE_FILTER_THREAD,
            "-i",
            str(a),
            "-i",
            str(b),
            "-filter_complex",
            graph,
            "-map",
            "[v]",
            "-frames:v",
            str(frames),
            *NORMAL_X264,
            "-f",
            "mov",
            *_EXACT,
            tmp,
        ],
        f"cannot crossfade {Path(a).name} into {Path(b).name}",
    )


@dataclass(frozen=True)
class Piece:
    """Pictures copied into the cut: `path` from frame `first` (a key frame) for `frames`
    pictures at `fps`."""

    path: str
    frames: int
    first: int = 0
    whole: bool = True  # the whole file (no in or out point needed)


@dataclass(frozen=True)
class Sound:
    """One clip's part of the cut's sound: `samples` samples of the first audio stream of
    `path` from `start` s (silence when `path` is None), joined to the one before by a
    crossfade of `overlap` samples (0: a cut)."""

    path: str | None
    samples: int
    overlap: int = 0
    start: float = 0.0  # seconds of `path` skipped first (the clip's in point)


def _quote(path: str) -> str:
    return "'" + path.replace("'", "'\\''") + "'"


def _concat_list(pieces: Sequence[Piece], fps: Fraction, stream_id: int | None) -> str:
    lines = ["ffconcat version 1.0"]
    if stream_id is not None:
        # only the pictures, by the id they have in every file: a file's other streams
        # (sound with negative start times, for one) must not shift its timestamps
        lines += ["stream", f"exact_stream_id {stream_id:#x}"]
    for p in pieces:
        lines.append(f"file {_quote(p.path)}")
        if not p.whole:
            lines.append(f"inpoint {float(Fraction(p.first) / fps):.6f}")
            end = Fraction(p.first + p.frames) / fps
            lines.append(f"outpoint {float(end - Fraction(1, 2) / fps):.6f}")
        lines.append(f"duration {float(Fraction(p.frames) / fps):.6f}")
    return "\n".join(lines) + "\n"


def _sound_graph(sounds: Sequence[Sound], inputs: dict[str, int], rate: int, layout: str) -> str:
    """One chain: each clip's sound cut or padded to its exact length, then joined, with
    `acrossfade` where the clips overlap. Runs of plain cuts share one `concat`."""
    parts: list[str] = []
    labels: list[str] = []
    for i, s in enumerate(sounds):
        tail = f"apad,atrim=end_sample={s.samples},asetpts=N/SR/TB[s{i}]"
        fmt = f"aresample={rate}:first_pts=0,aformat=sample_fmts=fltp:channel_layouts={layout}"
        if s.path is None:
            parts.append(f"anullsrc=r={rate}:cl={layout},{tail}")
        else:
            trim = f"atrim=start={s.start:.6f},asetpts=PTS-STARTPTS," if s.start else ""
            parts.append(f"[{inputs[s.path]}:a:0]{trim}{fmt},{tail}")
        labels.append(f"[s{i}]")
    current = labels[0]
    run: list[str] = [current]
    n = 0

    def flush() -> str:
        nonlocal n
        if len(run) == 1:
            return run[0]
        n += 1
        parts.append(f"{''.join(run)}concat=n={len(run)}:v=0:a=1[c{n}]")
        return f"[c{n}]"

    for i in range(1, len(sounds)):
        if sounds[i].overlap:
            current = flush()
            n += 1
            parts.append(
                f"{current}{labels[i]}acrossfade=ns={sounds[i].overlap}:c1=tri:c2=tri[x{n}]"
            )
            run = [f"[x{n}]"]
        else:
            run.append(labels[i])
    last = flush()
    parts.append(f"{last}anull[aout]")
    return ";".join(parts)


# Sound inputs per ffmpeg run: every input is a demuxer and a decoder thread, and ffmpeg
# runs under an address-space cap (storyc.media.ffmpeg): a long cut's sound is made in
# groups, split where clips simply cut (never inside a crossfade), as exact PCM.
_SOUND_INPUTS = 40


def _groups(sounds: Sequence[Sound]) -> list[list[Sound]]:
    groups: list[list[Sound]] = [[]]
    for s in sounds:
        if len(groups[-1]) >= _SOUND_INPUTS and not s.overlap:
            groups.append([])
        groups[-1].append(s)
    return groups


def _sound_args(
    sounds: Sequence[Sound], first_input: int, rate: int, layout: str
) -> tuple[list[str], str]:
    """Input arguments and the filter graph (ending in `[aout]`) for one group."""
    inputs: dict[str, int] = {}
    args: list[str] = []
    for s in sounds:
        if s.path is not None and s.path not in inputs:
            inputs[s.path] = first_input + len(inputs)
            args += ["-i", s.path]
    return args, _sound_graph(sounds, inputs, rate, layout)


def encode_sound(
    out: StrPath,
    sounds: Sequence[Sound],
    *,
    rate: int = AUDIO_RATE,
    layout: str = AUDIO_LAYOUT,
) -> None:
    """The cut's whole sound, sample-exact, encoded once as AAC (M4A, atomically)."""
    if not sounds:
        raise MediaError("cannot make the sound of an empty cut")
    name = Path(out).name
    channels = 1 if layout == "mono" else 2
    encode = ["-c:a", "aac", "-b:a", f"{96 * channels}k", "-f", "mp4"]
    groups = _groups(sounds)
    with tempfile.TemporaryDirectory(prefix="storyc-film-") as tmpdir:
        if len(groups) == 1:
            args, graph = _sound_args(groups[0], 0, rate, layout)
            args += ["-filter_complex", graph, "-map", "[aout]"]
        else:
            names = []
            for i, group in enumerate(groups):
                wav = Path(tmpdir) / f"sound{i}.wav"
                more, graph = _sound_args(group, 0, rate, layout)
                ffmpeg.run(
                    [*more, "-filter_complex", graph, "-map", "[aout]",
                     "-c:a", "pcm_f32le", str(wav)],
                    f"cannot make {name}",
                )  # fmt: skip
                names.append(f"file {_quote(str(wav))}")
            parts = Path(tmpdir) / "sound.ffconcat"
            parts.write_text("ffconcat version 1.0\n" + "\n".join(names) + "\n")
            args = ["-f", "concat", "-safe", "0", "-i", str(parts), "-map", "0:a:0"]
        ffmpeg.write_atomically(
            out,
            lambda tmp: [*_ONE_FILTER_THREAD, *args, *encode, *_EXACT, tmp],
            f"cannot make {name}",
        )


def join(
    out: StrPath,
    pieces: Sequence[Piece],
    sound: StrPath | None,
    *,
    fps: Fraction,
    stream_id: int | None,
) -> None:
    """Write the cut: the pictures of `pieces` copied in order (every piece must share
    codec parameters) and the sound made by `encode_sound` (None: no sound track), copied
    too. MP4, atomically, fast start."""
    if not pieces:
        raise MediaError("cannot join an empty cut")
    with tempfile.TemporaryDirectory(prefix="storyc-film-") as tmpdir:
        listing = Path(tmpdir) / "cut.ffconcat"
        listing.write_text(_concat_list(pieces, fps, stream_id), "utf-8")
        args = ["-f", "concat", "-safe", "0", "-i", str(listing)]
        if sound is not None:
            args += ["-i", str(sound), "-map", "0:v:0", "-map", "1:a:0"]
        else:
            args += ["-map", "0:v:0"]
        ffmpeg.write_atomically(
            out,
            lambda tmp: [*args, "-c", "copy", "-movflags", "+faststart", *_EXACT, tmp],
            f"cannot assemble {Path(out).name}",
        )


# -- measuring (tests, export checks) ------------------------------------------------------


@dataclass(frozen=True)
class Decoded:
    """What a player gets out of a file: pictures and samples, counted by decoding."""

    frames: int
    video_seconds: float
    samples: int
    audio_seconds: float
    audio_streams: int
    video_streams: int


def decode_counts(path: StrPath) -> Decoded:
    """Decode every stream and count (ffprobe's -count_frames, which is not shipped)."""
    out, _ = ffmpeg.run_output(
        ["-i", str(path), "-map", "0", "-f", "framemd5", "-"], f"cannot decode {Path(path).name}"
    )
    kinds: dict[int, str] = {}
    tbs: dict[int, Fraction] = {}
    counts: dict[int, int] = {}
    ends: dict[int, int] = {}
    starts: dict[int, int] = {}
    durs: dict[int, int] = {}
    for line in out.decode("utf-8", "replace").splitlines():
        if line.startswith("#media_type"):
            idx, _, kind = line[len("#media_type") :].partition(":")
            kinds[int(idx)] = kind.strip()
        elif line.startswith("#tb"):
            idx, _, tb = line[len("#tb") :].partition(":")
            tbs[int(idx)] = Fraction(tb.strip())
        elif line.strip() and not line.startswith("#"):
            cols = [c.strip() for c in line.split(",")]
            i, pts, dur = int(cols[0]), int(cols[2]), int(cols[3])
            counts[i] = counts.get(i, 0) + 1
            durs[i] = durs.get(i, 0) + dur
            starts[i] = min(starts.get(i, pts), pts)
            ends[i] = max(ends.get(i, pts + dur), pts + dur)
    video = [i for i, k in kinds.items() if k == "video"]
    audio = [i for i, k in kinds.items() if k == "audio"]
    frames = sum(counts.get(i, 0) for i in video[:1])
    vsecs = float((ends[video[0]] - starts[video[0]]) * tbs[video[0]]) if frames else 0.0
    # audio time base is 1/sample_rate after decoding: durations are sample counts
    samples = sum(durs.get(i, 0) for i in audio[:1])
    asecs = float(samples * tbs[audio[0]]) if audio and samples else 0.0
    return Decoded(frames, vsecs, samples, asecs, len(audio), len(video))


def luma(path: StrPath) -> list[float]:
    """Mean brightness (0-255) of every picture, in order."""
    out, _ = ffmpeg.run_output(
        ["-i", str(path), "-map", "0:v:0", "-vf", "scale=8:8,format=gray", "-f", "rawvideo", "-"],
        f"cannot decode {Path(path).name}",
    )
    return [sum(out[i : i + 64]) / 64 for i in range(0, len(out) - 63, 64)]


def loudness(path: StrPath, *, window: float = 0.01, rate: int = 8000) -> list[float]:
    """RMS level (0-1) of the first sound track in windows of `window` seconds, mixed to
    mono; empty when there is no sound."""
    out, _ = ffmpeg.run_output(
        ["-i", str(path), "-map", "0:a:0?", "-ac", "1", "-ar", str(rate), "-f", "s16le", "-"],
        f"cannot decode {Path(path).name}",
    )
    n = max(1, round(window * rate))
    values = memoryview(out).cast("h") if len(out) % 2 == 0 else memoryview(out[:-1]).cast("h")
    levels = []
    for i in range(0, len(values) - n + 1, n):
        chunk = values[i : i + n]
        levels.append(math.sqrt(sum(x * x for x in chunk) / n) / 32768)
    return levels
