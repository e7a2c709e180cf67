"""The whole-project parts of an incremental compilation, rebuilt only where they changed.

Stage: compiler (the last step of `storyc.compiler.incremental`). In: the engine's units
(one per scene), the shared part's diagnostics and model, the loader's diagnostics,
what changed this update. Out: a `Compilation` exactly as `compile_project` assembles
it: the dependency order and cycles, cuts, unused names, media limits (once per file,
at its first use), the scenes errors block, lowering, blocked scenes, and every
diagnostic, deduplicated and sorted. Pure; no I/O.

Diagnostics are kept per file: the sorted list is each file's sorted list, files in
order (that is how `Diagnostic.sort_key` orders them). A file's list is rebuilt only
when a diagnostic that points into it may have changed: its text changed, a unit
declared in it (or pointing into it) was computed again, or a whole-project part
touching it changed. Inside a file the diagnostics are gathered in the order
`compile_project` reports them, so ties sort alike.
"""

from __future__ import annotations

import functools
import os
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from storyc.base.diagnostics import Diagnostic, Diagnostics, Severity, Span
from storyc.check import graph as graph_mod
from storyc.check import rules
from storyc.check.taint import broken_from
from storyc.compiler import Compilation, Summary, _select
from storyc.compiler.segments import NOSPAN, PHASES, Contribution, Segment
from storyc.compiler.units import Decoded, Decoder, LazyDecoder, Unit
from storyc.resolve.model import Cut, LocalFile, Project
from storyc.targets.request import Request

if TYPE_CHECKING:
    from storyc.check.taint import DeclInfo
    from storyc.compiler.decls import Anchor, FileDecls
    from storyc.lang.loader import Loaded
    from storyc.resolve.resolver import Resolver


class IndexView(Protocol):
    scenes: list[str]
    named: dict[str, tuple[str, int]]
    pos: dict[str, int]
    kinds: dict[str, str]
    label_path: dict[str, str]
    by_label: dict[str, list[str]]


class Shell(Protocol):
    resolver: Resolver
    diags: list[Diagnostic]
    used: set[str]
    project: Project
    generation: int


class Engine(Protocol):
    """What the assembly needs of `storyc.compiler.incremental.Engine`."""

    units: dict[str, Unit]
    edges_version: int
    media_version: int
    foreign: dict[str, set[str]]
    label_versions: Counter[str]  # label -> changes to its units (kept, lowered, dropped)
    res_errors: set[str]  # scenes whose unit has front-end errors

    @property
    def index(self) -> IndexView | None: ...

    def anchor_files(self, unit: Unit) -> list[FileDecls | None]: ...
    def anchors_now(self, unit: Unit) -> list[tuple[str, Anchor] | None]: ...
    def anchor_view(self) -> Any: ...
    def shell_generation(self, foreign: bool) -> int: ...
    def used_names(self) -> set[str]: ...
    def regions(self) -> dict[str, list[DeclInfo]]: ...
    def index_key(self) -> int: ...
    def lower(self, unit: Unit, full: bool = True) -> None: ...
    def file_identity(self, label: str) -> int: ...
    def scene_span(self, name: str) -> Span: ...
    def file_decls(self, path: str) -> FileDecls: ...
    def scene_length(self, name: str) -> float | None: ...
    def model_maker(self, loaded: Loaded) -> Callable[[], Project | None]: ...


_NOWHERE = Span("", 0, 0, 0, 0)


@dataclass
class _Parts:
    """This update's whole-project diagnostics by phase, each split by file."""

    loader: dict[str, list[Diagnostic]]
    shell: dict[str, list[Diagnostic]]
    cuts: dict[str, list[Diagnostic]]  # resolving cuts, then unused names (W101)
    cycles: dict[str, list[Diagnostic]]  # E240
    cut_lists: dict[str, list[Diagnostic]]  # W242, E244, W243
    media: dict[str, list[Diagnostic]]  # of assets and elements
    select: dict[str, list[Diagnostic]]  # E246


def _by_file(diags: list[Diagnostic]) -> dict[str, list[Diagnostic]]:
    out: dict[str, list[Diagnostic]] = {}
    for d in diags:
        out.setdefault(d.span.file if d.span is not None else NOSPAN, []).append(d)
    return out


