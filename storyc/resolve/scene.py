"""Resolver helpers: one scene's settings, inputs, prompt and mentions.

Stage: part of the resolver (`storyc.resolve.resolver`). In: a scene declaration, the layers it
inherits from (project, defaults, styles) and the resolver's name table. Out: a
`storyc.resolve.model.Scene` with every value carrying its span and origin, plus E1xx/W1xx
diagnostics. No I/O of its own (files go through `storyc.resolve.files`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyc.base.diagnostics import Span
from storyc.lang import ast
from storyc.resolve.context import KIND_WORDS, Layer, LineIndex
from storyc.resolve.model import (
    ASPECTS,
    DURATION_MAX,
    DURATION_MIN,
    MAX_JOBS,
    MAX_TAKES,
    QUALITIES,
    ElementUse,
    Input,
    Mention,
    Scene,
    SceneOutput,
    Setting,
    VideoInput,
)
from storyc.resolve.templating import Problem, Templates
from storyc.resolve.values import (
    BACKENDS,
    SCENE_SETTINGS,
    VIDEO_SLOT,
    as_app,
    as_base_url,
    as_bool,
    as_enum,
    as_int,
    as_number,
    as_remote,
    as_str,
    as_target,
    as_webhook,
    check_settings,
    describe,
    is_unset,
    to_python,
)

if TYPE_CHECKING:
    from storyc.lang.loader import LoadedFile
    from storyc.resolve.context import Context


FRAME_PARTS = ("first_frame", "last_frame", "frame")
MAX_STYLE_DEPTH = 64  # styles a style may inherit through
_BAD: Any = object()


@dataclass
class Layered:
    """What `SceneResolver.layers` found for one scene."""

    eff: dict[str, tuple[ast.Setting, Layer]]  # setting name -> (setting, layer it came from)
    video_layer: Layer | None  # the layer that set the video slot
    variables: dict[str, Any]  # merged `vars`
    uncertain: bool  # a layer has an unknown setting, or its style chain is broken


class SceneResolver:
    def __init__(self, r: Context) -> None:
        self.r = r
        self.diags = r.diags
        self.templates = Templates()
        self._memo: dict[int, Any] = {}
        self.base: list[Layer] = []
        self.variables: dict[str, object] = {}
        self._chains: dict[str, list[Layer] | None] = {}
        self._visiting: list[str] = []
        self._style_parent: dict[str, str] = {}  # each style's parent style (`_parents_first`)
        self._lines: dict[str, LineIndex] = {}
        self._shared: dict[int, Any] = {}

    # plain values --------------------------------------------------------------
    def scalar(self, s: ast.Setting) -> Any:
        """The checked value of a scalar setting, or None when it is wrong (reported)."""
        key = id(s)
        if key in self._memo:
            v = self._memo[key]
            return None if v is _BAD else v
        d = self.diags
        n = s.name
        if n == "quality":
            v = as_enum(s, d, QUALITIES)
        elif n == "aspect":
            v = as_enum(s, d, ASPECTS)
        elif n == "backend":
            v = as_enum(s, d, BACKENDS)
        elif n == "duration":
            v = as_int(
                s,
                d,
                DURATION_MIN,
                "a whole number of seconds",
                DURATION_MAX,
                code="E204",
                why=f"a scene lasts {DURATION_MIN} to {DURATION_MAX} s; 5 or 10 without references",
                suggest=5,
            )
        elif n == "takes":
            v = as_int(s, d, 1, maximum=MAX_TAKES, why="each take is a separate render")
        elif n == "jobs":
            v = as_int(s, d, 1, maximum=MAX_JOBS)
        elif n in ("watermark", "keep_sound"):
            v = as_bool(s, d)
        elif n == "target":
            v = as_target(s, d, self.r.targets)
        elif n == "base_url":
            v = as_base_url(s, d)
        elif n == "remote":
            v = as_remote(s, d)
        elif n == "webhook":
            v = as_webhook(s, d)
        elif n == "app":
            v = as_app(s, d)
        elif n == "max_cost":
            v = as_number(s, d, 0)
        else:  # prompt, name, description
            v = as_str(s, d)
        self._memo[key] = _BAD if is_unset(v) else v
        return None if is_unset(v) else v

    # inputs --------------------------------------------------------------------
    def image_input(
        self, v: ast.Value, f: LoadedFile, slot: str, *, scenes_ok: bool = True
    ) -> Input | None:
        key = id(v)
        if key in self._memo:
            hit = self._memo[key]
            return None if hit is _BAD else hit
        result = self._image_input(v, f, slot, scenes_ok)
        self._memo[key] = _BAD if result is None else result
        return result

    def _image_input(self, v: ast.Value, f: LoadedFile, slot: str, scenes_ok: bool) -> Input | None:
        r = self.r
        if isinstance(v, ast.Str):
            src = r.files.source(v.value, Path(f.abs_path).parent, "image", v.span, self.diags)
            return Input(src, None, v.span) if src is not None else None
        frames = "`scene.last_frame`, " if scenes_ok else ""
        if not isinstance(v, ast.Ref) or (v.attr is None and v.name in ("true", "false")):
            self.diags.error(
                "E104",
                f"`{slot}` must be an image, found {describe(v)}",
                v.span,
                hint=f"an image asset's name, {frames}or a path in double quotes",
            )
            return None
        named = r.names.get(v.name)
        if named is None:
            r.unknown(v.name, v.name_span, ("image", "scene") if scenes_ok else ("image",))
            return None
        r.used.add(v.name)
        if named.kind == "image":
            if v.attr is not None:
                self.diags.error(
                    "E112",
                    f"`{v.name}` is an image asset; it has no `.{v.attr}`",
                    v.attr_span or v.span,
                    hint=f"write just `{v.name}`",
                )
                return None
            asset = r.assets_by_name.get(v.name)
            return Input(asset.source, v.name, v.span) if asset is not None else None
        if named.kind == "scene" and scenes_ok:
            out = self._frame(v)
            return Input(out, v.name, v.span) if out is not None else None
        if named.kind == "scene":
            what = "an element's images must be files or image assets, not a scene's frames"
        elif named.kind == "video":
            what = f"`{slot}` needs an image; a video goes in `video =` or `edit =`"
        elif named.kind == "element":
            what = f"list elements in `elements = [{v.name}]` or mention them as @{v.name}"
        else:
            what = f"`{slot}` needs an image"
        self.diags.error(
            "E111",
            f"`{v.name}` is {_kind_word(named.kind)}, not an image",
            v.span,
            hint=what,
            notes=((f"`{v.name}` is declared here", named.span),),
        )
        return None

    def _frame(self, v: ast.Ref) -> SceneOutput | None:
        if v.attr is None:
            self.diags.error(
                "E111",
                f"`{v.name}` is a scene (its output is a video), but an image is needed here",
                v.span,
                hint=f"use a frame of it: `{v.name}.last_frame`, "
                f"`{v.name}.first_frame` or `{v.name}.frame(2.5)`",
            )
            return None
        span = v.attr_span or v.span
        if v.attr not in FRAME_PARTS:
            self.diags.error(
                "E112",
                f"a scene has no `.{v.attr}`",
                span,
                hint="use `.last_frame`, `.first_frame` or `.frame(SECONDS)`",
            )
            return None
        if v.attr == "frame":
            if v.arg is None:
                self.diags.error(
                    "E112",
                    "`.frame` needs a time in seconds",
                    span,
                    hint=f"for example: {v.name}.frame(2.5)",
                )
                return None
            if v.arg.value < 0:
                self.diags.error("E106", "a frame time must be 0 seconds or more", v.arg.span)
                return None
            return SceneOutput(v.name, "frame", float(v.arg.value))
        if v.arg is not None:
            self.diags.error(
                "E112",
                f"`.{v.attr}` takes no time",
                v.arg.span,
                hint=f"write `{v.name}.{v.attr}`, or `{v.name}.frame(SECONDS)`",
            )
            return None
        return SceneOutput(v.name, v.attr)  # type: ignore[arg-type]

    def image_list(self, s: ast.Setting, f: LoadedFile, *, scenes_ok: bool = True) -> list[Input]:
        items = s.value.items if isinstance(s.value, ast.ListV) else [s.value]
        out: list[Input] = []
        for item in items:
            inp = self.image_input(item, f, s.name, scenes_ok=scenes_ok)
            if inp is not None:
                out.append(inp)
        return out

    def video_input(self, v: ast.Value, f: LoadedFile, slot: str) -> Input | None:
        r = self.r
        if isinstance(v, ast.Str):
            src = r.files.source(v.value, Path(f.abs_path).parent, "video", v.span, self.diags)
            return Input(src, None, v.span) if src is not None else None
        if not isinstance(v, ast.Ref) or (v.attr is None and v.name in ("true", "false")):
            self.diags.error(
                "E104",
                f"`{slot}` must be a video, found {describe(v)}",
                v.span,
                hint="a video asset's name, a scene's name, or a path in quotes",
            )
            return None
        named = r.names.get(v.name)
        if named is None:
            r.unknown(v.name, v.name_span, ("video", "scene"))
            return None
        r.used.add(v.name)
        if named.kind in ("video", "scene") and v.attr is not None:
            self.diags.error(
                "E112",
                f"`{slot}` takes a whole video; `.{v.attr}` is not allowed",
                v.attr_span or v.span,
                hint=f"write `{slot} = {v.name}`",
            )
            return None
        if named.kind == "video":
            asset = r.assets_by_name.get(v.name)
            return Input(asset.source, v.name, v.span) if asset is not None else None
        if named.kind == "scene":
            return Input(SceneOutput(v.name, "video"), v.name, v.span)
        hint = (
            "an image goes in `start =`, `end =` or `refs =`"
            if named.kind == "image"
            else f"`{slot}` needs a video asset or a scene"
        )
        self.diags.error(
            "E111",
            f"`{v.name}` is {_kind_word(named.kind)}, not a video",
            v.span,
            hint=hint,
            notes=((f"`{v.name}` is declared here", named.span),),
        )
        return None

    # layers --------------------------------------------------------------------
    def prepare(self, project: Layer, defaults: list[Layer], variables: dict[str, object]) -> None:
        self.base = [project, *defaults]
        self.variables = variables
        for layer in self.base:
            self._check_layer(layer)
        for name in self._parents_first():
            self._style_chain(name)

    def _parents_first(self) -> list[str]:
        """Every style, each after the style it inherits from: each chain is then made
        from its parent's, already made, whatever order the styles are declared in (so
        how deep a chain is, E145, does not depend on that order, and no chain is
        followed by recursion). Styles in a cycle come last, in declaration order."""
        styles = [n for n, named in self.r.names.items() if named.kind == "style"]
        parent: dict[str, str] = {}
        for name in styles:
            decl = self.r.names[name].decl
            assert isinstance(decl, ast.StyleDecl)
            # the parent `_parent` follows: the first `use =` wins over `: parent` (both
            # is E103), so the order is that of the chains `_style_chain` makes
            use = next((st for st in decl.settings if st.name == "use"), None)
            if use is not None:
                v = use.value
                up = v.name if isinstance(v, ast.Ref) and v.attr is None else None
            else:
                up = decl.parent.name if decl.parent is not None else None
            if up is not None and up in self.r.names and self.r.names[up].kind == "style":
                parent[name] = up
        depth: dict[str, int] = {}
        for name in styles:
            path: list[str] = []
            on_path: set[str] = set()
            n: str | None = name
            while n is not None and n not in depth and n not in on_path:
                path.append(n)
                on_path.add(n)
                n = parent.get(n)
            if n is not None and n in on_path:
                # a cycle: its members all alike (made in declaration order, so the cycle
                # is reported where it always was), then the styles below it
                k = path.index(n)
                for m in path[k:]:
                    depth[m] = len(styles)
                path, base = path[:k], len(styles) + 1
            else:
                base = depth[n] + 1 if n is not None else 0
            for i, m in enumerate(reversed(path)):
                depth[m] = base + i
        self._style_parent = parent
        return sorted(styles, key=lambda n: depth[n])  # stable: declaration order in ties

    def _check_layer(self, layer: Layer) -> None:
        """Check a layer's values once, even if no scene ends up using them."""
        for s in layer.settings.values():
            self._value(s, layer.file)

    def resolved(self, s: ast.Setting, f: LoadedFile) -> Any:
        """The checked value of a layer's setting (as scenes inheriting it see it)."""
        return self._value(s, f)

    def _value(self, s: ast.Setting, f: LoadedFile) -> Any:
        n = s.name
        if n in ("start", "end"):
            return self.image_input(s.value, f, n)
        if n == "refs":
            return self.image_list(s, f)
        if n in VIDEO_SLOT:
            return self.video_input(s.value, f, n)
        if n == "elements":
            return self._elements(s)
        if n == "vars":
            return self._vars(s)
        if n in ("use", "prompt"):
            return None
        return self.scalar(s)

    def _vars(self, s: ast.Setting) -> dict[str, Any]:
        key = id(s)
        if key not in self._memo:
            if isinstance(s.value, ast.Block):
                self._memo[key] = to_python(s.value, self.diags, "a template variable")
            else:
                self.diags.error(
                    "E104",
                    f"`vars` must be a block, found {describe(s.value)}",
                    s.value.span,
                    hint='for example: vars { mood = "tense" }',
                )
                self._memo[key] = {}
        return self._memo[key]  # type: ignore[no-any-return]

    def _elements(self, s: ast.Setting) -> list[ElementUse]:
        key = id(s)
        if key in self._memo:
            return self._memo[key]  # type: ignore[no-any-return]
        items = s.value.items if isinstance(s.value, ast.ListV) else [s.value]
        out: list[ElementUse] = []
        for v in items:
            if not isinstance(v, ast.Ref) or v.attr is not None:
                self.diags.error(
                    "E104",
                    f"`elements` lists elements by name, found {describe(v)}",
                    v.span,
                    hint="for example: elements = [mei]",
                )
                continue
            named = self.r.names.get(v.name)
            if named is None:
                self.r.unknown(v.name, v.name_span, ("element",), "element")
                continue
            if named.kind != "element":
                self.diags.error(
                    "E111",
                    f"`{v.name}` is {_kind_word(named.kind)}, not an element",
                    v.span,
                    hint="images go in `refs =`; elements are declared "
                    "with `element NAME { frontal = ... }`",
                )
                continue
            self.r.used.add(v.name)
            out.append(ElementUse(v.name, v.span))
        self._memo[key] = out
        return out

    def style_layers(self, name: str) -> list[Layer] | None:
        """The layers of style `name` as `prepare` found them (None: broken or unknown)."""
        return self._chains.get(name)

    def _style_chain(self, name: str, via: Span | None = None) -> list[Layer] | None:
        """Layers of style `name`, root first; None when it (or an ancestor) is broken."""
        if name in self._chains:
            return self._chains[name]
        self._chains[name] = None  # in progress: a cycle finds None and reports
        self._visiting.append(name)
        named = self.r.names[name]
        decl = named.decl
        assert isinstance(decl, ast.StyleDecl)
        settings = check_settings(decl.settings, SCENE_SETTINGS, f"style `{name}`", self.diags)
        layer = Layer(
            "style",
            {k: v for k, v in settings.items() if k != "use"},
            named.file,
            any(s.name not in SCENE_SETTINGS for s in decl.settings),
        )
        self._check_layer(layer)
        parent = self._parent(decl.parent, settings.get("use"), f"style `{name}`")
        chain: list[Layer] | None = [layer]
        if parent is not None:
            cycle = None
            if parent in self._visiting:
                cycle = self._visiting[self._visiting.index(parent) :] + [parent]
            elif len(self._visiting) >= MAX_STYLE_DEPTH:
                cycle = self._long_cycle(parent)
            if cycle is not None:
                self.diags.error(
                    "E113",
                    "styles inherit from each other in a cycle: " + " -> ".join(cycle),
                    named.span,
                    hint="a style may inherit from another, but not from itself",
                )
                chain = None
            elif len(self._visiting) >= MAX_STYLE_DEPTH:
                # only in a cycle longer than this (parents are made first, see
                # `_parents_first`): following it further would meet Python's recursion
                # limit
                self._too_deep(name, parent, named.span)
                chain = None
            else:
                up = self._style_chain(parent)
                if up is not None and len(up) >= MAX_STYLE_DEPTH:
                    # a chain this deep is not a style sheet
                    self._too_deep(name, parent, named.span)
                    chain = None
                else:
                    chain = None if up is None else [*up, layer]
        self._visiting.pop()
        self._chains[name] = chain
        return chain

    def _long_cycle(self, parent: str) -> list[str] | None:
        """The cycle the styles being made are in, when it is longer than a chain may be
        deep (parents are made first: only a cycle is followed this far). Reported as the
        cycle it is (E113), not as a chain too deep to be a style sheet (E145)."""
        path = list(self._visiting)
        n: str | None = parent
        while n is not None and n not in self._visiting and len(path) <= len(self.r.names):
            path.append(n)
            n = self._style_parent.get(n)
        if n is None or n not in self._visiting:
            return None
        return path[path.index(n) :] + [n]

    def _too_deep(self, name: str, parent: str, span: Span) -> None:
        self.diags.error(
            "E145",
            f"styles inherit from each other more than {MAX_STYLE_DEPTH} deep "
            f"(`{name}` -> `{parent}` -> ...)",
            span,
            hint="flatten the chain: a style may gather the settings of its parents",
        )

    def _parent(self, parent: ast.Ref | None, use: ast.Setting | None, who: str) -> str | None:
        if use is not None:
            if parent is not None:
                self.diags.error(
                    "E103",
                    f"{who} names its style twice (`: {parent.name}` and `use =`)",
                    use.name_span,
                    hint="keep one of them",
                )
            v = use.value
            if not isinstance(v, ast.Ref) or v.attr is not None:
                self.diags.error(
                    "E104",
                    f"`use` names a style, found {describe(v)}",
                    v.span,
                    hint="for example: use = noir",
                )
                return None
            parent = v
        if parent is None:
            return None
        named = self.r.names.get(parent.name)
        if named is None:
            self.r.unknown(parent.name, parent.name_span, ("style",), "style")
            return None
        if named.kind != "style":
            self.diags.error(
                "E113",
                f"`{parent.name}` is {_kind_word(named.kind)}, not a style",
                parent.span,
                hint="inherit from a `style NAME { ... }` block",
                notes=((f"`{parent.name}` is declared here", named.span),),
            )
            return None
        self.r.used.add(parent.name)
        return parent.name

    # scenes --------------------------------------------------------------------
    def layers(self, decl: ast.SceneDecl, f: LoadedFile) -> Layered:
        """A scene's effective settings (each with the layer it came from), the layer
        that set its video slot, its merged `vars`, and whether any layer it inherits from
        is uncertain (an unknown setting, a broken style chain); `prompt.build_scene`
        takes these."""
        own = check_settings(decl.settings, SCENE_SETTINGS, f"scene `{decl.name}`", self.diags)
        parent = self._parent(decl.parent, own.get("use"), f"scene `{decl.name}`")
        chain = self._style_chain(parent) if parent else []
        unknown = any(s.name not in SCENE_SETTINGS for s in decl.settings)
        layers = [*self.base, *(chain or []), Layer("scene", own, f, unknown)]
        uncertain = chain is None or any(layer.unknown for layer in layers)
        if parent is None and (decl.parent is not None or "use" in own):
            uncertain = True  # it names a style that is not one (reported)
        eff: dict[str, tuple[ast.Setting, Layer]] = {}
        video_layer: Layer | None = None
        variables: dict[str, Any] = {}
        for layer in layers:
            if any(k in layer.settings for k in VIDEO_SLOT):
                video_layer = layer
            for k, s in layer.settings.items():
                if k == "vars":
                    variables.update(self._vars(s))
                elif k not in VIDEO_SLOT:
                    eff[k] = (s, layer)
        return Layered(eff, video_layer, variables, uncertain)

    def setting(self, eff: dict[str, tuple[ast.Setting, Layer]], key: str) -> Setting[Any] | None:
        hit = eff.get(key)
        if hit is None:
            return None
        s, layer = hit
        v = self.scalar(s)
        return None if v is None else Setting(v, s.value.span, layer.origin)

    def line_index(self, file: str, text: str) -> LineIndex:
        hit = self._lines.get(file)
        if hit is None or hit.text is not text:
            hit = self._lines[file] = LineIndex(file, text)
        return hit

    def checkpoint(self) -> None:
        """Remember the values checked so far (the shared layers) as the base for scenes."""
        self._shared = dict(self._memo)

    def isolate(self) -> None:
        """Forget what scenes memoized since `checkpoint`. Values are memoized by the
        `id` of their syntax node; once a scene's tree is replaced, a new node may get a
        freed node's `id`, so a resolver that outlives trees calls this before scenes."""
        self._memo = dict(self._shared)

    def render_prompt(
        self, source: str, context: dict[str, Any]
    ) -> tuple[str | None, list[Problem]]:
        out = self.templates.render(source, context)
        return out.text, out.problems


def _kind_word(kind: str) -> str:
    return KIND_WORDS[kind]


__all__ = ["SceneResolver", "Mention", "Scene", "VideoInput"]
