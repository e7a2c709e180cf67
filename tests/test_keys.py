"""Render keys: what changes them and what never does."""

from __future__ import annotations

from typing import Any

import pytest

from storyc.plan.keys import (
    KEY_SCHEMA,
    UpstreamUnknown,
    key_inputs,
    key_material,
    request_key,
    scene_keys,
)
from storyc.targets.request import Request

D1 = "sha256:" + "1" * 64
D2 = "sha256:" + "2" * 64
UP = "sha256:" + "a" * 64


def req(input_: dict[str, Any] | None = None, **kw: Any) -> Request:
    inp = (
        input_
        if input_ is not None
        else {
            "prompt": "Mei walks through @image_1",
            "image": {"$file": "assets/mei.png", "digest": D1},
            "reference_images": [{"$scene": "arrival", "output": "last_frame"}],
            "duration": 5,
            "aspect_ratio": "16:9",
            "watermark": False,
        }
    )
    base: dict[str, Any] = dict(
        scene="s",
        target="inference/video-o1",
        schema="v2",
        app="klingai/video-o1",
        body={"app": "klingai/video-o1", "input": inp},
        takes=2,
        upstream=("arrival",),
        quality="pro",
        duration=5,
        has_video_input=False,
        mode="reference",
    )
    base.update(kw)
    return Request(**base)


def key(r: Request, **kw: Any) -> str:
    args: dict[str, Any] = dict(backend="inference", take=1, upstream={"arrival": UP})
    args.update(kw)
    return request_key(r, **args)


def test_material_replaces_markers() -> None:
    m = key_material(req(), backend="preview", take=1, upstream={"arrival": UP})
    assert m["key_schema"] == KEY_SCHEMA and m["backend"] == "preview" and m["take"] == 1
    assert m["input"]["image"] == D1
    assert m["input"]["reference_images"] == [{"upstream": UP, "output": "last_frame"}]


def test_stable_under_order_and_rename() -> None:
    a = req()
    inp = dict(reversed(list(a.input.items())))
    inp["image"] = {"$file": "assets/renamed.png", "digest": D1}
    assert key(a) == key(req(inp))
    assert key(a).startswith("sha256:") and len(key(a)) == 71


@pytest.mark.parametrize(
    "change",
    [
        lambda i: i.update(prompt="Mei runs through @image_1"),
        lambda i: i.update(image={"$file": "assets/mei.png", "digest": D2}),
        lambda i: i.update(duration=10),
        lambda i: i.update(watermark=True),
        lambda i: i["reference_images"].append({"$file": "b.png", "digest": D1}),
    ],
)
def test_any_change_to_the_input_changes_the_key(change: Any) -> None:
    inp = req().input
    new = {k: (list(v) if isinstance(v, list) else v) for k, v in inp.items()}
    change(new)
    assert key(req(new)) != key(req())


def test_backend_take_upstream_target_change_key() -> None:
    base = key(req())
    assert key(req(), backend="preview") != base
    assert key(req(), take=2) != base
    assert key(req(), upstream={"arrival": D2}) != base
    assert key(req(target="inference/video-o1-v1")) != base
    assert scene_keys(req(), backend="inference", upstream={"arrival": UP})[1] == base
    assert len(scene_keys(req(), backend="inference", upstream={"arrival": UP})) == 2


def test_unknown_upstream() -> None:
    with pytest.raises(UpstreamUnknown) as exc:
        key(req(), upstream={})
    assert exc.value.scene == "arrival"
    with pytest.raises(ValueError):
        key(req(), take=0)


def test_unicode_prompt_is_utf8_not_escaped() -> None:
    a = req({"prompt": "雨の市場"})
    b = req({"prompt": "雨の市場 "})
    assert key(a, upstream={}) != key(b, upstream={})


