"""The compiler façade: load → resolve → check → lower, in one call.

Stage: all of the compiler core. In: a path (a project directory or an entry `.story`
file), optionally a target name overriding every scene's, a subset of scenes, and
caches from a previous run (watch mode). Out: a `Compilation` with the project, one
`Request` per error-free scene, the dependency order, every diagnostic (sorted) and
the `SourceMap` for rendering them. I/O: reads story files and asset headers only.

Deterministic: the same files give byte-identical `Compilation.dumps()`.
"""

from __future__ import annotations

import copy
import gc
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from storyc.base.diagnostics import (
    Diagnostic,
    Diagnostics,
    Severity,
    SourceMap,
    render_all,
    to_json,
)

# The stages are imported where they are used: a command answered from the compiled state
# (storyc.compiler.state) needs `Compilation`, not Lark, Jinja or pydantic.
if TYPE_CHECKING:
    from storyc.base.hashing import DigestCache
    from storyc.check.graph import Graph
    from storyc.lang.loader import ParseCache
    from storyc.resolve.model import Project, Scene
    from storyc.targets.request import Request


@dataclass(frozen=True)
class Summary:
    """What commands need of a project besides requests and diagnostics, without its
    model (which `storyc.compiler.incremental` builds only when asked for)."""

    name: str
    root: str  # absolute directory of the entry file
    entry: str
    files: tuple[str, ...]  # story files, project-relative, entry first
    scenes: tuple[str, ...]  # every scene, in declaration order
    settings: dict[str, Any]  # project settings as plain values (backend, base_url, ...)
    local_files: tuple[str, ...]  # absolute paths of every local media file it uses


def summary_of(project: Project) -> Summary:
    from storyc.check import rules
    from storyc.resolve.model import LocalFile

    local: dict[str, None] = {}
    for asset in project.assets.values():
        if isinstance(asset.source, LocalFile):
            local[asset.source.abs_path] = None
    for f, _ in rules.element_and_scene_files(project):
        local[f.abs_path] = None
    return Summary(
        project.name,
        project.root,
        project.entry,
        project.files,
        tuple(project.scenes),
        {k: getattr(v, "value", v) for k, v in project.settings.items()},
        tuple(local),
    )


def cut_facts(project: Project) -> dict[str, dict[str, Any]]:
    """Each cut as plain data (`storyc.film.spec` makes its plans of them): `clips`, each
    [scene, in, out, crossfade into it, the scene's length as the story tells it];
    `aspect`, the one most of its scenes ask for (None: they ask for none); `extent`,
    [file, start, end] of its declaration's list."""
    from collections import Counter

    from storyc.check.graph import scene_length

    out: dict[str, dict[str, Any]] = {}
    for name, cut in project.cuts.items():
        clips = [
            [
                c.scene,
                c.start.value if c.start is not None else None,
                c.end.value if c.end is not None else None,
                c.transition.length if c.transition is not None and i > 0 else 0.0,
                scene_length(project, c.scene),
            ]
            for i, c in enumerate(cut.clips)
        ]
        counts = Counter(
            a.value
            for c in cut.clips
            if (s := project.scenes.get(c.scene)) is not None and (a := s.aspect) is not None
        )
        ext = cut.extent
        out[name] = {
            "clips": clips,
            "aspect": counts.most_common(1)[0][0] if counts else None,
            "extent": [ext.file, ext.start, ext.end] if ext is not None else None,
        }
    return out


