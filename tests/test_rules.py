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
