"""Model rules (storyc.check.rules) over Project objects built directly, independent of the parser.

Also home of the small model factory the target and graph tests share (`make_*`).
"""

from __future__ import annotations

import re
from typing import Any

import pytest

from storyc.base.diagnostics import Diagnostics, Severity, Span
from storyc.check import rules
from storyc.media.info import MediaInfo
from storyc.resolve.model import (
    Cut,
    Element,
    ElementUse,
    Input,
    LocalFile,
    Mention,
    Project,
    RemoteFile,
    Scene,
    SceneOutput,
    Setting,
    VideoInput,
)

FILE = "main.story"
DIGEST = "sha256:" + "ab" * 32


def sp(line: int = 1, col: int = 1) -> Span:
    return Span(FILE, line, col, line, col + 4, 0, 4)


def image(
    path: str = "assets/a.png", *, w: int = 640, h: int = 480, fmt: str = "png", size: int = 1000
) -> LocalFile:
    return LocalFile(path, "/nowhere/" + path, "image", size, DIGEST, MediaInfo("image", fmt, w, h))


def video(
    path: str = "assets/v.mp4",
    *,
    w: int = 1280,
    h: int = 720,
    dur: float = 5.0,
    fps: float = 24.0,
    fmt: str = "mp4",
) -> LocalFile:
    return LocalFile(
        path,
        "/nowhere/" + path,
        "video",
        50_000,
        DIGEST,
        MediaInfo("video", fmt, w, h, dur, fps, True),
    )


def inp(src: Any, name: str | None = None, line: int = 2) -> Input:
    return Input(src, name, sp(line))


def url(u: str = "https://example.com/x.png", kind: str = "image") -> RemoteFile:
    return RemoteFile(u, kind)  # type: ignore[arg-type]


def out(scene: str, part: str = "last_frame", at: float | None = None) -> SceneOutput:
    return SceneOutput(scene, part, at)  # type: ignore[arg-type]


def make_scene(
    name: str = "shot",
    prompt: str = "a quiet street at dawn",
    *,
    first: Input | None = None,
    end: Input | None = None,
    images: tuple[Input, ...] = (),
    elements: tuple[str, ...] = (),
    video_in: Input | None = None,
    video_mode: str = "feature",
    keep_sound: bool | None = None,
    quality: str = "std",
    aspect: str | None = "16:9",
    aspect_origin: str = "scene",
    duration: int | None = 5,
    duration_origin: str = "scene",
    watermark: bool | None = None,
    takes: int = 1,
    target: str = "inference/video-o1",
    line: int = 1,
) -> Scene:
    mentions = tuple(
        Mention(
            m.group(1),
            m.start(),
            m.end(),
            Span(FILE, line + 1, 10 + m.start(), line + 1, 10 + m.end(), 0, 0),
        )
        for m in re.finditer(r"@([A-Za-z_]\w*)", prompt)
    )
    vid = None
    if video_in is not None:
        ks = Setting(keep_sound, sp(line + 5)) if keep_sound is not None else None
        vid = VideoInput(video_in, video_mode, ks, sp(line + 4))  # type: ignore[arg-type]
    return Scene(
        name=name,
        span=sp(line),
        prompt=prompt,
        prompt_span=sp(line + 1),
        mentions=mentions,
        first_frame=first,
        end_frame=end,
        images=images,
        elements=tuple(ElementUse(e, sp(line + 3)) for e in elements),
        video=vid,
        quality=Setting(quality, sp(line + 6)),  # type: ignore[arg-type]
        aspect=Setting(aspect, sp(line + 7), aspect_origin) if aspect else None,  # type: ignore[arg-type]
        duration=Setting(duration, sp(line + 8), duration_origin)
        if duration is not None  # type: ignore[arg-type]
        else None,
        watermark=Setting(
            bool(watermark),
            sp(line + 9) if watermark is not None else None,
            "scene" if watermark is not None else "builtin",
        ),
        takes=Setting(takes, None, "builtin"),
        target=Setting(target, None, "builtin"),
    )


def make_element(
    name: str, frontal: LocalFile | RemoteFile, *refs: LocalFile | RemoteFile, line: int = 30
) -> Element:
    return Element(
        name, inp(frontal, None, line), tuple(inp(r, None, line) for r in refs), None, sp(line)
    )


