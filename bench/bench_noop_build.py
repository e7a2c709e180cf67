"""Benchmark: a no-op `storyc build`, side by side with Ninja's no-op on the same graph.

Stage: a script, not a test (nothing here asserts a speed). In: `--scenes` (default
1,000 and 10,000), `--assets` and `--mib` (default 1,000 files, 1 GiB in total). Out:
figures on stdout. I/O: writes a project under a temporary directory, runs `storyc
build` and `ninja` as subprocesses, deletes everything afterwards.

For each size:
1. a project of N scenes, each using one of the asset files as a reference image;
2. a first `storyc build` of it. Rendering 10,000 animatics would take hours, so the
   state a finished preview build leaves (a render record per key pointing at one small
   real MP4, the lock file, renders/ links) is written through the executor's own
   `ProjectIO` — the same code a real build records with — after one real preview build
   of the first scene checks that the path works;
3. the no-op `storyc build --json`, timed (best of 3) minus the interpreter's start-up
   (`python -c pass`), with the bytes of assets and store objects it re-read (from its
   summary event), which must be 0 — once on the normal path (`STORYC_NO_FASTPATH=1`),
   then on the fast path (the clean state the normal path recorded);
4. `ninja` on a build.ninja with the same N edges over the same asset files, built once,
   then its no-op timed the same way; the ratio storyc / ninja.
Also: preview render throughput of a real build of 12 scenes (scenes per second).

Usage: python bench/bench_noop_build.py [--scenes 1000 10000] [--assets 1000] [--mib 1024]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from storyc.base.hashing import DigestCache
from storyc.build.effects import ProjectIO
from storyc.build.executor import TakeOutcome
from storyc.compiler import compile_project
from storyc.media import ffmpeg as media
from storyc.plan import keys
from storyc.plan.planner import ScenePlan
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

PNG_W, PNG_H = 640, 360


def make_assets(root: Path, n: int, total: int) -> list[str]:
    """N valid PNG files padded after IEND with distinct bytes up to total/N each."""
    (root / "assets").mkdir(parents=True, exist_ok=True)
    base = root / "base.png"
    media.make_test_image(base, PNG_W, PNG_H, seed=1)
    head = base.read_bytes()
    base.unlink()
    size = max(len(head), total // n)
    pad = os.urandom(size - len(head) + n)
    names = []
    past = time.time() - 3600  # older than any "racy" window of the digest cache
    for i in range(n):
        p = root / "assets" / f"a{i:05d}.png"
        with open(p, "wb") as f:
            f.write(head)
            f.write(pad[i : i + size - len(head)])
        os.utime(p, (past, past))
        names.append(f"a{i:05d}")
    return names


def write_story(root: Path, scenes: int, assets: list[str], files: int = 20) -> None:
    """Scenes spread over `files` included story files, as a big project would be."""
    lines = ['project "Bench" { quality = "std"  aspect = "16:9" }']
    lines += [f'image {a} "assets/{a}.png"' for a in assets]
    per = (scenes + files - 1) // files
    for f in range(files):
        part = [
            f'scene s{i:05d} {{ prompt = "Shot {i} of @{assets[i % len(assets)]}, '
            f'slow dolly"  duration = 5 }}'
            for i in range(f * per, min(scenes, (f + 1) * per))
        ]
        (root / f"part{f:02d}.story").write_text("\n".join(part) + "\n", "utf-8")
        lines.append(f'include "part{f:02d}.story"')
    (root / "main.story").write_text("\n".join(lines) + "\n", "utf-8")


def seed_built_state(root: Path) -> int:
    """Record a finished preview build of every scene (see the module docstring)."""
    comp = compile_project(root, digests=DigestCache(root / ".storyc" / "digests.json"))
    assert not comp.has_errors, [d.message for d in comp.diagnostics if d.is_error][:3]
    store = Store.for_project(root)
    clip = root / "clip.mp4"
    media.make_test_video(clip, width=640, height=360, duration=5.0)
    digest = store.put_file(clip)
    clip.unlink()
    lock = LockFile.load(LockFile.path_for(root))
    io = ProjectIO(
        root, store, None, lock, DigestCache(root / ".storyc" / "digests.json"), backend="preview"
    )
    for scene in comp.order:
        req = comp.requests[scene]
        key = keys.request_key(req, backend="preview", take=1, upstream={})
        out = TakeOutcome(1, key, digest, duration=5.0, how="rendered")
        io.remember(key, digest, scene, 1, out)
        io.record_scene(ScenePlan(scene, "up-to-date", request=req), {1: out}, 1)
    io.flush()
    return len(comp.order)


# A user's environment: byte-code caches on (this sandbox sets PYTHONDONTWRITEBYTECODE,
# which would make every run compile every module again and hide what we measure).
ENV = {
    k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
}


def run(
    cmd: list[str], cwd: Path, env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    p = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, env={**ENV, **(env or {})})
    return time.perf_counter() - t, p


def best(
    cmd: list[str], cwd: Path, n: int = 3, env: dict[str, str] | None = None
) -> tuple[float, subprocess.CompletedProcess[str]]:
    results = [run(cmd, cwd, env) for _ in range(n)]
    return min(results, key=lambda r: r[0])


def write_ninja(root: Path, scenes: int, assets: list[str]) -> None:
    out = ["rule render", "  command = touch $out", ""]
    for i in range(scenes):
        out.append(f"build out/s{i:05d}.mp4: render assets/{assets[i % len(assets)]}.png")
    (root / "out").mkdir(exist_ok=True)
    (root / "build.ninja").write_text("\n".join(out) + "\n")


def ninja_exe() -> str:
    found = shutil.which("ninja", path=os.path.dirname(sys.executable)) or shutil.which("ninja")
    if not found:
        raise SystemExit("ninja not found (pip package `ninja`)")
    return found


def bench_size(
    root: Path, scenes: int, assets: list[str], startup: float, imports: float
) -> tuple[float, float]:
    """(normal no-op path, fast path) wall times."""
    write_story(root, scenes, assets)
    shutil.rmtree(root / ".storyc", ignore_errors=True)
    shutil.rmtree(root / "renders", ignore_errors=True)
    (root / "storyc.lock").unlink(missing_ok=True)
    t = time.perf_counter()
    n = seed_built_state(root)
    seed_s = time.perf_counter() - t
    cmd = [sys.executable, "-m", "storyc", "build", str(root), "--json"]
    first, p = run(cmd, root)  # the first run after seeding fills the compile cache
    assert p.returncode == 0, p.stderr[-2000:]
    # files modified within the last second are never trusted by the fast path's record:
    # wait as a user would between two builds
    time.sleep(1.1)
    slow, p = best(cmd, root, env={"STORYC_NO_FASTPATH": "1"})  # the normal path
    assert p.returncode == 0, p.stderr[-2000:]
    summary = [json.loads(x) for x in p.stdout.splitlines() if '"summary"' in x][-1]
    assert summary["submitted"] == 0 and not summary["fast_path"], summary
    print(
        f"  {n} scenes: compile+seed {seed_s:.1f} s; first no-op run {first:.2f} s; "
        f"normal no-op path {slow:.3f} s wall, {(slow - startup) / n * 1e6:.0f} µs/scene "
        f"beyond interpreter start-up; re-read {summary.get('bytes_read', '?')} B of "
        f"assets, {summary.get('bytes_verified', '?')} B of store objects"
    )
    wall, p = best(cmd, root)  # the last normal run recorded the clean state
    assert p.returncode == 0, p.stderr[-2000:]
    summary = [json.loads(x) for x in p.stdout.splitlines() if '"summary"' in x][-1]
    assert summary["submitted"] == 0 and summary["fast_path"], summary
    per_scene = (wall - startup) / n * 1e6
    per_scene_imp = (wall - imports) / n * 1e6
    print(
        f"  fast path (same no-op, clean state recorded): {wall:.3f} s wall, "
        f"{per_scene:.0f} µs/scene beyond interpreter start-up, {per_scene_imp:.0f} "
        f"µs/scene beyond `storyc --version`"
    )
    write_ninja(root, scenes, assets)
    t_build, q = run([ninja_exe(), "-j", "4"], root)
    assert q.returncode == 0, q.stdout[-2000:]
    nwall, q = best([ninja_exe()], root)
    assert "no work to do" in q.stdout, q.stdout
    nper = nwall / n * 1e6
    print(
        f"  ninja: first build {t_build:.1f} s; no-op {nwall:.3f} s wall "
        f"({nper:.0f} µs/edge, start-up included); storyc/ninja = "
        f"{(wall - startup) / max(nwall, 1e-9):.1f}× (storyc without start-up), "
        f"{wall / max(nwall, 1e-9):.1f}× (wall)"
    )
    return slow, wall


def bench_throughput(root: Path) -> None:
    root.mkdir(parents=True, exist_ok=True)
    assets = make_assets(root, 2, 2 * 300_000)
    scenes = 12
    write_story(root, scenes, assets, files=1)
    t, p = run([sys.executable, "-m", "storyc", "build", str(root), "--json"], root)
    assert p.returncode == 0, p.stderr[-2000:]
    print(
        f"preview render throughput: {scenes} scenes in {t:.1f} s = {scenes / t:.2f} "
        f"scenes/s (5 s clips, 4 jobs, {os.cpu_count()} cores)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--mib", type=int, default=1024)
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="storyc-bench-noop-"))
    try:
        startup, _ = best([sys.executable, "-c", "pass"], tmp)
        imports, _ = best([sys.executable, "-m", "storyc", "--version"], tmp)
        print(
            f"interpreter start-up: {startup * 1e3:.0f} ms; `storyc --version` (start-up + "
            f"importing every command): {imports * 1e3:.0f} ms"
        )
        root = tmp / "project"
        root.mkdir()
        t = time.perf_counter()
        assets = make_assets(root, args.assets, args.mib << 20)
        print(
            f"{args.assets} asset files, {args.mib} MiB, written in {time.perf_counter() - t:.1f} s"
        )
        walls = {n: bench_size(root, n, assets, startup, imports) for n in args.scenes}
        if len(walls) >= 2:
            (a, ta), (b, tb) = sorted(walls.items())[0], sorted(walls.items())[-1]
            for i, path in enumerate(("normal path", "fast path")):
                print(
                    f"marginal cost of a scene in a no-op build ({path}): ({tb[i]:.3f} s - "
                    f"{ta[i]:.3f} s) / {b - a} = {(tb[i] - ta[i]) / (b - a) * 1e6:.0f} µs/scene"
                )
        bench_throughput(tmp / "throughput")
    finally:
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
