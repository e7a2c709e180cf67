"""Resolver: syntax trees of a loaded story to the resolved `storyc.resolve.model.Project`.

Stage: second stage of the front end, after `storyc.lang.loader`. In: `Loaded` (trees in
declaration order), a `Diagnostics` to report into, a `DigestCache`. Out: `Project`
(names bound, includes merged, defaults and styles applied, prompts rendered, media
found, hashed and probed), or None when loading failed; every problem is reported as
E1xx/W1xx and resolution goes on so one run shows them all. I/O: through
`storyc.resolve.files` only (stat, headers, digests).

Settings of a scene come from layers, later winning: the project block, `defaults`,
the style chain (root first), the scene itself; `Setting.origin` says which. `vars`
merge across layers; `video`, `motion` and `edit` are one slot.
`storyc.compiler.frontend` (load + resolve, with the registry's target names) is what the golden
tests run.
"""

from __future__ import annotations

import os
import re
from collections.abc import Sequence
from pathlib import Path

from storyc.base.diagnostics import Diagnostics, Span
from storyc.base.hashing import DigestCache
from storyc.lang import ast
from storyc.lang.loader import Loaded, LoadedFile
from storyc.resolve.context import KIND_WORDS, Layer, Named, Names
from storyc.resolve.files import FileResolver
from storyc.resolve.model import (
    DEFAULT_TARGET,
    TRANSITIONS,
    Asset,
    Cut,
    CutClip,
    Element,
    MediaKind,
    Project,
    Scene,
    Setting,
    Transition,
)
from storyc.resolve.prompt import build_scene
from storyc.resolve.scene import SceneResolver
from storyc.resolve.values import (
    BACKENDS,
    CUT_ENTRY_SETTINGS,
    ELEMENT_SETTINGS,
    PROJECT_DEFAULTS,
    PROJECT_SETTINGS,
    SCENE_SETTINGS,
    as_number,
    check_settings,
    describe,
    did_you_mean,
    is_unset,
    to_python,
)

# Distinct unknown names given a "did you mean" per unit of resolution (the shared
# declarations, one scene, the cuts): a bound per unit, not per run, so that resolving
# one scene again (storyc.compiler.incremental) says what a whole compile says.
MAX_SUGGESTIONS = 200


def resolve(
    loaded: Loaded,
    diags: Diagnostics,
    *,
    digests: DigestCache | None = None,
    targets: Sequence[str] | None = None,
) -> Project | None:
    """Resolve a loaded story. None when it could not be loaded or parsed completely
    (syntax errors are already in `loaded.diagnostics`). `targets` are the target names
    a `target = "..."` may use (the compiler passes the registry's; None accepts any)."""
    if loaded.root is None or loaded.entry is None or not loaded.complete:
        return None
    cache = digests if digests is not None else DigestCache()
    return Resolver(loaded, diags, cache, targets).run()


