"""Lowering shared by the inference.sh `klingai/video-o1` schemas (v1 and v2).

Stage: lower. In: a resolved `Scene`, its `Project`, a `Diagnostics`. Out: a `Request`
whose body is exactly `{"app": "klingai/video-o1", "input": {...}}`, fields in the
schema's order, unset fields omitted, files as `storyc.targets.request` markers. No I/O.

What differs between versions (placeholder spelling, whether first/end frames get an
image number, quality and sound fields, the pydantic schema) is supplied by the
subclass; everything a story means is decided here once.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, ValidationError

from storyc.base.diagnostics import Diagnostics, Span
from storyc.check import rules
from storyc.resolve.model import (
    DEFAULT_DURATION,
    MAX_REFERENCES,
    MAX_REFERENCES_WITH_VIDEO,
    Input,
    LocalFile,
    Project,
    RemoteFile,
    Scene,
    SceneOutput,
    Source,
)
from storyc.targets import Target
from storyc.targets.request import FILE_MARKER, SCENE_MARKER, Request

APP = "klingai/video-o1"
MAX_PROMPT = 2500


class FileMarker(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    file: str = Field(alias=FILE_MARKER, min_length=1)
    digest: str = Field(pattern=r"^sha256:[0-9a-f]{64}$")


class SceneMarker(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    scene: str = Field(alias=SCENE_MARKER, min_length=1)
    output: Literal["video", "first_frame", "last_frame", "frame"]
    at: float | None = None


# A plain string in a file slot is a URL the provider fetches itself; a local path must
# never get here (it travels as a {"$file": ...} marker and is uploaded).
Url = Annotated[str, StringConstraints(pattern=r"^https?://[^\s]+$")]
FileRef = FileMarker | SceneMarker | Url


class InputBase(BaseModel):
    """Fields both schema versions share. Strict: a wrong type is a bug, not a coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)
    prompt: str = Field(min_length=1, max_length=MAX_PROMPT)
    image: FileRef | None = None
    end_image: FileRef | None = None
    reference_images: list[FileRef] | None = Field(
        default=None, min_length=1, max_length=MAX_REFERENCES
    )
    reference_video: FileRef | None = None
    reference_video_type: Literal["feature", "base"] | None = None


def marker(src: Source) -> Any:
    """The payload value for one file: a marker the executor replaces, or a URL as-is."""
    if isinstance(src, LocalFile):
        return {FILE_MARKER: src.path, "digest": src.digest}
    if isinstance(src, RemoteFile):
        return src.url
    out: dict[str, Any] = {SCENE_MARKER: src.scene, "output": src.part}
    if src.part == "frame" and src.at is not None:
        out["at"] = src.at
    return out


def _key(value: Any) -> Any:
    """A hashable identity for a payload value (a marker dict or a URL string)."""
    if isinstance(value, dict):
        return tuple(sorted(value.items()))
    return value


@dataclass
class _Ref:
    value: Any
    names: list[str]
    element: str | None  # the element it came from, if any


@dataclass
class Lowering:
    """Working state while one scene is lowered; the subclass reads it to build fields."""

    scene: Scene
    mode: str
    refs: list[_Ref] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    prompt: str = ""


def _names(inp: Input) -> list[str]:
    names = [inp.name] if inp.name else []
    if isinstance(inp.source, SceneOutput) and inp.source.scene not in names:
        names.append(inp.source.scene)
    return names


