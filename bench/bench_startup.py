"""Benchmark: what each command imports, and what that costs (`python -X importtime`).

Stage: a script, not a test (nothing here asserts a speed). In: nothing. Out: one line
per command on stdout: the modules it imported, their total import time (the sum of the
top-level entries `-X importtime` reports, best of three runs), and which of the heavy
libraries (Lark, Jinja2, pydantic, httpx, rich, asyncio, sqlite3, watchfiles) it loaded.
I/O: writes a small project under a temporary directory (one scene file, one image),
runs `storyc` on it as subprocesses, deletes it.

Each command runs the way a user runs it: `check` once on a new project (it compiles) and
then again (answered from the compiled state), `build` twice (the second is the no-op fast
path), `plan` on an unchanged project. `watch` and `provider` never end, so their modules
are imported the way the command line imports them (`--help`).

Usage: python bench/bench_startup.py
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from storyc.media import ffmpeg as media

HEAVY = ("lark", "jinja2", "pydantic", "httpx", "rich", "asyncio", "sqlite3", "watchfiles")
STORY = """\
project "Startup" { aspect = "16:9"  duration = 5 }
image square "img/square.png"
scene dawn { prompt = "@square at dawn" }
scene noon { prompt = "The square at noon"  start = dawn.last_frame }
"""
ENV = {
    k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED")
}


def imports(args: list[str], cwd: Path) -> tuple[float, int, list[str]]:
    """(total import time in ms, modules imported, heavy libraries loaded) of one run."""
    p = subprocess.run(
        [sys.executable, "-X", "importtime", "-m", "storyc", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env=ENV,
    )
    total, n, heavy = 0, 0, []
    for line in p.stderr.splitlines():
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative, name = line.split("|")
        if cumulative.strip() == "cumulative":
            continue
        n += 1
        depth = len(name) - len(name.lstrip())
        if depth == 1:  # a top-level import: its cumulative time includes its children
            total += int(cumulative)
        if name.strip() in HEAVY:
            heavy.append(name.strip())
    return total / 1000, n, heavy


def best(args: list[str], cwd: Path, repeat: int = 3) -> tuple[float, int, list[str]]:
    runs = [imports(args, cwd) for _ in range(repeat)]
    return min(runs, key=lambda r: r[0])


def main() -> None:
    tmp = Path(tempfile.mkdtemp(prefix="storyc-bench-startup-"))
    try:
        root = tmp / "film"
        (root / "img").mkdir(parents=True)
        media.make_test_image(root / "img" / "square.png", 640, 480)
        (root / "main.story").write_text(STORY, "utf-8")
        p = str(root)
        cases = [
            ("storyc --version", ["--version"], None),
            ("storyc check (first: compiles)", ["check", p], "fresh"),
            ("storyc check (unchanged)", ["check", p], None),
            ("storyc compile --json (unchanged)", ["compile", "--json", p], None),
            ("storyc graph", ["graph", p], None),
            ("storyc plan (unchanged)", ["plan", p], None),
            ("storyc build (first: renders)", ["build", p, "--json"], None),
            ("storyc build (no-op, normal path)", ["build", p, "--json"], "nofast"),
            ("storyc build (no-op, fast path)", ["build", p, "--json"], None),
            ("storyc watch --help", ["watch", "--help"], None),
            ("storyc provider --help", ["provider", "--help"], None),
        ]
        print(f"{'command':40} {'imports':>8} {'modules':>8}  heavy libraries loaded")
        for label, args, mode in cases:
            if mode == "fresh":
                shutil.rmtree(root / ".storyc", ignore_errors=True)
                result = imports(args, root)  # only the first run compiles
            elif mode == "nofast":
                time.sleep(1.1)  # a build records its clean state only once files settled
                ENV["STORYC_NO_FASTPATH"] = "1"
                result = best(args, root)
                del ENV["STORYC_NO_FASTPATH"]
            else:
                result = best(args, root) if "first" not in label else imports(args, root)
            ms, n, heavy = result
            print(f"{label:40} {ms:6.0f} ms {n:8d}  {', '.join(heavy) or '-'}")
            sys.stdout.flush()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