def decode_key(engine: Engine, unit: Unit) -> Any:
    """What a unit's decoded diagnostics hold for: its version, where the declarations
    its spans point into are (their files' versions) and, for those outside its own
    declaration, the shared part's generation."""
    files = engine.anchor_files(unit)
    return (unit.version, tuple(map(id, files)), engine.shell_generation(len(files) > 1))


class Assembler:
    """Keeps what the last assembly computed, so the next one redoes only what changed."""

    def __init__(self) -> None:
        # label -> (signature, segment, other files its units point into, their versions)
        self.segments: dict[str, tuple[Any, Segment, list[str], tuple[int, ...]]] = {}
        self.order_key: Any = None
        self.order: tuple[list[str], list[list[str]]] = ([], [])
        self.used_up_key: Any = None
        self.used_up: set[str] = set()
        self.media_key: Any = None
        self.with_media: set[str] = set()  # scenes whose own files have diagnostics
        self.media_owner: dict[str, str] = {}  # path -> the scene that names it first
        self.shell_media: list[Diagnostic] = []
        self.requests_key: Any = None
        self.requests: dict[str, Request] = {}
        self.blocked: dict[str, str] = {}
        self.summary_key: Any = None
        self.summary: Summary | None = None
        self.units_of: tuple[IndexView, list[Unit]] | None = None
        # what the last lowering pass left every unit as: (index, broken, whole project)
        self.lowered_key: Any = None
        self.all_key: Any = None
        self.all_scenes: frozenset[str] = frozenset()
        # Which scenes' requests each assembly replaced (storyc.compiler.Compilation
        # .changed_since): by sequence number, None for "any of them"; the last few only.
        self.token = object()
        self.seq = 0
        self.log: dict[int, frozenset[str] | None] = {}

    # -- decoding a unit ---------------------------------------------------------------

    def decoded(self, engine: Engine, unit: Unit) -> Decoded:
        """`unit`'s diagnostics where its declarations are now (cached while they stay)."""
        key = decode_key(engine, unit)
        hit = unit.decoded
        if hit is not None and hit[0] == key:
            return hit[1]  # type: ignore[no-any-return]
        dec = Decoder(engine.anchors_now(unit))
        out = Decoded(
            dec.diags(unit.res),
            dec.diags(unit.graph),
            [(p, dec.diags(recs)) for p, recs in unit.media],
            dec.diags(unit.low) if unit.low is not None else None,
        )
        unit.decoded = (key, out)
        return out

    # -- the assembly ------------------------------------------------------------------

    def run(
        self,
        engine: Engine,
        loaded: Loaded,
        shell: Shell,
        scenes: list[str] | None,
        loader_diags: list[Diagnostic],
        changed: set[str],
    ) -> Compilation:
        """`changed`: scenes whose unit was computed or lowered again this update."""
        index = engine.index
        assert index is not None
        units = self._units(engine, index, changed)
        resolver = shell.resolver

        cut_diags = Diagnostics()
        resolver.diags = cut_diags
        cuts = resolver.cuts()
        resolver.used = shell.used | engine.used_names()
        resolver.unused()
        resolver.diags = Diagnostics()  # nothing else may report into those

        # the media limits first: a file the provider cannot take (E213-E219) blocks the
        # scenes that send it, as any other error in what they name does
        self._media(engine, shell, units)
        errors = (
            any(d.is_error for d in loader_diags)
            or any(d.is_error for d in shell.diags)
            or cut_diags.has_errors
            or bool(engine.res_errors)
            or any(d.is_error for d in self.shell_media)
        )
        broken: dict[str, str] = {}
        if errors:
            everything = Diagnostics()
            everything.extend(loader_diags)
            everything.extend(shell.diags)
            for u in units:
                if u.res_error:
                    everything.extend(self.decoded(engine, u).res)
            everything.extend(cut_diags)
            everything.extend(self.shell_media)
            broken = broken_from(engine.regions(), everything)
        # as `storyc.compiler._compile` refuses a scene, from the unit's own checks (only the few
        # scenes whose files have diagnostics at all: not a pass over every unit a save)
        for name in sorted(self.with_media, key=index.pos.__getitem__):
            u = units[index.pos[name]]
            if u.scene in broken:
                continue
            for path, diags in self.decoded(engine, u).media:
                if any(d.is_error for d in diags):
                    broken[u.scene] = f"{path} cannot be sent (see its error)"
                    break

        order, cycles = self._order(engine, units)
        graph = LazyGraph(engine, self, units, order, cycles)
        cycle_diags = Diagnostics()
        for cycle in cycles:
            path = " → ".join([*cycle, cycle[0]])
            cycle_diags.error(
                "E240",
                f"dependency cycle: {path}",
                graph.first_edge(cycle),
                hint="a scene cannot start from its own output, directly or through others",
            )
        cut_list_diags = Diagnostics()
        in_cut = graph_mod.check_cut_lists(
            cuts, _Kinds(index.kinds), engine.scene_length, cut_list_diags, broken
        )
        facts = self._cut_facts(engine, cuts)
        used_up = self._used_up(engine, units)
        w245 = (True, frozenset(in_cut), frozenset(used_up)) if cuts else (False,)

        select_diags = Diagnostics()
        wanted = (
            list(index.scenes)
            if scenes is None
            else _select(list(index.scenes), scenes, select_diags)
        )
        if scenes is None:
            if self.all_key is not index:  # the same index names the same scenes
                self.all_key, self.all_scenes = index, frozenset(index.scenes)
            chosen: set[str] = self.all_scenes  # type: ignore[assignment]  # never changed
        else:
            chosen = set(wanted)
        # the scenes the chosen ones use, all the way up: an error there blocks a chosen one
        needed = chosen if scenes is None else _with_upstream(units, chosen)
        # After a pass over the whole project every unit is lowered as its scene's place in
        # `broken` asks: with the same index and the same `broken`, only the units made
        # again since (all in `changed`) can need it.
        lowered_key = (index, tuple(sorted(broken))) if scenes is None else None
        todo = (
            [engine.units[n] for n in changed if n in engine.units]
            if lowered_key is not None and lowered_key == self.lowered_key
            else units
        )
        for u in todo:
            if u.scene not in needed:
                continue
            full = u.scene not in broken
            if u.low is None or (full and not u.low_full):
                engine.lower(u, full=full)
                changed.add(u.scene)
        self.lowered_key = lowered_key

        parts = _Parts(
            _by_file(loader_diags),
            _by_file(shell.diags),
            _by_file(list(cut_diags)),
            _by_file(list(cycle_diags)),
            _by_file(list(cut_list_diags)),
            _by_file(self.shell_media),
            _by_file(list(select_diags)),
        )
        context = (
            shell.generation,
            w245,
            self.media_key,
            tuple(sorted(broken.items())),
            None if scenes is None else tuple(wanted),
            None if scenes is None else tuple(sorted(needed)),
        )
        segments = self._diagnostics(
            engine, parts, context, chosen, needed, broken, in_cut, used_up, bool(cuts)
        )

        requests, blocked, final, delta = self._requests(
            units, order, chosen, needed, broken, changed
        )
        summary = self._summary(engine, shell, units)
        self.seq += 1
        self.log[self.seq] = delta
        self.log.pop(self.seq - 64, None)
        comp = EngineCompilation(
            None,
            requests,
            final,
            [],
            loaded.sources,
            None,
            selected=wanted,
            blocked=blocked,
            broken={n: broken[n] for n in final if n in broken} if broken else {},
            lazy_graph=graph,
            summary_data=summary,
            model=engine.model_maker(loaded),
            cut_facts=facts,
            segments=segments,
        )
        comp.__dict__["_lineage"] = (self.token, self.seq, self.log)
        return comp

    def _units(self, engine: Engine, index: IndexView, changed: set[str]) -> list[Unit]:
        """The units in declaration order: the last list with this update's new units put
        in place, while the index is the same (a new unit is always a changed scene)."""
        last = self.units_of
        if last is not None and last[0] is index and len(last[1]) == len(index.scenes):
            units = list(last[1])
            for name in changed:
                unit = units[index.pos[name]] = engine.units[name]
                if any(recs for _, recs in unit.media):
                    self.with_media.add(name)
                else:
                    self.with_media.discard(name)
        else:
            units = [engine.units[n] for n in index.scenes]
            self.with_media = {u.scene for u in units if any(recs for _, recs in u.media)}
        self.units_of = (index, units)
        return units

    @staticmethod
    def _cut_facts(engine: Engine, cuts: dict[str, Cut]) -> dict[str, dict[str, Any]]:
        """`storyc.compiler.cut_facts`, from the cuts and the units' facts."""
        out: dict[str, dict[str, Any]] = {}
        for name, cut in cuts.items():
            clips = [
                [
                    c.scene,
                    c.start.value if c.start is not None else None,
                    c.end.value if c.end is not None else None,
                    c.transition.length if c.transition is not None and i > 0 else 0.0,
                    engine.scene_length(c.scene),
                ]
                for i, c in enumerate(cut.clips)
            ]
            counts = Counter(
                a for c in cut.clips if (u := engine.units.get(c.scene)) and (a := u.aspect)
            )
            ext = cut.extent
            out[name] = {
                "clips": clips,
                "aspect": counts.most_common(1)[0][0] if counts else None,
                "extent": [ext.file, ext.start, ext.end] if ext is not None else None,
            }
        return out

    def _order(self, engine: Engine, units: list[Unit]) -> tuple[list[str], list[list[str]]]:
        key = (engine.index_key(), engine.edges_version)
        if key != self.order_key:
            edges = [
                graph_mod.Edge(src, u.scene, part, role, _NOWHERE)
                for u in units
                for src, part, role, _ in u.edges
            ]
            g = graph_mod.assemble([u.scene for u in units], edges, {}, Diagnostics())
            self.order_key, self.order = key, (g.order, g.cycles)
        return self.order

    def _used_up(self, engine: Engine, units: list[Unit]) -> set[str]:
        key = (engine.index_key(), engine.edges_version)
        if key != self.used_up_key:
            self.used_up_key = key
            self.used_up = {e[0] for u in units for e in u.edges}
        return self.used_up

    def _media(self, engine: Engine, shell: Shell, units: list[Unit]) -> None:
        """Which occurrence of each local file reports its limits: the first one."""
        key = (shell.generation, engine.index_key(), engine.media_version)
        if key == self.media_key:
            return
        self.media_key = key
        diags = Diagnostics()
        seen = rules.check_declared_media(shell.project, diags)
        owner: dict[str, str] = {}
        for u in units:
            for path, _ in u.media:
                if path not in seen:
                    seen.add(path)
                    owner[path] = u.scene
        self.shell_media = list(diags)
        self.media_owner = owner

    def _diagnostics(
        self,
        engine: Engine,
        parts: _Parts,
        context: Any,
        chosen: set[str],
        needed: set[str],
        broken: dict[str, str],
        in_cut: set[str],
        used_up: set[str],
        has_cuts: bool,
    ) -> list[Segment]:
        """Each file's `Segment`, in file order; one whose inputs did not change (nor the
        files its units point into) is the last update's."""
        index = engine.index
        assert index is not None
        labels: set[str] = set(index.label_path) | {NOSPAN}
        for phase in vars(parts).values():
            labels.update(phase)
        labels.update(engine.foreign)
        owners: dict[str, set[str]] = {}
        for path, scene in self.media_owner.items():
            owners.setdefault(scene, set()).add(path)
        out: list[Segment] = []
        view: Any = None  # this update's AnchorView, made once if a file is placed again
        for label in sorted(labels):
            own = index.by_label.get(label, ())
            foreign = engine.foreign.get(label, set())
            sig = (
                context,
                engine.file_identity(label),
                tuple(getattr(parts, k).get(label, ()) for k in vars(parts)),
                tuple(own),
                engine.label_versions[label],
                tuple(sorted((n, engine.units[n].version) for n in foreign if n in engine.units)),
            )
            hit = self.segments.get(label)
            if (
                hit is not None
                and hit[0] == sig
                and tuple(engine.file_identity(x) for x in hit[2]) == hit[3]
            ):
                out.append(hit[1])
                continue
            names = sorted(
                {*own, *(n for n in foreign if n in engine.units)}, key=index.pos.__getitem__
            )
            units: list[tuple[Unit, Decoder]] = []
            touched: set[str] = set()
            view = view or engine.anchor_view()
            for n in names:
                u = engine.units[n]
                if not (u.res or u.graph or u.low or any(recs for _, recs in u.media)):
                    continue  # nothing to place: most scenes say nothing
                # the files it points into now; where in them, only if a span is ever
                # placed (notes, most of a file's diagnostics, mostly are not)
                touched |= view.labels(u)
                units.append((u, LazyDecoder(functools.partial(view.anchors, u))))
            unreached = None
            if has_cuts and own:
                path = index.label_path[label]
                fd = engine.file_decls(path)
                unreached = (fd, [(n, index.named[n][1]) for n in own], in_cut, used_up)
            segment = Segment(
                Contribution(
                    label,
                    {k: list(getattr(parts, k).get(label, ())) for k in PHASES},
                    units,
                    owners,
                    chosen,
                    needed,
                    broken,
                    unreached,
                )
            )
            others = sorted(touched - {label})
            ids = tuple(engine.file_identity(x) for x in others)
            self.segments[label] = (sig, segment, others, ids)
            out.append(segment)
        for label in [x for x in self.segments if x not in labels]:
            del self.segments[label]
        return out

    def _requests(
        self,
        units: list[Unit],
        order: list[str],
        chosen: set[str],
        needed: set[str],
        broken: dict[str, str],
        changed: set[str],
    ) -> tuple[dict[str, Request], dict[str, str], list[str], frozenset[str] | None]:
        """The requests, the blocked scenes, the final order, and which scenes' requests
        differ from the last call's (None: any may)."""
        final = [n for n in order if n in chosen] if len(chosen) != len(order) else order
        key = (
            id(order),
            len(order),
            tuple(sorted(broken)),
            frozenset(chosen) if len(chosen) != len(units) else None,
            frozenset(needed) if len(needed) != len(units) else None,
        )
        if key == self.requests_key and not changed:
            return dict(self.requests), dict(self.blocked), final, frozenset()
        if key == self.requests_key and len(changed) * 8 < len(units):
            # an edit of a few scenes whose requests keep their upstream: nothing can be
            # blocked or unblocked by it, so only their requests are replaced
            fresh = self._replaced(units, changed, broken)
            if fresh is not None:
                self.requests.update(fresh)
                return dict(self.requests), dict(self.blocked), final, frozenset(fresh)
        by_name = {u.scene: u for u in units}
        ordered = set(order)
        built = [n for n in order if n in needed] if len(needed) != len(order) else order
        requests: dict[str, Request] = {}
        for name in built:
            u = by_name[name]
            if name in broken:
                continue
            req = u.req()
            if req is not None and u.ok and name in ordered:
                requests[name] = req
        # a scene using the output of a scene that cannot be built cannot be built either;
        # the order is topological, so one pass carries that downstream
        blocked: dict[str, str] = {}
        for name in built:
            if name not in requests:
                continue
            bad = next(
                (up for up in requests[name].upstream if up not in requests or up in blocked),
                None,
            )
            if bad is not None:
                blocked[name] = bad
        blocked = {n: blocked[n] for n in final if n in blocked}
        result = {n: requests[n] for n in final if n in requests and n not in blocked}
        self.requests_key, self.requests, self.blocked = key, result, blocked
        return dict(result), dict(blocked), final, None

    def _replaced(
        self, units: list[Unit], changed: set[str], broken: dict[str, str]
    ) -> dict[str, Request] | None:
        """The new requests of the `changed` scenes, when each was built before and still
        is, with the same upstream scenes; else None (the whole pass decides)."""
        out: dict[str, Request] = {}
        assert self.units_of is not None  # this update's, in the order of `units`
        pos = self.units_of[0].pos
        for u in (units[pos[n]] for n in changed):
            old = self.requests.get(u.scene)
            req = u.req()
            if (
                old is None
                or req is None
                or not u.ok
                or u.scene in broken
                or tuple(req.upstream) != tuple(old.upstream)
            ):
                return None
            out[u.scene] = req
        return out if len(out) == len(changed) else None

    def _summary(self, engine: Engine, shell: Shell, units: list[Unit]) -> Summary:
        key = (shell.generation, engine.index_key(), engine.media_version)
        if key != self.summary_key or self.summary is None:
            p = shell.project
            local: dict[str, None] = {}
            for asset in p.assets.values():
                if isinstance(asset.source, LocalFile):
                    local[asset.source.abs_path] = None
            for el in p.elements.values():
                for f, _ in rules.element_files(el):
                    local[f.abs_path] = None
            for u in units:
                for path, _ in u.media:
                    if path not in local:
                        local.setdefault(os.path.join(p.root, path), None)
            self.summary_key = key
            self.summary = Summary(
                p.name,
                p.root,
                p.entry,
                p.files,
                tuple(u.scene for u in units),
                {k: getattr(v, "value", v) for k, v in p.settings.items()},
                tuple(local),
            )
        return self.summary


