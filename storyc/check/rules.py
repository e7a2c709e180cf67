"""Model rules: the limits of Kling Video O1 that hold whatever target a scene uses.

Stage: check (after resolve, before lowering). In: a resolved `Project`. Out: E2xx/W2xx
diagnostics added to a `Diagnostics`; `mode_of` tells which generation mode a scene's
inputs select. No I/O: media limits use the header facts the resolver already read
(`LocalFile.media`).

Target-specific limits (the 2500-character prompt after placeholder substitution, the
reference-image count after elements are expanded) are checked by the targets, because
they depend on how each target lowers the scene.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from storyc.base.diagnostics import Diagnostic, Diagnostics, Severity, Span
from storyc.resolve.model import (
    DURATION_MAX,
    DURATION_MIN,
    IMAGE_FORMATS,
    IMAGE_MAX_RATIO,
    IMAGE_MIN_PX,
    MAX_BYTES,
    MAX_ELEMENT_REFS,
    MAX_REFERENCES,
    MAX_REFERENCES_WITH_VIDEO,
    STRICT_DURATIONS,
    VIDEO_FORMATS,
    VIDEO_MAX_FPS,
    VIDEO_MAX_PX,
    VIDEO_MIN_FPS,
    VIDEO_MIN_PX,
    Element,
    Input,
    LocalFile,
    Project,
    Scene,
    SceneOutput,
    Setting,
)

# A scene that does not say how long it is lasts this long: the provider's default, which
# the targets send explicitly (storyc.targets.inference.DEFAULT_DURATION).
DEFAULT_DURATION = 5

TEXT_TO_VIDEO = "text-to-video"
IMAGE_TO_VIDEO = "image-to-video"
START_END = "start-end-frame"
REFERENCE = "reference"
EDIT = "edit"

ORIGIN_WORDS = {
    "scene": "the scene",
    "style": "its style",
    "defaults": "the defaults block",
    "project": "the project default",
    "builtin": "storyc's built-in default",
}


def mode_of(scene: Scene) -> str:
    """The generation mode the provider will pick from the scene's inputs (provider-facts §2)."""
    if scene.video is not None and scene.video.mode == "base":
        return EDIT
    # Elements are sent as reference images on every inference.sh schema.
    if scene.video is not None or scene.images or scene.elements:
        return REFERENCE
    if scene.end_frame is not None:
        return START_END
    if scene.first_frame is not None:
        return IMAGE_TO_VIDEO
    return TEXT_TO_VIDEO


def needs_aspect(scene: Scene) -> bool:
    """Aspect ratio is required for text-to-video and reference generation without a first frame."""
    return mode_of(scene) in (TEXT_TO_VIDEO, REFERENCE) and scene.first_frame is None


def where_from(setting: Setting[Any]) -> str:
    return ORIGIN_WORDS.get(setting.origin, setting.origin)


def check(project: Project, diags: Diagnostics) -> None:
    """Report every model-rule violation of every scene, and media limits of every file."""
    for scene in project.scenes.values():
        check_scene(scene, project, diags)
    check_media(project, diags)


# What the generation mode depends on: when one of these could not be resolved (or the
# scene may have a misspelt input, "?"), the mode of the scene as written is not known.
MODE_INPUTS = frozenset({"start", "end", "refs", "elements", "video", "prompt", "?", "@"})


def check_scene(scene: Scene, project: Project, diags: Diagnostics) -> None:
    """Every rule for `scene`. A scene with errors (`Scene.unresolved`) is checked too, by
    the rules its errors cannot affect: one run reports every independent problem, and
    never a consequence of another error as if it were one."""
    mode = mode_of(scene)
    unknown = scene.unresolved
    certain = not (unknown & MODE_INPUTS)
    _check_frames(scene, mode, diags, start_known="start" not in unknown)
    _check_kinds(scene, diags)
    if "prompt" not in unknown:  # mentions add references: a failed template would miscount
        _check_references(scene, project, diags)
    if certain or (mode == EDIT and "video" not in unknown):
        _check_duration(scene, mode, diags)
    if certain and "aspect" not in unknown:
        _check_aspect(scene, mode, diags)
    if "prompt" not in unknown:
        _check_prompt(scene, diags)
        if certain:
            _check_mentions(scene, project, diags)
    if "aspect" not in unknown:
        _check_shape(scene, mode, diags)
    _check_frame_times(scene, project, diags)


