"""Benchmark: the cost of an edit, side by side with Ninja on the same graph.

Stage: a script, not a test (nothing here asserts a speed). In: `--scenes` (default 1,000
and 10,000), `--assets`, `--mib`. Out: figures on stdout. I/O: writes a project under a
temporary directory (the one bench_noop_build.py builds: N scenes over 20 included files,
each scene using one of the asset files; a finished preview build recorded through the
executor's own `ProjectIO`), runs `storyc` and `ninja` as subprocesses, deletes it all.

For each size, in one run:
  cold check       `storyc check` with no compiled state (what every check paid before),
                   and when the state its builder makes is ready; then the same making
                   the state in the command (`STORYC_NO_BACKGROUND=1`)
  warm check       `storyc check` again, nothing changed
  edit: plan       one scene's prompt edited (a different scene each time), `storyc plan`
  edit: build      the same, `storyc build --json` (preview): time until its `plan` event
                   (the decision), then it renders the one scene for real
  edit: engine     the same edit in one process (what watch and the editor pay)
  daemon           the same edits with `storyc daemon` running: plan, check, build
  ninja            `ninja -n` after touching one input (Ninja's one-edge decision on a
                   build.ninja with the same N edges over the same files), and its no-op
All times are wall times, best of three (of five for the daemon's answers and Ninja's
one-edge decision); "beyond start-up" subtracts `python -c pass`.
Peak memory is the child's ru_maxrss.

Usage: python bench/bench_incremental.py [--scenes 1000 10000] [--assets 1000] [--mib 64]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from bench_noop_build import (  # noqa: E402  (the bench directory is not a package)
    ENV,
    best,
    make_assets,
    ninja_exe,
    run,
    seed_built_state,
    write_ninja,
    write_story,
)

WRAPPER = """
import resource, subprocess, sys, time
t = time.perf_counter()
r = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
dt = time.perf_counter() - t
print(dt, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode)
"""


WAIT_STATE = """
import sys
from pathlib import Path
from storyc.base.hashing import DigestCache
from storyc.compiler import background
from storyc.compiler.state import CompiledState
root = Path(sys.argv[1])
background.wait(CompiledState(root, root, None, DigestCache()).dir)
"""


def child(
    cmd: list[str], cwd: Path, n: int = 3, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Best wall time (s) and peak RSS (MB) of `cmd`, measured by a wrapper process."""
    times, rss = [], 0.0
    for _ in range(n):
        out = subprocess.run(
            [sys.executable, "-c", WRAPPER, *cmd],
            cwd=cwd,
            capture_output=True,
            text=True,
            env=env or ENV,
        ).stdout.split()
        times.append(float(out[0]))
        rss = max(rss, int(out[1]) / 1024)
    return min(times), rss