@dataclass
class Compilation:
    project: Project | None
    requests: dict[str, Request]  # scene → request, only scenes without errors, in `order`
    order: list[str]  # dependency order of the compiled scenes
    diagnostics: list[Diagnostic]  # sorted
    sources: SourceMap
    graph: Graph | None = None
    found: bool = True  # False when `path` holds no project at all
    selected: list[str] = field(default_factory=list)  # the scenes asked for, in order
    # scene → the upstream scene (with errors, or itself blocked) that keeps it from building
    blocked: dict[str, str] = field(default_factory=dict)
    # scene → why the front end's errors keep it from being lowered (see storyc.check.taint)
    broken: dict[str, str] = field(default_factory=dict)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    def cut_facts(self) -> dict[str, dict[str, Any]]:
        """`cut_facts` of the project (an incremental compilation keeps them beside its
        units, so a build need not build the model for them)."""
        found: dict[str, dict[str, Any]] | None = self.__dict__.get("_cut_facts")
        if found is None:
            found = self.__dict__["_cut_facts"] = (
                cut_facts(self.project) if self.project is not None else {}
            )
        return found

    def narrowed(self, order: list[str], requests: dict[str, Request]) -> Compilation:
        """This compilation planned for the scenes `order` only (watch re-plans the few a
        save can change): a shallow copy, the model (if built) shared."""
        new = copy.copy(self)
        new.order = order
        new.selected = list(order)
        new.requests = requests
        new.__dict__.pop("_lineage", None)  # its requests are not the engine's any more
        return new

    def changed_since(self, earlier: Compilation) -> set[str] | None:
        """The scenes whose request may differ from `earlier`'s (replaced, added or
        removed), when that is known without comparing every request: both made by the
        same incremental engine (storyc.compiler.assembly), `earlier` not long before.
        None when not known."""
        mine = self.__dict__.get("_lineage")
        theirs = earlier.__dict__.get("_lineage")
        if mine is None or theirs is None or mine[0] is not theirs[0] or theirs[1] > mine[1]:
            return None
        log = mine[2]
        out: set[str] = set()
        for seq in range(theirs[1] + 1, mine[1] + 1):
            step = log.get(seq)
            if step is None:
                return None
            out |= step
        return out

    def media_duration(self, path: str) -> float | None:
        """The length in seconds of the project's local video `path` (project-relative),
        from its header; None when unknown."""
        from storyc.media import info as mediainfo

        summary = self.summary
        if summary is None:
            return None
        try:
            found = mediainfo.probe(os.path.join(summary.root, path))
        except Exception:  # a header reader must never stop a plan
            return None
        return found.duration if found is not None else None

    def ready(self) -> int:
        """How many scenes have a request (are ready to render)."""
        return len(self.requests)

    def counts(self) -> tuple[int, int, int]:
        """How many errors, warnings and notes."""
        n = [0, 0, 0]
        for d in self.diagnostics:
            n[("error", "warning", "note").index(d.severity.value)] += 1
        return n[0], n[1], n[2]

    def shown(self) -> list[Diagnostic]:
        """Errors and warnings: what commands show unless notes are asked for."""
        return [d for d in self.diagnostics if d.severity is not Severity.NOTE]

    def rendered(self, *, notes: bool = False) -> str:
        """The diagnostics as commands print them (notes only when asked for)."""
        cache = self.__dict__.setdefault("_rendered", {})
        if notes not in cache:
            cache[notes] = render_all(self.diagnostics if notes else self.shown(), self.sources)
        return cache[notes]  # type: ignore[no-any-return]

    @property
    def summary(self) -> Summary | None:
        """The project's name, files, scenes and settings (None without a project)."""
        found: Summary | None = self.__dict__.get("_summary")
        if found is None and self.project is not None:
            found = self.__dict__["_summary"] = summary_of(self.project)
        return found

    def to_json(self) -> dict[str, Any]:
        scenes: dict[str, Any] = {}
        for name in self.order:
            req = self.requests.get(name)
            if req is None:
                continue
            scenes[name] = request_json(req)
        return {
            "project": self.summary.name if self.summary else None,
            "order": [n for n in self.order if n in self.requests],
            "scenes": scenes,
            "diagnostics": [to_json(d) for d in self.diagnostics],
        }

    def dumps(self) -> str:
        """The JSON document, indented: what the golden files hold."""
        return json.dumps(self.to_json(), indent=2, ensure_ascii=False) + "\n"

    def dumps_lines(self) -> str:
        """The same document, laid out one scene (and one diagnostic) per line.

        Line-per-entry keeps it diffable scene by scene, and lets the C encoder do the
        work: `indent=` forces json's pure-Python encoder, 20x slower on big projects."""
        doc = self.to_json()

        def one(value: Any) -> str:
            return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))

        def block(items: list[str], open_: str, close: str) -> str:
            if not items:
                return open_ + close
            return open_ + "\n" + ",\n".join("    " + i for i in items) + "\n  " + close

        scenes = [f"{one(name)}: {one(body)}" for name, body in doc["scenes"].items()]
        diags = [one(d) for d in doc["diagnostics"]]
        return (
            "{\n"
            f'  "project": {one(doc["project"])},\n'
            f'  "order": {one(doc["order"])},\n'
            f'  "scenes": {block(scenes, "{", "}")},\n'
            f'  "diagnostics": {block(diags, "[", "]")}\n'
            "}\n"
        )


