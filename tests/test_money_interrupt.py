"""Ctrl-C during a paid build, at every stage between deciding to send and finishing:
after the first interrupt not one new `POST /apps/run` leaves, tasks already sent are
followed to the end, and a second interrupt stops following with the journal exact.

Counted by events, not by clocks: the build's own JSON stream orders the "interrupted"
note and every "submitting" event (each emitted right before its POST, nothing awaited
in between), and the loopback provider records every POST that reached it."""

from __future__ import annotations

import json
import os
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procs import Child
from test_build_support import make_project

from storyc.provider import loopback
from storyc.state.journal import Journal

N = 4
STORY = (
    'project "Stop" { quality = "std"  aspect = "16:9" }\n'
    + "".join(f'image img{i} "assets/img{i}.png"\n' for i in range(N))
    + "".join(
        f'scene s{i} {{ start = img{i}  prompt = "Shot {i} of the pier"  duration = 5 }}\n'
        for i in range(N)
    )
)


def _project(tmp_path: Path) -> Path:
    from storyc.media import ffmpeg as media

    root = make_project(tmp_path / "p", STORY)
    for i in range(N):  # every scene has its own image: every take uploads
        media.make_test_image(root / "assets" / f"img{i}.png", 640, 360, seed=10 + i)
    return root


def _interrupt(
    root: Path,
    server: loopback.LoopbackServer,
    when: Callable[[dict[str, Any]], bool],
    *,
    twice: bool = False,
    jobs: int = 2,
    env: dict[str, str] | None = None,
) -> tuple[int, list[dict[str, Any]]]:
    """Run a paid build; SIGINT when `when(event)` first holds (and again after the
    "interrupted" note with `twice`). Returns the exit code and every event."""
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
            "--jobs",
            str(jobs),
        ],  # fmt: skip
        env={**os.environ, **server.env, **(env or {})},
    )
    seen: list[dict[str, Any]] = []
    signalled = 0
    for line in proc.lines():
        event = json.loads(line)
        seen.append(event)
        if signalled == 0 and when(event):
            proc.send_signal(signal.SIGINT)
            signalled = 1
        elif signalled == 1 and twice and "interrupted" in event.get("text", ""):
            proc.send_signal(signal.SIGINT)
            signalled = 2
    code, _, err = proc.finish(timeout=120)
    assert signalled, f"the build ended before the moment to interrupt it: {err}"
    assert "Traceback" not in err, err
    return code, seen


def _after_message(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    i = next(i for i, e in enumerate(events) if "interrupted" in e.get("text", ""))
    return events[i + 1 :]


def _check_journal(root: Path, server: loopback.LoopbackServer) -> list[str]:
    """Exact: every task the provider has is in the journal with its id, nothing is left
    half-sent, and nothing the provider never saw is recorded as sent."""
    path = root / ".storyc" / "journal.sqlite"
    with Journal(path) as j:
        attempts = j.all()
    on_provider = {s["task_id"] for s in server.submissions}
    recorded = {a.task_id for a in attempts if a.task_id}
    assert recorded == on_provider, (recorded, on_provider)
    assert not [a for a in attempts if a.state in ("planned", "submitting", "unknown")]
    assert all(a.state == "not_sent" for a in attempts if not a.task_id)
    return sorted(a.state for a in attempts if a.task_id)


def _state(name: str) -> Callable[[dict[str, Any]], bool]:
    return lambda e: e.get("state") == name


STAGES = {
    # (fault on the provider, test hook, the event that says the stage is reached)
    "hashing": ([], {"STORYC_TEST_FAULT": "hashing:sleep=3"}, _state("preparing")),
    "upload": (["upload:delay:seconds=3"], {}, _state("uploading")),
    "submit": (["submit:delay:seconds=1.5"], {}, _state("submitting")),
    "follow": ([], {}, _state("submitted")),
    "download": (["download:slow:seconds=0.3"], {}, _state("task:downloading")),
}


@pytest.mark.parametrize("stage", list(STAGES))
def test_no_new_submission_after_the_first_interrupt(tmp_path: Path, stage: str) -> None:
    faults, env, when = STAGES[stage]
    root = _project(tmp_path)
    latency = 1.5 if stage == "follow" else 0.2
    with loopback.serve(latency=latency, fast_outputs=True, faults=faults) as server:
        code, events = _interrupt(root, server, when, env=env)
        after = _after_message(events)
        assert [e for e in after if e.get("state") == "submitting"] == []
        sent = [e for e in events if e.get("state") == "submitting"]
        assert len(server.arrivals) == len(sent) <= 2  # --jobs 2: at most two had started
        assert code == 130
        states = _check_journal(root, server)
        # what was sent before the interrupt was followed to the end and downloaded
        assert states == ["completed"] * len(server.submissions)
        finals = {e["scene"]: e["state"] for e in events if e.get("event") == "scene"}
        assert sum(s == "done" for s in finals.values()) == len(server.submissions)
        assert sum(s == "stopped" for s in finals.values()) == N - len(server.submissions)


def test_second_interrupt_stops_following_and_the_journal_is_exact(tmp_path: Path) -> None:
    root = _project(tmp_path)
    with loopback.serve(latency=30.0, fast_outputs=True) as server:
        code, events = _interrupt(root, server, _state("submitted"), twice=True)
        assert code == 130
        assert [e for e in _after_message(events) if e.get("state") == "submitting"] == []
        # the tasks still run on the provider; the journal holds them, to re-attach
        assert _check_journal(root, server) == ["submitted"] * len(server.submissions)
        assert 1 <= len(server.submissions) <= 2


def test_third_interrupt_cancels_a_send_in_progress_and_says_its_fate_is_unknown(
    tmp_path: Path,
) -> None:
    root = _project(tmp_path)
    with loopback.serve(
        latency=0.2, fast_outputs=True, faults=["submit:delay:seconds=5"]
    ) as server:
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
                "--jobs",
                "1",
            ],  # fmt: skip
            env={**os.environ, **server.env},
        )
        sent = 0
        for line in proc.lines():
            event = json.loads(line)
            if event.get("state") == "submitting" or "interrupted" in event.get("text", ""):
                sent += 1
                if sent <= 3:  # once on the send, then after each message
                    proc.send_signal(signal.SIGINT)
        code, _, err = proc.finish(timeout=60)
        assert code == 130 and "Traceback" not in err, err
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            states = sorted(a.state for a in j.all())
        # the request in the provider's hands: neither sent again nor called "not sent"
        assert states == ["unknown"]
