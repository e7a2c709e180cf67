"""`storyc build` against the loopback provider over real sockets: render only what
changed, never pay twice, fail one scene without failing the others, budget, consent."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest
from test_build_support import (
    STORY_TAKES,
    build,
    edit_story,
    final_states,
    make_project,
    rendered,
    summary,
)

from storyc.provider import loopback
from storyc.state.journal import Journal
from storyc.state.lockfile import LockFile


@pytest.fixture(params=[True])
def server(monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest):  # type: ignore[no-untyped-def]
    # fast outputs: one video per (duration, aspect); False gives each prompt its own video
    with loopback.serve(latency=0.05, fast_outputs=request.param) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        yield srv


def _paid(root: Path, *args: str) -> tuple[int, list, str]:  # type: ignore[type-arg]
    return build(root, "--backend", "inference", "--yes", *args)


def _prompts(server: loopback.LoopbackServer) -> Counter[str]:
    return Counter(s["input"]["prompt"] for s in server.submissions)


# an edited upstream must produce a different video, so that its dependents change too
@pytest.mark.parametrize("server", [False], indirect=True)
def test_only_what_changed_is_paid_for(tmp_path: Path, server: loopback.LoopbackServer) -> None:
    root = make_project(tmp_path / "p")
    code, events, err = _paid(root)
    assert code == 0, err
    assert len(server.submissions) == STORY_TAKES
    assert summary(events)["submitted"] == STORY_TAKES
    assert set(final_states(events).values()) == {"done"}

    # second build: nothing
    code, events, _ = _paid(root)
    assert code == 0 and len(server.submissions) == STORY_TAKES
    assert set(final_states(events).values()) == {"reused"}

    # comments and reformatting: nothing
    text = (root / "main.story").read_text()
    (root / "main.story").write_text("# a comment\n" + text.replace("  ", "\n    "))
    code, events, _ = _paid(root)
    assert code == 0 and len(server.submissions) == STORY_TAKES, rendered(events)

    # edit one prompt: that scene and the two scenes that use its output
    edit_story(root, "at dusk", "at night")
    n = len(server.submissions)
    code, events, _ = _paid(root)
    assert code == 0
    assert sorted(rendered(events)) == ["arrival", "lanterns", "rain"]
    assert len(server.submissions) == n + 3
    assert _prompts(server)["A walk through @image_1 at night"] == 1

    # revert the edit: the old outputs are reused, nothing is paid
    edit_story(root, "at night", "at dusk")
    n = len(server.submissions)
    code, events, _ = _paid(root)
    assert code == 0 and len(server.submissions) == n and rendered(events) == []

    # a takes change renders only the new take
    edit_story(root, "takes = 2", "takes = 3")
    code, events, _ = _paid(root)
    assert code == 0 and rendered(events) == ["other#3"]
    lock = LockFile.load(root / "storyc.lock")
    assert [t.take for t in lock.scenes["other"].takes] == [1, 2, 3]
    assert (root / "renders" / "other.take3.mp4").exists()
    assert (root / "renders" / "lanterns.mp4").resolve().is_file()


def test_failed_scene_others_carry_on(tmp_path: Path, server: loopback.LoopbackServer) -> None:
    root = make_project(tmp_path / "p")
    # with one job, `arrival` is sent first; the provider fails that task
    server.add_fault("submit:fail:nth=1")
    code, events, err = _paid(root, "--jobs", "1", "--retries", "0")
    assert code == 1
    states = final_states(events)
    assert states["arrival"] == "failed"
    assert states["lanterns"] == "blocked" and states["rain"] == "blocked"
    assert states["other"] == "done"
    failed = [e for e in events if e.get("scene") == "arrival" and e.get("state") == "failed"]
    assert "failed on the provider" in failed[0]["detail"]
    assert "failed: scene arrival: task " in err
    # the next build sends only what is missing: arrival (known to have failed) and its users
    n = len(server.submissions)
    code, events, err = _paid(root)
    assert code == 0, err
    assert sorted(rendered(events)) == ["arrival", "lanterns", "rain"]
    assert len(server.submissions) == n + 3


def test_retries_are_bounded_and_counted(tmp_path: Path, server: loopback.LoopbackServer) -> None:
    root = make_project(
        tmp_path / "p", 'scene solo { prompt = "one shot"  duration = 5  aspect = "16:9" }\n'
    )
    server.add_fault("submit:fail:nth=1+2+3+4")
    code, events, err = _paid(root, "--retries", "2")
    assert code == 1 and len(server.submissions) == 3  # 1 + 2 retries, then it gives up
    assert summary(events)["committed"] == "1.260"  # each attempt counted: 3 × $0.42
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        assert [a.state for a in j.all()] == ["failed"] * 3
    code, events, err = _paid(root, "--retries", "2")
    assert code == 0 and len(server.submissions) == 5  # 4th fails, 5th completes


def test_budget_stops_submissions(tmp_path: Path, server: loopback.LoopbackServer) -> None:
    root = make_project(tmp_path / "p")
    # one 5 s std take costs $0.42; $1.00 allows two, counting work in flight
    code, events, _ = _paid(root, "--max-cost", "1.00", "--jobs", "4")
    assert code == 4
    assert len(server.submissions) == 2
    assert "over-budget" in final_states(events).values()
    assert summary(events)["committed"] == "0.840"


def test_paid_build_needs_consent_and_key(
    tmp_path: Path, server: loopback.LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p")
    code, _, err = build(root, "--backend", "inference")  # no --yes, not a terminal
    assert code == 4 and "--yes" in err and not server.submissions
    monkeypatch.delenv("INFERENCE_API_KEY")
    code, _, err = _paid(root)
    assert code == 3 and err.strip() == (
        "error: the inference backend needs an API key: set INFERENCE_API_KEY "
        "(or build with --backend preview, which is free)"
    )


def test_bad_key_is_one_line_and_never_shown(
    tmp_path: Path, server: loopback.LoopbackServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p")
    canary = "inf_CANARY_h6_0123456789"
    monkeypatch.setenv("INFERENCE_API_KEY", canary)
    code, events, err = _paid(root)
    assert code == 3
    assert not server.submissions
    assert canary not in err and canary not in repr(events)
    # every file the build may have written: .storyc/ (journal, records, logs) and the lock
    written = [p for p in root.rglob("*") if p.is_file() and p.suffix != ".png"]
    assert root / "main.story" in written and any(p.parts[-2] == ".storyc" for p in written)
    for path in written:
        assert canary.encode() not in path.read_bytes(), path


def test_lost_answer_is_unknown_until_the_user_says(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    root = make_project(
        tmp_path / "p", 'scene solo { prompt = "one shot"  duration = 5  aspect = "16:9" }\n'
    )
    server.add_fault("submit:drop:nth=1")  # the provider creates the task, the answer is lost
    code, events, err = _paid(root)
    assert code == 4 and final_states(events)["solo"] == "unknown"
    assert len(server.submissions) == 1
    code, events, err = _paid(root)  # not sent again without the user's word
    assert code == 4 and len(server.submissions) == 1
    assert re.search(r"fate is unknown", err)
    code, events, err = _paid(root, "--resubmit-unknown")
    assert code == 0 and len(server.submissions) == 2
    assert final_states(events)["solo"] == "done"


def test_scene_selection_builds_what_it_uses(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    root = make_project(tmp_path / "p")
    code, events, err = _paid(root, "--scene", "lanterns")
    assert code == 0, err
    assert sorted(rendered(events)) == ["arrival", "lanterns"]
    code, events, err = _paid(root)
    assert code == 0 and sorted(rendered(events)) == ["other#1", "other#2", "rain"]
    assert len(server.submissions) == STORY_TAKES
    code, _, err = _paid(root, "--scene", "nope")
    assert code == 2 and "no scene named 'nope'" in err
