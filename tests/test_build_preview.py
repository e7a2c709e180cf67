"""`storyc build` with the free preview backend: real MP4 animatics, readable names,
reuse, takes and `storyc pick`, one build at a time, and every example with no key."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path

import pytest
from test_build_support import build, edit_story, final_states, make_project, rendered, summary

from storyc.cli import main
from storyc.media import info as mediainfo
from storyc.state.lockfile import LockFile
from storyc.state.projectlock import ProjectLock

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

SMALL = """\
project "Small" { quality = "std" }
image market "assets/market.png"
scene wide { prompt = "A wide shot of @market"  duration = 5  aspect = "9:16" }
scene close { start = wide.last_frame  prompt = "Closer"  duration = 5  takes = 2 }
"""


def _pick(root: Path, scene: str, take: int) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(["pick", scene, str(take), str(root)])
    return code, out.getvalue()


def test_preview_build_reuse_takes_and_pick(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    root = make_project(tmp_path / "p", SMALL)
    code, events, err = build(root)
    assert code == 0, err
    assert sorted(rendered(events)) == ["close#1", "close#2", "wide"]
    assert summary(events)["committed"] == "0"  # free

    wide = root / "renders" / "wide.mp4"
    info = mediainfo.probe(wide)
    assert info is not None and info.kind == "video"
    assert info.duration is not None and abs(info.duration - 5.0) <= 1 / 24 + 1e-6
    assert info.width is not None and info.height is not None and info.width < info.height
    assert wide.is_symlink() and ".storyc/objects/" in os.readlink(wide)
    assert (root / "renders" / "close.take2.mp4").exists()

    code, events, _ = build(root)
    assert code == 0 and rendered(events) == []
    assert set(final_states(events).values()) == {"reused"}

    # pick take 2 of `close`: recorded in the lock file, and the readable name follows
    lock = LockFile.load(root / "storyc.lock")
    take2 = lock.previews["close"].take(2)
    assert take2 is not None and take2.output
    code, text = _pick(root, "close", 2)
    assert code == 0, text
    assert LockFile.load(root / "storyc.lock").previews["close"].picked == 2
    assert os.readlink(root / "renders" / "close.mp4").endswith(take2.output[9:])
    # the pick survives a rebuild
    code, events, _ = build(root)
    assert code == 0 and rendered(events) == []
    assert LockFile.load(root / "storyc.lock").previews["close"].picked == 2

    code, text = _pick(root, "close", 7)
    assert code == 1 and "no take 7" in text
    code, text = _pick(root, "nope", 1)
    assert code == 1 and "nope" in text

    # the same story under a paid backend is another key: a preview never stands in
    edit_story(root, "Closer", "Closer still")
    code, events, _ = build(root)
    assert sorted(rendered(events)) == ["close#1", "close#2"]


def test_second_build_is_refused_or_waits(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", SMALL)
    with ProjectLock(root):
        code, _, err = build(root)
        assert code == 3
        assert "another storyc build is running" in err
        code, _, err = build(root, "--wait", "0.3")
        assert code == 3
    assert not (root / "renders").exists()


def test_story_errors_exit_1_and_build_nothing(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", 'scene broken { prompt = "x" duration = "long" }\n')
    code, events, err = build(root)
    assert code == 1
    assert "error[" in err
    assert not (root / "renders").exists()


def test_no_project_is_environment_error(tmp_path: Path) -> None:
    code, _, err = build(tmp_path)
    assert code == 3 and "no storyc project" in err


@pytest.mark.parametrize(
    "example", sorted(p.name for p in EXAMPLES.glob("*") if (p / "main.story").exists())
)
def test_every_example_builds_with_no_key(
    example: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import shutil

    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    root = tmp_path / example
    shutil.copytree(
        EXAMPLES / example, root, ignore=shutil.ignore_patterns(".storyc", "renders", "storyc.lock")
    )
    code, events, err = build(root)
    assert code == 0, err
    for scene, state in final_states(events).items():
        assert state == "done", (scene, state)
        assert (root / "renders" / f"{scene.split('#')[0]}.mp4").exists()
