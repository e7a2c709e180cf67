"""Targets: lowering to the v1 and v2 inference.sh schemas, and the registry's extensibility."""

from __future__ import annotations

from typing import Any

import pytest
from test_rules import (
    image,
    inp,
    make_element,
    make_project,
    make_scene,
    out,
    url,
    video,
)

from storyc import targets
from storyc.base.diagnostics import Diagnostics
from storyc.resolve.model import Element, Project, Scene
from storyc.targets.inference import InputBase
from storyc.targets.request import Request

V2 = "inference/video-o1"
V1 = "inference/video-o1@v1"


def lower(
    scene: Scene, target: str = V2, elements: tuple[Element, ...] = ()
) -> tuple[Request | None, list[str]]:
    diags = Diagnostics()
    project = make_project(scene, elements=elements)
    req = targets.get(target).lower(scene, project, diags)
    return req, [d.code for d in diags]


def test_registry_names_and_default() -> None:
    assert targets.names()[:2] == [V2, V1]
    assert targets.default_target().name == V2
    with pytest.raises(targets.UnknownTarget, match="unknown target 'nope'"):
        targets.get("nope")


def test_text_to_video_v2_exact_body() -> None:
    req, found = lower(make_scene(quality="pro", duration=10))
    assert found == []
    assert req is not None
    assert req.body == {
        "app": "klingai/video-o1",
        "input": {
            "prompt": "a quiet street at dawn",
            "resolution": "1080p",
            "aspect_ratio": "16:9",
            "duration": 10,
        },
    }
    assert list(req.input) == ["prompt", "resolution", "aspect_ratio", "duration"]
    assert (req.mode, req.quality, req.duration, req.has_video_input) == (
        "text-to-video",
        "pro",
        10,
        False,
    )


def test_text_to_video_v1_uses_mode() -> None:
    req, _ = lower(make_scene(watermark=True), V1)
    assert req is not None
    assert req.input == {
        "prompt": "a quiet street at dawn",
        "mode": "std",
        "aspect_ratio": "16:9",
        "duration": 5,
        "watermark": True,
    }
    assert req.schema == "v1"


def test_unset_duration_is_sent_as_the_provider_default() -> None:
    req, _ = lower(make_scene(duration=None))
    assert req is not None and req.input["duration"] == 5 and req.duration == 5
    assert any("duration not set" in n for n in req.notes)


def test_reference_numbering_v2_ignores_first_frame() -> None:
    scene = make_scene(
        prompt="@start then @a beside @b",
        first=inp(image("s.png"), "start"),
        images=(inp(image("a.png"), "a"), inp(image("b.png"), "b")),
    )
    req, found = lower(scene)
    assert req is not None
    assert req.prompt == "the first frame then @image_1 beside @image_2"
    assert found == ["W234"]


def test_reference_numbering_v1_counts_frames() -> None:
    scene = make_scene(
        prompt="@start to @stop with @a and @b",
        first=inp(image("s.png"), "start"),
        end=inp(image("e.png"), "stop"),
        images=(inp(image("a.png"), "a"), inp(image("b.png"), "b")),
    )
    req, found = lower(scene, V1)
    assert req is not None
    assert req.prompt == ("<<<image_1>>> to <<<image_2>>> with <<<image_3>>> and <<<image_4>>>")
    assert "W234" not in found


def test_elements_become_reference_images_frontal_first() -> None:
    mei = make_element("mei", image("mei.png"), image("mei_side.png"), image("mei_back.png"))
    scene = make_scene(
        prompt="@mei waves at @dog", images=(inp(image("dog.png"), "dog"),), elements=("mei",)
    )
    req, found = lower(scene, V2, (mei,))
    assert req is not None
    assert [r["$file"] for r in req.input["reference_images"]] == [
        "dog.png",
        "mei.png",
        "mei_side.png",
        "mei_back.png",
    ]
    assert req.prompt == "@image_2 waves at @image_1"
    assert "W232" in found
    assert any("elements sent as reference images" in n for n in req.notes)
    req1, _ = lower(
        make_scene(prompt="@mei", first=inp(image("s.png"), "s"), elements=("mei",), aspect=None),
        V1,
        (mei,),
    )
    assert req1 is not None and req1.prompt == "<<<image_2>>>"


def test_duplicate_reference_is_sent_once() -> None:
    mei = make_element("mei", image("mei.png"))
    scene = make_scene(
        prompt="@mei and @m", images=(inp(image("mei.png"), "m"),), elements=("mei",)
    )
    req, _ = lower(scene, V2, (mei,))
    assert req is not None
    assert len(req.input["reference_images"]) == 1
    assert req.prompt == "@image_1 and @image_1"


def test_expanded_elements_over_the_limit() -> None:
    big = tuple(make_element(f"e{i}", image(f"e{i}.png"), image(f"e{i}b.png")) for i in range(4))
    scene = make_scene(
        prompt=" ".join(f"@e{i}" for i in range(4)), elements=tuple(e.name for e in big)
    )
    req, found = lower(scene, V2, big)
    assert req is None and "E231" in found


def test_scene_output_video_reference_and_keep_sound() -> None:
    scene = make_scene(
        prompt="move like @arrival",
        video_in=inp(out("arrival", "video"), "arrival"),
        keep_sound=False,
        duration=7,
    )
    v2, f2 = lower(scene, V2)
    v1, f1 = lower(scene, V1)
    assert v2 is not None and v1 is not None
    assert v2.prompt == "move like @video_1" and v1.prompt == "move like <<<video_1>>>"
    assert v2.input["reference_video"] == {"$scene": "arrival", "output": "video"}
    assert "keep_original_sound" not in v2.input and "W233" in f2
    assert list(v1.input) == [
        "prompt",
        "reference_video",
        "reference_video_type",
        "keep_original_sound",
        "mode",
        "aspect_ratio",
        "duration",
    ]
    assert v1.input["keep_original_sound"] is False and f1 == []
    assert v1.upstream == ("arrival",) and v1.has_video_input


