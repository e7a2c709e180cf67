"""A task sent by an earlier build (killed after its task id, or `--detach`) that the
provider failed or rejected is re-attached by the next build, which then obeys the same
rules as for a task it sent itself: a rejection for balance (status 13) is never sent
again and stops every further submission; a failure is sent again only within
`--retries` (the re-attached failure was the take's first try)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from test_build_support import build, build_subprocess, final_states, make_project

from storyc.provider import loopback
from storyc.provider.task import TERMINAL
from storyc.state.journal import Journal

STORY = (
    'project "Again" { quality = "std"  aspect = "16:9" }\n'
    'scene a { prompt = "Shot a"  duration = 5 }\n'
    'scene b { prompt = "Shot b"  duration = 5 }\n'
)
PAID = ("--backend", "inference", "--yes", "--jobs", "1")


@contextlib.contextmanager
def _sent_earlier(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str, fault: str
) -> Iterator[tuple[loopback.LoopbackServer, Path]]:
    """A loopback provider with `fault` on its first submission, and a project whose
    scene `a` an earlier build sent (`how`: it detached, or it was killed) and that has
    ended on the provider since."""
    with loopback.serve(latency=0.2, fast_outputs=True, faults=[fault]) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        root = make_project(tmp_path / "p", STORY)
        _send_and_end(root, server, how)
        yield server, root


def _send_and_end(root: Path, server: loopback.LoopbackServer, how: str) -> None:
    if how == "detach":
        code, events, err = build(root, *PAID, "--detach")
        assert code == 0 and final_states(events)["a"] == "running", err
    else:  # the build dies right after the task id came back
        r = build_subprocess(
            root, *PAID, env={**server.env, "STORYC_TEST_FAULT": "after-task-id:kill"}
        )
        assert r.returncode != 0
    assert len(server.submissions) == 1
    _ended(server)
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        assert [(a.scene, a.state) for a in j.all()] == [("a", "submitted")]


def _ended(server: loopback.LoopbackServer) -> None:
    """Wait until every task the provider has ended (the next build then learns its end
    when it asks once, as a collecting build does)."""
    book = server.provider.book
    deadline = time.monotonic() + 30
    while any(s not in TERMINAL for s in list(book.state.values())):
        assert time.monotonic() < deadline
        time.sleep(0.02)


@pytest.mark.parametrize("how", ["detach", "killed"])
def test_a_reattached_task_rejected_for_balance_is_not_sent_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    with _sent_earlier(tmp_path, monkeypatch, how, "submit:reject:nth=1") as (srv, root):
        code, events, err = build(root, *PAID)
        assert len(srv.submissions) == 1, [s["input"]["prompt"] for s in srv.submissions]
        assert code == 1 and final_states(events)["a"] == "failed" and "balance" in err
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            assert [a.state for a in j.all()] == ["failed"]


@pytest.mark.parametrize("how", ["detach", "killed"])
def test_a_reattached_failed_task_is_sent_again_only_within_retries(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    with _sent_earlier(tmp_path, monkeypatch, how, "submit:fail:nth=1") as (srv, root):
        code, events, err = build(root, *PAID, "--retries", "0")
        assert len(srv.submissions) == 1 + (how == "killed")  # b only, once a slot is free
        assert code == 1 and final_states(events)["a"] == "failed", err
        code, events, err = build(root, *PAID, "--retries", "1")
        assert final_states(events)["a"] in ("done", "running"), err


def test_resubmit_unknown_that_sends_nothing_leaves_the_fate_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The answer to the first POST is lost (the provider created the task): unknown fate.
    # `--resubmit-unknown` under a budget too small to send it used to turn the attempt
    # into `failed` ($0.00, "not charged") without sending anything: the journal lost
    # the money that may have been spent, and the next plain build sent it again.
    with loopback.serve(latency=0.05, fast_outputs=True, faults=["submit:drop:nth=1"]) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        root = make_project(tmp_path / "p", STORY.replace("scene b", "// scene b"))
        assert build(root, *PAID)[0] == 4
        code, events, err = build(root, *PAID, "--resubmit-unknown", "--max-cost", "0.10")
        assert code == 4 and final_states(events)["a"] == "over-budget", err
        code, events, err = build(root, *PAID)
        assert code == 4 and final_states(events)["a"] == "unknown", err
        assert len(srv.submissions) == 1
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            assert [(a.state, a.may_have_cost) for a in j.all()] == [("unknown", True)]
        code, events, err = build(root, *PAID, "--resubmit-unknown")  # now it is sent
        assert code == 0 and final_states(events)["a"] == "done", err
        assert len(srv.submissions) == 2