class Resolver:
    def __init__(
        self,
        loaded: Loaded,
        diags: Diagnostics,
        digests: DigestCache,
        targets: Sequence[str] | None,
        *,
        names: Names | None = None,
        files: FileResolver | None = None,
    ) -> None:
        assert loaded.root is not None and loaded.entry is not None
        self.loaded = loaded
        self.diags = diags
        self.root = loaded.root
        self.files = (
            files
            if files is not None
            else FileResolver(loaded.root, digests, loaded.allowed or None)
        )
        self.names: Names = names if names is not None else Names()
        self.lets: dict[str, tuple[ast.Let, LoadedFile]] = {}
        self.project_decl: tuple[ast.ProjectDecl, LoadedFile] | None = None
        self.defaults: list[Layer] = []
        self.used: set[str] = set()
        self.targets = targets
        self.assets_by_name: dict[str, Asset] = {}
        self._hints: dict[tuple[str, tuple[str, ...]], str | None] = {}  # (name, pool) → hint
        self._suggested = 0
        self.sr: SceneResolver | None = None

    # collection --------------------------------------------------------------
    def _declare(self, kind: str, name: str, span: Span, decl: ast.Decl, f: LoadedFile) -> None:
        first = self.names.get(name)
        if first is not None:
            self.diags.error(
                "E101",
                f"`{name}` is declared twice (first as {KIND_WORDS[first.kind]}, "
                f"then as {KIND_WORDS[kind]})",
                span,
                hint="assets, elements, styles, scenes and cuts share one set of names; "
                "rename one of them",
                notes=((f"`{name}` is first declared here", first.span),),
            )
            return
        self.names[name] = Named(kind, decl, f, span)

    def _collect(self) -> None:
        for f, item in self.loaded.declarations():
            if isinstance(item, ast.ProjectDecl):
                self._collect_project(item, f)
            elif isinstance(item, ast.Let):
                first = self.lets.get(item.name)
                if first is not None:
                    self.diags.error(
                        "E101",
                        f"variable `{item.name}` is defined twice",
                        item.name_span,
                        hint="remove or rename one of them",
                        notes=(("first defined here", first[0].name_span),),
                    )
                else:
                    self.lets[item.name] = (item, f)
            elif isinstance(item, ast.AssetDecl):
                self._declare(item.kind, item.name, item.name_span, item, f)
            elif isinstance(item, ast.ElementDecl):
                self._declare("element", item.name, item.name_span, item, f)
            elif isinstance(item, ast.StyleDecl):
                self._declare("style", item.name, item.name_span, item, f)
            elif isinstance(item, ast.SceneDecl):
                self._declare("scene", item.name, item.name_span, item, f)
            elif isinstance(item, ast.CutDecl):
                self._declare("cut", item.name, item.name_span, item, f)
            elif isinstance(item, ast.DefaultsDecl):
                allowed = tuple(s for s in SCENE_SETTINGS if s not in ("use", "prompt"))
                settings = check_settings(item.settings, allowed, "the defaults block", self.diags)
                unknown = any(s.name not in allowed for s in item.settings)
                self.defaults.append(Layer("defaults", settings, f, unknown))

    def _collect_project(self, item: ast.ProjectDecl, f: LoadedFile) -> None:
        if f.label != self.loaded.entry:
            self.diags.error(
                "E014",
                f"a `project` block in an included file ({f.label})",
                item.span,
                hint=f"keep the one `project` block in the entry file "
                f"{self.loaded.entry}; included files hold shared declarations",
            )
        elif self.project_decl is not None:
            self.diags.error(
                "E014",
                "a second `project` block",
                item.span,
                hint="merge the settings into the first `project` block",
                notes=(("the first one is here", self.project_decl[0].span),),
            )
        else:
            self.project_decl = (item, f)

    # the run -------------------------------------------------------------------
    # `run` is `prepare`, `scene` for every scene, `cuts`, `unused`, `project`: the same
    # phases `storyc.compiler.incremental` drives one declaration at a time.
    def run(self) -> Project:
        self.prepare()
        scenes = {}
        for name, named in self.names.items():
            if named.kind == "scene":
                assert isinstance(named.decl, ast.SceneDecl)
                scenes[name] = self.scene(named.decl, named.file)
        cuts = self.cuts()
        self.unused()
        return self.project(scenes, cuts)

    def prepare(self) -> None:
        """Everything a scene is resolved against: the name table, the project block,
        `let`s, assets, elements, and the checked layers of defaults and styles."""
        self._suggested = 0
        self._collect()
        entry = self.loaded.files[0]
        self.title = self.root.name
        project_layer: dict[str, ast.Setting] = {}
        self.other: dict[str, Setting[object]] = {}
        sr = self.sr = SceneResolver(self)
        self.target: Setting[str] = Setting(DEFAULT_TARGET, None, "builtin")
        project_unknown = False
        if self.project_decl is not None:
            decl, _ = self.project_decl
            settings = check_settings(
                decl.settings, PROJECT_SETTINGS, "the project block", self.diags
            )
            project_unknown = any(s.name not in PROJECT_SETTINGS for s in decl.settings)
            if decl.title is not None:
                self.title = decl.title
            for key, s in settings.items():
                if key in PROJECT_DEFAULTS:
                    project_layer[key] = s
                    continue
                if key == "shared_folders":
                    self._shared_folders(s)
                    continue
                value = sr.scalar(s)
                if value is None:
                    continue
                if key == "name":
                    self.title = str(value)
                else:
                    self.other[key] = Setting(value, s.value.span, "project")
            if "target" in project_layer:
                t = sr.scalar(project_layer["target"])
                if t is not None:
                    self.target = Setting(str(t), project_layer["target"].value.span, "project")
        self.other.setdefault("backend", Setting(BACKENDS[0], None, "builtin"))
        self.variables = self._variables()
        self.assets = self._assets()
        self.elements = self._elements(sr)
        sr.prepare(
            Layer("project", project_layer, entry, project_unknown), self.defaults, self.variables
        )
        sr.checkpoint()

    def scene(
        self,
        decl: ast.SceneDecl,
        f: LoadedFile,
        *,
        diags: Diagnostics | None = None,
        used: set[str] | None = None,
    ) -> Scene:
        """Resolve one scene against the prepared rest of the story. `diags` and `used`
        (when given) collect this scene's problems and the names it uses instead of the
        resolver's own, so a caller can keep them per scene."""
        sr = self.sr
        assert sr is not None, "prepare() first"
        saved = (self.diags, sr.diags, self.used)
        self._suggested = 0
        if diags is not None:
            self.diags = sr.diags = diags
        if used is not None:
            self.used = used
        try:
            return build_scene(sr, decl, f, sr.layers(decl, f))
        finally:
            self.diags, sr.diags, self.used = saved

    def project(self, scenes: dict[str, Scene], cuts: dict[str, Cut]) -> Project:
        entry = self.loaded.files[0]
        return Project(
            name=self.title,
            root=str(self.root),
            entry=self.loaded.entry or entry.label,
            files=tuple(f.label for f in self.loaded.files),
            target=self.target,
            variables=self.variables,
            assets=self.assets,
            elements=self.elements,
            scenes=scenes,
            cuts=cuts,
            settings=self.other,
        )

    def _shared_folders(self, s: ast.Setting) -> None:
        """Check `shared_folders` (the loader already uses the well-formed ones)."""
        values = s.value.items if isinstance(s.value, ast.ListV) else [s.value]
        for v in values:
            if not isinstance(v, ast.Str) or not v.value.strip() or "\0" in v.value:
                self.diags.error(
                    "E141",
                    f"`shared_folders` lists folders as paths in quotes, found {describe(v)}",
                    v.span,
                    hint='for example: shared_folders = ["../brand-assets"]',
                )
                continue
            real = Path(os.path.realpath(Path(self.root, v.value.strip())))
            try:
                is_dir, exists = real.is_dir(), real.exists()
            except OSError:  # a name too long for the file system, and the like
                is_dir = exists = False
            if not is_dir:
                self.diags.error(
                    "E141",
                    f'shared folder "{v.value}" is not a folder'
                    + ("" if exists else " (it does not exist)"),
                    v.span,
                    hint="paths in `shared_folders` are relative to the entry file's folder",
                )
            elif real == Path(real.anchor):
                self.diags.error(
                    "E141",
                    f'shared folder "{v.value}" is the root of the file system',
                    v.span,
                    hint="list the folder that holds the shared assets, not the whole disk",
                )

    def _variables(self) -> dict[str, object]:
        out: dict[str, object] = {}
        for name, (let, _) in self.lets.items():
            value = to_python(let.value, self.diags, f"the value of `{name}`")
            if not is_unset(value):
                out[name] = value
        return out

    def _assets(self) -> dict[str, Asset]:
        out: dict[str, Asset] = {}
        for name, named in self.names.items():
            decl = named.decl
            if not isinstance(decl, ast.AssetDecl):
                continue
            kind: MediaKind = "image" if decl.kind == "image" else "video"
            src = self.files.source(
                decl.path.value, Path(named.file.abs_path).parent, kind, decl.path.span, self.diags
            )
            if src is not None:
                out[name] = Asset(name, kind, src, decl.name_span)
        self.assets_by_name = out
        return out

    def _elements(self, sr: SceneResolver) -> dict[str, Element]:
        out: dict[str, Element] = {}
        for name, named in self.names.items():
            decl = named.decl
            if not isinstance(decl, ast.ElementDecl):
                continue
            settings = check_settings(
                decl.settings, ELEMENT_SETTINGS, f"element `{name}`", self.diags
            )
            frontal_s = settings.get("frontal")
            if frontal_s is None:
                self.diags.error(
                    "E115",
                    f"element `{name}` has no `frontal` image",
                    decl.name_span,
                    hint='add frontal = "path/to/front.png" (or an image asset)',
                )
                continue
            frontal = sr.image_input(frontal_s.value, named.file, "frontal", scenes_ok=False)
            refs = []
            if "refs" in settings:
                refs = sr.image_list(settings["refs"], named.file, scenes_ok=False)
            description = None
            if "description" in settings:
                d = sr.scalar(settings["description"])
                description = str(d) if d is not None else None
            if frontal is not None:
                out[name] = Element(name, frontal, tuple(refs), description, decl.name_span)
        return out

    def cuts(self) -> dict[str, Cut]:
        out: dict[str, Cut] = {}
        self._suggested = 0
        for name, named in self.names.items():
            decl = named.decl
            if isinstance(decl, ast.CutDecl):
                out[name] = self._cut(decl)
        return out

    def _cut(self, decl: ast.CutDecl) -> Cut:
        """A cut's entries: scenes with their trims, and the transitions between them
        (E260-E263 here; trims against the scenes' lengths are checked in check.graph)."""
        clips: list[CutClip] = []
        pending: Transition | None = None
        last: ast.CutItem | None = None  # the item before, written (even if it had errors)
        lonely: ast.CutTransition | None = None
        for item in decl.items:
            if isinstance(item, ast.CutTransition):
                if last is None or isinstance(last, ast.CutTransition):
                    self._lonely_transition(item, "before it")
                    lonely = item  # one complaint per transition
                last = item
                pending = self._transition(item)
                continue
            last = item
            scene = self.lookup_scene(item.value, "a cut")
            start, end = self._trim(item.trim)
            if scene is not None:
                clips.append(CutClip(scene, item.value.span, start, end, pending))
            pending = None
        if isinstance(last, ast.CutTransition) and last is not lonely:
            self._lonely_transition(last, "after it")
        scenes = tuple((c.scene, c.span) for c in clips)
        d = decl.span
        extent = Span(
            d.file, decl.name_span.line, decl.name_span.col, d.end_line, d.end_col,
            decl.name_span.start, d.end,
        )  # fmt: skip
        return Cut(decl.name, scenes, decl.name_span, tuple(clips), extent)

    def _lonely_transition(self, item: ast.CutTransition, where: str) -> None:
        self.diags.error(
            "E262",
            f"`{item.kind}` has no scene {where} to join",
            item.span,
            hint="a transition goes between two scenes: [intro, crossfade(0.5), chase]",
        )

    def _transition(self, item: ast.CutTransition) -> Transition | None:
        if item.kind not in TRANSITIONS:
            hint = did_you_mean(item.kind, TRANSITIONS) or (
                "transitions: " + ", ".join(f"{t}(seconds)" for t in TRANSITIONS)
            )
            self.diags.error("E260", f"unknown transition `{item.kind}`", item.kind_span, hint=hint)
            return None
        if not item.length.value > 0:
            self.diags.error(
                "E261",
                f"a {item.kind} must last more than 0 s, found {item.length.text}",
                item.length.span,
                hint=f"for example: {item.kind}(0.5)",
            )
            return None
        return Transition(item.kind, float(item.length.value), item.span)

    def _trim(self, block: ast.Block | None) -> tuple[Setting[float] | None, Setting[float] | None]:
        if block is None:
            return None, None
        settings = check_settings(block.settings, CUT_ENTRY_SETTINGS, "a cut entry", self.diags)
        found: dict[str, Setting[float]] = {}
        for key, s in settings.items():
            value = as_number(s, self.diags, minimum=0)
            if not is_unset(value):
                found[key] = Setting(float(value), s.value.span)
        start, end = found.get("in"), found.get("out")
        if start is not None and end is not None and not end.value > start.value:
            self.diags.error(
                "E263",
                f"`out = {end.value:g}` is not after `in = {start.value:g}`: nothing would play",
                end.span,
                hint="the out point is a time in the scene's video after the in point",
                notes=(("the in point", start.span),) if start.span else (),
            )
            return None, None
        return start, end

    def lookup_scene(self, v: ast.Value, where: str) -> str | None:
        if not isinstance(v, ast.Ref) or v.attr is not None:
            self.diags.error(
                "E104",
                f"{where} lists scenes by name, found {describe(v)}",
                v.span,
                hint="for example: cut final = [intro, chase { in = 1, out = 4 }, ending]",
            )
            return None
        named = self.names.get(v.name)
        if named is None:
            self.unknown(v.name, v.name_span, ("scene",))
            return None
        if named.kind != "scene":
            self.diags.error(
                "E111",
                f"`{v.name}` is {KIND_WORDS[named.kind]}, but {where} lists scenes",
                v.span,
                notes=((f"`{v.name}` is declared here", named.span),),
            )
            return None
        return v.name

    def unknown(
        self, name: str, span: Span, kinds: tuple[str, ...], what: str = "name", code: str = "E110"
    ) -> None:
        pool = self.names.pool(kinds)
        key = (name, tuple(pool))  # the names change between the engine's runs
        if key in self._hints:
            hint = self._hints[key]
        elif self._suggested < MAX_SUGGESTIONS:
            # "did you mean" compares with every declared name: a story of thousands of
            # unknown names over thousands of declared ones would take minutes
            self._suggested += 1
            hint = self._hints[key] = did_you_mean(name, pool)
        else:
            hint = None
        if hint is None:
            hint = "nothing by that name is declared; check the spelling, or declare it"
            if kinds == ("element",):
                hint = f'declare it: element {name} {{ frontal = "{name}.png" }}'
            elif kinds == ("style",):
                hint = f"declare it: style {name} {{ ... }}"
            if pool and len(pool) <= 8:
                hint += " (declared: " + ", ".join(pool) + ")"
        if code == "E123" and re.fullmatch(r"(image|video|element)_?\d+", name):
            hint = (
                "mention inputs by their names (@market, @mei); storyc numbers them "
                "for the provider itself"
            )
        self.diags.error(code, f"unknown {what} `{name}`", span, hint=hint)

    def unused(self) -> None:
        for name, named in self.names.items():
            if named.kind in ("image", "video", "element", "style") and name not in self.used:
                noun = KIND_WORDS[named.kind].split(" ", 1)[1]
                self.diags.warning(
                    "W101",
                    f"{noun} `{name}` is never used",
                    named.span,
                    hint="use it in a scene, or remove it",
                )
