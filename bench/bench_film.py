"""Benchmark: assembling a cut of 100 clips of 5 s. Prints figures; asserts nothing.

Two paths of `storyc.film.assemble`, each from a cold store (clip facts read, every
intermediate made) and then warm (the same cut again: a cache hit):

- **stream copy**: 100 clips alike (H.264 + AAC, same parameters); target at least 50x
  real time (500 s of film in at most 10 s);
- **normalising**: half the clips at another size and without sound, so every clip is
  normalised (scaled, 48 kHz stereo, silence where there is none); target at most 1.2x
  the time of one plain ffmpeg command doing the same work (the same scaling, the same
  encoder settings, one concat filter over 100 inputs, the sound encoded once).

Each is also timed against the plain ffmpeg command a user would write for it: for the
stream copy, `ffmpeg -f concat -i list -c copy` (which, unlike storyc, leaves the sound
drifting at every join). The machine is shared: the load average is printed with the
figures.

    python bench/bench_film.py [--clips 100] [--height 360]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from storyc.film.assemble import Assembler
from storyc.film.sources import ClipSource
from storyc.film.spec import ClipSpec, CutSpec
from storyc.media import edit
from storyc.media import ffmpeg as media
from storyc.state.store import Store

SECONDS = 5
FPS = 24


def _clip(path: Path, width: int, height: int, *, sound: bool, seed: int) -> None:
    inputs = ["-f", "lavfi", "-i", f"testsrc2=s={width}x{height}:r={FPS}:d={SECONDS}"]
    audio = ["-an"]
    if sound:
        inputs += ["-f", "lavfi", "-i", f"sine=frequency={300 + seed}:sample_rate=48000"]
        audio = ["-c:a", "aac", "-b:a", "96k", "-ac", "2", "-shortest"]
    media.write_atomically(
        path,
        lambda tmp: [
            *inputs,
            "-t",
            str(SECONDS),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            str(2 * FPS),
            "-pix_fmt",
            "yuv420p",
            *audio,
            tmp,
        ],
        "bench clip",
    )


def _variants(base: Path, out: Path, n: int) -> list[Path]:
    """n distinct files with the same streams: a stream copy with another title."""
    paths = []
    for i in range(n):
        p = out / f"{base.stem}_{i:03d}.mp4"
        media.run(["-i", str(base), "-map", "0", "-c", "copy", "-metadata", f"title={i}", str(p)],
                  "bench copy")  # fmt: skip
        paths.append(p)
    return paths


def _assemble(root: Path, clips: list[Path]) -> tuple[float, float, str, int]:
    """Cold and warm assembly times, the path taken, and the frames of the cut."""
    if root.exists():
        shutil.rmtree(root)
    root.mkdir(parents=True)
    store = Store.for_project(root)
    sources = {}
    specs = []
    for i, p in enumerate(clips):
        name = f"s{i:03d}"
        sources[name] = ClipSource(name, "render", store.put_file(p))
        specs.append(ClipSpec(name, None, None, 0.0, float(SECONDS)))
    spec = CutSpec("film", tuple(specs), "16:9")
    asm = Assembler(root, store, jobs=os.cpu_count() or 1)
    t = time.perf_counter()
    out = asm.assemble(spec, sources)
    cold = time.perf_counter() - t
    assert out.state == "assembled", out.error
    t = time.perf_counter()
    again = Assembler(root, Store.for_project(root)).assemble(spec, sources)
    warm = time.perf_counter() - t
    assert again.state == "up to date"
    frames = edit.decode_counts(root / out.path).frames
    return cold, warm, out.method, frames


def _plain_copy(clips: list[Path], out: Path) -> float:
    listing = out.with_suffix(".txt")
    listing.write_text("".join(f"file '{p}'\n" for p in clips))
    t = time.perf_counter()
    media.run(["-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(out)], "plain")
    return time.perf_counter() - t


def _plain_normalise(clips: list[Path], sound: list[bool], out: Path, w: int, h: int) -> float:
    """One ffmpeg command: every input scaled and padded, sound or silence, one concat."""
    args: list[str] = []
    graph = []
    for i, p in enumerate(clips):
        args += ["-i", str(p)]
        graph.append(
            f"[{i}:v]fps={FPS},scale={w}:{h}:force_original_aspect_ratio=decrease,"
            f"pad={w}:{h}:(ow-iw)/2:(oh-ih)/2,setsar=1,format=yuv420p[v{i}]"
        )
        samples = SECONDS * 48000
        if sound[i]:
            graph.append(
                f"[{i}:a]aresample=48000,aformat=channel_layouts=stereo,apad,"
                f"atrim=end_sample={samples}[a{i}]"
            )
        else:
            graph.append(f"anullsrc=r=48000:cl=stereo,atrim=end_sample={samples}[a{i}]")
    pairs = "".join(f"[v{i}][a{i}]" for i in range(len(clips)))
    graph.append(f"{pairs}concat=n={len(clips)}:v=1:a=1[v][a]")
    t = time.perf_counter()
    # as a user runs it: no address-space cap (storyc's runner has one, and 100 inputs
    # with their decoders exceed it)
    subprocess.run(
        [
            media.ffmpeg_exe(),
            "-hide_banner",
            "-loglevel",
            "error",
            "-y",
            *args,
            "-filter_complex",
            ";".join(graph),
            "-map",
            "[v]",
            "-map",
            "[a]",
            *edit.NORMAL_X264[:2],  # libx264 with the same settings, its own threading
            *edit.NORMAL_X264[4:],
            "-c:a",
            "aac",
            "-b:a",
            "192k",
            str(out),
        ],
        check=True,
        timeout=3600,
    )
    return time.perf_counter() - t


def _copy_case(label: str, root: Path, clips: list[Path], film: int) -> None:
    cold, warm, method, frames = _assemble(root, clips)
    plain = _plain_copy(clips, root.with_suffix(".plain.mp4"))
    assert method == "stream copy" and frames == len(clips) * SECONDS * FPS, (method, frames)
    print(
        f"{label}: {cold:6.2f} s cold = {film / cold:6.1f}x real time "
        f"(target >= 50x); {plain:5.2f} s plain `-c copy` ({cold / plain:.2f}x); "
        f"warm {warm * 1000:.0f} ms"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--height", type=int, default=360)
    ap.add_argument(
        "--case",
        action="append",
        choices=("copy", "copy-silent", "normalise"),
        help="run only these (default: all)",
    )
    args = ap.parse_args()
    cases = set(args.case or ("copy", "copy-silent", "normalise"))
    n, h = args.clips, args.height
    w = round(h * 16 / 9) // 2 * 2
    film = n * SECONDS
    print(f"{n} clips of {SECONDS} s ({film} s of film) at {w}x{h}, {FPS} fps")
    print(f"load average before: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")
    with tempfile.TemporaryDirectory(prefix="bench-film-") as d:
        tmp = Path(d)
        _clip(tmp / "same.mp4", w, h, sound=True, seed=1)
        _clip(tmp / "small.mp4", w * 3 // 4 // 2 * 2, h * 3 // 4 // 2 * 2, sound=False, seed=2)
        same = _variants(tmp / "same.mp4", tmp, n)
        if "copy" in cases:
            _copy_case("stream copy", tmp / "copy", same, film)
        if "copy-silent" in cases:
            _clip(tmp / "mute.mp4", w, h, sound=False, seed=3)
            mute = _variants(tmp / "mute.mp4", tmp, n)
            _copy_case("stream copy, clips without sound", tmp / "mute", mute, film)
        if "normalise" not in cases:
            return

        half = _variants(tmp / "small.mp4", tmp, n // 2)
        mixed = [p for pair in zip(same[: n - n // 2], half, strict=False) for p in pair]
        mixed += same[len(half) : n - n // 2]
        sound = [p.name.startswith("same") for p in mixed]
        cold, warm, method, frames = _assemble(tmp / "norm", mixed)
        assert method == "normalised" and frames == n * SECONDS * FPS, (method, frames)
        plain = _plain_normalise(mixed, sound, tmp / "plain-norm.mp4", w, h)
        print(
            f"normalising:  {cold:6.2f} s cold = {film / cold:6.1f}x real time; "
            f"{plain:6.2f} s one plain ffmpeg = {cold / plain:.2f}x plain (target <= 1.2x); "
            f"warm {warm * 1000:.0f} ms"
        )
    print(f"load average after: {', '.join(f'{x:.1f}' for x in os.getloadavg())}")


if __name__ == "__main__":
    main()