def _check_frames(scene: Scene, mode: str, diags: Diagnostics, *, start_known: bool) -> None:
    if scene.end_frame is not None and scene.first_frame is None and start_known:
        diags.error(
            "E201",
            f"scene `{scene.name}` has an end frame but no first frame",
            scene.end_frame.span,
            hint="add `start = ...` (the provider needs `image` whenever `end_image` is set)",
        )
    if mode == EDIT:
        for inp, what in ((scene.first_frame, "a first frame"), (scene.end_frame, "an end frame")):
            if inp is not None:
                diags.error(
                    "E207",
                    f"base editing cannot be combined with {what}",
                    inp.span,
                    hint="edit the video alone, or use it as a `video =` reference",
                )


def _check_kinds(scene: Scene, diags: Diagnostics) -> None:
    slots: list[tuple[Input, str, str]] = []
    if scene.first_frame is not None:
        slots.append((scene.first_frame, "image", "a first frame"))
    if scene.end_frame is not None:
        slots.append((scene.end_frame, "image", "an end frame"))
    slots.extend((img, "image", "a reference image") for img in scene.images)
    if scene.video is not None:
        slots.append((scene.video.input, "video", "a reference video"))
    for inp, want, role in slots:
        got = inp.source.kind
        if got != want:
            label = f"`{inp.name}`" if inp.name else "this input"
            diags.error(
                "E203",
                f"{label} is {'an' if got == 'image' else 'a'} {got}, "
                f"but {role} must be {'an' if want == 'image' else 'a'} {want}",
                inp.span,
            )


def _check_references(scene: Scene, project: Project, diags: Diagnostics) -> None:
    n_images, n_elements = len(scene.images), len(scene.elements)
    limit = MAX_REFERENCES_WITH_VIDEO if scene.video is not None else MAX_REFERENCES
    if n_images + n_elements > limit:
        with_video = " with a reference video" if scene.video is not None else ""
        diags.error(
            "E202",
            f"scene `{scene.name}` uses {n_images} reference image(s) and "
            f"{n_elements} element(s); at most {limit} together{with_video}",
            scene.refs_span or scene.span,
            hint="drop some references, or split the shot into two scenes",
        )
    for use in scene.elements:
        element = project.elements.get(use.name)
        if element is not None and len(element.refs) > MAX_ELEMENT_REFS:
            diags.error(
                "E220",
                f"element `{element.name}` has {len(element.refs)} extra angles; "
                f"at most {MAX_ELEMENT_REFS}",
                element.span,
                hint="keep the frontal image and up to three more angles",
            )


def _check_duration(scene: Scene, mode: str, diags: Diagnostics) -> None:
    dur = scene.duration
    if dur is None:
        return
    if mode == EDIT:
        if dur.origin in ("scene", "style"):
            diags.warning(
                "W206",
                "duration is ignored when editing a video: the result is as "
                "long as the input video",
                dur.span,
                hint="remove `duration` from this scene",
            )
        return
    value = dur.value
    if (
        isinstance(value, bool)
        or not isinstance(value, int)
        or not (DURATION_MIN <= value <= DURATION_MAX)
    ):
        diags.error(
            "E204",
            f"duration must be a whole number of seconds from {DURATION_MIN} "
            f"to {DURATION_MAX}, not {value!r}",
            dur.span,
        )
        return
    if mode in (TEXT_TO_VIDEO, IMAGE_TO_VIDEO, START_END) and value not in STRICT_DURATIONS:
        diags.error(
            "E205",
            f"{'an' if mode[0] in 'aeiou' else 'a'} {mode} scene can last 5 or 10 seconds, not {value}",
            dur.span,
            hint="any length from 3 to 10 s needs reference images, elements or a reference video",
        )


def _check_aspect(scene: Scene, mode: str, diags: Diagnostics) -> None:
    aspect = scene.aspect
    if needs_aspect(scene):
        if aspect is None:
            diags.error(
                "E208",
                f"scene `{scene.name}` needs an aspect ratio ({mode})",
                scene.span,
                hint='set `aspect = "16:9"` on the scene or the project',
            )
        elif aspect.origin not in ("scene",):
            notes = ((f"{aspect.value} was written here", aspect.span),) if aspect.span else ()
            diags.add(
                Diagnostic(
                    "W210",
                    Severity.NOTE,
                    f"aspect ratio {aspect.value} taken from {where_from(aspect)}",
                    scene.span,
                    None,
                    notes,
                )
            )
        return
    if aspect is not None and aspect.origin in ("scene", "style"):
        why = "the video being edited" if mode == EDIT else "the first frame"
        diags.warning(
            "W209",
            f"aspect ratio is ignored here: {why} decides the shape",
            aspect.span,
            hint="remove `aspect` from this scene",
        )


_SHAPES = {"16:9": "landscape", "9:16": "portrait", "1:1": "square"}


def _shape(w: int, h: int) -> str:
    if w * 100 > h * 105:
        return "landscape"
    if h * 100 > w * 105:
        return "portrait"
    return "square"


