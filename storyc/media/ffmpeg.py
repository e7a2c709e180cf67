"""Media operations with ffmpeg: test media, video probing, frame extraction, previews.

Stage: used by the preview backend (animatics), the executor (frames for chaining scenes)
and tests/examples (generated media). In: paths and numbers. Out: files written
atomically (temp file + os.replace) and `MediaInfo` values. I/O: starts ffmpeg, the
binary shipped in the imageio-ffmpeg wheel. This is the only module that starts ffmpeg.

Every failure is a `MediaError` with a one-line, user-facing message that folds in the
last line ffmpeg wrote to stderr. Outputs are deterministic: bit-exact muxing, no
metadata, single-threaded x264, so the same inputs give the same bytes.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import re
import resource
import subprocess
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

from storyc.media.caption import (
    background_colours,
    camera_move,
    caption_band_png,
    frame_size,
    layout_caption,
    scale_for,
    tag_png,
    upright,
)
from storyc.media.info import MediaInfo, probe

StrPath = str | os.PathLike[str]

# Bit-exact muxing and no metadata: the same inputs must give the same bytes.
_EXACT_OUT = ["-map_metadata", "-1", "-fflags", "+bitexact", "-flags", "+bitexact"]
_X264 = ["-c:v", "libx264", "-threads", "1", "-pix_fmt", "yuv420p", "-movflags", "+faststart"]
_MEMORY_LIMIT = 3 << 30
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp", ".gif")


class MediaError(Exception):
    """A media operation failed; the message is one line, meant for the user."""


@lru_cache(maxsize=1)
def ffmpeg_exe() -> str:
    """Path of the ffmpeg binary (from the imageio-ffmpeg wheel)."""
    try:
        import imageio_ffmpeg

        return str(imageio_ffmpeg.get_ffmpeg_exe())
    except Exception as e:  # the wheel raises RuntimeError when no binary fits the platform
        raise MediaError(f"ffmpeg is not available: {_one_line(str(e))}") from None


def _one_line(text: str) -> str:
    lines = [ln.strip() for ln in text.strip().splitlines() if ln.strip()]
    return lines[-1] if lines else ""


def _ffmpeg(args: Sequence[str], timeout: float) -> tuple[int, str]:
    """Run ffmpeg; return (exit code, stderr). Killed on timeout or interruption."""
    proc = subprocess.Popen(
        [ffmpeg_exe(), *args],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # A runaway filter graph must fail on its own, not swap a shared machine to death.
        # (prlimit after the start, not preexec_fn: callers run us from threads.)
        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(proc.pid, resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))
        _, err = proc.communicate(timeout=timeout)
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    return proc.returncode, err.decode("utf-8", "replace")


def _run(args: Sequence[str], what: str, *, timeout: float = 300.0) -> str:
    """Run ffmpeg with `args`; return its stderr. Raise MediaError on failure."""
    try:
        code, err = _ffmpeg(
            ["-hide_banner", "-nostdin", "-loglevel", "error", "-y", *args], timeout
        )
    except subprocess.TimeoutExpired:
        raise MediaError(f"{what}: ffmpeg took longer than {timeout:.0f} s") from None
    except OSError as e:
        raise MediaError(f"{what}: cannot start ffmpeg: {e.strerror or e}") from None
    if code != 0:
        last = _one_line(err)
        raise MediaError(f"{what}: {last}" if last else f"{what}: ffmpeg exited {code}")
    return err


def _tmp_for(out: Path) -> Path:
    # Same directory (so os.replace is atomic) and same suffix (ffmpeg picks the format by it).
    # A random part too: scenes may render concurrently in threads of one process.
    return out.with_name(f".{out.stem}.{os.getpid()}-{os.urandom(4).hex()}.tmp{out.suffix}")


def _write_with(out: StrPath, args_for: Callable[[str], list[str]], what: str) -> None:
    """Run ffmpeg writing to a temp file beside `out`, then move it into place."""
    target = Path(out)
    if not target.parent.is_dir():
        raise MediaError(f"{what}: folder {target.parent} does not exist")
    tmp = _tmp_for(target)
    try:
        _run(args_for(str(tmp)), what)
        if not tmp.exists() or tmp.stat().st_size == 0:
            raise MediaError(f"{what}: ffmpeg produced no output")
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


def _seed_colour(seed: int, salt: str = "") -> tuple[int, int, int]:
    h = hashlib.sha256(f"{salt}:{seed}".encode()).digest()
    return h[0], h[1], h[2]


def _hex(rgb: tuple[int, int, int]) -> str:
    return "0x{:02x}{:02x}{:02x}".format(*rgb)


_GRADIENT_TYPES = ("linear", "radial", "circular", "spiral", "square")


def _pattern(
    seed: int, width: int, height: int, rate: int = 1, duration: float = 1.0, *, still: bool = True
) -> str:
    """A lavfi source that looks like something, chosen and tinted by `seed`.

    Six looks (seed % 6): gradients of several shapes, the testsrc2 chart with a hue turn,
    a Mandelbrot set (stills only: it is slow to animate) and a cellular automaton.
    """
    size = f"{width}x{height}"
    c = [_hex(_seed_colour(seed, k)) for k in "abc"]
    kind = seed % 6
    timing = f"s={size}:r={rate}:d={duration}"
    if kind == 1:
        return f"testsrc2={timing},hue=h={(seed * 47) % 360}"
    if kind == 2 and still:
        return f"mandelbrot=s={size}:r={rate}:maxiter=300:start_scale={1 + seed % 3}"
    if kind == 3:
        return (
            f"cellauto=s={size}:r={rate}:rule={(30 + 16 * seed) % 256}:seed={seed},"
            f"colorchannelmixer=rr={0.4 + seed % 5 / 10}:bb={0.9 - seed % 4 / 10}"
        )
    shape = _GRADIENT_TYPES[(seed // 6 + kind) % len(_GRADIENT_TYPES)]
    return (
        f"gradients={timing}:c0={c[0]}:c1={c[1]}:c2={c[2]}:n=3:type={shape}:speed=0.02:seed={seed}"
    )


def make_test_image(path: StrPath, width: int, height: int, *, seed: int = 0) -> None:
    """Write a deterministic picture of the given size; format by suffix.

    .png and .gif use a small palette (small files); .jpg/.jpeg and .webp are lossy.
    """
    if width < 1 or height < 1:
        raise MediaError(f"cannot make a {width}x{height} image")
    suffix = Path(path).suffix.lower()
    if suffix not in _IMAGE_SUFFIXES:
        raise MediaError(f"cannot make an image with suffix {suffix!r} (use .png or .jpg)")
    # Sources like mandelbrot never end; palettegen waits for the end, so cut to one frame.
    src = f"{_pattern(seed, width, height)},trim=end_frame=1"
    if suffix in (".png", ".gif"):
        graph = (
            f"{src},format=rgb24,split[a][b];[a]palettegen=max_colors=48:stats_mode=full[p];"
            "[b][p]paletteuse=dither=none"
        )
    else:
        # 4:2:0 halves odd sizes; keep full chroma then, so the size is exactly as asked.
        chroma = "yuv420p" if width % 2 == 0 and height % 2 == 0 else "yuv444p"
        graph = f"{src},format={chroma}" if suffix != ".webp" else src
    codec = {".jpg": ["-q:v", "4"], ".jpeg": ["-q:v", "4"], ".webp": ["-quality", "70"]}
    _write_with(
        path,
        lambda tmp: [
            "-f",
            "lavfi",
            "-i",
            graph,
            "-frames:v",
            "1",
            *codec.get(suffix, []),
            *_EXACT_OUT,
            "-update",
            "1",
            tmp,
        ],
        f"cannot make image {Path(path).name}",
    )


def make_test_video(
    path: StrPath,
    *,
    width: int,
    height: int,
    duration: float,
    fps: int = 24,
    audio: bool = False,
    seed: int = 0,
) -> None:
    """Write a deterministic h264/yuv420p MP4 (with a sine tone when `audio`)."""
    if width < 2 or height < 2 or duration <= 0 or fps <= 0:
        raise MediaError(f"cannot make a {width}x{height} video of {duration} s at {fps} fps")
    # yuv420p needs even dimensions.
    w, h = width - width % 2, height - height % 2
    src = f"{_pattern(seed, w, h, fps, duration, still=False)},format=yuv420p"
    inputs = ["-f", "lavfi", "-i", src]
    tone: list[str] = []
    if audio:
        freq = 220 + 55 * (seed % 8)
        inputs += ["-f", "lavfi", "-i", f"sine=frequency={freq}:sample_rate=44100:d={duration}"]
        tone = ["-c:a", "aac", "-b:a", "32k", "-ac", "1"]
    _write_with(
        path,
        lambda tmp: [
            *inputs,
            "-t",
            f"{duration}",
            *_X264,
            "-preset",
            "veryfast",
            "-crf",
            "36",
            "-g",
            str(fps * 2),
            *tone,
            *_EXACT_OUT,
            tmp,
        ],
        f"cannot make video {Path(path).name}",
    )


_DURATION = re.compile(r"Duration:\s*(\d+):(\d\d):(\d\d(?:\.\d+)?)")
_VIDEO = re.compile(r"Stream #\d+:\d+.*?: Video: (\w+).*?, (\d+)x(\d+)")
_FPS = re.compile(r"([\d.]+) fps")
_INPUT = re.compile(r"Input #0, ([\w,]+), from")
_ROTATION = re.compile(r"rotation of (-?[\d.]+) degrees")
_BRAND = re.compile(r"major_brand\s*:\s*(\S+)")


def probe_video(path: StrPath) -> MediaInfo:
    """Facts about a media file from `ffmpeg -i` (there is no ffprobe)."""
    p = Path(path)
    if not p.is_file():
        raise MediaError(f"cannot probe {p.name}: no such file")
    try:
        # With no output file ffmpeg prints the input description, then exits with 1.
        _, text = _ffmpeg(["-hide_banner", "-nostdin", "-i", str(p)], 60)
    except (OSError, subprocess.TimeoutExpired) as e:
        raise MediaError(f"cannot probe {p.name}: {e}") from None
    fmt_m, video = _INPUT.search(text), _VIDEO.search(text)
    if fmt_m is None or video is None:
        raise MediaError(f"cannot probe {p.name}: {_one_line(text) or 'not a media file'}")
    demuxer = fmt_m.group(1)
    width, height = int(video.group(2)), int(video.group(3))
    if demuxer.endswith("_pipe") or demuxer in ("gif", "webp", "image2"):
        codec = video.group(1)
        fmt = {"mjpeg": "jpeg", "libwebp": "webp"}.get(codec, codec)
        return MediaInfo(kind="image", format=fmt, width=width, height=height)
    if "mp4" in demuxer or "mov" in demuxer:
        brand = _BRAND.search(text)
        fmt = "mov" if brand and brand.group(1) == "qt" else "mp4"
    else:
        fmt = demuxer.split(",")[0]
    dur = _DURATION.search(text)
    duration = (
        int(dur.group(1)) * 3600 + int(dur.group(2)) * 60 + float(dur.group(3)) if dur else None
    )
    stream = text[video.start() :]
    video_line = stream.splitlines()[0]
    fps_m = _FPS.search(video_line)
    # A display matrix turning the picture a quarter means it is shown h x w.
    turn = _ROTATION.search(stream.split("Stream #", 2)[1] if "Stream #" in stream else "")
    if turn and round(abs(float(turn.group(1)))) % 180 == 90:
        width, height = height, width
    return MediaInfo(
        kind="video",
        format=fmt,
        width=width,
        height=height,
        duration=duration,
        fps=float(fps_m.group(1)) if fps_m else None,
        has_audio=re.search(r"Stream #\d+:\d+.*?: Audio: ", text) is not None,
    )


def extract_frame(
    video: StrPath, out_png: StrPath, *, at: Literal["first", "last"] | float
) -> None:
    """Write one frame of `video` as PNG at the video's own resolution.

    "last" is the real last frame: decode the final half second and keep the last frame.
    """
    src = Path(video)
    what = f"cannot extract the {at} frame of {src.name}"
    if not src.is_file():
        raise MediaError(f"{what}: no such file")
    if at == "first":
        seek, count = [], ["-frames:v", "1"]
    elif at == "last":
        seek, count = ["-sseof", "-0.5"], []
    elif isinstance(at, int | float) and not isinstance(at, bool) and at >= 0:
        seek, count = ["-ss", f"{float(at):.6f}"], ["-frames:v", "1"]
    else:
        raise MediaError(f"{what}: 'at' must be 'first', 'last' or seconds >= 0")
    _write_with(
        out_png,
        lambda tmp: [
            *seek,
            "-i",
            str(src),
            "-map",
            "0:v:0",
            "-fps_mode",
            "passthrough",
            "-an",
            *count,
            "-update",
            "1",
            *_EXACT_OUT,
            tmp,
        ],
        what,
    )


def _check_inputs(
    images: Sequence[str | None], videos: Sequence[str | None]
) -> dict[str, MediaInfo]:
    """Each input's header facts. Names the bad input in the error: ffmpeg's does not."""
    infos: dict[str, MediaInfo] = {}
    for kind, paths in (("image", images), ("video", videos)):
        for p in paths:
            if p is None:
                continue
            if not Path(p).is_file():
                raise MediaError(f"cannot render a preview: input {Path(p).name} does not exist")
            info = probe(p)
            if info is None or info.kind != kind:
                raise MediaError(
                    f"cannot render a preview: {Path(p).name} is not "
                    f"{'an image' if kind == 'image' else 'a video'} storyc reads"
                )
            infos[p] = info
    return infos


@dataclass(frozen=True)
class CleanFrames:
    """Where `render_preview` also writes the clip's first and last frames without the
    caption and tag (PNG, at the clip's size): what a chained shot starts from."""

    first: StrPath
    last: StrPath


# Where the crossfade to an end frame starts, as a fraction of the clip, per take.
_FADE_AT = (1 / 3, 1 / 4, 1 / 2, 0.4, 0.3)


def render_preview(
    out_mp4: StrPath,
    *,
    duration: float,
    aspect: str,
    caption: str,
    first_frame: str | None = None,
    end_frame: str | None = None,
    reference_images: Sequence[str] = (),
    base_video: str | None = None,
    keep_sound: bool = False,
    style_video: str | None = None,
    height: int = 360,
    fps: int = 24,
    title: str = "",
    badge: str = "PREVIEW",
    variant: int = 0,
    clean: CleanFrames | None = None,
) -> None:
    """Render the animatic that stands in for the model: an MP4 of exactly
    `round(duration * fps)` frames.

    Base layer, first match wins: `base_video` (scaled and cropped, played at its own pace,
    its last frame held if it is shorter, its sound kept with `keep_sound`); `first_frame`
    with a slow zoom; a gradient coloured by a hash of the caption with the reference images
    as a strip of thumbnails. `end_frame` crossfades in; a `style_video` plays as a
    picture-in-picture. On top: the tag (`badge` and `title`, top left) and the caption in
    a band at the bottom, a page at a time when it is long. `variant` (the take number
    minus one) changes the look the way a model's takes differ: where the camera moves,
    when the end frame arrives, the colours. `clean` also writes the first and last frames
    without tag and caption, from the same run.
    """
    if not duration > 0 or duration > 600:
        raise MediaError(f"cannot render a preview of {duration} s (0 < duration <= 600)")
    if height < 32 or fps < 1 or fps > 120:
        raise MediaError(f"cannot render a preview at height {height} and {fps} fps")
    if variant < 0:
        raise MediaError(f"cannot render preview variant {variant}")
    refs = list(reference_images)
    infos = _check_inputs([first_frame, end_frame, *refs], [base_video, style_video])
    try:
        w, h = frame_size(aspect, height - height % 2)
    except ValueError as e:
        raise MediaError(f"cannot render a preview: {e}") from None
    frames = max(1, round(duration * fps))
    secs = frames / fps
    cover = (
        f"scale={w}:{h}:force_original_aspect_ratio=increase:flags=bicubic,crop={w}:{h},setsar=1"
    )
    norm = f"fps={fps},format=yuv420p,settb=AVTB"
    inputs: list[str] = []
    graph: list[str] = []

    def add(*args: str) -> int:
        inputs.extend(args)
        return sum(1 for a in inputs if a == "-i") - 1

    def kenburns(path: str, label: str, zoom_in: bool, move: tuple[float, float, float]) -> None:
        # Zoom on a 2x copy so the sub-pixel pan does not jitter.
        i = add("-i", path)
        fx, fy, amount = move
        z = f"1+{amount}*on/{frames}" if zoom_in else f"{1 + amount}-{amount}*on/{frames}"
        graph.append(
            f"[{i}:v]{upright(path)}scale={2 * w}:{2 * h}:force_original_aspect_ratio=increase,"
            f"crop={2 * w}:{2 * h},setsar=1,"
            f"zoompan=z='{z}':x='(iw-iw/zoom)*{fx}':y='(ih-ih/zoom)*{fy}':d={frames}:s={w}x{h}"
            f":fps={fps},{norm}[{label}]"
        )

    audio: list[str] = []
    if base_video is not None:
        i = add("-i", base_video)
        # another take of an edit: the same footage, graded differently
        grade = f",hue=h={(variant * 47) % 360}:s=1.15" if variant else ""
        graph.append(f"[{i}:v]{cover},{norm}{grade},tpad=stop_mode=clone:stop_duration={secs}[bg]")
        if keep_sound and infos[base_video].has_audio:  # the header says; no ffmpeg probe
            graph.append(f"[{i}:a]aresample=48000,apad,atrim=0:{secs}[aout]")
            audio = ["-map", "[aout]", "-c:a", "aac", "-b:a", "96k"]
    elif first_frame is not None:
        kenburns(first_frame, "bg", True, camera_move(variant))
    else:
        c0, c1 = background_colours(caption, variant)
        graph.append(
            f"gradients=s={w}x{h}:r={fps}:d={secs + 1}:c0={c0}:c1={c1}:n=2:speed=0.01"
            f":seed={1 + variant},{norm}[grad]"
        )
        last = "grad"
        if refs:
            shown = refs[:6]
            box = max(16, min(h // 3, (w * 9 // 10) // len(shown)) - 8)
            thumbs = []
            for n, ref in enumerate(shown):
                i = add("-i", ref)
                graph.append(
                    f"[{i}:v]{upright(ref)}scale={box}:{box}"
                    ":force_original_aspect_ratio=decrease,"
                    f"pad={box + 8}:{box + 8}:(ow-iw)/2:(oh-ih)/2:color=0x101010,"
                    f"setsar=1,format=yuv420p[t{n}]"
                )
                thumbs.append(f"[t{n}]")
            strip = "strip" if len(thumbs) > 1 else "t0"
            if len(thumbs) > 1:
                graph.append(f"{''.join(thumbs)}hstack=inputs={len(thumbs)}[strip]")
            graph.append(f"[grad][{strip}]overlay=x=(W-w)/2:y=H/5:eof_action=repeat[bg]")
            last = "bg"
        if last != "bg":
            graph.append(f"[{last}]null[bg]")
    last = "bg"
    if end_frame is not None:
        kenburns(end_frame, "end", False, (0.5, 0.5, 0.12))
        at = secs * _FADE_AT[variant % len(_FADE_AT)]
        fade = max(1 / fps, min(secs / 3, secs - at))
        graph.append(
            f"[bg]trim=end_frame={frames}[bgt];[end]trim=end_frame={frames}[endt];"
            f"[bgt][endt]xfade=transition=fade:duration={fade:.6f}"
            f":offset={at:.6f}[xf]"
        )
        last = "xf"
    if style_video is not None:
        i = add("-i", style_video)
        pw, ph = (w // 4) - (w // 4) % 2, (h // 4) - (h // 4) % 2
        graph.append(
            f"[{i}:v]scale={pw}:{ph}:force_original_aspect_ratio=increase,"
            f"crop={pw}:{ph},setsar=1,{norm},"
            f"tpad=stop_mode=clone:stop_duration={secs}[pip]"
        )
        graph.append(f"[{last}][pip]overlay=x=W-w-8:y=8:eof_action=repeat[st]")
        last = "st"
    # Some sources end a frame early (a zoom over a still gave 119 of 120): hold the last
    # frame, and -frames:v cuts to exactly `frames`.
    graph.append(f"[{last}]tpad=stop_mode=clone:stop={fps}[full]")
    last = "full"
    clean_maps: list[str] = []
    if clean is not None:
        graph.append(
            f"[{last}]split=3[pre][c0][c1];[c0]select='eq(n,0)'[first];"
            f"[c1]select='eq(n,{frames - 1})'[lastf]"
        )
        last = "pre"

    with tempfile.TemporaryDirectory(prefix="storyc-preview-") as tmpdir:
        scale = scale_for(w, h)
        margin = 6 * scale
        if title or badge:
            png, _, _ = tag_png(badge, title, scale)
            tag = Path(tmpdir) / "tag.png"
            tag.write_bytes(png)
            i = add("-i", str(tag))
            graph.append(
                f"[{i}:v]format=rgba[tag];"
                f"[{last}][tag]overlay=x={margin}:y={margin}:eof_action=repeat[tagged]"
            )
            last = "tagged"
        layout = layout_caption(caption, w, h, seconds=secs)
        pages = len(layout.pages)
        for n in range(pages):
            band = Path(tmpdir) / f"caption{n}.png"
            band.write_bytes(caption_band_png(layout, w, n))
            i = add("-i", str(band))
            a, b = n * frames // pages, (n + 1) * frames // pages
            when = "" if pages == 1 else f":enable='between(n,{a},{b - 1})'"
            graph.append(
                f"[{i}:v]format=rgba[cap{n}];"
                f"[{last}][cap{n}]overlay=x=0:y=H-h:eof_action=repeat{when}[capped{n}]"
            )
            last = f"capped{n}"
        graph.append(f"[{last}]format=yuv420p[vout]")
        if clean is not None:
            clean_maps = [
                *("-map", "[first]", "-frames:v", "1", "-update", "1", *_EXACT_OUT),
                "{first}",
                *("-map", "[lastf]", "-frames:v", "1", "-update", "1", *_EXACT_OUT),
                "{last}",
            ]
        _write_preview(
            out_mp4,
            clean,
            lambda tmp, first_tmp, last_tmp: [
                "-filter_threads",
                "1",
                "-filter_complex_threads",
                "1",
                *inputs,
                "-filter_complex",
                ";".join(graph),
                "-map",
                "[vout]",
                *audio,
                "-frames:v",
                str(frames),
                "-r",
                str(fps),
                *_X264,
                "-preset",
                "ultrafast",
                "-crf",
                "28",
                *_EXACT_OUT,
                tmp,
                *(
                    a.format(first=first_tmp, last=last_tmp) if a in ("{first}", "{last}") else a
                    for a in clean_maps
                ),
            ],
            f"cannot render preview {Path(out_mp4).name}",
        )


def _write_preview(
    out: StrPath,
    clean: CleanFrames | None,
    args_for: Callable[[str, str, str], list[str]],
    what: str,
) -> None:
    """`_write_with` for a preview and its clean frames: every file written to a temp
    name beside its target, and all moved into place only when ffmpeg succeeded."""
    targets = [Path(out)] + ([Path(clean.first), Path(clean.last)] if clean else [])
    for t in targets:
        if not t.parent.is_dir():
            raise MediaError(f"{what}: folder {t.parent} does not exist")
    tmps = [_tmp_for(t) for t in targets]
    names = [str(t) for t in tmps] + ["", ""]
    try:
        _run(args_for(names[0], names[1], names[2]), what)
        for tmp in tmps:
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise MediaError(f"{what}: ffmpeg produced no output")
        for tmp, target in zip(tmps, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()


# -- thumbnails (the storyboard page) -------------------------------------------------

THUMB_WIDTH = 320


def video_thumbnails(
    video: StrPath, outs: tuple[StrPath, StrPath, StrPath], *, width: int = THUMB_WIDTH
) -> None:
    """Write the first, middle and last frames of `video` as JPEGs `width` pixels wide, in
    one ffmpeg run (one decode of the clip). The middle is the frame at half the length
    the header gives; the last is the real last frame (the final half second decoded)."""
    src = Path(video)
    what = f"cannot make thumbnails of {src.name}"
    if not src.is_file():
        raise MediaError(f"{what}: no such file")
    info = probe(str(src))
    middle = (info.duration or 0.0) / 2 if info is not None else 0.0
    scale = f"scale={width}:-2:flags=bicubic,setsar=1"
    targets = [Path(o) for o in outs]
    for t in targets:
        if not t.parent.is_dir():
            raise MediaError(f"{what}: folder {t.parent} does not exist")
    tmps = [_tmp_for(t) for t in targets]
    jpeg = ["-frames:v", "1", "-q:v", "5", "-update", "1", *_EXACT_OUT]
    try:
        _run(
            [
                *("-i", str(src), "-ss", f"{middle:.6f}", "-i", str(src)),
                *("-sseof", "-0.5", "-i", str(src)),
                "-filter_complex",
                f"[0:v]{scale}[a];[1:v]{scale}[b];[2:v]{scale},reverse[c]",
                *("-map", "[a]", *jpeg, str(tmps[0])),
                *("-map", "[b]", *jpeg, str(tmps[1])),
                *("-map", "[c]", *jpeg, str(tmps[2])),
            ],
            what,
        )
        for tmp in tmps:
            if not tmp.exists() or tmp.stat().st_size == 0:
                raise MediaError(f"{what}: ffmpeg produced no output")
        for tmp, target in zip(tmps, targets, strict=True):
            os.replace(tmp, target)
    finally:
        for tmp in tmps:
            if tmp.exists():
                tmp.unlink()


def image_thumbnail(image: StrPath, out: StrPath, *, width: int = THUMB_WIDTH) -> None:
    """Write `image` (or a video's first frame) as a JPEG at most `width` pixels wide,
    turned upright by its EXIF orientation."""
    src = Path(image)
    what = f"cannot make a thumbnail of {src.name}"
    if not src.is_file():
        raise MediaError(f"{what}: no such file")
    turn = upright(str(src)) if src.suffix.lower() in (".jpg", ".jpeg") else ""
    _write_with(
        out,
        lambda tmp: [
            *("-i", str(src), "-map", "0:v:0"),
            *("-vf", f"{turn}scale='min({width},iw)':-2:flags=bicubic,setsar=1,format=yuvj420p"),
            *("-frames:v", "1", "-q:v", "5", "-update", "1", *_EXACT_OUT, tmp),
        ],
        what,
    )


# -- a public runner (for storyc.media.edit: cuts assembled into one video) ---------------


def run(args: Sequence[str], what: str, *, timeout: float = 600.0) -> str:
    """Run ffmpeg with `args`; return its stderr. `MediaError(what: ...)` on failure."""
    return _run(args, what, timeout=timeout)


def write_atomically(out: StrPath, args_for: Callable[[str], list[str]], what: str) -> None:
    """Run ffmpeg writing to a temp file beside `out` (`args_for(tmp)` gives the
    arguments), then move it into place: `out` is whole or absent, never half-written."""
    _write_with(out, args_for, what)


def run_output(
    args: Sequence[str], what: str, *, timeout: float = 300.0, loglevel: str = "error"
) -> tuple[bytes, str]:
    """Run ffmpeg; return (stdout, stderr). For outputs written to stdout (`-f framemd5 -`,
    raw samples with `-f s16le -`); `loglevel="info"` also gives the input's description on
    stderr. `MediaError` on failure."""
    try:
        proc = subprocess.Popen(
            [ffmpeg_exe(), "-hide_banner", "-nostdin", "-loglevel", loglevel, *args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
    except OSError as e:
        raise MediaError(f"{what}: cannot start ffmpeg: {e.strerror or e}") from None
    try:
        with contextlib.suppress(OSError, ValueError):
            resource.prlimit(proc.pid, resource.RLIMIT_AS, (_MEMORY_LIMIT, _MEMORY_LIMIT))
        out, err_bytes = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise MediaError(f"{what}: ffmpeg took longer than {timeout:.0f} s") from None
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    err = err_bytes.decode("utf-8", "replace")
    if proc.returncode != 0:
        last = _one_line(err)
        raise MediaError(f"{what}: {last}" if last else f"{what}: ffmpeg exited {proc.returncode}")
    return out, err
