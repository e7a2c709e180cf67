"""Benchmark: preview render speed and header probe time. Prints figures; asserts nothing.

Render speed is seconds of video produced per second of wall time (best of 3) for a 5 s
640x360 clip: text only, first + end frame, and an edit of a 1280x720 base video with
sound. Probe time is microseconds per `mediainfo.probe` call on each example file
(best of 5 batches: a machine shared with other work is noisy).

    python bench/bench_preview.py
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from storyc.media import ffmpeg as media
from storyc.media.info import probe

ROOT = Path(__file__).resolve().parent.parent
DURATION = 5.0
CAPTION = (
    "Mei walks through the night market, lanterns swaying in the warm rain, "
    "the camera tracking her from the left."
)


def _best(fn: Callable[[], None], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        first, end, base = tmp / "first.jpg", tmp / "end.png", tmp / "base.mp4"
        media.make_test_image(first, 1280, 720, seed=2)
        media.make_test_image(end, 720, 1280, seed=4)
        media.make_test_video(base, width=1280, height=720, duration=DURATION, audio=True)
        out = tmp / "out.mp4"
        cases = {
            "text only": {},
            "first + end frame": dict(first_frame=str(first), end_frame=str(end)),
            "base-video edit, sound kept": dict(base_video=str(base), keep_sound=True),
        }
        print(f"preview render, {DURATION:.0f} s at 640x360 24 fps (best of 3):")
        for name, extra in cases.items():
            secs = _best(
                lambda extra=extra: media.render_preview(
                    out, duration=DURATION, aspect="16:9", caption=CAPTION, **extra
                )
            )
            print(f"  {name:30} {secs:6.2f} s wall  {DURATION / secs:6.1f} s video per s")

    files = sorted(
        p
        for p in (ROOT / "examples").rglob("*")
        if p.suffix.lower() in (".png", ".jpg", ".jpeg", ".mp4", ".mov")
    )
    print(f"mediainfo.probe, {len(files)} example files (mean of 200 calls, best of 5):")
    for p in files:
        n = 200

        def batch(p: Path = p, n: int = n) -> None:
            for _ in range(n):
                probe(p)

        us = _best(batch, runs=5) / n * 1e6
        print(f"  {p.relative_to(ROOT / 'examples')!s:40} {us:8.1f} us")


if __name__ == "__main__":
    main()