def _check_shape(scene: Scene, mode: str, diags: Diagnostics) -> None:
    """A first frame (or an edited video) decides the video's shape; say so when it
    disagrees with the aspect ratio the scene inherits (a 9:16 photo in a 16:9 film)."""
    aspect = scene.aspect
    if aspect is None or aspect.origin in ("scene", "style"):
        return  # no ratio to disagree with, or W209 already says it is ignored
    if mode == EDIT and scene.video is not None:
        inp, what = scene.video.input, "the edited video"
    elif scene.first_frame is not None and mode != EDIT:
        inp, what = scene.first_frame, "the first frame"
    else:
        return
    src = inp.source
    info = src.media if isinstance(src, LocalFile) else None
    if info is None or not info.width or not info.height:
        return
    shape = _shape(info.width, info.height)
    wanted = _SHAPES.get(str(aspect.value))
    if wanted is None or shape == wanted:
        return
    notes = ((f"{aspect.value} was written here", aspect.span),) if aspect.span else ()
    diags.warning(
        "W250",
        f"{what} of `{scene.name}` is {info.width}×{info.height} ({shape}), but the aspect "
        f"ratio is {aspect.value} ({wanted}, from {where_from(aspect)}): {what} decides "
        f"the shape, so this scene will be {shape}",
        inp.span,
        hint=f"crop the image to {aspect.value}, or write the aspect this scene really has "
        "on the scene",
        notes=notes,
    )


def _upstream_length(scene: Scene) -> float | None:
    """How long a scene's video will be, when it can be known before it renders."""
    if mode_of(scene) == EDIT and scene.video is not None:
        src = scene.video.input.source
        info = src.media if isinstance(src, LocalFile) else None
        return info.duration if info is not None else None
    if scene.duration is not None:
        return float(scene.duration.value)
    return float(DEFAULT_DURATION)


def _check_frame_times(scene: Scene, project: Project, diags: Diagnostics) -> None:
    """`a.frame(T)` must fall inside `a`: past its end there is no frame to start from,
    and the build would find out only after paying for `a`."""
    inputs = [scene.first_frame, scene.end_frame, *scene.images]
    for inp in inputs:
        if inp is None or not isinstance(inp.source, SceneOutput):
            continue
        src = inp.source
        if src.part != "frame" or src.at is None:
            continue
        upstream = project.scenes.get(src.scene)
        if upstream is None or upstream.unresolved & {"duration", "video", "?"}:
            continue  # how long it lasts is not known (its errors are reported)
        length = _upstream_length(upstream)
        if length is None or src.at < length:
            continue
        diags.error(
            "E250",
            f"`{src.scene}.frame({src.at:g})` is past the end of `{src.scene}`, which "
            f"lasts {length:g} s",
            inp.span,
            hint=f"a frame time is from 0 to less than {length:g}; for the very end, "
            f"write `{src.scene}.last_frame`",
        )


def _check_prompt(scene: Scene, diags: Diagnostics) -> None:
    if not scene.prompt.strip():
        diags.error(
            "E212",
            f"scene `{scene.name}` has an empty prompt",
            scene.prompt_span,
            hint="the provider requires a prompt, even when editing",
        )


def _check_mentions(scene: Scene, project: Project, diags: Diagnostics) -> None:
    mentioned = {m.name for m in scene.mentions}
    unmentioned: list[tuple[str | None, Span, str]] = []
    for img in scene.images:
        if img.name is None or img.name not in mentioned:
            unmentioned.append((img.name, img.span, "reference image"))
    for use in scene.elements:
        if use.name not in mentioned:
            unmentioned.append((use.name, use.span, "element"))
    if scene.video is not None and scene.video.mode == "feature":
        inp = scene.video.input
        names = {inp.name, getattr(inp.source, "scene", None)} - {None}
        if not names & mentioned:
            unmentioned.append((inp.name, inp.span, "reference video"))
    for name, span, role in unmentioned:
        if name is None:
            diags.warning(
                "W211",
                f"this {role} cannot be mentioned in the prompt: it has no name",
                span,
                hint="declare it as an asset and write `@name` in the "
                "prompt, so the model knows what it is for",
            )
        else:
            described = role == "element" and bool(
                getattr(project.elements.get(name), "description", None)
            )
            diags.warning(
                "W211",
                f"{role} `{name}` is never mentioned in the prompt of `{scene.name}`",
                span,
                hint=f'say what it is for, e.g. "... @{name} ..."'
                + ("; its description is sent only after a mention" if described else ""),
            )


