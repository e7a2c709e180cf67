"""Review of partial lock entries (a paid take locked while a sibling failed): the
entry's picked take may be missing, and nothing may stand in for it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_build_support import build, make_project

from storyc.provider import loopback
from storyc.state.lockfile import LockFile

STORY = (
    'project "Takes" { quality = "std"  aspect = "16:9" }\n'
    'scene a { prompt = "Shot a"  duration = 5  takes = 2 }\n'
    'scene b { start = a.last_frame  prompt = "Shot b"  duration = 5 }\n'
)
PAID = ("--backend", "inference", "--yes", "--jobs", "1", "--retries", "0")


def _env(server: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in server.env.items():
        monkeypatch.setenv(k, v)


FILM = (
    'project "Film" { quality = "std"  aspect = "16:9" }\n'
    'scene a { prompt = "Shot a"  duration = 5  takes = 2 }\n'
    'scene c { prompt = "Shot c"  duration = 5 }\n'
    "cut short = [c, a]\n"
)


def test_a_cut_never_plays_a_take_nobody_picked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a's picked take (1) failed; take 2 was paid and is in the lock file. The cut
    played take 2 as a's render, saying it was 'its last render, made before the story
    changed' (W383): the user picked take 1, and take 2 is of the story as it is."""
    with loopback.serve(fast_outputs=True, faults=["submit:fail:nth=1"]) as server:
        _env(server, monkeypatch)
        root = make_project(tmp_path / "p", FILM)
        code, events, err = build(root, *PAID)
        assert code != 0
        entry = LockFile.load(LockFile.path_for(root)).scenes["a"]
        assert [t.take for t in entry.takes] == [2] and entry.picked == 1
    cut = next(e for e in events if e["event"] == "cut" and e["cut"] == "short")
    assert cut["stand_ins"].get("a") in ("preview", "slate"), (cut, err)
    assert "W383" not in err, err


def test_a_cut_does_not_call_a_take_of_the_story_as_it_is_a_render_from_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """First build: a's picked take (1) was paid and locked, take 2 failed. The cut plays
    take 1, rightly, but said W383 'the cuts show its last render, made before the story
    changed': the story never changed, take 1 is of the story as it is."""
    with loopback.serve(fast_outputs=True, faults=["submit:fail:nth=2"]) as server:
        _env(server, monkeypatch)
        root = make_project(tmp_path / "p", FILM)
        code, events, err = build(root, *PAID)
        assert code != 0
        entry = LockFile.load(LockFile.path_for(root)).scenes["a"]
        assert [t.take for t in entry.takes] == [1] and entry.picked == 1
    cut = next(e for e in events if e["event"] == "cut" and e["cut"] == "short")
    assert cut["stand_ins"] == {}, cut
    assert "W383" not in err, err


def test_the_board_never_shows_another_take_as_the_picked_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """a's picked take (1) failed, take 2 was paid: the board showed take 2's frames as the
    scene's picture and labelled it "(picked)"."""
    from storyc.compiler import compile_project
    from storyc.review.make import make_board

    with loopback.serve(fast_outputs=True, faults=["submit:fail:nth=1"]) as server:
        _env(server, monkeypatch)
        root = make_project(tmp_path / "p", FILM)
        code, events, err = build(root, *PAID)
        assert code != 0
    card = make_board(root, compile_project(root), backend="inference").board.cards["a"]
    assert [(t.number, t.picked) for t in card.takes] == [(1, True), (2, False)]
    assert card.takes[0].thumb.missing == "not rendered yet" and card.takes[1].thumb.src
    assert all(f.missing for f in card.frames), card.frames  # take 1 has no frames