class _Kinds:
    """`name in scenes` over the engine's index of names and kinds."""

    def __init__(self, kinds: dict[str, str]) -> None:
        self.kinds = kinds

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and self.kinds.get(name) == "scene"


class LazyGraph:
    """The dependency graph with every edge's span, built only if asked for."""

    def __init__(
        self,
        engine: Engine,
        assembler: Assembler,
        units: list[Unit],
        order: list[str],
        cycles: list[list[str]],
    ) -> None:
        self.units = units  # this update's (the assembly makes a new list each time)
        # where the declarations are at this update, for the edges' spans decoded when the
        # graph is asked for (the engine may have moved on by then): nothing per scene now
        self.view = engine.anchor_view()
        self.order = order
        self.cycles = cycles
        self._graph: graph_mod.Graph | None = None
        self._edges: list[graph_mod.Edge] | None = None

    def edges(self) -> list[graph_mod.Edge]:
        if self._edges is None:
            out: list[graph_mod.Edge] = []
            for u in self.units:
                if not u.edges:
                    continue
                dec = Decoder(self.view.anchors(u))
                for src, part, role, span in u.edges:
                    s = dec.span(span)
                    assert s is not None
                    out.append(graph_mod.Edge(src, u.scene, part, role, s))
            self._edges = out
        return self._edges

    def first_edge(self, cycle: list[str]) -> Span:
        edges = self.edges()
        if len(cycle) > 1:
            e = next(e for e in edges if e.dst == cycle[1 % len(cycle)] and e.src == cycle[0])
        else:
            e = next(e for e in edges if e.src == e.dst == cycle[0])
        return e.span

    def graph(self) -> graph_mod.Graph:
        if self._graph is None:
            leaves = {u.scene: [(k, n) for k, n in u.leaves] for u in self.units}
            names = [u.scene for u in self.units]
            self._graph = graph_mod.Graph(names, self.edges(), self.order, self.cycles, leaves)
        return self._graph


