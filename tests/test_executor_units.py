"""Small pieces of the build: the preview backend's field mapping, the JSON path setter of
the inference backend, the project lock, and the JSON progress stream."""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path

import pytest

from storyc.backends import Job, LocalInput
from storyc.backends.preview import preview_arguments
from storyc.build.progress import JsonReporter, Reporter
from storyc.media import ffmpeg as media
from storyc.provider.transfer import set_path as _set
from storyc.state.projectlock import ProjectLock, ProjectLocked
from storyc.targets.request import Request


def _request(inp: dict, *, duration: int | None = 5) -> Request:  # type: ignore[type-arg]
    return Request(
        scene="s",
        target="inference/video-o1",
        schema="v2",
        app="klingai/video-o1",
        body={"app": "klingai/video-o1", "input": inp},
        takes=1,
        upstream=(),
        quality="std",
        duration=duration,
        has_video_input=False,
        mode="x",
    )


def test_preview_maps_provider_fields(tmp_path: Path) -> None:
    marker = {"$file": "a.png", "digest": "sha256:" + "0" * 64}
    inp = {
        "prompt": "hello @image_1",
        "image": marker,
        "end_image": marker,
        "reference_images": [marker, marker],
        "aspect_ratio": "9:16",
        "duration": 5,
    }
    job = Job(
        "s",
        1,
        "k",
        _request(inp),
        {
            "image": LocalInput("/first.png", "d1", "image"),
            "end_image": LocalInput("/end.png", "d2", "image"),
            "reference_images[1]": LocalInput("/r1.png", "d4", "image"),
            "reference_images[0]": LocalInput("/r0.png", "d3", "image"),
        },
    )
    args = preview_arguments(job)
    assert args["first_frame"] == "/first.png" and args["end_frame"] == "/end.png"
    assert args["reference_images"] == ("/r0.png", "/r1.png")  # in list order
    assert args["aspect"] == "9:16" and args["duration"] == 5.0
    assert args["caption"] == "hello @image_1"
    assert args["base_video"] is None and args["style_video"] is None


def test_preview_edit_takes_the_length_of_its_video(tmp_path: Path) -> None:
    video = tmp_path / "v.mp4"
    media.make_test_video(video, width=320, height=180, duration=3.0)
    marker = {"$scene": "a", "output": "video"}
    inp = {"prompt": "rain", "reference_video": marker, "reference_video_type": "base"}
    job = Job(
        "s",
        1,
        "k",
        _request(inp, duration=None),
        {"reference_video": LocalInput(str(video), "d", "video")},
    )
    args = preview_arguments(job)
    assert args["base_video"] == str(video) and args["style_video"] is None
    assert abs(args["duration"] - 3.0) < 0.1
    assert args["keep_sound"] is True  # v2 has no field for it: the provider keeps the sound
    inp["reference_video_type"] = "feature"
    args = preview_arguments(Job("s", 1, "k", _request(inp), job.inputs))
    assert args["style_video"] == str(video) and args["base_video"] is None


def test_json_path_setter() -> None:
    tree = {"image": {"$file": "x"}, "reference_images": [{"$file": "a"}, {"$file": "b"}]}
    _set(tree, "reference_images[1]", "https://h/b")
    _set(tree, "image", "https://h/x")
    assert tree == {"image": "https://h/x", "reference_images": [{"$file": "a"}, "https://h/b"]}


def test_project_lock_refuses_then_waits(tmp_path: Path) -> None:
    first = ProjectLock(tmp_path)
    first.acquire()
    with pytest.raises(ProjectLocked, match="another storyc build"):
        ProjectLock(tmp_path).acquire()
    timer = threading.Timer(0.2, first.release)
    timer.start()
    with ProjectLock(tmp_path, wait=30):  # returns once the first one is released
        pass
    timer.join(30)


def test_json_progress_is_one_object_per_line() -> None:
    out = io.StringIO()
    rep = JsonReporter(out)
    rep.scene("a", "rendering")
    rep.scene("a", "reused")  # batched, written by close()
    rep.note("hello")
    rep.close()
    events = [json.loads(line) for line in out.getvalue().splitlines()]
    assert [e.get("state") or e.get("text") for e in events] == ["rendering", "reused", "hello"]


def test_plain_progress_skips_quiet_states() -> None:
    out = io.StringIO()
    rep = Reporter(out)
    rep.scene("a", "reused")
    rep.scene("b", "done", detail="rendered")
    assert out.getvalue().count("\n") == 1 and "b: done (rendered)" in out.getvalue()