def test_keep_sound_not_sent_when_unset() -> None:
    req, _ = lower(make_scene(prompt="@v", video_in=inp(video(), "v")), V1)
    assert req is not None and "keep_original_sound" not in req.input


def test_base_edit_facts() -> None:
    scene = make_scene(
        prompt="make it snow",
        video_in=inp(video(), "v"),
        video_mode="base",
        duration=None,
        aspect=None,
        quality="pro",
    )
    req, found = lower(scene)
    assert req is not None and found == []
    assert req.mode == "edit" and req.duration is None and "duration" not in req.input
    assert req.base_video == {
        "$file": "assets/v.mp4",
        "digest": req.input["reference_video"]["digest"],
    }
    assert req.input["reference_video_type"] == "base"


def test_first_frame_drops_inherited_aspect_with_a_note() -> None:
    req, found = lower(make_scene(first=inp(out("a", "frame", 2.5), "a"), aspect_origin="project"))
    assert req is not None and found == []
    assert "aspect_ratio" not in req.input
    assert req.input["image"] == {"$scene": "a", "output": "frame", "at": 2.5}
    assert any("aspect_ratio not sent" in n for n in req.notes)


def test_urls_pass_through() -> None:
    req, _ = lower(make_scene(prompt="@a", images=(inp(url(), "a"),)))
    assert req is not None and req.input["reference_images"] == ["https://example.com/x.png"]


def test_prompt_limit_counts_placeholders() -> None:
    # 2493 characters as written: `@a` → `@image_1` (+6) stays under 2500 on v2,
    # `@a` → `<<<image_1>>>` (+11) goes over on v1
    scene = make_scene(prompt="x" * 2490 + " @a", images=(inp(image(), "a"),))
    assert len(scene.prompt) == 2493
    ok, _ = lower(scene, V2)
    bad, found = lower(scene, V1)
    assert ok is not None and len(ok.prompt) <= 2500
    assert bad is None and "E230" in found


def test_unknown_mention_is_sent_as_written() -> None:
    req, found = lower(make_scene(prompt="hello @nobody"))
    assert req is not None and req.prompt == "hello @nobody" and "W235" in found


@pytest.mark.parametrize(
    "bad,field",
    [
        ({"prompt": ""}, "prompt"),
        ({"prompt": "x", "duration": 11}, "duration"),
        ({"prompt": "x", "duration": "5"}, "duration"),
        ({"prompt": "x", "image": {"$file": "a.png", "digest": "md5:1"}}, "image"),
        ({"prompt": "x", "bogus": 1}, "bogus"),
        ({"prompt": "x", "image": "/etc/hosts"}, "image"),
        (
            {"prompt": "x", "reference_images": [{"$scene": "a", "output": "middle"}]},
            "reference_images",
        ),
    ],
)
def test_schema_models_reject_bad_payloads(bad: dict[str, Any], field: str) -> None:
    from pydantic import ValidationError

    from storyc.targets.inference_v2 import InputV2

    with pytest.raises(ValidationError) as exc:
        InputV2.model_validate(bad)
    assert exc.value.errors()[0]["loc"][0] == field


def test_every_lowered_body_validates_against_its_schema() -> None:
    scene = make_scene(
        prompt="@a @v",
        images=(inp(image(), "a"),),
        video_in=inp(video(), "v"),
        keep_sound=True,
        watermark=False,
    )
    for name in (V1, V2):
        req, _ = lower(scene, name)
        assert req is not None
        model = type(targets.get(name)).input_model  # type: ignore[attr-defined]
        assert issubclass(model, InputBase)
        model.model_validate(req.input)


class _Tiny(targets.Target):
    """A third provider in a dozen lines: fal-style inline elements."""

    name = "test/tiny"
    schema = "t1"
    app = "tiny/video"

    def lower(self, scene: Scene, project: Project, diags: Diagnostics) -> Request | None:
        body = {
            "app": self.app,
            "input": {
                "text": scene.prompt,
                "elements": [
                    {"frontal_image_url": project.elements[e.name].frontal.source.path}  # type: ignore[union-attr]
                    for e in scene.elements
                ],
            },
        }
        return Request(
            scene.name,
            self.name,
            self.schema,
            self.app,
            body,
            1,
            (),
            "std",
            5,
            False,
            "text-to-video",
        )


def test_an_extra_target_registers_without_touching_other_code() -> None:
    targets.register(_Tiny())
    try:
        assert "test/tiny" in targets.names()
        mei = make_element("mei", image("mei.png"))
        req, found = lower(make_scene(prompt="@mei", elements=("mei",)), "test/tiny", (mei,))
        assert req is not None and req.body["input"]["elements"] == [
            {"frontal_image_url": "mei.png"}
        ]
        with pytest.raises(ValueError):
            targets.register(_Tiny())
    finally:
        targets.unregister("test/tiny")
    assert "test/tiny" not in targets.names()


def test_schema_errors_point_at_the_story() -> None:
    """E236 maps a pydantic field error back to the span the field came from."""
    from storyc.targets.inference import InferenceTarget

    scene = make_scene(duration=5)
    target = targets.get(V2)
    assert isinstance(target, InferenceTarget)
    diags = Diagnostics()
    target._validate(scene, {"prompt": "x", "duration": 42}, diags)
    [d] = diags.items
    assert d.code == "E236" and "`duration`" in d.message
    assert d.span == scene.duration.span  # type: ignore[union-attr]
