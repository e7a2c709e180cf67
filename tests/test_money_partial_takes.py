"""A paid take is in the lock file as soon as it is paid for, even when another take of
the same scene failed or is of unknown fate: the lock file is what a teammate (or this
machine after losing `.storyc/`) needs to get each paid clip without paying again."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from test_build_support import build, final_states, make_project, rendered

from storyc.provider import loopback
from storyc.state.lockfile import LockFile

STORY = (
    'project "Takes" { quality = "std"  aspect = "16:9" }\n'
    'scene a { prompt = "Shot a"  duration = 5  takes = 2 }\n'
    'scene b { start = a.last_frame  prompt = "Shot b"  duration = 5 }\n'
)
PAID = ("--backend", "inference", "--yes", "--jobs", "1", "--retries", "0")


def _takes(root: Path) -> dict[int, tuple[str | None, str | None, str | None]]:
    entry = LockFile.load(LockFile.path_for(root)).scenes.get("a")
    return {} if entry is None else {t.take: (t.output, t.task_id, t.url) for t in entry.takes}


@pytest.mark.parametrize("fault", ["submit:fail:nth=2", "submit:drop:nth=2"])
def test_a_paid_take_is_locked_when_its_sibling_fails_or_is_unknown(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    with loopback.serve(fast_outputs=True, faults=[fault]) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        root = make_project(tmp_path / "p", STORY)
        code, events, err = build(root, *PAID)
        assert code != 0
        assert final_states(events)["a"] in ("failed", "unknown"), events
        assert "b" not in rendered(events)  # what it uses is not there
        assert len(server.submissions) == 2
        locked = _takes(root)
        assert list(locked) == [1], locked
        output, task_id, url = locked[1]
        assert output and task_id and url

        # a teammate's clone: the lock file alone; take 1 is fetched, never paid again
        clone = tmp_path / "clone"
        shutil.copytree(root, clone, ignore=shutil.ignore_patterns(".storyc", "renders"))
        code, events, err = build(clone, *PAID, "--resubmit-unknown")
        assert code == 0, err
        assert rendered(events).count("a#1") == 0, events
        assert len(server.submissions) == 4  # a#2 and b, nothing more
        assert _takes(clone)[1][0] == output
        assert sorted(_takes(clone)) == [1, 2]


def test_a_rehearsal_that_fails_half_way_keeps_the_real_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The takes a rehearsal obtained before a sibling failed are not written over the
    lock file's record of real renders either (see test_review_provider.py)."""
    from storyc.plan import address

    root = make_project(tmp_path / "p", STORY)
    with loopback.serve(fast_outputs=True) as real:
        monkeypatch.setattr(address, "_DEFAULT_ORIGIN", real.url)  # it stands in for the real one
        for k, v in real.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, *PAID)
        assert code == 0, err
        paid = LockFile.load(LockFile.path_for(root)).scenes
        assert sorted(t.take for t in paid["a"].takes) == [1, 2]
        story = STORY.replace('prompt = "Shot a"', 'prompt = "Shot a, again"')
        (root / "main.story").write_text(story, "utf-8")
        with loopback.serve(fast_outputs=True, faults=["submit:fail:nth=2"]) as rehearsal:
            for k, v in rehearsal.env.items():
                monkeypatch.setenv(k, v)
            code, events, err = build(root, *PAID)
            assert code != 0 and len(rehearsal.submissions) == 2
        assert LockFile.load(LockFile.path_for(root)).scenes == paid
