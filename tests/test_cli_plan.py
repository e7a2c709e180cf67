"""`storyc plan`, `storyc why`, `storyc gc` through the real command line entry point."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_plan import build, edit, project

from storyc.cli import main
from storyc.state.lockfile import LockFile
from storyc.state.store import Store


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_plan_table_and_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path)
    code, out, err = run(capsys, "plan", str(root))
    assert code == 0 and "Traceback" not in err
    lines = out.splitlines()
    assert lines[0].split() == ["scene", "status", "takes", "cost", "why"]
    assert any(line.startswith("platform") and "waiting" in line for line in lines)
    assert lines[-1].endswith("total free (preview)")
    code, out, _ = run(capsys, "plan", str(root), "--backend", "inference", "--json")
    data = json.loads(out)
    assert code == 0 and data["backend"] == "inference" and data["total"] == "3.150"
    assert data["scenes"]["rooftop"]["render"] == [1, 2]
    code, out, _ = run(capsys, "plan", str(root), "--backend", "inference")
    assert "$3.15" in out.splitlines()[-1]


def test_why_shows_field_level_diff(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path)
    build(root)
    code, out, _ = run(capsys, "why", "rooftop", str(root))
    assert code == 0 and "nothing changed since the last build" in out
    edit(root, "Rooftops under the rain", "Rooftops under the snow")
    edit(root, "duration = 10", "duration = 5")
    code, out, _ = run(capsys, "why", "rooftop", str(root))
    assert "rooftop: will render" in out
    assert "    -Rooftops under the rain" in out and "    +Rooftops under the snow" in out
    assert "duration: 10 → 5" in out
    code, out, _ = run(capsys, "why", "platform", str(root))
    assert "up to date" in out


def test_errors_and_usage(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path)
    code, _, err = run(capsys, "why", "nosuch", str(root))
    assert code == 2 and "no scene named 'nosuch'" in err
    code, _, err = run(capsys, "plan", str(tmp_path / "empty"))
    assert code == 3 and "no storyc project" in err
    (root / "storyc.lock").write_text("version = 1\n<<<<<<< HEAD\n", "utf-8")
    code, _, err = run(capsys, "plan", str(root))
    assert code == 1 and "storyc.lock:2:" in err and "merge conflict" in err
    (root / "storyc.lock").unlink()
    edit(root, "start    = mei", "start    = nobody")
    code, out, err = run(capsys, "plan", str(root))
    assert code == 1 and "Traceback" not in err and "blocked" in out


def test_gc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = project(tmp_path)
    build(root)
    with Store.for_project(root) as store:
        stray = store.put_bytes(b"nothing references this")
    code, out, _ = run(capsys, "gc", str(root), "--dry-run")
    assert code == 0 and f"would remove {stray[:19]}" in out
    assert Store.for_project(root).has(stray)
    code, out, _ = run(capsys, "gc", str(root))
    assert code == 0 and "removed 1 objects" in out
    store = Store.for_project(root)
    assert not store.has(stray)
    lock = LockFile.load(root / "storyc.lock")
    assert all(store.has(t.output) for e in lock.scenes.values() for t in e.takes if t.output)


def test_plan_why_and_gc_after_a_real_build(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The three read the records a real preview build left (not hand-written ones): all up
    to date; an edit shows as the field that changed and the scenes downstream; gc keeps
    every output the lock and renders/ use, and the next build renders only the edit."""
    from test_build_support import build as real_build
    from test_build_support import edit_story, make_project, rendered

    root = make_project(tmp_path / "p")
    code, _, err = real_build(root)
    assert code == 0, err
    capsys.readouterr()
    code, out, _ = run(capsys, "plan", str(root))
    assert code == 0 and out.splitlines()[-1].startswith("4 up to date")
    code, out, _ = run(capsys, "why", "lanterns", str(root))
    assert code == 0 and "nothing changed since the last build" in out
    code, out, _ = run(capsys, "gc", str(root))
    assert code == 0 and out.startswith("removed 0 objects")

    edit_story(root, "A walk through @market at dusk", "A walk through @market at dawn")
    code, out, _ = run(capsys, "why", "arrival", str(root))
    assert "arrival: will render" in out
    # the prompt as sent: mentions are the provider's placeholders
    assert "    -A walk through @image_1 at dusk\n    +A walk through @image_1 at dawn" in out
    code, out, _ = run(capsys, "plan", str(root), "--json")
    scenes = json.loads(out)["scenes"]
    # lanterns starts from arrival's last frame and rain edits arrival: both follow it
    assert {n for n, s in scenes.items() if s["render"]} == {"arrival", "lanterns", "rain"}
    code, events, err = real_build(root)
    assert code == 0, err
    assert sorted(rendered(events)) == ["arrival", "lanterns", "rain"]
    # the old arrival chain is garbage now (kept 30 days by default, so reverting is free)
    code, out, _ = run(capsys, "gc", str(root), "--keep-days", "0")
    assert code == 0 and "removed 0 objects" not in out and ", 3 render records," in out
    lock = LockFile.load(root / "storyc.lock")
    store = Store.for_project(root)
    assert all(store.has(t.output) for e in lock.scenes.values() for t in e.takes if t.output)
    for name in ("arrival", "lanterns", "rain"):
        assert (root / "renders" / f"{name}.mp4").resolve().is_file(), name
    code, events, _ = real_build(root)
    assert code == 0 and rendered(events) == []