class Editor:
    """Edits one scene's prompt per call, a different scene each time."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def edit(self) -> None:
        self.n += 1
        path = self.root / f"part{self.n % 20:02d}.story"
        text = path.read_text("utf-8")
        # the n-th scene of the file, somewhere in the middle of it
        found = list(re.finditer(r"slow dolly[^\"]*", text))
        m = found[(len(found) // 10 + 37 * self.n) % len(found)]
        path.write_text(text[: m.start()] + f"slow dolly, take {self.n}" + text[m.end() :], "utf-8")


def build_decision(cmd: list[str], cwd: Path) -> tuple[float, float, dict[str, object]]:
    """(time to the plan event, total time, the plan event) of a `storyc build --json`."""
    t = time.perf_counter()
    p = subprocess.Popen(
        cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=ENV
    )
    assert p.stdout is not None
    decided, plan = None, {}
    for line in p.stdout:
        if decided is None and '"plan"' in line:
            decided = time.perf_counter() - t
            plan = json.loads(line)
    p.wait()
    total = time.perf_counter() - t
    assert p.returncode == 0 and decided is not None, p.returncode
    return decided, total, plan


def bench_size(root: Path, n: int, assets: list[str], startup: float) -> None:
    write_story(root, n, assets)
    for p in (".storyc", "renders"):
        shutil.rmtree(root / p, ignore_errors=True)
    (root / "storyc.lock").unlink(missing_ok=True)
    seed_built_state(root)
    storyc = [sys.executable, "-m", "storyc"]

    def per(dt: float) -> str:
        return f"{(dt - startup) / n * 1e6:.0f} µs/scene beyond start-up"

    # cold: no compiled state. The command answers with the whole-program compiler and a
    # forked builder makes the state once the answer is out (storyc.compiler.background);
    # "state ready" is when a next command could start from it (the builder's lock free)
    colds, readies, rss = [], [], 0.0
    for _ in range(3):
        shutil.rmtree(root / ".storyc" / "compiled", ignore_errors=True)
        dt, r = child([*storyc, "check", str(root)], root, n=1)
        t = time.perf_counter()
        run([sys.executable, "-c", WAIT_STATE, str(root)], root)
        readies.append(time.perf_counter() - t - startup)
        colds.append(dt)
        rss = max(rss, r)
    cold = min(colds)
    print(
        f"  cold check: {cold:.3f} s ({per(cold)}), peak {rss:.0f} MB (best of 3); "
        f"the state ready {min(readies):.2f}-{max(readies):.2f} s after it ends"
    )
    shutil.rmtree(root / ".storyc" / "compiled", ignore_errors=True)
    sync, rss_s = child(
        [*storyc, "check", str(root)], root, n=1, env={**ENV, "STORYC_NO_BACKGROUND": "1"}
    )
    print(
        f"  cold check making the state itself (STORYC_NO_BACKGROUND=1, what the builder "
        f"does): {sync:.3f} s ({per(sync)}), peak {rss_s:.0f} MB"
    )
    warm, rss_w = child([*storyc, "check", str(root)], root)
    print(f"  warm check (unchanged): {warm:.3f} s ({per(warm)}), peak {rss_w:.0f} MB")

    editor = Editor(root)
    plans = []
    for _ in range(3):
        editor.edit()
        plans.append(child([*storyc, "plan", str(root)], root, n=1)[0])
    print(
        f"  one prompt edited, storyc plan: {min(plans):.3f} s wall (best of 3; {per(min(plans))})"
    )

    # the same edits answered by `storyc daemon` (the project kept compiled in memory)
    run([*storyc, "daemon", "start", str(root)], root)
    try:
        # best of 5: a command answered in a tenth of a second moves a lot with the load
        served = []
        for _ in range(5):
            editor.edit()
            served.append(child([*storyc, "plan"], root, n=1)[0])
        checks = []
        for _ in range(5):
            editor.edit()
            checks.append(child([*storyc, "check"], root, n=1)[0])
        builds = []
        for _ in range(5):
            editor.edit()
            builds.append(build_decision([*storyc, "build", str(root), "--json"], root))
        status = run([*storyc, "daemon", "status", str(root)], root)[1].stdout.strip()
    finally:
        run([*storyc, "daemon", "stop", str(root)], root)
    print(
        f"  one prompt edited, storyc plan with the daemon: {min(served):.3f} s wall "
        f"(best of 5; {(min(served) - startup) * 1e3:.0f} ms beyond start-up); "
        f"storyc check: {min(checks):.3f} s"
    )
    d_decided, d_total, d_plan = min(builds, key=lambda x: x[0])
    print(
        f"  one prompt edited, storyc build (preview) with the daemon: plan event after "
        f"{d_decided:.3f} s ({d_decided - startup:.3f} s beyond start-up; "
        f"render={d_plan.get('render')}), whole build {d_total:.2f} s"
    )
    print(f"    ({status})")

    decisions = []
    for _ in range(3):
        editor.edit()
        decided, total, plan = build_decision([*storyc, "build", str(root), "--json"], root)
        decisions.append((decided, total, plan))
    decided, total, plan = min(decisions, key=lambda x: x[0])
    print(
        f"  one prompt edited, storyc build (preview): plan event after {decided:.3f} s "
        f"({decided - startup:.3f} s beyond start-up; render={plan.get('render')}), "
        f"whole build {total:.2f} s"
    )

    from storyc.compiler.incremental import Engine

    engine = Engine(root)
    engine.update()
    times = []
    for _ in range(3):
        editor.edit()
        t = time.perf_counter()
        engine.update()
        times.append(time.perf_counter() - t)
    print(
        f"  one prompt edited, in one process (Engine.update): {min(times) * 1e3:.1f} ms "
        f"(resolved {engine.stats.resolved}, {engine.stats.regions_parsed} region parsed)"
    )

    write_ninja(root, n, assets)
    _, q = run([ninja_exe(), "-j", "4"], root)
    assert q.returncode == 0, q.stdout[-2000:]
    noop, q = best([ninja_exe()], root)
    ones = []
    for i in range(5):  # as many as the daemon's commands get
        os.utime(root / "assets" / f"{assets[i]}.png")
        dt, q = run([ninja_exe(), "-n"], root)
        assert q.returncode == 0
        ones.append(dt)
    one = min(ones)
    print(f"  ninja: no-op {noop * 1e3:.0f} ms; one input touched, `ninja -n` {one * 1e3:.0f} ms")
    print(
        f"  edit decision / ninja one-edge: plan {(min(plans) - startup) / one:.1f}×, "
        f"plan with the daemon {(min(served) - startup) / one:.1f}×, "
        f"build {(decided - startup) / one:.1f}×, "
        f"build with the daemon {(d_decided - startup) / one:.1f}× "
        "(storyc beyond interpreter start-up)"
    )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--scenes", type=int, nargs="+", default=[1000, 10000])
    ap.add_argument("--assets", type=int, default=1000)
    ap.add_argument("--mib", type=int, default=64)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="storyc-bench-inc-"))
    try:
        startup, _ = best([sys.executable, "-c", "pass"], tmp)
        print(f"interpreter start-up: {startup * 1e3:.0f} ms")
        root = tmp / "project"
        root.mkdir()
        assets = make_assets(root, args.assets, args.mib << 20)
        for n in args.scenes:
            print(f"{n} scenes:")
            bench_size(root, n, assets, startup)
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