def request_json(req: Request) -> dict[str, Any]:
    """A request as `storyc compile --json` shows it (the body exactly as sent)."""
    return {
        "target": req.target,
        "schema": req.schema,
        "mode": req.mode,
        "quality": req.quality,
        "duration": req.duration,
        "takes": req.takes,
        "upstream": list(req.upstream),
        "notes": list(req.notes),
        "body": req.body,
    }


def compile_project(
    path: str | os.PathLike[str],
    *,
    target: str | None = None,
    scenes: list[str] | None = None,
    parse_cache: ParseCache | None = None,
    digests: DigestCache | None = None,
    overlays: Mapping[str, str] | None = None,
    read: Callable[[str], bytes] | None = None,
) -> Compilation:
    """Compile the project at `path`. Never raises for a bad story: problems are diagnostics.

    `overlays` (absolute path → text) stand for files on disk: an editor's unsaved buffers.

    `target` overrides every scene's target; `scenes` restricts checking and lowering to
    those scenes (unknown names are E246 errors); the graph always covers the whole story.
    A scene gets no request when it has errors, or a declaration it names has errors
    (`Compilation.broken` says why), is in or behind a cycle, or uses the output of a
    selected scene that gets none (`Compilation.blocked` says which). `read` replaces
    reading story files from disk (`storyc.lang.loader.load`).
    """
    # The compiler allocates hundreds of thousands of small, acyclic objects; CPython's
    # cyclic collector would walk them again and again (40% of the time at 10,000
    # scenes). Nothing here makes garbage cycles worth collecting mid-compile.
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return _compile(
            path,
            target=target,
            scenes=scenes,
            parse_cache=parse_cache,
            digests=digests,
            overlays=overlays,
            read=read,
        )
    finally:
        if was_enabled:
            gc.enable()


def known_targets() -> list[str] | None:
    """Registered target names, or None (accept any) when the registry cannot load."""
    from storyc import targets

    try:
        return targets.names() or None
    except Exception:  # a broken target module must not hide the story's own problems
        return None


def frontend(
    path: str | os.PathLike[str],
    *,
    cache: ParseCache | None = None,
    digests: DigestCache | None = None,
    read: Callable[[str], bytes] | None = None,
    overlays: Mapping[str, str] | None = None,
) -> tuple[Project | None, Diagnostics, SourceMap]:
    """Load and resolve: the project (None on loading errors), every front-end diagnostic."""
    from storyc.lang.loader import load
    from storyc.resolve.resolver import resolve

    loaded = load(path, cache=cache, overlays=overlays, read=read)
    diags = Diagnostics()
    diags.extend(loaded.diagnostics)
    project = resolve(loaded, diags, digests=digests, targets=known_targets())
    return project, diags, loaded.sources


def frontend_diagnostics(path: str | os.PathLike[str]) -> tuple[Diagnostics, SourceMap]:
    """Every diagnostic of load + resolve (what the golden tests and `check` compare)."""
    _, diags, sources = frontend(path)
    return diags, sources


