"""Helpers for the build tests: a small project on disk, and `storyc build` run in-process
or as a subprocess, returning its exit code and JSON events. (No tests in this file.)"""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from storyc.cli import main
from storyc.media import ffmpeg as media

STORY = """\
project "Test" { quality = "std"  aspect = "16:9" }
image market "assets/market.png"
scene arrival { prompt = "A walk through @market at dusk"  duration = 5 }
scene lanterns { start = arrival.last_frame  prompt = "Lifting a lantern"  duration = 5 }
scene rain { edit = arrival  prompt = "Add heavy rain to @arrival" }
scene other { prompt = "An unrelated wide shot of the harbour"  duration = 5  takes = 2 }
"""
# takes to render on a first build of STORY: arrival, lanterns, rain, other ×2
STORY_TAKES = 5


def make_project(root: Path, story: str = STORY) -> Path:
    (root / "assets").mkdir(parents=True, exist_ok=True)
    img = root / "assets" / "market.png"
    if not img.exists():
        media.make_test_image(img, 640, 360, seed=3)
    (root / "main.story").write_text(story, "utf-8")
    return root


def age(root: Path, seconds: float = 60) -> None:
    """Make every file of the project (not its state) look `seconds` old, as between two
    real builds: storyc trusts no stat signature of a file changed within the last second
    (it could still change unseen), so tests that need one wait for events, not clocks."""
    import time

    past = time.time() - seconds
    for p in root.rglob("*"):
        if ".storyc" not in p.parts and p.is_file() and not p.is_symlink():
            os.utime(p, (past, past))


def edit_story(root: Path, old: str, new: str) -> None:
    path = root / "main.story"
    text = path.read_text("utf-8")
    assert old in text, old
    path.write_text(text.replace(old, new, 1), "utf-8")


def parse_events(stdout: str) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stdout.splitlines() if line.startswith("{")]


def build(root: Path, *args: str) -> tuple[int, list[dict[str, Any]], str]:
    """`storyc build ROOT --json ARGS` in this process: (exit code, events, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(["build", str(root), "--json", "--poll-interval", "0.05", *args])
    return code, parse_events(out.getvalue()), err.getvalue()


def build_subprocess(
    root: Path, *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "storyc",
            "build",
            str(root),
            "--json",
            "--poll-interval",
            "0.05",
            *args,
        ],
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def summary(events: list[dict[str, Any]]) -> dict[str, Any]:
    found = [e for e in events if e.get("event") == "summary"]
    assert found, f"no summary event in {events}"
    return found[-1]


def rendered(events: list[dict[str, Any]]) -> list[str]:
    """Scenes (with #take) that were sent to the backend, in order."""
    return [
        e["scene"]
        for e in events
        if e.get("event") == "scene" and e.get("state") in ("rendering", "submitting")
    ]


def final_states(events: list[dict[str, Any]]) -> dict[str, str]:
    finals = {
        "done",
        "reused",
        "running",
        "deferred",
        "failed",
        "blocked",
        "unknown",
        "over-budget",
        "stopped",
    }
    return {
        e["scene"]: e["state"]
        for e in events
        if e.get("event") == "scene" and e.get("state") in finals
    }