def make_project(
    *scenes: Scene, elements: tuple[Element, ...] = (), cuts: dict[str, list[str]] | None = None
) -> Project:
    return Project(
        name="Test",
        root="/nowhere",
        entry=FILE,
        files=(FILE,),
        target=Setting("inference/video-o1", None, "builtin"),
        variables={},
        assets={},
        elements={e.name: e for e in elements},
        scenes={s.name: s for s in scenes},
        cuts={
            n: Cut(n, tuple((s, sp(90)) for s in names), sp(90))
            for n, names in (cuts or {}).items()
        },
    )


def codes(*scenes: Scene, elements: tuple[Element, ...] = ()) -> list[str]:
    diags = Diagnostics()
    rules.check(make_project(*scenes, elements=elements), diags)
    return [d.code for d in diags]


# -- mode selection -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "kwargs,mode",
    [
        ({}, "text-to-video"),
        ({"first": inp(image(), "a")}, "image-to-video"),
        ({"first": inp(image(), "a"), "end": inp(image("b.png"), "b")}, "start-end-frame"),
        ({"images": (inp(image(), "a"),)}, "reference"),
        ({"elements": ("mei",)}, "reference"),
        ({"video_in": inp(video(), "v")}, "reference"),
        ({"video_in": inp(video(), "v"), "video_mode": "base"}, "edit"),
        (
            {"video_in": inp(video(), "v"), "video_mode": "base", "images": (inp(image(), "a"),)},
            "edit",
        ),
    ],
)
def test_mode_selection(kwargs: dict[str, Any], mode: str) -> None:
    assert rules.mode_of(make_scene(**kwargs)) == mode


# -- rules -------------------------------------------------------------------------------


def test_clean_text_to_video_has_no_findings() -> None:
    assert codes(make_scene()) == []


def test_end_frame_needs_first_frame() -> None:
    assert "E201" in codes(make_scene(end=inp(image(), "b")))


def test_reference_limit_counts_elements() -> None:
    imgs = tuple(inp(image(f"i{i}.png"), f"i{i}") for i in range(6))
    prompt = " ".join(f"@i{i}" for i in range(6)) + " @mei @kai"
    els = (make_element("mei", image("m.png")), make_element("kai", image("k.png")))
    assert "E202" in codes(
        make_scene(prompt=prompt, images=imgs, elements=("mei", "kai")), elements=els
    )
    assert "E202" not in codes(
        make_scene(prompt=prompt, images=imgs[:5], elements=("mei", "kai")), elements=els
    )


def test_reference_limit_is_four_with_a_video() -> None:
    imgs = tuple(inp(image(f"i{i}.png"), f"i{i}") for i in range(5))
    prompt = " ".join(f"@i{i}" for i in range(5)) + " like @v"
    assert "E202" in codes(make_scene(prompt=prompt, images=imgs, video_in=inp(video(), "v")))
    assert "E202" not in codes(
        make_scene(prompt=prompt, images=imgs[:4], video_in=inp(video(), "v"))
    )


def test_wrong_media_kind() -> None:
    assert "E203" in codes(make_scene(first=inp(video(), "v")))
    assert "E203" in codes(make_scene(prompt="@a", video_in=inp(image(), "a")))


@pytest.mark.parametrize(
    "duration,mode_kwargs,code",
    [
        (11, {}, "E204"),
        (2, {"images": (inp(image(), "a"),)}, "E204"),
        (7, {}, "E205"),
        (3, {"first": inp(image(), "a")}, "E205"),
        (7, {"images": (inp(image(), "a"),)}, None),
        (3, {"elements": ()}, "E205"),
        (10, {}, None),
        (5, {"first": inp(image(), "a"), "end": inp(image("b.png"), "b")}, None),
    ],
)
def test_duration_rules(duration: int, mode_kwargs: dict[str, Any], code: str | None) -> None:
    found = [
        c
        for c in codes(make_scene(prompt="@a", duration=duration, **mode_kwargs))
        if c in ("E204", "E205")
    ]
    assert found == ([code] if code else [])


def test_duration_with_edit_is_a_warning_only_when_written_on_the_scene() -> None:
    edit = {"video_in": inp(video(), "v"), "video_mode": "base", "aspect": None}
    assert codes(make_scene(duration=5, **edit)) == ["W206"]
    assert codes(make_scene(duration=5, duration_origin="defaults", **edit)) == []