class InferenceTarget(Target):
    """Base of the inference.sh targets. Subclasses define the version-specific parts."""

    app = APP
    frames_numbered = False  # v1: first/end frames take image numbers 1 and 2
    input_model: type[BaseModel] = InputBase

    def image_placeholder(self, n: int) -> str:
        raise NotImplementedError

    def video_placeholder(self) -> str:
        raise NotImplementedError

    def extra_fields(self, low: Lowering, project: Project, diags: Diagnostics) -> dict[str, Any]:
        """Version-specific fields, in schema order, placed after `reference_video_type`."""
        raise NotImplementedError

    def quality_fields(self, low: Lowering) -> dict[str, Any]:
        raise NotImplementedError

    # -- the shared lowering ------------------------------------------------------------

    def lower(self, scene: Scene, project: Project, diags: Diagnostics) -> Request | None:
        local = Diagnostics()
        low = Lowering(scene, rules.mode_of(scene))
        self._collect_refs(low, project, local)
        low.prompt = self._substitute(low, project, local)
        body_input = self._build_input(low, project, local)
        self._check_limits(low, body_input, local)
        # The schema check is the last guard: when the scene already has errors (from the
        # rules or from lowering), the same fault would only be reported twice.
        if not local.has_errors and not diags.has_errors:
            self._validate(scene, body_input, local)
        app = self._app(scene, local)
        diags.extend(local)
        if local.has_errors:
            return None
        body = {"app": app, "input": body_input}
        upstream: dict[str, None] = {}
        for v in _walk_markers(body_input):
            if SCENE_MARKER in v:
                upstream.setdefault(v[SCENE_MARKER], None)
        video = scene.video
        return Request(
            scene=scene.name,
            target=self.name,
            schema=self.schema,
            app=app,
            body=body,
            takes=int(scene.takes.value),
            upstream=tuple(upstream),
            quality=scene.quality.value,
            duration=body_input.get("duration") if low.mode != rules.EDIT else None,
            has_video_input=video is not None,
            mode=low.mode,
            base_video=marker(video.input.source) if video and video.mode == "base" else None,
            notes=tuple(low.notes),
            prompt_as_written=scene.prompt,
        )

    def _app(self, scene: Scene, diags: Diagnostics) -> str:
        """The app the request goes to: the target's, or the scene's `app` setting, which
        may pin a version (`klingai/video-o1@VERSION`) but not name another app."""
        if scene.app is None:
            return self.app
        app = str(scene.app.value)
        base = self.app.split("@", 1)[0]
        if app.split("@", 1)[0] != base:
            diags.error(
                "E301",
                f'target "{self.name}" sends to {base}, not to "{app}"',
                scene.app.span,
                hint=f'`app` pins the version of {base}: app = "{base}@VERSION"',
            )
        return app

    def _collect_refs(self, low: Lowering, project: Project, diags: Diagnostics) -> None:
        by_value: dict[Any, _Ref] = {}

        def add(inp: Input, names: list[str], element: str | None) -> None:
            value = marker(inp.source)
            ident = _key(value)
            ref = by_value.get(ident)
            if ref is None:
                ref = by_value[ident] = _Ref(value, [], element)
                low.refs.append(ref)
            ref.names.extend(n for n in names if n not in ref.names)

        for img in low.scene.images:
            add(img, _names(img), None)
        lowered: list[str] = []
        for use in low.scene.elements:
            element = project.elements.get(use.name)
            if element is None:
                continue  # the resolver reports unknown names
            add(element.frontal, [element.name, *_names(element.frontal)], element.name)
            for ref in element.refs:
                add(ref, _names(ref), element.name)
            lowered.append(element.name)
            diags.note(
                "W232",
                f"element `{element.name}` is sent as {1 + len(element.refs)} "
                f"reference image(s): {self.name} has no elements field",
                use.span,
            )
        if lowered:
            low.notes.append(
                "elements sent as reference images (frontal, then other angles): "
                + ", ".join(lowered)
            )

    def _placeholders(self, low: Lowering) -> dict[str, str | None]:
        """Name → placeholder; None for a name that has no placeholder on this target."""
        scene = low.scene
        table: dict[str, str | None] = {}
        if scene.video is not None:
            for n in _names(scene.video.input):
                table.setdefault(n, self.video_placeholder())
        offset = 0
        if self.frames_numbered:
            offset = (scene.first_frame is not None) + (scene.end_frame is not None)
        for i, ref in enumerate(low.refs):
            for n in ref.names:
                table.setdefault(n, self.image_placeholder(offset + i + 1))
        frames = [scene.first_frame, scene.end_frame]
        for i, inp in enumerate(f for f in frames if f is not None):
            for n in _names(inp):
                table.setdefault(n, self.image_placeholder(i + 1) if self.frames_numbered else None)
        return table

    def _substitute(self, low: Lowering, project: Project, diags: Diagnostics) -> str:
        """The prompt with every mention replaced by its placeholder. An element's
        `description` follows its first mention, in parentheses: these schemas have no
        field for it, and the prompt is where the model reads what its references are."""
        scene = low.scene
        table = self._placeholders(low)
        described: set[str] = set()
        frame_names = (
            {n: "the first frame" for n in _names(scene.first_frame)} if scene.first_frame else {}
        )
        if scene.end_frame:
            for n in _names(scene.end_frame):
                frame_names.setdefault(n, "the end frame")
        out: list[str] = []
        pos = 0
        for m in sorted(scene.mentions, key=lambda m: m.start):
            if m.start < pos or m.end > len(scene.prompt):
                continue
            out.append(scene.prompt[pos : m.start])
            pos = m.end
            if m.name in table and table[m.name] is not None:
                out.append(str(table[m.name]))
                element = project.elements.get(m.name)
                if element is not None and element.description and m.name not in described:
                    described.add(m.name)
                    out.append(f" ({' '.join(element.description.split())})")
                    low.notes.append(
                        f"@{m.name}: its description follows its first mention in the prompt"
                    )
            elif m.name in table:
                phrase = frame_names.get(m.name, "the first frame")
                out.append(phrase)
                diags.warning(
                    "W234",
                    f"`@{m.name}` is {phrase}, which has no placeholder on "
                    f'{self.name}; sent as "{phrase}"',
                    m.span,
                    hint="describe the frame in words, or use the v1 target",
                )
                low.notes.append(f'@{m.name} → "{phrase}" (frames have no placeholder)')
            else:
                out.append(scene.prompt[m.start : m.end])
                diags.warning(
                    "W235",
                    f"`@{m.name}` is not an input of scene `{scene.name}`; sent as written",
                    m.span,
                    hint="mention only the scene's images, elements and video",
                )
        out.append(scene.prompt[pos:])
        return "".join(out)

    def _build_input(self, low: Lowering, project: Project, diags: Diagnostics) -> dict[str, Any]:
        scene = low.scene
        inp: dict[str, Any] = {"prompt": low.prompt}
        if scene.first_frame is not None:
            inp["image"] = marker(scene.first_frame.source)
        if scene.end_frame is not None:
            inp["end_image"] = marker(scene.end_frame.source)
        if low.refs:
            inp["reference_images"] = [r.value for r in low.refs]
        if scene.video is not None:
            inp["reference_video"] = marker(scene.video.input.source)
            inp["reference_video_type"] = scene.video.mode
        inp.update(self.extra_fields(low, project, diags))
        inp.update(self.quality_fields(low))
        if rules.needs_aspect(scene) and scene.aspect is not None:
            inp["aspect_ratio"] = scene.aspect.value
            if scene.aspect.origin != "scene":
                low.notes.append(
                    f"aspect_ratio {scene.aspect.value} taken from {rules.where_from(scene.aspect)}"
                )
        elif scene.aspect is not None:
            low.notes.append(
                "aspect_ratio not sent: "
                + ("the edited video" if low.mode == rules.EDIT else "the first frame")
                + " decides the shape"
            )
        if low.mode == rules.EDIT:
            if scene.duration is not None:
                low.notes.append("duration not sent: editing keeps the input video's length")
        elif scene.duration is None:
            inp["duration"] = DEFAULT_DURATION
            low.notes.append(f"duration not set: {DEFAULT_DURATION} s (the provider's default)")
        else:
            inp["duration"] = scene.duration.value
        if scene.watermark.origin != "builtin":
            inp["watermark"] = bool(scene.watermark.value)
        return inp

    def _check_limits(self, low: Lowering, inp: dict[str, Any], diags: Diagnostics) -> None:
        scene = low.scene
        if len(low.prompt) > MAX_PROMPT:
            diags.error(
                "E230",
                f"the prompt of `{scene.name}` is {len(low.prompt)} characters "
                f"on {self.name}; at most {MAX_PROMPT}",
                scene.prompt_span,
                hint="the limit counts the prompt after templating and placeholders",
            )
        refs = inp.get("reference_images") or []
        limit = MAX_REFERENCES_WITH_VIDEO if scene.video else MAX_REFERENCES
        from_elements = sum(1 for r in low.refs if r.element)
        if len(refs) > limit and from_elements:
            diags.error(
                "E231",
                f"`{scene.name}` sends {len(refs)} reference images on "
                f"{self.name} ({from_elements} of them from elements); at most {limit}",
                scene.span,
                hint="give elements fewer extra angles, or use fewer references in this scene",
            )

    def _validate(self, scene: Scene, inp: dict[str, Any], diags: Diagnostics) -> None:
        """The final payload must validate against the pydantic model of its schema."""
        try:
            self.input_model.model_validate(inp)
        except ValidationError as exc:
            for err in exc.errors():
                loc = ".".join(str(p) for p in err["loc"])
                name = str(err["loc"][0]) if err["loc"] else ""
                diags.error(
                    "E236",
                    f"`{scene.name}` does not fit the {self.schema} schema at "
                    f"`{loc}`: {err['msg']}",
                    _field_span(scene, name),
                )


