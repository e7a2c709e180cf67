"""Paid renders are never displaced by previews: they live side by side in storyc.lock
and under renders/, a teammate's clone fetches every paid clip without paying, and
`storyc gc` keeps what money was spent on."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from test_build_support import build, edit_story, final_states, make_project, rendered

from storyc.cli import main
from storyc.provider import loopback
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

STORY = """\
project "Side" { quality = "std"  aspect = "16:9" }
scene a { prompt = "The first paid shot"  duration = 5 }
scene b { start = a.last_frame  prompt = "The second paid shot"  duration = 5 }
scene c { prompt = "A paid shot with takes"  duration = 5  takes = 2 }
"""
PAID = ("--backend", "inference", "--yes")


def _shows(root: Path, name: str, digest: str | None) -> bool:
    link = root / "renders" / name
    return digest is not None and link.exists() and os.path.realpath(link).endswith(digest[9:])


def _paid_entries(root: Path) -> dict[str, list[tuple[str | None, str | None, str | None]]]:
    lock = LockFile.load(root / "storyc.lock")
    return {
        n: [(t.output, t.url, t.task_id) for t in e.takes]
        for n, e in lock.scenes.items()
        if e.backend == "inference"
    }


def test_paid_preview_paid_then_a_clone_pays_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    root = make_project(tmp_path / "p", STORY)
    with loopback.serve(latency=0.05, fast_outputs=False) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        assert build(root, *PAID)[0] == 0
        paid = _paid_entries(root)
        assert len(paid) == 3 and all(o and u and t for e in paid.values() for o, u, t in e)

        # a preview build renders previews beside them and leaves the paid record alone
        code, events, err = build(root)
        assert code == 0, err
        assert sorted(rendered(events)) == ["a", "b", "c#1", "c#2"]
        assert _paid_entries(root) == paid
        lock = LockFile.load(root / "storyc.lock")
        assert set(lock.previews) == {"a", "b", "c"}
        for scene, takes in paid.items():  # the paid clip keeps the name: it is current
            assert _shows(root, f"{scene}.mp4", takes[0][0])
            preview = lock.previews[scene].takes[0].output
            assert _shows(root, f"preview/{scene}.mp4", preview)
        assert _shows(root, "c.take2.mp4", paid["c"][1][0])

        # a second paid build reuses them and still records what a teammate needs
        code, events, err = build(root, *PAID)
        assert code == 0 and rendered(events) == [] and len(server.submissions) == 4
        assert _paid_entries(root) == paid

        # a clone without .storyc/: the plan pays for nothing, the build fetches
        clone = tmp_path / "clone"
        shutil.copytree(root, clone, ignore=shutil.ignore_patterns(".storyc", "renders"))
        assert main(["plan", str(clone), "--backend", "inference", "--json"]) == 0
        plan = json.loads(capsys.readouterr().out)
        assert plan["known_total"] == "0" and plan["total"] == "0"
        assert all(s["render"] == [] for s in plan["scenes"].values())
        assert sum(len(s["fetch"]) for s in plan["scenes"].values()) == 4
        code, events, err = build(clone, *PAID)
        assert code == 0, err
        assert len(server.submissions) == 4  # nothing paid
        assert len([e for e in events if e.get("state") == "fetching"]) == 4
        assert _shows(clone, "b.mp4", paid["b"][0][0])

        # an edited scene: its preview takes the name until a paid render matches again
        edit_story(root, "The second paid shot", "The second shot, edited")
        code, events, _ = build(root)
        assert code == 0 and sorted(rendered(events)) == ["b"]
        new_preview = LockFile.load(root / "storyc.lock").previews["b"].takes[0].output
        assert _shows(root, "b.mp4", new_preview) and _shows(root, "a.mp4", paid["a"][0][0])


def test_gc_never_deletes_what_money_was_spent_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", STORY)
    with loopback.serve(latency=0.05, fast_outputs=False) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        assert build(root, *PAID)[0] == 0
        old = _paid_entries(root)["a"][0][0]
        edit_story(root, "The first paid shot", "The first paid shot, again")
        code, events, _ = build(root, *PAID)
        assert code == 0 and final_states(events)["a"] == "done"
    assert main(["gc", str(root), "--keep-days", "0"]) == 0
    store = Store.for_project(root)
    assert old is not None and store.has(old)  # a paid clip nothing references: kept
    assert main(["gc", str(root), "--keep-days", "0", "--include-paid"]) == 0
    assert not Store.for_project(root).has(old)  # asked explicitly
    for takes in _paid_entries(root).values():  # what the lock references: always kept
        assert all(Store.for_project(root).has(o) for o, _, _ in takes if o)
