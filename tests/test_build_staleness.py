"""A build never answers "nothing to do" for work that changed: another target, a file
rewritten in place with its old size and time restored, another frame time. Each test
here was written against a deliberate bug that the rest of the suite let through (see
bench/mutants_money.py, which applies them)."""

from __future__ import annotations

import os
import time
from pathlib import Path

from test_build_support import build, edit_story, make_project, rendered, summary

from storyc.build.fastpath import RACY_S
from storyc.plan.keys import request_key
from storyc.targets.request import Request

STORY = """\
project "Stale" { quality = "std"  aspect = "16:9" }
image market "assets/market.png"
scene arrival { start = market  prompt = "A walk through the market"  duration = 5 }
"""


def _settled(root: Path, *args: str) -> None:
    for _ in range(2):  # the second build records the clean state for the fast path
        code, _, err = build(root, *args)
        assert code == 0, err
        time.sleep(RACY_S + 0.05)
    code, events, err = build(root, *args)
    assert code == 0 and summary(events)["fast_path"] is True, err


def test_another_target_is_not_answered_by_the_fast_path(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    _settled(root)
    code, events, err = build(root, "--target", "inference/video-o1@v1")
    assert code == 0, err
    assert summary(events)["fast_path"] is False and rendered(events) == ["arrival"]


def test_a_file_rewritten_with_its_old_size_and_time_is_seen(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    _settled(root)
    story = root / "main.story"
    st = story.stat()
    text = story.read_text("utf-8").replace('market"  duration', 'marked"  duration')
    story.write_text(text, "utf-8")  # same size; then the old mtime put back
    os.utime(story, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert story.stat().st_size == st.st_size and story.stat().st_mtime_ns == st.st_mtime_ns
    code, events, err = build(root)
    assert code == 0, err
    assert summary(events)["fast_path"] is False and rendered(events) == ["arrival"]


def _frame_request(at: float) -> Request:
    inp = {"prompt": "x", "image": {"$scene": "a", "output": "frame", "at": at}, "duration": 5}
    return Request("s", "inference/video-o1", "v2", "klingai/video-o1",
                   {"app": "klingai/video-o1", "input": inp}, 1, ("a",), "std", 5, False,
                   "image-to-video")  # fmt: skip


def test_the_frame_time_is_part_of_the_key(tmp_path: Path) -> None:
    up = {"a": "sha256:" + "a" * 64}
    keys = {
        request_key(_frame_request(t), backend="inference", take=1, upstream=up) for t in (2.5, 3.0)
    }
    assert len(keys) == 2
    story = (
        'project "Frames" { quality = "std"  aspect = "16:9" }\n'
        'scene a { prompt = "A long shot"  duration = 5 }\n'
        'scene b { start = a.frame(2.5)  prompt = "From the middle"  duration = 5 }\n'
    )
    root = make_project(tmp_path / "p", story)
    assert build(root)[0] == 0
    edit_story(root, "a.frame(2.5)", "a.frame(3.0)")  # another frame: another video
    code, events, err = build(root)
    assert code == 0 and rendered(events) == ["b"], err