def test_edit_cannot_have_frames() -> None:
    found = codes(
        make_scene(
            first=inp(image(), "a"),
            video_in=inp(video(), "v"),
            video_mode="base",
            duration=None,
            aspect=None,
        )
    )
    assert "E207" in found


def test_aspect_required_for_text_and_reference() -> None:
    assert "E208" in codes(make_scene(aspect=None))
    assert "E208" in codes(make_scene(prompt="@a", images=(inp(image(), "a"),), aspect=None))
    assert "E208" not in codes(make_scene(first=inp(image(), "a"), aspect=None))


def test_aspect_origin_is_said() -> None:
    diags = Diagnostics()
    rules.check(make_project(make_scene(aspect_origin="project")), diags)
    [d] = diags.items
    assert (d.code, d.severity) == ("W210", Severity.NOTE)
    assert "16:9 taken from the project default" in d.message


def test_aspect_pointless_with_first_frame_or_edit() -> None:
    assert codes(make_scene(first=inp(image(), "a"))) == ["W209"]
    # inherited from the project: not the scene's doing, so no warning
    assert codes(make_scene(first=inp(image(), "a"), aspect_origin="project")) == []
    assert "W209" in codes(make_scene(video_in=inp(video(), "v"), video_mode="base", duration=None))


def test_unmentioned_inputs_warn() -> None:
    els = (make_element("mei", image("m.png")),)
    found = codes(
        make_scene(
            prompt="a street",
            images=(inp(image(), "market"),),
            elements=("mei",),
            video_in=inp(video(), "v"),
        ),
        elements=els,
    )
    assert found.count("W211") == 3
    assert (
        codes(
            make_scene(
                prompt="@mei in @market like @v",
                images=(inp(image(), "market"),),
                elements=("mei",),
                video_in=inp(video(), "v"),
            ),
            elements=els,
        )
        == []
    )


def test_scene_output_video_is_mentioned_by_scene_name() -> None:
    found = codes(
        make_scene(
            prompt="the camera moves like @arrival",
            video_in=inp(out("arrival", "video"), "arrival"),
        )
    )
    assert "W211" not in found


def test_empty_prompt() -> None:
    assert "E212" in codes(make_scene(prompt="   "))


def test_element_with_too_many_angles() -> None:
    el = make_element("mei", image("m.png"), *(image(f"r{i}.png") for i in range(4)))
    assert "E220" in codes(make_scene(prompt="@mei", elements=("mei",)), elements=(el,))
    # three extra angles is the limit itself: allowed
    el = make_element("mei", image("m.png"), *(image(f"r{i}.png") for i in range(3)))
    assert "E220" not in codes(make_scene(prompt="@mei", elements=("mei",)), elements=(el,))


@pytest.mark.parametrize(
    "src,code",
    [
        (image(w=200, h=480), "E213"),
        (image(w=1300, h=500), "E214"),
        (image(fmt="webp"), "E219"),
        (image(size=11 * 1024 * 1024), "E218"),
    ],
)
def test_image_limits(src: LocalFile, code: str) -> None:
    assert code in codes(make_scene(prompt="@a", images=(inp(src, "a"),)))


@pytest.mark.parametrize(
    "src,code",
    [
        (video(dur=12.0), "E215"),
        (video(dur=2.0), "E215"),
        (video(w=640, h=360), "E216"),
        (video(w=3840, h=2160), "E216"),
        (video(fps=15.0), "E217"),
        (video(fmt="gif"), "E219"),
    ],
)
def test_video_limits(src: LocalFile, code: str) -> None:
    assert code in codes(make_scene(prompt="@v", video_in=inp(src, "v")))


def test_media_within_limits_is_clean() -> None:
    assert (
        codes(
            make_scene(
                prompt="@v @a",
                images=(inp(image(w=300, h=750), "a"),),
                video_in=inp(video(w=720, h=1280, fps=60.0, dur=3.0), "v"),
            )
        )
        == []
    )


def test_a_file_used_twice_is_reported_once() -> None:
    small = image(w=100, h=100)
    found = codes(
        make_scene("a", prompt="@x", images=(inp(small, "x"),)),
        make_scene("b", prompt="@x", images=(inp(small, "x"),)),
    )
    assert found.count("E213") == 1


def test_remote_files_and_scene_outputs_skip_media_checks() -> None:
    assert codes(make_scene(prompt="@a @b", images=(inp(url(), "a"), inp(out("x"), "b")))) == []


