"""Benchmark: `storyc board` for a large project, cold (thumbnails to make) and warm.

Stage: a script, not a test (nothing here asserts a speed). In: `--scenes` (default
1,000), `--videos` (distinct videos, default 40). Out: figures on stdout. I/O: writes a
project under a temporary directory and deletes it afterwards.

1. A project of N text-to-video scenes (distinct prompts, in cuts of 100).
2. Rendering N animatics would take most of an hour, so the state a finished preview
   build leaves is recorded through the executor's own `ProjectIO` (a render record per
   key, the lock file, renders/ links), pointing at `--videos` distinct real MP4s in turn.
3. Cold: the first board makes the thumbnails of every distinct video (one ffmpeg run
   each, two at a time): reported per video, which is the per-scene cost of a first board.
4. Warm: the board again, from a warm store (thumbnails found by content, nothing to
   make, the page unchanged): best and median of 5, with its parts — compile, plan and
   board (collect + page + write) — and the whole `storyc board` command in this process.

Usage: python bench/bench_board.py [--scenes 1000] [--videos 40]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import statistics
import sys
import tempfile
import time
from pathlib import Path

from storyc.base.hashing import DigestCache
from storyc.build.effects import ProjectIO
from storyc.build.executor import TakeOutcome
from storyc.cli import main
from storyc.compiler import compile_project
from storyc.media import ffmpeg as media
from storyc.plan.planner import ScenePlan, make_plan
from storyc.review.board import BoardInputs, collect, write_board
from storyc.review.page import render_page
from storyc.review.thumbs import ThumbMaker
from storyc.state.lockfile import LockFile
from storyc.state.store import Store


def make_project(root: Path, n: int) -> None:
    lines = ['project "Bench" { quality = "std"  aspect = "16:9" }']
    for i in range(n):
        lines.append(
            f'scene s{i} {{ prompt = "Shot {i}: a lantern sways in the rain"  duration = 5 }}'
        )
    for c in range(0, n, 100):
        members = ", ".join(f"s{i}" for i in range(c, min(n, c + 100)))
        lines.append(f"cut part{c // 100} = [{members}]")
    (root / "main.story").write_text("\n".join(lines) + "\n", "utf-8")


def record_outputs(root: Path, videos: list[str]) -> None:
    comp = compile_project(root)
    store = Store.for_project(root)
    lock = LockFile()
    io_ = ProjectIO(root, store, None, lock, DigestCache(), backend="preview")
    for i, name in enumerate(comp.order):
        req = comp.requests[name]
        key = io_.key(req, 1, {})
        digest = videos[i % len(videos)]
        out = TakeOutcome(1, key, digest, how="rendered")
        io_.remember(key, digest, name, 1, out)
        io_.record_scene(ScenePlan(name, "up-to-date", request=req), {1: out}, 1)
    io_.flush()


def board_once(root: Path) -> dict[str, float]:
    t0 = time.perf_counter()
    comp = compile_project(root)
    t1 = time.perf_counter()
    lock = LockFile.load(LockFile.path_for(root))
    with Store.for_project(root) as store:
        plan = make_plan(comp, lock=lock, store=store, backend="preview")
        t2 = time.perf_counter()
        thumbs = ThumbMaker(store)
        board = collect(BoardInputs(comp, plan, lock, store, root), thumbs=thumbs)
        t3 = time.perf_counter()
        html = render_page(board)
        write_board(html, root)
    t4 = time.perf_counter()
    return {
        "compile": t1 - t0,
        "plan": t2 - t1,
        "collect": t3 - t2,
        "page+write": t4 - t3,
        "total": t4 - t0,
        "made": thumbs.made,
        "bytes": len(html),
    }


def main_bench(scenes: int, n_videos: int) -> None:
    with tempfile.TemporaryDirectory(prefix="storyc-bench-board-") as tmp:
        root = Path(tmp) / "p"
        root.mkdir()
        make_project(root, scenes)
        store = Store.for_project(root)
        videos = []
        for k in range(n_videos):
            v = Path(tmp) / f"v{k}.mp4"
            media.make_test_video(v, width=640, height=360, duration=5, fps=24, seed=k)
            videos.append(store.put_file(v))
        store.save()
        record_outputs(root, videos)

        cold = board_once(root)
        print(f"board of {scenes} scenes, {n_videos} distinct videos (640x360, 5 s)")
        print(
            f"  cold: {cold['total']:.2f} s, {int(cold['made'])} thumbnail runs; "
            f"{(cold['collect'] / max(1, cold['made'])) * 1000:.0f} ms per video "
            f"(first, middle and last frame; 2 at a time)"
        )
        warm = [board_once(root) for _ in range(5)]
        assert all(w["made"] == 0 for w in warm)
        best = min(warm, key=lambda w: w["total"])
        med = statistics.median(w["total"] for w in warm)
        parts = ", ".join(
            f"{k} {best[k] * 1000:.0f} ms" for k in ("compile", "plan", "collect", "page+write")
        )
        print(f"  warm: best {best['total']:.3f} s, median {med:.3f} s ({parts})")
        print(
            f"  page: {int(best['bytes']) / 1e6:.1f} MB of HTML, {len(list((root / 'renders' / 'board_files').iterdir()))} pictures"
        )
        runs = []
        for _ in range(3):
            t = time.perf_counter()
            with (
                contextlib.redirect_stdout(io.StringIO()),
                contextlib.redirect_stderr(io.StringIO()),
            ):
                code = main(["board", str(root)])
            runs.append(time.perf_counter() - t)
            assert code == 0
        print(f"  `storyc board` (whole command, in process): best {min(runs):.3f} s")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scenes", type=int, default=1000)
    ap.add_argument("--videos", type=int, default=40)
    a = ap.parse_args()
    main_bench(a.scenes, a.videos)
    sys.exit(0)
