"""Ctrl-C during a paid build, and a fresh checkout without a store: nothing is lost,
nothing is paid twice."""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
from pathlib import Path

import pytest
from procs import Child
from test_build_support import STORY_TAKES, build, make_project, rendered

from storyc.provider import loopback
from storyc.state.journal import Journal


def test_second_ctrl_c_keeps_in_flight_tasks_for_reattachment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p")
    with loopback.serve(latency=3.0, fast_outputs=True) as server:
        proc = Child(
            [
                sys.executable,
                "-m",
                "storyc",
                "build",
                str(root),
                "--backend",
                "inference",
                "--yes",
                "--json",
                "--poll-interval",
                "0.05",
            ],
            env={**os.environ, **server.env},
        )
        submitted = 0
        for line in proc.lines():
            event = json.loads(line)
            if event.get("state") == "submitted":
                submitted += 1
                if submitted == 3:  # arrival and both takes of `other` are in flight
                    break
        # the first Ctrl-C only stops new submissions; the second stops waiting for the
        # three tasks in flight, which stay recorded for the next build
        proc.send_signal(signal.SIGINT)
        for line in proc.lines():
            if "interrupted" in json.loads(line).get("text", ""):
                break
        proc.send_signal(signal.SIGINT)
        code, out, err = proc.finish(timeout=30)
        assert code == 130, err
        assert "Traceback" not in err
        assert "interrupted" in err or "interrupted" in out
        assert len(server.submissions) == 3
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            assert sorted(a.state for a in j.all()) == ["submitted"] * 3
            assert all(a.task_id for a in j.all())

        # the next build follows those three tasks instead of sending them again
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, "--backend", "inference", "--yes")
        assert code == 0, err
        reattached = [e["scene"] for e in events if e.get("state") == "re-attaching"]
        assert sorted(reattached) == ["arrival", "other#1", "other#2"]
        assert len(server.submissions) == STORY_TAKES  # only lanterns and rain were new
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            assert [a.state for a in j.all()] == ["completed"] * STORY_TAKES


def test_lock_file_without_store_refetches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p")
    with loopback.serve(latency=0.02, fast_outputs=True) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        code, _, err = build(root, "--backend", "inference", "--yes")
        assert code == 0, err
        # a teammate's checkout: the story, the assets and storyc.lock, but no .storyc/
        clone = tmp_path / "clone"
        shutil.copytree(root, clone, ignore=shutil.ignore_patterns(".storyc", "renders"))
        code, events, err = build(clone, "--backend", "inference", "--yes")
        assert code == 0, err
        assert rendered(events) == []
        assert len(server.submissions) == STORY_TAKES
        fetched = [e["scene"] for e in events if e.get("state") == "fetching"]
        assert len(fetched) == STORY_TAKES
        assert (clone / "renders" / "lanterns.mp4").resolve().is_file()
