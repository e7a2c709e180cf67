"""Targets: lowering to the v1 and v2 inference.sh schemas, and the registry's extensibility."""

from __future__ import annotations

import hashlib
import json
from dataclasses import fields, replace
from typing import Any

import pytest
from test_rules import (
    image,
    inp,
    make_element,
    make_project,
    make_scene,
    out,
    sp,
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


def test_app_pins_a_version_of_the_targets_app_only() -> None:
    from storyc.resolve.model import Setting

    pinned = replace(make_scene(), app=Setting("klingai/video-o1@2.1", sp(20)))
    req, found = lower(pinned)
    assert req is not None and found == [] and req.app == req.body["app"] == "klingai/video-o1@2.1"
    other = replace(make_scene(), app=Setting("acme/video@1", sp(20)))
    diags = Diagnostics()
    assert targets.get(V2).lower(other, make_project(other), diags) is None
    [d] = diags.items
    assert (d.code, d.span) == ("E301", sp(20))
    assert (
        d.message == 'target "inference/video-o1" sends to klingai/video-o1, not to "acme/video@1"'
    )
    assert d.hint == '`app` pins the version of klingai/video-o1: app = "klingai/video-o1@VERSION"'
    # the version is everything after the first '@', whatever it holds
    odd = replace(make_scene(), app=Setting("klingai/video-o1@2@b", sp(20)))
    req, found = lower(odd)
    assert req is not None and found == [] and req.app == "klingai/video-o1@2@b"


def test_schema_check_runs_once_the_lowering_is_clean() -> None:
    """A payload the rules let through but the schema refuses (a duration of 11 s, lowered
    on its own) is an E236; when earlier checks already failed, the same fault is not
    reported a second time."""
    scene = make_scene(duration=11)
    diags = Diagnostics()
    assert targets.get(V2).lower(scene, make_project(scene), diags) is None
    [d] = diags.items
    assert (d.code, d.span) == ("E236", scene.duration.span)  # type: ignore[union-attr]
    earlier = Diagnostics()
    earlier.error("E210", "from the rules", scene.duration.span)  # type: ignore[union-attr]
    assert targets.get(V2).lower(scene, make_project(scene), earlier) is not None
    assert [x.code for x in earlier] == ["E210"]


def test_schema_error_locations_are_dotted_and_survive_a_payload_without_fields() -> None:
    from storyc.targets.inference import InferenceTarget

    target = targets.get(V2)
    assert isinstance(target, InferenceTarget)
    scene = make_scene()
    diags = Diagnostics()
    bad = {"prompt": "x", "reference_images": [{"$scene": "a", "output": "middle"}]}
    target._validate(scene, bad, diags)
    assert diags.items and all("`reference_images.0." in d.message for d in diags.items)
    # an error of the whole payload has an empty location: the scene is where it points
    whole = Diagnostics()
    target._validate(scene, "not an object", whole)  # type: ignore[arg-type]
    assert [(d.code, d.span) for d in whole] == [("E236", scene.span)]


def test_every_schema_field_points_at_the_setting_it_came_from() -> None:
    from storyc.targets.inference import _field_span

    full = make_scene(
        first=inp(image("s.png"), "s", line=40),
        end=inp(image("e.png"), "e", line=41),
        video_in=inp(video(), "v"),
        keep_sound=True,
        watermark=True,
    )
    assert full.video is not None and full.video.keep_sound is not None
    expected = {
        "prompt": full.prompt_span,
        "image": sp(40),
        "end_image": sp(41),
        "reference_video": full.video.span,
        "reference_video_type": full.video.span,
        "keep_original_sound": full.video.keep_sound.span,
        "resolution": full.quality.span,
        "mode": full.quality.span,
        "aspect_ratio": full.aspect.span,  # type: ignore[union-attr]
        "duration": full.duration.span,  # type: ignore[union-attr]
        "watermark": full.watermark.span,
    }
    assert len({expected[k] for k in expected}) == 9  # distinct lines: each check means something
    for name, span in expected.items():
        assert _field_span(full, name) == span, name
    bare = make_scene(aspect=None, duration=None, video_in=inp(video(), "v"))
    for name in ("image", "end_image", "keep_original_sound", "aspect_ratio", "duration", "x"):
        assert _field_span(bare, name) == bare.span, name
    assert _field_span(make_scene(), "reference_video") == make_scene().span


def test_scene_output_names_and_markers() -> None:
    from storyc.targets.inference import _names, marker

    assert _names(inp(image())) == []
    assert _names(inp(out("arrival", "video"))) == ["arrival"]
    assert _names(inp(out("arrival", "video"), "arrival")) == ["arrival"]
    assert _names(inp(out("arrival", "video"), "a")) == ["a", "arrival"]
    # an unnamed scene output is still mentioned by its scene's name
    req, found = lower(make_scene(prompt="after @arrival", images=(inp(out("arrival")),)))
    assert req is not None and found == [] and req.prompt == "after @image_1"
    # only a `frame` carries its time: any other part is one picture whatever `at` says
    assert marker(out("a", "last_frame", 2.0)) == {"$scene": "a", "output": "last_frame"}
    assert marker(out("a", "frame", 2.0)) == {"$scene": "a", "output": "frame", "at": 2.0}


def test_markers_are_found_anywhere_in_a_body_in_key_order() -> None:
    from storyc.targets.request import is_file_marker, is_scene_marker, iter_markers

    f = {"$file": "a.png", "digest": "sha256:" + "0" * 64}
    s = {"$scene": "x", "output": "video"}
    assert is_file_marker(f) and not is_file_marker(s) and not is_file_marker("$file")
    assert is_scene_marker(s) and not is_scene_marker(f) and not is_scene_marker(["$scene"])
    body = {"input": {"reference_images": ["https://e.x/y.png", s, f], "image": f}, "z": [s]}
    assert list(iter_markers(body)) == [
        ("input.image", f),
        ("input.reference_images[1]", s),
        ("input.reference_images[2]", f),
        ("z[0]", s),
    ]
    assert list(iter_markers([f])) == [("[0]", f)]
    assert list(iter_markers({"$file": "a", "nested": s})) == [("", {"$file": "a", "nested": s})]
    assert list(iter_markers("plain")) == []


def test_request_canonical_form_and_fingerprint() -> None:
    req, _ = lower(make_scene(prompt="été @a", images=(inp(out("a"), "a"),)))
    assert req is not None
    data = json.loads(req.canonical())
    assert data == [
        list(v) if isinstance(v, tuple) else v for v in (getattr(req, f.name) for f in fields(req))
    ]
    assert data[:4] == ["shot", V2, "v2", "klingai/video-o1"] and data[6] == ["a"]
    # compact, UTF-8 as written, fields in the provider's order
    assert ", " not in req.canonical() and '": ' not in req.canonical()
    assert '"prompt":"été @image_1"' in req.canonical()
    assert req.canonical().index('"prompt"') < req.canonical().index('"reference_images"')
    digest = hashlib.sha256(req.canonical().encode("utf-8")).hexdigest()
    assert req.fingerprint == "sha256:" + digest
    assert replace(req, takes=2).fingerprint != req.fingerprint


def _diag(scene: Scene, target: str = V2, elements: tuple[Element, ...] = ()) -> list[Any]:
    diags = Diagnostics()
    targets.get(target).lower(scene, make_project(scene, elements=elements), diags)
    return list(diags)


def test_prompt_limit_is_inclusive_and_its_error_is_located() -> None:
    exact = make_scene(prompt="x" * 2500)
    req, found = lower(exact)
    assert req is not None and found == [] and len(req.prompt) == 2500
    over = make_scene(prompt="x" * 2498 + " @a", images=(inp(image(), "a"),))
    [d] = _diag(over, V1)
    assert (d.code, d.span) == ("E230", over.prompt_span)
    assert d.message == (
        "the prompt of `shot` is 2512 characters on inference/video-o1@v1; at most 2500"
    )
    assert d.hint == "the limit counts the prompt after templating and placeholders"


def test_reference_limit_after_elements_counts_frontal_and_angles() -> None:
    two = tuple(make_element(f"e{i}", image(f"e{i}.png"), image(f"e{i}b.png")) for i in range(3))
    one = make_element("solo", image("solo.png"))
    mentions = " ".join(f"@{e.name}" for e in (*two, one))
    # 3 elements of 2 images + 1 of 1: 7 references, exactly the limit
    at_limit = make_scene(prompt=mentions, elements=tuple(e.name for e in (*two, one)))
    req, found = lower(at_limit, V2, (*two, one))
    assert req is not None and "E231" not in found and len(req.input["reference_images"]) == 7
    # one more image: 8, two of them from the element with an extra angle
    over = make_scene(
        prompt="@e0 " + " ".join(f"@i{i}" for i in range(6)),
        images=tuple(inp(image(f"i{i}.png"), f"i{i}") for i in range(6)),
        elements=("e0",),
    )
    [d] = [d for d in _diag(over, V2, two) if d.code == "E231"]
    assert d.span == over.span
    assert d.message == (
        "`shot` sends 8 reference images on inference/video-o1 (2 of them from elements); at most 7"
    )
    assert d.hint == "give elements fewer extra angles, or use fewer references in this scene"
    # only a frontal image counts as from an element too
    frontal_only = make_scene(
        prompt="@solo " + " ".join(f"@i{i}" for i in range(7)),
        images=tuple(inp(image(f"i{i}.png"), f"i{i}") for i in range(7)),
        elements=("solo",),
    )
    [d] = [d for d in _diag(frontal_only, V2, (one,)) if d.code == "E231"]
    assert "(1 of them from elements)" in d.message
    # beside a reference video the limit is 4
    with_video = make_scene(
        prompt="@e0 @e1 @e2 @v",
        elements=("e0", "e1", "e2"),
        video_in=inp(video(), "v"),
    )
    [d] = [d for d in _diag(with_video, V2, two) if d.code == "E231"]
    assert d.message.endswith("(6 of them from elements); at most 4")


def test_an_unknown_element_does_not_hide_the_next() -> None:
    mei = make_element("mei", image("mei.png"))
    scene = make_scene(prompt="@ghost and @mei", elements=("ghost", "mei"))
    req, _ = lower(scene, V2, (mei,))
    assert req is not None and [r["$file"] for r in req.input["reference_images"]] == ["mei.png"]
    assert req.prompt == "@ghost and @image_1"


def test_frames_without_placeholders_are_named_in_words() -> None:
    scene = make_scene(
        prompt="from @s to @e",
        first=inp(image("s.png"), "s"),
        end=inp(image("e.png"), "e"),
        aspect=None,
    )
    req, found = lower(scene)
    assert req is not None and req.prompt == "from the first frame to the end frame"
    assert found == ["W234", "W234"]
    # one image as both frames: it is the first frame
    same = make_scene(
        prompt="@a", first=inp(image("a.png"), "a"), end=inp(image("a.png"), "a"), aspect=None
    )
    req, _ = lower(same)
    assert req is not None and req.prompt == "the first frame"


def test_an_unknown_mention_warns_where_it_is_written() -> None:
    scene = make_scene(prompt="hello @nobody")
    [d] = _diag(scene)
    assert (d.code, d.span) == ("W235", scene.mentions[0].span)
    assert d.message == "`@nobody` is not an input of scene `shot`; sent as written"
    assert d.hint == "mention only the scene's images, elements and video"


def test_mentions_that_cannot_be_placed_are_left_as_written() -> None:
    from dataclasses import replace

    from storyc.resolve.model import Mention

    base = make_scene(prompt="@a @b", images=(inp(image("a.png"), "a"), inp(image("b.png"), "b")))
    a, b = base.mentions
    # a mention overlapping the previous one, and one past the prompt's end, are skipped;
    # the mentions after them still become placeholders
    overlapping = Mention("a", 1, 2, a.span)
    past_end = Mention("a", 3, 99, a.span)
    for extra in (overlapping, past_end):
        scene = replace(base, mentions=(a, extra, b))
        req, _ = lower(scene)
        assert req is not None and req.prompt == "@image_1 @image_2", extra


def test_an_elements_description_follows_its_first_mention_only() -> None:
    from dataclasses import replace

    mei = replace(make_element("mei", image("mei.png")), description="a  tall\nwoman")
    req, _ = lower(make_scene(prompt="@mei waves; @mei smiles", elements=("mei",)), V2, (mei,))
    assert req is not None and req.prompt == "@image_1 (a tall woman) waves; @image_1 smiles"


def test_lowering_notes_say_what_was_not_sent_and_why() -> None:
    inherited = make_scene(aspect_origin="project")
    req, _ = lower(inherited)
    assert req is not None
    assert "aspect_ratio 16:9 taken from the project default" in req.notes
    req, _ = lower(make_scene())
    assert req is not None and not any(n.startswith("aspect_ratio") for n in req.notes)
    edit = make_scene(video_in=inp(video(), "v"), video_mode="base", aspect=None, prompt="@v")
    req, _ = lower(edit)
    assert req is not None
    assert "duration not sent: editing keeps the input video's length" in req.notes
    assert req.scene == "shot" and req.prompt_as_written == "@v" and req.prompt == "@video_1"
