"""Saying what was spent: the build summary in dollars, `storyc journal`; where results
and progress go; `storyc pick` during a build; pinned app versions and the live schema."""

from __future__ import annotations

import contextlib
import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from test_build_support import build, final_states, make_project, summary

from storyc.cli import main
from storyc.provider import loopback
from storyc.state.lockfile import LockFile
from storyc.state.projectlock import ProjectLock

HEAD = 'project "Report" { quality = "std"  aspect = "16:9" }\n'
PAID = ("--backend", "inference", "--yes")


def _cli(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with loopback.serve(latency=0.05, fast_outputs=True) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        yield srv


def test_summary_says_what_was_spent_and_failed_apart(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    story = HEAD + "".join(
        f'scene s{i} {{ prompt = "Shot {i}"  duration = 5 }}\n' for i in range(3)
    )
    root = make_project(tmp_path / "p", story)
    server.add_fault("submit:fail:nth=1")  # the first task fails on the provider, once
    code, out, err = _cli("build", str(root), *PAID, "--jobs", "1", "--poll-interval", "0.05")
    assert code == 0, err
    line = out.strip().splitlines()[-1]
    assert line == (
        "build: 3 done; 4 submitted, $1.68 sent (estimated; the provider reported no bill); "
        "1 failed attempt(s) ($0.42; failed tasks are not charged)"
    )
    code, events, _ = build(root, *PAID)
    assert summary(events)["sent"] == "0" and summary(events)["submitted"] == 0


def test_journal_lists_attempts_with_totals(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    story = (
        HEAD
        + 'scene a { prompt = "One"  duration = 5 }\nscene b { prompt = "Two"  duration = 10 }\n'
    )
    root = make_project(tmp_path / "p", story)
    server.add_fault("submit:fail:nth=1")
    assert build(root, *PAID, "--jobs", "1")[0] == 0
    code, out, _ = _cli("journal", str(root))
    assert code == 0
    rows = out.splitlines()
    assert rows[0].split() == ["time", "scene", "take", "task", "state", "cost", "note"]
    states = [r.split()[5] for r in rows[1:4]]  # date, time, scene, take, task, state
    assert sorted(states) == ["completed", "completed", "failed"] and rows[4] == ""
    total = rows[-1]
    # sent: a (failed, $0.42) + a + b ($0.84); spent: what completed
    assert (
        total
        == "total: 3 attempt(s), $1.68 sent, $1.26 spent, 1 failed ($0.42; failed tasks are not charged)"
    )
    code, out, _ = _cli("journal", str(root), "--json")
    doc = json.loads(out)
    assert [a["state"] for a in doc["attempts"]] == ["failed", "completed", "completed"]
    assert doc["total"]["spent"] == "1.260" and len(doc["days"]) == 1
    assert doc["days"][0]["attempts"] == 3
    code, out, _ = _cli("journal", str(root), "--scene", "b", "--json")
    assert [a["scene"] for a in json.loads(out)["attempts"]] == ["b"]


def test_results_on_stdout_progress_and_diagnostics_on_stderr(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", HEAD + 'scene a { prompt = "One"  duration = 5 }\n')
    p = subprocess.run(
        [sys.executable, "-m", "storyc", "build", str(root)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert p.returncode == 0, p.stderr
    assert p.stdout.splitlines() == [
        "plan: 1 scene(s), 1 take(s) to render with preview (free); 0 up to date",
        "build: 1 done; 1 rendered (free)",
    ]
    assert "a: rendering" in p.stderr and "a: done" in p.stderr and "plan:" not in p.stderr


def test_pick_during_a_build_is_refused_not_lost(tmp_path: Path) -> None:
    story = HEAD + 'scene a { prompt = "One"  duration = 5  takes = 2 }\n'
    root = make_project(tmp_path / "p", story)
    assert build(root)[0] == 0
    with ProjectLock(root):  # a build holds the project
        code, out, err = _cli("pick", "a", "2", str(root))
        assert code == 3 and "another storyc build is running" in err
        assert "nothing was picked" in err
    assert LockFile.load(root / "storyc.lock").previews["a"].picked == 1
    code, out, err = _cli("pick", "a", "2", str(root))
    assert code == 0 and LockFile.load(root / "storyc.lock").previews["a"].picked == 2


V1 = HEAD + (
    'scene old { target = "inference/video-o1@v1"  prompt = "The old schema"  duration = 5 }\n'
    'scene new { prompt = "The live schema"  duration = 5 }\n'
)


def test_unpinned_v1_scene_is_warned_about_before_sending(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    root = make_project(tmp_path / "p", V1)
    code, events, err = build(root, *PAID, "--retries", "0")
    assert "warning[W300]: scene 'old' is compiled for the v1 schema" in err
    assert err.index("W300") < err.index("failed: scene old")  # before anything was sent
    assert final_states(events) == {"old": "failed", "new": "done"}  # the live app refuses it
    code, out, err = _cli("plan", str(root), "--backend", "inference")
    assert "W300" in err


def test_pinned_version_reaches_the_app_that_speaks_its_schema(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pinned = V1.replace(
        'target = "inference/video-o1@v1"',
        'target = "inference/video-o1@v1"  app = "klingai/video-o1@legacy1"',
    )
    root = make_project(tmp_path / "p", pinned)
    with loopback.serve(latency=0.05, fast_outputs=True, versions={"legacy1": "v1"}) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, *PAID)
        assert code == 0, err
        assert "W300" not in err
        assert sorted(s["app"] for s in srv.submissions) == [
            "klingai/video-o1",
            "klingai/video-o1@legacy1",
        ]