def _compile(
    path: str | os.PathLike[str],
    *,
    target: str | None,
    scenes: list[str] | None,
    parse_cache: ParseCache | None,
    digests: DigestCache | None,
    overlays: Mapping[str, str] | None = None,
    read: Callable[[str], bytes] | None = None,
) -> Compilation:
    from storyc.base.hashing import DigestCache
    from storyc.check import graph as graph_mod
    from storyc.check import rules
    from storyc.check.taint import broken_scenes
    from storyc.lang.loader import load
    from storyc.resolve.resolver import resolve

    loaded = load(path, cache=parse_cache, overlays=overlays, read=read)
    diags = Diagnostics()
    diags.extend(loaded.diagnostics)
    if loaded.entry is None:
        return Compilation(None, {}, [], diags.sorted(), loaded.sources, found=False)
    project = resolve(
        loaded,
        diags,
        digests=digests if digests is not None else DigestCache(),
        targets=known_targets(),
    )
    if project is None:
        return Compilation(None, {}, [], diags.sorted(), loaded.sources)

    # The media limits before anything is blocked: a file the provider cannot take
    # (E213-E219) blocks the scenes that send it, as any other error in what they name.
    seen = rules.check_declared_media(project, diags)
    broken = broken_scenes((f.tree for f in loaded.files), diags)
    refused: dict[str, bool] = {}  # path -> whether a media limit refuses it
    for scene in project.scenes.values():
        why = None
        for f, span in rules.scene_files(scene):
            no = refused.get(f.path)
            if no is None:  # each file checked once (its errors do not depend on where)
                found = Diagnostics()
                rules.check_file(f, span, found)
                no = refused[f.path] = found.has_errors
                if f.path not in seen:  # reported once, at its first place
                    seen.add(f.path)
                    diags.extend(found)
            if no and why is None:  # the first file a media limit refuses
                why = f"{f.path} cannot be sent (see its error)"
        if why is not None and scene.name not in broken:
            broken[scene.name] = why
    graph = graph_mod.build(project, diags)
    graph_mod.check_cuts(project, graph, diags, broken)

    wanted = (
        list(project.scenes) if scenes is None else _select(list(project.scenes), scenes, diags)
    )
    chosen = set(wanted)
    # The scenes the chosen ones use, all the way up: an error there blocks a chosen one.
    needed = chosen if scenes is None else _with_upstream(project, chosen)
    ordered = set(graph.order)
    requests: dict[str, Request] = {}
    for scene in project.scenes.values():
        if scene.name not in needed:
            continue
        local = Diagnostics()
        # A scene with errors is checked too, by the rules its errors cannot affect
        # (`Scene.unresolved`), so one run shows every independent problem; it is never
        # lowered: its model is incomplete (an input that failed to resolve is left out).
        rules.check_scene(scene, project, local)
        request = None if scene.name in broken else _lower(scene, project, target, local)
        if scene.name in chosen:
            diags.extend(local)
        else:  # only what keeps a chosen scene from building
            diags.extend(d for d in local if d.is_error)
        if request is not None and not local.has_errors and scene.name in ordered:
            requests[scene.name] = request
    order = [n for n in graph.order if n in chosen]
    # A scene that uses the output of a scene with errors cannot be built either; the
    # graph's order is topological, so one pass carries that downstream.
    blocked: dict[str, str] = {}
    for name in graph.order:
        if name not in needed or name not in requests:
            continue
        bad = next((u for u in requests[name].upstream if u not in requests or u in blocked), None)
        if bad is not None:
            blocked[name] = bad
    blocked = {n: blocked[n] for n in order if n in blocked}
    return Compilation(
        project,
        {n: requests[n] for n in order if n in requests and n not in blocked},
        order,
        diags.sorted(),
        loaded.sources,
        graph,
        selected=wanted,
        blocked=blocked,
        broken={n: broken[n] for n in order if n in broken},
    )


def _with_upstream(project: Project, chosen: set[str]) -> set[str]:
    out = set(chosen)
    todo = list(chosen)
    while todo:
        scene = project.scenes.get(todo.pop())
        if scene is None:
            continue
        for u in scene.upstream():
            if u not in out:
                out.add(u)
                todo.append(u)
    return out


def _select(scenes: list[str], names: list[str], diags: Diagnostics) -> list[str]:
    """The scenes asked for, known ones once each in the order asked; E246 for others."""
    present = set(scenes)
    out: list[str] = []
    for name in names:
        if name not in present:
            known = ", ".join(scenes) or "none"
            diags.error("E246", f"no scene named `{name}` (scenes: {known})")
        elif name not in out:
            out.append(name)
    return out


def _lower(
    scene: Scene, project: Project, override: str | None, diags: Diagnostics
) -> Request | None:
    from storyc import targets

    name = override or scene.target.value
    try:
        target = targets.get(name)
    except targets.UnknownTarget:
        diags.error(
            "E237",
            f"unknown target {name!r}",
            None if override else scene.target.span,
            hint="known targets: " + ", ".join(targets.names()),
        )
        return None
    return target.lower(scene, project, diags)
