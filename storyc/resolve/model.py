"""The resolved project model: what a story means, independent of any provider.

Stage: output of `resolve` (names bound, includes merged, templates rendered,
settings inherited, files found and hashed), input of `rules` (model limits) and of
the targets (lowering to a provider payload). Pure data; no I/O here.

Every value that came from the story keeps the `Span` it came from, so later stages
can point at it. Settings remember where their value came from (`origin`), so the
compiler can say "aspect ratio 16:9 taken from the project default".
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, Literal, TypeVar

from storyc.base.diagnostics import Span
from storyc.media.info import MediaInfo

# A scene that names no target is lowered for this one (the registry in storyc.targets
# knows it by this name).
DEFAULT_TARGET = "inference/video-o1"

# Kling Video O1's limits (provider-facts §2), checked by storyc.check.rules and, for
# file sizes, by the resolver before a file is read.
MAX_REFERENCES = 7
MAX_REFERENCES_WITH_VIDEO = 4
DURATION_MIN, DURATION_MAX = 3, 10
DEFAULT_DURATION = 5  # the provider's default, which the targets send explicitly
STRICT_DURATIONS = (5, 10)
MAX_ELEMENT_REFS = 3
IMAGE_MIN_PX = 300
IMAGE_MAX_RATIO = 2.5
IMAGE_FORMATS = ("png", "jpeg")
IMAGE_MAX_BYTES = 10 * 1024 * 1024
VIDEO_MIN_PX, VIDEO_MAX_PX = 720, 2160
VIDEO_MIN_FPS, VIDEO_MAX_FPS = 24.0, 60.0
VIDEO_FORMATS = ("mp4", "mov")
VIDEO_MAX_BYTES = 200 * 1024 * 1024
MAX_BYTES = {"image": IMAGE_MAX_BYTES, "video": VIDEO_MAX_BYTES}
# storyc's own limits on what a story asks for: takes of one scene (each is a paid render)
# and renders at once.
MAX_TAKES = 20
MAX_JOBS = 64

MediaKind = Literal["image", "video"]
Quality = Literal["std", "pro"]
Aspect = Literal["16:9", "9:16", "1:1"]
VideoMode = Literal["feature", "base"]
Origin = Literal["scene", "style", "defaults", "project", "builtin"]

QUALITIES: tuple[Quality, ...] = ("std", "pro")
ASPECTS: tuple[Aspect, ...] = ("16:9", "9:16", "1:1")

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Setting(Generic[T]):
    """A value plus where it was written (`span`) and which layer it came from."""

    value: T
    span: Span | None = None
    origin: Origin = "scene"


@dataclass(frozen=True, slots=True)
class LocalFile:
    """A file on disk. `path` is project-relative POSIX (what payloads and keys show);
    `abs_path` is for reading only and never written to any output."""

    path: str
    abs_path: str
    kind: MediaKind
    size: int
    digest: str  # "sha256:<64 hex>"
    media: MediaInfo | None = None  # header facts (dimensions, duration, fps) when readable


@dataclass(frozen=True, slots=True)
class RemoteFile:
    """An https:// URL, passed to the provider as-is."""

    url: str
    kind: MediaKind


@dataclass(frozen=True, slots=True)
class SceneOutput:
    """Another scene's rendered output (its picked take), or a frame of it."""

    scene: str
    part: Literal["video", "first_frame", "last_frame", "frame"]
    at: float | None = None  # seconds from the start; only when part == "frame"

    @property
    def kind(self) -> MediaKind:
        return "video" if self.part == "video" else "image"


Source = LocalFile | RemoteFile | SceneOutput


def source_kind(src: Source) -> MediaKind:
    return src.kind


@dataclass(frozen=True, slots=True)
class Input:
    """One media input of a scene or element.

    `name` is the declared name it was reached through (asset, element or scene), or
    None for an inline path/URL. Prompts mention inputs by that name (`@market`).
    """

    source: Source
    name: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Asset:
    name: str
    kind: MediaKind
    source: LocalFile | RemoteFile
    span: Span


@dataclass(frozen=True, slots=True)
class Element:
    """A character or object: a frontal image, up to 3 more angles, a description."""

    name: str
    frontal: Input
    refs: tuple[Input, ...]
    description: str | None
    span: Span


@dataclass(frozen=True, slots=True)
class Mention:
    """An `@name` in a rendered prompt. `start`/`end` are offsets into `Scene.prompt`
    covering the whole `@name`; `span` is the best source location we have."""

    name: str
    start: int
    end: int
    span: Span


@dataclass(frozen=True, slots=True)
class ElementUse:
    name: str  # key into Project.elements
    span: Span


@dataclass(frozen=True, slots=True)
class VideoInput:
    input: Input
    mode: VideoMode  # "base" = edit this video; "feature" = style/motion reference
    keep_sound: Setting[bool] | None  # None when the story did not say
    span: Span  # where `edit =` / `video =` / `motion =` was written