def _diags(*scenes: Scene, elements: tuple[Element, ...] = ()) -> list[Any]:
    diags = Diagnostics()
    rules.check(make_project(*scenes, elements=elements), diags)
    return list(diags)


def test_what_could_not_be_resolved_silences_the_rules_it_would_fool() -> None:
    from dataclasses import replace

    no_start = make_scene(prompt="@b", end=inp(image("b.png"), "b"))
    assert "E201" in codes(no_start)
    # `start = ...` was written but failed: its absence is not the writer's doing
    assert "E201" not in codes(replace(no_start, unresolved=frozenset({"start"})))
    many = make_scene(
        prompt=" ".join(f"@i{i}" for i in range(8)),
        images=tuple(inp(image(f"i{i}.png"), f"i{i}") for i in range(8)),
    )
    assert "E202" in codes(many)
    # a prompt whose template failed: its mentions (which add references) are not known
    assert "E202" not in codes(replace(many, unresolved=frozenset({"prompt"})))


@pytest.mark.parametrize(
    "w,h,shape",
    [
        (104, 100, "square"),
        (105, 100, "square"),
        (106, 100, "landscape"),
        (100, 104, "square"),
        (100, 105, "square"),
        (100, 106, "portrait"),
        (1920, 1080, "landscape"),
        (1080, 1920, "portrait"),
        (100, 100, "square"),
    ],
)
def test_shape_of_a_picture_allows_five_percent(w: int, h: int, shape: str) -> None:
    assert rules._shape(w, h) == shape


@pytest.mark.parametrize(
    "w,h,aspect,said",
    [
        (1080, 1920, "16:9", "1080×1920 (portrait), but the aspect ratio is 16:9 (landscape"),
        (1000, 1000, "9:16", "1000×1000 (square), but the aspect ratio is 9:16 (portrait"),
        (1920, 1080, "1:1", "1920×1080 (landscape), but the aspect ratio is 1:1 (square"),
    ],
)
def test_a_first_frame_of_another_shape_is_said(w: int, h: int, aspect: str, said: str) -> None:
    scene = make_scene(first=inp(image(w=w, h=h), "a"), aspect=aspect, aspect_origin="project")
    [d] = _diags(scene)
    assert d.code == "W250" and said in d.message


def test_frame_times_must_fall_inside_the_upstream_scene() -> None:
    def frame_at(upstream: Scene, at: float) -> list[str]:
        use = make_scene("b", prompt="@a", first=inp(out("a", "frame", at), "a"), aspect=None)
        return [c for c in codes(upstream, use) if c == "E250"]

    ten = make_scene("a", duration=10)
    assert frame_at(ten, 9.9) == [] and frame_at(ten, 10.0) == ["E250"]
    unset = make_scene("a", duration=None)  # the provider's default: 5 s
    assert frame_at(unset, 4.9) == [] and frame_at(unset, 5.0) == ["E250"]
    # an edit lasts as long as its video (3 s here), whatever `duration` says
    edit = make_scene(
        "a", prompt="@v", video_in=inp(video(dur=3.0), "v"), video_mode="base", duration=None
    )
    assert frame_at(edit, 2.9) == [] and frame_at(edit, 3.0) == ["E250"]
    # a referenced video does not set the length: the scene's duration does
    ref = make_scene("a", prompt="@v", video_in=inp(video(dur=3.0), "v"), duration=10)
    assert frame_at(ref, 7.0) == [] and frame_at(ref, 10.0) == ["E250"]
    # an edited remote video: its length is not known before it renders
    remote = make_scene(
        "a", prompt="@v", video_in=inp(url(kind="video"), "v"), video_mode="base", duration=None
    )
    assert frame_at(remote, 99.0) == []
    [d] = [
        d
        for d in _diags(
            ten, make_scene("b", prompt="@a", first=inp(out("a", "frame", 12.5), "a"), aspect=None)
        )
        if d.code == "E250"
    ]
    assert d.message == "`a.frame(12.5)` is past the end of `a`, which lasts 10 s"


def test_element_and_scene_files_are_the_local_files_they_name() -> None:
    el = make_element("mei", image("m.png"), image("m2.png"), url())
    scene = make_scene(
        prompt="@mei @x @y", images=(inp(image("x.png"), "x"), inp(url(), "y")), elements=("mei",)
    )
    found = [f.path for f, _ in rules.element_and_scene_files(make_project(scene, elements=(el,)))]
    assert found == ["m.png", "m2.png", "x.png"]