def test_key_inputs() -> None:
    inp = req().input | {
        "reference_images": [
            {"$scene": "arrival", "output": "frame", "at": 2.5},
            "https://x.test/a.png",
        ],
        "end_image": None,
    }
    ki = key_inputs(req(inp), {"arrival": UP})
    assert ki["prompt"] == "Mei walks through @image_1"
    assert ki["inputs"]["image"] == {"path": "assets/mei.png", "digest": D1}
    assert ki["inputs"]["reference_images[0]"] == {
        "scene": "arrival",
        "output": "frame",
        "at": 2.5,
        "upstream": UP,
    }
    assert ki["inputs"]["reference_images[1]"] == {"url": "https://x.test/a.png"}
    assert ki["settings"] == {"aspect_ratio": "16:9", "duration": 5, "watermark": False}


def test_the_material_and_its_digest_are_pinned() -> None:
    """A change to what a key holds, or to a name in it, changes every key there is: every
    paid render already bought would be bought again. Such a change must come with a new
    KEY_SCHEMA (and this test's figures); for schema 1 they are these."""
    r = req(prompt_as_written="Mei walks through @market")
    paid = key_material(r, backend="inference", take=2, upstream={"arrival": UP})
    assert paid == {
        "key_schema": 1,
        "backend": "inference",
        "target": "inference/video-o1",
        "schema": "v2",
        "app": "klingai/video-o1",
        "input": {
            "prompt": "Mei walks through @image_1",
            "image": D1,
            "reference_images": [{"upstream": UP, "output": "last_frame"}],
            "duration": 5,
            "aspect_ratio": "16:9",
            "watermark": False,
        },
        "take": 2,
    }
    assert key(r, take=2) == (
        "sha256:b0c9e62eb0b3f357bce0d639f0ffb7428459cafa25fbda92cb1ca19b6487d727"
    )
    # a preview's key also holds what only the preview shows: its tag and its caption
    preview = key_material(r, backend="preview", take=2, upstream={"arrival": UP})
    assert preview == {
        **paid,
        "backend": "preview",
        "shown": {"scene": "s", "caption": "Mei walks through @market"},
    }
    assert key(req(), backend="preview") == (
        "sha256:344d278cc7880e032728d9bd60ca9626c3b8092f8e482e1c852abf70b229a7c5"
    )


def test_an_upstream_marker_without_output_means_the_video() -> None:
    inp = {"prompt": "Add rain", "video": {"$scene": "arrival"}}
    m = key_material(req(inp), backend="inference", take=1, upstream={"arrival": UP})
    assert m["input"]["video"] == {"upstream": UP, "output": "video"}
    inp_at = {"prompt": "x", "image": {"$scene": "arrival", "output": "frame", "at": 2.5}}
    m = key_material(req(inp_at), backend="inference", take=1, upstream={"arrival": UP})
    assert m["input"]["image"] == {"upstream": UP, "output": "frame", "at": 2.5}
    assert key_inputs(req(inp), {})["inputs"]["video"] == {"scene": "arrival", "output": "video"}


def test_one_take_has_one_key_and_messages_say_what_is_wrong() -> None:
    one = scene_keys(req(takes=1), backend="inference", upstream={"arrival": UP})
    assert list(one) == [1]
    none = scene_keys(req(takes=0), backend="inference", upstream={"arrival": UP})
    assert list(none) == [1]  # a scene is built at least once
    with pytest.raises(UpstreamUnknown, match=r"^the output of scene 'arrival' is not known yet$"):
        key(req(), upstream={})
    with pytest.raises(ValueError, match=r"^takes are numbered from 1$"):
        key(req(), take=0)


def test_nested_media_fields_are_inputs_not_settings() -> None:
    """`why` lists a file inside a nested object or list under its top-level field, never
    as a setting (the field is named by what comes before the first `.` or `[`)."""
    inp = {
        "prompt": "x",
        "video": {"clip": {"src": {"$file": "a.mp4", "digest": D1}}, "trim": {"start": 1}},
        "frames": [[{"$file": "f.png", "digest": D2}]],
        "duration": 5,
    }
    ki = key_inputs(req(inp), {})
    assert ki["inputs"] == {
        "video.clip.src": {"path": "a.mp4", "digest": D1},
        "frames[0][0]": {"path": "f.png", "digest": D2},
    }
    assert ki["settings"] == {"duration": 5}
