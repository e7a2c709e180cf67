"""Found by reviewing the docs of this stop against what the code does (docs/cli.md, storyc
why: "takes added" is said of takes the story added, "take N not in storyc.lock" of a take
that failed or is of unknown fate while a sibling was paid)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pytest
from test_build_support import build, make_project

from storyc.cli import main
from storyc.provider import loopback

STORY = (
    'project "Takes" { quality = "std"  aspect = "16:9" }\n'
    'scene a { prompt = "Shot a"  duration = 5  takes = 2 }\n'
)
PAID = ("--backend", "inference", "--yes", "--jobs", "1", "--retries", "0")


def _run(*argv: str) -> str:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(list(argv)) == 0
    return out.getvalue()


@pytest.mark.parametrize("fault", ["submit:fail:nth=2", "submit:drop:nth=2"])
def test_a_last_take_that_failed_is_not_said_to_be_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    """takes = 2, take 1 paid and locked, take 2 failed (or of unknown fate): the story
    added no take, yet `why` and `plan` said "takes added: 2" (only a missing take before
    the last one the lock holds was said to be missing)."""
    root = make_project(tmp_path / "p", STORY)
    with loopback.serve(fast_outputs=True, faults=[fault]) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, *PAID)
        assert code != 0
        why = _run("why", "a", str(root), "--backend", "inference")
        plan = json.loads(_run("plan", str(root), "--backend", "inference", "--json"))
    said = [r["message"] for r in plan["scenes"]["a"]["reasons"]]
    assert "takes added" not in why and not any("takes added" in m for m in said), (why, said)
    assert "take 2 not in storyc.lock" in why, why
    assert "take 2 not in storyc.lock" in said, said


def test_takes_the_story_added_are_still_said_to_be_added(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", STORY.replace("takes = 2", "takes = 1"))
    with loopback.serve(fast_outputs=True) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, *PAID)
        assert code == 0, err
        (root / "main.story").write_text(STORY.replace("takes = 2", "takes = 3"), "utf-8")
        why = _run("why", "a", str(root), "--backend", "inference")
    assert "takes added: 2, 3" in why, why