def test_file_size_limit_is_inclusive_and_said_in_megabytes() -> None:
    limit = 10 * 1024 * 1024
    assert "E218" not in codes(make_scene(prompt="@a", images=(inp(image(size=limit), "a"),)))
    scene = make_scene(prompt="@a", images=(inp(image(size=limit + 500_000), "a", line=7),))
    [d] = [d for d in _diags(scene) if d.code == "E218"]
    assert d.span == sp(7)
    assert d.message == "assets/a.png is 11.0 MB; images may be at most 10 MB"


def test_format_errors_name_the_format_and_the_way_out() -> None:
    [d] = _diags(make_scene(prompt="@a", images=(inp(image(fmt="webp"), "a", line=7),)))
    assert (d.code, d.span) == ("E219", sp(7))
    assert d.message == "assets/a.png is a WEBP image; the provider takes JPEG or PNG"
    assert d.hint == "convert it to PNG or JPEG"
    [d] = _diags(make_scene(prompt="@v", video_in=inp(video(fmt="gif"), "v", line=7)))
    assert (d.code, d.span) == ("E219", sp(7))
    assert d.message == "assets/v.mp4 is a GIF file; the provider takes MP4 or MOV videos"


def test_media_whose_size_is_unknown_is_not_judged_by_size() -> None:
    from storyc.media.info import MediaInfo

    no_size = LocalFile(
        "a.png", "/nowhere/a.png", "image", 10, DIGEST, MediaInfo("image", "png", None, 100)
    )
    vid = LocalFile(
        "v.mp4",
        "/nowhere/v.mp4",
        "video",
        10,
        DIGEST,
        MediaInfo("video", "mp4", None, 100, 5.0, 30.0, True),
    )
    assert (
        codes(make_scene(prompt="@a @v", images=(inp(no_size, "a"),), video_in=inp(vid, "v"))) == []
    )


@pytest.mark.parametrize(
    "kwargs,ok",
    [
        ({"dur": 2.95}, True),
        ({"dur": 2.9}, False),
        ({"dur": 10.05}, True),
        ({"dur": 10.03}, True),
        ({"dur": 10.1}, False),
        ({"w": 3840, "h": 2160}, False),
        ({"w": 2160, "h": 1216}, True),
        ({"w": 2161, "h": 1216}, False),
        ({"w": 720, "h": 720}, True),
        ({"fps": 23.99}, True),
        ({"fps": 23.5}, False),
        ({"fps": 60.01}, True),
        ({"fps": 60.5}, False),
    ],
)
def test_video_limits_at_their_edges(kwargs: dict[str, Any], ok: bool) -> None:
    found = codes(make_scene(prompt="@v", video_in=inp(video(**kwargs), "v")))
    assert (found == []) == ok, found


def _full(*scenes: Scene, elements: tuple[Element, ...] = ()) -> list[tuple[Any, ...]]:
    """Every diagnostic in full: code, message, where, hint and notes."""
    return [
        (d.code, d.message, d.span, d.hint, d.notes) for d in _diags(*scenes, elements=elements)
    ]


@pytest.mark.parametrize(
    "scene,message,line",
    [
        (make_scene(first=inp(video(), "v", 7)), "`v` is a video, but a first frame must be an image", 7),
        (make_scene(first=inp(image(), "s"), end=inp(video(), None, 7)), "this input is a video, but an end frame must be an image", 7),
        (make_scene(prompt="@r", images=(inp(video(), "r", 7),)), "`r` is a video, but a reference image must be an image", 7),
        (make_scene(prompt="@v", video_in=inp(image(), "v", 7)), "`v` is an image, but a reference video must be a video", 7),
    ],
)  # fmt: skip
def test_wrong_media_kind_is_said_in_full(scene: Scene, message: str, line: int) -> None:
    [d] = [d for d in _diags(scene) if d.code == "E203"]
    assert (d.message, d.span) == (message, sp(line))