_UNSET: Any = object()


class EngineCompilation(Compilation):
    """A `Compilation` whose project model is built only when asked for (`project`):
    commands that need diagnostics, requests and order never pay for it."""

    def __init__(
        self,
        *args: Any,
        lazy_graph: LazyGraph,
        summary_data: Summary,
        model: Callable[[], Project | None],
        cut_facts: dict[str, dict[str, Any]],
        segments: list[Segment],
        **kwargs: Any,
    ) -> None:
        self._lazy_project: Any = _UNSET
        self._lazy_graph = lazy_graph
        self._make_model = model
        self._segments = segments
        self._all: list[Diagnostic] | None = None
        self.__dict__["_summary"] = summary_data
        self.__dict__["_cut_facts"] = cut_facts
        super().__init__(*args, **kwargs)

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """Every diagnostic, sorted (decoded when first asked for)."""
        if self._all is None:
            self._all = [d for s in self._segments for d in s.full()]
        return self._all

    @diagnostics.setter
    def diagnostics(self, value: list[Diagnostic]) -> None:
        self._all = value or None

    def has_all(self) -> bool:
        """Whether every diagnostic was decoded already (see `diagnostics`)."""
        return self._all is not None

    def shown(self) -> list[Diagnostic]:
        if self._all is not None:
            return [d for d in self._all if d.severity is not Severity.NOTE]
        return [d for s in self._segments for d in s.shown()]

    def counts(self) -> tuple[int, int, int]:
        e = w = n = 0
        for s in self._segments:
            a, b, c = s.counts()
            e, w, n = e + a, w + b, n + c
        return e, w, n

    @property
    def has_errors(self) -> bool:
        return self.counts()[0] > 0

    @property
    def project(self) -> Project | None:
        if self._lazy_project is _UNSET:
            self._lazy_project = self._make_model()
        return self._lazy_project  # type: ignore[no-any-return]

    @project.setter
    def project(self, value: Project | None) -> None:
        self._lazy_project = _UNSET if value is None else value

    @property
    def graph(self) -> graph_mod.Graph | None:
        return self._lazy_graph.graph()

    @graph.setter
    def graph(self, value: graph_mod.Graph | None) -> None:
        pass


def _with_upstream(units: list[Unit], chosen: set[str]) -> set[str]:
    """`chosen` and every scene they use, all the way up (by the units' edges)."""
    ups = {u.scene: [e[0] for e in u.edges] for u in units}
    out = set(chosen)
    todo = list(chosen)
    while todo:
        for up in ups.get(todo.pop(), ()):
            if up not in out:
                out.add(up)
                todo.append(up)
    return out