def element_and_scene_files(project: Project) -> Iterator[tuple[LocalFile, Span]]:
    """The local files elements and scenes name (assets' own are `project.assets`)."""
    for element in project.elements.values():
        yield from element_files(element)
    for scene in project.scenes.values():
        yield from scene_files(scene)


def element_files(element: Element) -> Iterator[tuple[LocalFile, Span]]:
    for inp in (element.frontal, *element.refs):
        if isinstance(inp.source, LocalFile):
            yield inp.source, inp.span


def scene_files(scene: Scene) -> Iterator[tuple[LocalFile, Span]]:
    """The local files a scene names itself (not its elements'), with where it names them."""
    for use in scene.inputs():
        if isinstance(use.input.source, LocalFile):
            yield use.input.source, use.input.span


def check_media(project: Project, diags: Diagnostics) -> None:
    """Upstream media limits, once per file, at the first place the file is declared."""
    seen = check_declared_media(project, diags)
    for scene in project.scenes.values():
        for f, span in scene_files(scene):
            if f.path not in seen:
                seen.add(f.path)
                check_file(f, span, diags)


def check_declared_media(project: Project, diags: Diagnostics) -> set[str]:
    """`check_media` for the files assets and elements name (the first part of its order):
    the paths it checked. Their errors block the scenes that name those declarations."""
    seen: set[str] = set()
    for asset in project.assets.values():
        if isinstance(asset.source, LocalFile) and asset.source.path not in seen:
            seen.add(asset.source.path)
            check_file(asset.source, asset.span, diags)
    for element in project.elements.values():
        for f, span in element_files(element):
            if f.path not in seen:
                seen.add(f.path)
                check_file(f, span, diags)
    return seen


def check_file(f: LocalFile, span: Span, diags: Diagnostics) -> None:
    """The media limits of one file, reported at `span` (`check_media` picks the span)."""
    # The resolver already refuses such files (E134); this holds for a Project
    # built without it.
    limit = MAX_BYTES[f.kind]
    if f.size > limit:
        diags.error(
            "E218",
            f"{f.path} is {f.size / 1e6:.1f} MB; {f.kind}s may be at most "
            f"{limit // (1024 * 1024)} MB",
            span,
        )
    if f.kind == "image":
        _check_image(f, span, diags)
    else:
        _check_video(f, span, diags)


def _check_image(f: LocalFile, span: Span, diags: Diagnostics) -> None:
    info = f.media
    if info is None:
        return
    if info.format not in IMAGE_FORMATS:
        diags.error(
            "E219",
            f"{f.path} is a {info.format.upper()} image; the provider takes JPEG or PNG",
            span,
            hint="convert it to PNG or JPEG",
        )
    if info.width and info.height:
        w, h = info.width, info.height
        if min(w, h) < IMAGE_MIN_PX:
            diags.error(
                "E213",
                f"{f.path} is {w}×{h} px; images need at least {IMAGE_MIN_PX} px on each side",
                span,
            )
        if max(w, h) / min(w, h) > IMAGE_MAX_RATIO:
            diags.error(
                "E214",
                f"{f.path} is {w}×{h} px, {max(w, h) / min(w, h):.2f}:1; the "
                "aspect ratio must lie between 1:2.5 and 2.5:1",
                span,
                hint="crop the image",
            )


def _check_video(f: LocalFile, span: Span, diags: Diagnostics) -> None:
    info = f.media
    if info is None:
        return
    if info.format not in VIDEO_FORMATS:
        diags.error(
            "E219",
            f"{f.path} is a {info.format.upper()} file; the provider takes MP4 or MOV videos",
            span,
        )
    if info.duration is not None and not (
        DURATION_MIN - 0.05 <= info.duration <= DURATION_MAX + 0.05
    ):
        diags.error(
            "E215",
            f"{f.path} lasts {info.duration:.2f} s; reference videos must "
            f"last {DURATION_MIN}–{DURATION_MAX} s",
            span,
            hint="trim the video",
        )
    if info.width and info.height:
        w, h = info.width, info.height
        if not (min(w, h) >= VIDEO_MIN_PX and max(w, h) <= VIDEO_MAX_PX):
            diags.error(
                "E216",
                f"{f.path} is {w}×{h} px; width and height must lie between "
                f"{VIDEO_MIN_PX} and {VIDEO_MAX_PX} px",
                span,
            )
    if info.fps is not None and not (VIDEO_MIN_FPS - 0.01 <= info.fps <= VIDEO_MAX_FPS + 0.01):
        diags.error(
            "E217",
            f"{f.path} runs at {info.fps:g} fps; reference videos need "
            f"{VIDEO_MIN_FPS:g}–{VIDEO_MAX_FPS:g} fps",
            span,
        )