def test_rule_messages_in_full() -> None:
    # E207: base editing with an end frame
    edit_end = make_scene(
        prompt="@v",
        first=inp(image(), "s", 12),
        end=inp(image("e.png"), "e", 13),
        video_in=inp(video(), "v"),
        video_mode="base",
        duration=None,
        aspect=None,
    )
    found = [(d.message, d.span) for d in _diags(edit_end) if d.code == "E207"]
    assert found == [
        ("base editing cannot be combined with a first frame", sp(12)),
        ("base editing cannot be combined with an end frame", sp(13)),
    ]
    # E202 beside a reference video
    imgs = tuple(inp(image(f"i{i}.png"), f"i{i}") for i in range(5))
    many = make_scene(
        prompt=" ".join(f"@i{i}" for i in range(5)) + " @v", images=imgs, video_in=inp(video(), "v")
    )
    [d] = [d for d in _diags(many) if d.code == "E202"]
    assert d.message == (
        "scene `shot` uses 5 reference image(s) and 0 element(s); at most 4 together"
        " with a reference video"
    )
    # E204: not a whole number, said with its value where it was written
    for value in (7.5, "7", True):
        bad = make_scene(duration=value)  # type: ignore[arg-type]
        [d] = [d for d in _diags(bad) if d.code == "E204"]
        assert d.span == bad.duration.span  # type: ignore[union-attr]
        assert (
            d.message == f"duration must be a whole number of seconds from 3 to 10, not {value!r}"
        )
    # E205 names the mode with its article
    [d] = [d for d in _diags(make_scene(first=inp(image(), "a"), aspect=None, duration=7))]
    assert d.message == "an image-to-video scene can last 5 or 10 seconds, not 7"


def test_settings_from_a_style_count_as_written_on_the_scene() -> None:
    edit = {"video_in": inp(video(), "v"), "video_mode": "base", "prompt": "@v"}
    assert codes(make_scene(duration=5, duration_origin="style", aspect=None, **edit)) == ["W206"]
    [d] = _diags(make_scene(duration=None, aspect_origin="style", **edit))
    assert (d.code, d.span) == ("W209", sp(8))
    assert d.message == "aspect ratio is ignored here: the video being edited decides the shape"
    [d] = _diags(make_scene(first=inp(image(), "a"), aspect_origin="style"))
    assert d.message == "aspect ratio is ignored here: the first frame decides the shape"
    # a style's aspect is the scene's choice: no W250 about a first frame of another shape
    portrait = make_scene(first=inp(image(w=480, h=640), "a"), aspect_origin="style")
    assert codes(portrait) == ["W209"]


def test_an_inherited_aspect_without_a_place_has_no_note() -> None:
    from dataclasses import replace

    scene = make_scene(aspect_origin="project")
    no_place = replace(scene, aspect=Setting("16:9", None, "project"))
    [d] = _diags(no_place)
    assert (d.code, d.notes) == ("W210", ())
    [d] = _diags(scene)
    assert d.notes == (("16:9 was written here", scene.aspect.span),)  # type: ignore[union-attr]


def test_shape_warnings_in_full() -> None:
    from dataclasses import replace

    edit = make_scene(
        prompt="@v",
        video_in=inp(video(w=720, h=1280), "v", 7),
        video_mode="base",
        duration=None,
        aspect_origin="project",
    )
    [d] = [d for d in _diags(edit) if d.code == "W250"]
    assert d.span == sp(7)
    assert d.message == (
        "the edited video of `shot` is 720×1280 (portrait), but the aspect ratio is 16:9 "
        "(landscape, from the project default): the edited video decides the shape, so this "
        "scene will be portrait"
    )
    assert (
        d.hint == "crop the image to 16:9, or write the aspect this scene really has on the scene"
    )
    assert d.notes == (("16:9 was written here", sp(8)),)
    first = make_scene(first=inp(image(w=480, h=640), "a", 7), aspect_origin="defaults")
    [d] = _diags(first)
    assert d.code == "W250" and d.span == sp(7)
    assert d.message.startswith("the first frame of `shot` is 480×640 (portrait)")
    assert "from the defaults block): the first frame decides" in d.message
    no_place = replace(first, aspect=Setting("16:9", None, "project"))
    [d] = _diags(no_place)
    assert d.notes == ()
    # a picture whose size the header did not give cannot be judged
    from storyc.media.info import MediaInfo

    unknown = LocalFile(
        "a.png", "/nowhere/a.png", "image", 10, DIGEST, MediaInfo("image", "png", 0, 640)
    )
    assert codes(make_scene(first=inp(unknown, "a"), aspect_origin="project")) == []