@dataclass(frozen=True, slots=True)
class Scene:
    name: str
    span: Span  # the scene's name in its declaration
    prompt: str  # templated, still with `@name` mentions
    prompt_span: Span
    mentions: tuple[Mention, ...]
    first_frame: Input | None
    end_frame: Input | None
    # Reference images in order: those listed explicitly, then image assets that are
    # only mentioned in the prompt (first mention first), without duplicates.
    images: tuple[Input, ...]
    # Elements in order: listed explicitly, then mentioned, without duplicates.
    elements: tuple[ElementUse, ...]
    video: VideoInput | None
    quality: Setting[Quality]
    aspect: Setting[Aspect] | None
    duration: Setting[int] | None
    watermark: Setting[bool]
    takes: Setting[int]
    target: Setting[str]
    variables: dict[str, object] = field(default_factory=dict)
    # What the story wrote for this scene but the resolver could not use (each is already
    # reported): setting names ("start", "refs", "prompt", "aspect", ...), "?" for an
    # unknown setting in the scene or a layer it inherits (perhaps a misspelt input), "@"
    # for a mention of nothing. Rules that depend on them are not checked (see
    # `storyc.check.rules.check_scene`), so an error is never reported as another.
    unresolved: frozenset[str] = frozenset()
    refs_span: Span | None = None  # the `refs = [...]` list, when written
    app: Setting[str] | None = None  # the provider app, maybe pinned (`ns/name@version`)

    def inputs(self, elements: Mapping[str, Element] | None = None) -> list[InputUse]:
        """Everything the scene takes in, each with its role: first frame, end frame,
        reference images, the video (edited or referenced) and, given the project's
        elements, its elements' images (frontal, then the other angles). The one enumeration of a
        scene's inputs: the graph, the rules, watch, the board and `upstream` use it."""
        out: list[InputUse] = []
        if self.first_frame is not None:
            out.append(InputUse(self.first_frame, "first frame"))
        if self.end_frame is not None:
            out.append(InputUse(self.end_frame, "end frame"))
        out.extend(InputUse(img, "reference image") for img in self.images)
        if self.video is not None:
            role = "edited video" if self.video.mode == "base" else "reference video"
            out.append(InputUse(self.video.input, role))
        for use in self.elements if elements is not None else ():
            element = elements.get(use.name) if elements is not None else None
            if element is not None:
                for angle, inp in enumerate((element.frontal, *element.refs), 1):
                    out.append(InputUse(inp, "element", element.name, angle))
        return out

    def upstream(self) -> tuple[str, ...]:
        """Names of scenes whose output this scene uses, in first-use order."""
        seen: dict[str, None] = {}
        for use in self.inputs():
            if isinstance(use.input.source, SceneOutput):
                seen.setdefault(use.input.source.scene, None)
        return tuple(seen)


# Transitions a cut may use between two scenes (`crossfade(0.5)`).
TRANSITIONS = ("crossfade",)


@dataclass(frozen=True, slots=True)
class Transition:
    kind: str  # one of TRANSITIONS
    length: float  # seconds, > 0
    span: Span


@dataclass(frozen=True, slots=True)
class CutClip:
    """One scene in a cut: played from `start` to `end` seconds of its video (None: from
    its beginning / to its end), entered through `transition` from the clip before."""

    scene: str
    span: Span  # the scene's name in the cut
    start: Setting[float] | None = None  # `in`
    end: Setting[float] | None = None  # `out`
    transition: Transition | None = None


@dataclass(frozen=True, slots=True)
class InputUse:
    """One input of a scene and what it is for (see `Scene.inputs`)."""

    input: Input
    role: str  # first frame, end frame, reference image, edited video, reference video, element
    element: str | None = None  # for role "element": which element
    angle: int = 1  # for role "element": 1 is the frontal image


@dataclass(frozen=True, slots=True)
class Cut:
    name: str
    scenes: tuple[tuple[str, Span], ...]
    span: Span
    clips: tuple[CutClip, ...] = ()  # the same scenes, with trims and transitions
    extent: Span | None = None  # the whole declaration, name to `]` (errors inside it)


@dataclass(slots=True)
class Project:
    name: str
    root: str  # absolute directory of the entry file (never written to outputs)
    entry: str  # project-relative path of the entry story file
    files: tuple[str, ...]  # every story file loaded, project-relative, entry first
    target: Setting[str]
    variables: dict[str, object]
    assets: dict[str, Asset]
    elements: dict[str, Element]
    scenes: dict[str, Scene]  # declaration order
    cuts: dict[str, Cut]
    settings: dict[str, Setting[object]] = field(
        default_factory=dict
    )  # other project settings (backend, base_url, ...)