def _field_span(scene: Scene, name: str) -> Span:
    """Where in the story the payload field `name` came from."""
    spans: dict[str, Span | None] = {
        "prompt": scene.prompt_span,
        "image": scene.first_frame.span if scene.first_frame else None,
        "end_image": scene.end_frame.span if scene.end_frame else None,
        "reference_video": scene.video.span if scene.video else None,
        "reference_video_type": scene.video.span if scene.video else None,
        "keep_original_sound": (
            scene.video.keep_sound.span if scene.video and scene.video.keep_sound else None
        ),
        "resolution": scene.quality.span,
        "mode": scene.quality.span,
        "aspect_ratio": scene.aspect.span if scene.aspect else None,
        "duration": scene.duration.span if scene.duration else None,
        "watermark": scene.watermark.span,
    }
    return spans.get(name) or scene.span


def _walk_markers(value: Any) -> list[dict[str, Any]]:
    # Unlike `storyc.targets.request.iter_markers` (sorted keys), this keeps the body's field
    # order, which is the first-use order `Request.upstream` promises.
    out: list[dict[str, Any]] = []
    if isinstance(value, dict):
        if SCENE_MARKER in value or FILE_MARKER in value:
            return [value]
        for v in value.values():
            out.extend(_walk_markers(v))
    elif isinstance(value, list):
        for v in value:
            out.extend(_walk_markers(v))
    return out