def test_unresolved_settings_silence_exactly_their_rules() -> None:
    from dataclasses import replace

    def unres(scene: Scene, *what: str) -> list[str]:
        return codes(replace(scene, unresolved=frozenset(what)))

    edit = make_scene(prompt="@v", video_in=inp(video(), "v"), video_mode="base", aspect=None)
    # an edit's duration is judged even when other inputs are unknown, unless the video is
    assert unres(edit, "?") == ["W206"] and unres(edit, "?", "video") == []
    # with an input perhaps misspelt the mode is not known: 7 s may be a reference scene's
    assert unres(make_scene(duration=7), "?") == []
    assert (
        unres(make_scene(aspect=None), "?") == [] and unres(make_scene(aspect=None), "aspect") == []
    )
    assert unres(make_scene(prompt=""), "prompt") == []
    portrait = make_scene(first=inp(image(w=480, h=640), "a"), aspect_origin="project")
    assert unres(portrait, "aspect") == [] and unres(portrait) == ["W250"]


def test_frame_times_check_every_input_and_skip_only_what_is_unknown() -> None:
    from dataclasses import replace

    ten = make_scene("a", duration=10)

    def e250(*scenes: Scene) -> list[Any]:
        return [d for d in _diags(*scenes) if d.code == "E250"]

    bad = inp(out("a", "frame", 12.0), "a", 7)
    for first in (
        inp(image(), "s"),
        inp(out("a", "last_frame"), "s"),
        inp(out("a", "frame", 1.0), "s"),
    ):
        use = make_scene("b", prompt="@a @s", first=first, images=(bad,), aspect=None)
        [d] = e250(ten, use)
        assert d.span == sp(7)
        assert (
            d.hint
            == "a frame time is from 0 to less than 10; for the very end, write `a.last_frame`"
        )
    # an upstream whose length is unknown is skipped, and the inputs after it still checked
    for what in ("duration", "video", "?"):
        vague = replace(make_scene("u"), unresolved=frozenset({what}))
        use = make_scene(
            "b", prompt="@a @u", first=inp(out("u", "frame", 99.0), "u"), images=(bad,), aspect=None
        )
        assert [d.span for d in e250(ten, vague, use)] == [sp(7)], what
    missing = make_scene(
        "b", prompt="@x @a", first=inp(out("x", "frame", 99.0), "x"), images=(bad,), aspect=None
    )
    assert len(e250(ten, missing)) == 1
    # a last frame is at the end, whatever time it carries
    last = make_scene("b", prompt="@a", first=inp(out("a", "last_frame", 99.0), "a"), aspect=None)
    assert e250(ten, last) == []


def test_unmentioned_input_warnings_in_full() -> None:
    [d] = _diags(make_scene(images=(inp(url(), None, 7),)))
    assert (d.code, d.span) == ("W211", sp(7))
    assert d.message == "this reference image cannot be mentioned in the prompt: it has no name"
    assert d.hint == (
        "declare it as an asset and write `@name` in the prompt, so the model knows what it is for"
    )
    from dataclasses import replace

    mei = replace(make_element("mei", image("m.png")), description="a tall woman")
    kai = make_element("kai", image("k.png"))
    found = _diags(make_scene(elements=("mei", "kai")), elements=(mei, kai))
    assert [d.hint for d in found] == [
        'say what it is for, e.g. "... @mei ..."; its description is sent only after a mention',
        'say what it is for, e.g. "... @kai ..."',
    ]
    [d] = _diags(
        make_scene(prompt="@m", images=(inp(image(), "m"), inp(image(), "mei"))), elements=(mei,)
    )
    assert d.hint == 'say what it is for, e.g. "... @mei ..."'  # an image, not the element
    # an unnamed video from a scene is mentioned by the scene's name
    assert codes(make_scene(prompt="like @arrival", video_in=inp(out("arrival", "video")))) == []


def test_file_size_is_said_in_megabytes_of_a_million_bytes() -> None:
    [d] = _diags(make_scene(prompt="@a", images=(inp(image(size=10_550_000), "a"),)))
    assert d.message == "assets/a.png is 10.6 MB; images may be at most 10 MB"


def test_an_unknown_element_left_unmentioned_still_warns() -> None:
    """The resolver reports the unknown name; the rule still says it is not mentioned."""
    [d] = _diags(make_scene(elements=("ghost",)))
    assert d.code == "W211" and d.hint == 'say what it is for, e.g. "... @ghost ..."'
