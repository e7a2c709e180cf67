"""The scene dependency graph: which scene starts from which other scene's output.

Stage: check. In: a resolved `Project`. Out: a `Graph` (edges, deterministic topological
order, cycles) plus E24x/W24x diagnostics for cycles and cuts, and text / Graphviz DOT /
Mermaid renderings. No I/O.

Order among independent scenes is declaration order, so the same story always builds
and prints in the same order.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Container, Iterable, Mapping
from dataclasses import dataclass, field

from storyc.base.diagnostics import Diagnostic, Diagnostics, Severity, Span
from storyc.resolve.model import (
    DEFAULT_DURATION,
    Cut,
    Element,
    Input,
    LocalFile,
    Project,
    Scene,
    SceneOutput,
)


@dataclass(frozen=True, slots=True)
class Edge:
    src: str  # the upstream scene
    dst: str  # the scene that uses src's output
    part: str  # "video", "last_frame", ...
    role: str  # "first frame", "end frame", "reference image", "reference video", "element x"
    span: Span


@dataclass
class Graph:
    scenes: list[str]  # declaration order
    edges: list[Edge]
    order: list[str]  # topological; scenes in or behind a cycle are left out
    cycles: list[list[str]] = field(default_factory=list)
    leaves: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # scene → (kind, name)

    def upstream(self, scene: str) -> list[str]:
        return _unique(e.src for e in self.edges if e.dst == scene)

    def downstream(self, scene: str) -> list[str]:
        return _unique(e.dst for e in self.edges if e.src == scene)


def _unique(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def _inputs(scene: Scene, elements: Mapping[str, Element]) -> list[tuple[Input, str]]:
    return [
        (u.input, f"element {u.element}" if u.role == "element" else u.role)
        for u in scene.inputs(elements)
    ]


def build(project: Project, diags: Diagnostics | None = None) -> Graph:
    """Edges, cycles and order; reports E240/E241 into `diags` when given."""
    diags = diags if diags is not None else Diagnostics()
    edges: list[Edge] = []
    leaves: dict[str, list[tuple[str, str]]] = {}
    for scene in project.scenes.values():
        mine, leaves[scene.name] = scene_edges(scene, project.elements, project.scenes, diags)
        edges.extend(mine)
    return assemble(list(project.scenes), edges, leaves, diags)


def scene_edges(
    scene: Scene,
    elements: Mapping[str, Element],
    scenes: Container[str],
    diags: Diagnostics,
) -> tuple[list[Edge], list[tuple[str, str]]]:
    """One scene's incoming edges and its leaves (assets and elements it uses); E241
    for an output of something that is not a scene. `build` is this for every scene,
    then `assemble`."""
    edges: list[Edge] = []
    mine: list[tuple[str, str]] = []
    for inp, role in _inputs(scene, elements):
        src = inp.source
        if isinstance(src, SceneOutput):
            if src.scene not in scenes:
                diags.error(
                    "E241",
                    f"scene `{scene.name}` uses the output of `{src.scene}`, which is not a scene",
                    inp.span,
                )
                continue
            edges.append(Edge(src.scene, scene.name, src.part, role, inp.span))
        elif inp.name and not role.startswith("element "):
            leaf = (src.kind, inp.name)
            if leaf not in mine:
                mine.append(leaf)
    mine.extend(
        ("element", use.name) for use in scene.elements if ("element", use.name) not in mine
    )
    return edges, mine


def assemble(
    names: list[str],
    edges: list[Edge],
    leaves: dict[str, list[tuple[str, str]]],
    diags: Diagnostics,
) -> Graph:
    """The graph of scenes `names` (declaration order) from their `scene_edges`: the
    order, and the cycles (E240)."""
    order = _order(names, edges)
    # Kahn's order leaves out exactly the scenes in or behind a cycle: no need to look for
    # cycles when every scene made it.
    cycles = _cycles(names, edges) if len(order) < len(names) else []
    for cycle in cycles:
        first = (
            next(e for e in edges if e.dst == cycle[1 % len(cycle)] and e.src == cycle[0])
            if len(cycle) > 1
            else next(e for e in edges if e.src == e.dst == cycle[0])
        )
        path = " → ".join([*cycle, cycle[0]])
        diags.error(
            "E240",
            f"dependency cycle: {path}",
            first.span,
            hint="a scene cannot start from its own output, directly or through others",
        )
    return Graph(names, edges, order, cycles, leaves)


def _order(names: list[str], edges: list[Edge]) -> list[str]:
    """Kahn's algorithm with a heap of declaration indices: deterministic, O(n log n)."""
    index = {n: i for i, n in enumerate(names)}
    deps: dict[str, set[str]] = {n: set() for n in names}
    users: dict[str, list[str]] = {n: [] for n in names}
    for e in edges:
        if e.src not in deps[e.dst]:
            deps[e.dst].add(e.src)
            users[e.src].append(e.dst)
    waiting = {n: len(d) for n, d in deps.items()}
    heap = [index[n] for n in names if waiting[n] == 0]
    heapq.heapify(heap)
    order: list[str] = []
    while heap:
        n = names[heapq.heappop(heap)]
        order.append(n)
        for u in users[n]:
            waiting[u] -= 1
            if waiting[u] == 0:
                heapq.heappush(heap, index[u])
    return order


def _cycles(names: list[str], edges: list[Edge]) -> list[list[str]]:
    """Each strongly connected component with a cycle, as a path that walks the cycle.

    Reported from the earliest-declared scene in it, following downstream edges.
    """
    index = {n: i for i, n in enumerate(names)}
    succ: dict[str, list[str]] = {n: [] for n in names}
    for e in sorted(edges, key=lambda e: (index[e.src], index[e.dst])):
        if e.dst not in succ[e.src]:
            succ[e.src].append(e.dst)
    comps = _scc(names, succ)
    out: list[list[str]] = []
    for comp in comps:
        members = set(comp)
        start = min(comp, key=index.__getitem__)
        if len(comp) == 1 and start not in succ[start]:
            continue
        out.append(_walk_cycle(start, members, succ))
    out.sort(key=lambda c: index[c[0]])
    return out


def _walk_cycle(start: str, members: set[str], succ: dict[str, list[str]]) -> list[str]:
    """A shortest path from `start` back to itself inside one component (BFS)."""
    prev: dict[str, str] = {}
    queue = [start]
    seen = {start}
    while queue:
        nxt: list[str] = []
        for n in queue:
            for m in succ[n]:
                if m == start:
                    path = [n]
                    while path[-1] != start:
                        path.append(prev[path[-1]])
                    return list(reversed(path))
                if m in members and m not in seen:
                    seen.add(m)
                    prev[m] = n
                    nxt.append(m)
        queue = nxt
    return [start]


def _scc(names: list[str], succ: dict[str, list[str]]) -> list[list[str]]:
    """Tarjan's algorithm, iterative (10,000-scene chains must not hit the recursion limit)."""
    idx: dict[str, int] = {}
    low: dict[str, int] = {}
    on: set[str] = set()
    stack: list[str] = []
    comps: list[list[str]] = []
    counter = 0
    for root in names:
        if root in idx:
            continue
        work = [(root, 0)]
        while work:
            v, i = work.pop()
            if i == 0:
                idx[v] = low[v] = counter
                counter += 1
                stack.append(v)
                on.add(v)
            recurse = False
            for j in range(i, len(succ[v])):
                w = succ[v][j]
                if w not in idx:
                    work.append((v, j + 1))
                    work.append((w, 0))
                    recurse = True
                    break
                if w in on:
                    low[v] = min(low[v], idx[w])
            if recurse:
                continue
            if low[v] == idx[v]:
                comp: list[str] = []
                while True:
                    w = stack.pop()
                    on.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                comps.append(comp)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[v])
    return comps


def check_cuts(
    project: Project, graph: Graph, diags: Diagnostics, broken: Iterable[str] = ()
) -> None:
    """Cuts: not empty, no unknown scenes, repeats warned, trims and transitions inside
    the scenes' lengths; scenes no cut can reach noted. The lengths of `broken` scenes
    (see storyc.check.taint) are not known, so their trims are not checked."""
    in_cut = check_cut_lists(
        project.cuts, project.scenes, lambda n: scene_length(project, n), diags, broken
    )
    if project.cuts:
        spans = {n: s.span for n, s in project.scenes.items()}
        unreached(spans, in_cut, {e.src for e in graph.edges}, diags)


def check_cut_lists(
    cuts: Mapping[str, Cut],
    scenes: Container[str],
    length: Callable[[str], float | None],
    diags: Diagnostics,
    broken: Iterable[str] = (),
) -> set[str]:
    """The cuts themselves (W242, E264, E265, E244, W243), with `length(scene)` the
    length of a scene's video (`scene_length`); returns the scenes some cut plays."""
    in_cut: set[str] = set()
    unknown = frozenset(broken)
    for cut in cuts.values():
        if not cut.scenes:
            diags.warning(
                "W242",
                f"cut `{cut.name}` is empty",
                cut.span,
                hint="list the scenes it plays, e.g. `cut final = [intro, outro]`",
            )
        _check_trims(cut, length, diags, unknown)
        seen: dict[str, Span] = {}
        for name, span in cut.scenes:
            if name not in scenes:
                diags.error("E244", f"cut `{cut.name}` names `{name}`, which is not a scene", span)
                continue
            if name in seen:
                diags.warning(
                    "W243",
                    f"scene `{name}` appears more than once in cut `{cut.name}`",
                    span,
                    notes=(("first here", seen[name]),),
                    hint="fine for a reprise; otherwise remove the repeat",
                )
            seen.setdefault(name, span)
            in_cut.add(name)
    return in_cut


def unreached(
    scenes: Mapping[str, Span], in_cut: Container[str], used: Container[str], diags: Diagnostics
) -> None:
    """W245 (a note) for each scene (name -> its name's span, declaration order) that no
    cut plays and no other scene uses; only asked when the story has cuts."""
    for name, span in scenes.items():
        if name not in in_cut and name not in used:
            diags.add(
                Diagnostic(
                    "W245",
                    Severity.NOTE,
                    f"scene `{name}` is in no cut and no other scene uses it",
                    span,
                )
            )


def scene_length(project: Project, name: str, _seen: frozenset[str] = frozenset()) -> float | None:
    """How long a scene's video will be, as far as the story tells: its `duration` (the
    provider's default when unset), or for an edit the length of the edited video (an
    asset's header, or the upstream scene's length). None when it cannot be known."""
    scene = project.scenes.get(name)
    if scene is None or name in _seen:
        return None
    return length_from(length_fact(scene), lambda up: scene_length(project, up, _seen | {name}))


def length_fact(scene: Scene) -> tuple[str, float | str | None]:
    """What a scene's length comes from, without the rest of the project: ("duration",
    seconds), ("file", seconds or None), ("scene", the edited scene) or ("unknown", None)."""
    if scene.video is not None and scene.video.mode == "base":
        src = scene.video.input.source
        if isinstance(src, LocalFile):
            return ("file", src.media.duration if src.media is not None else None)
        if isinstance(src, SceneOutput) and src.part == "video":
            return ("scene", src.scene)
        return ("unknown", None)
    return (
        "duration",
        float(scene.duration.value if scene.duration is not None else DEFAULT_DURATION),
    )


def length_from(
    fact: tuple[str, float | str | None], upstream: Callable[[str], float | None]
) -> float | None:
    """The length a `length_fact` gives, `upstream(scene)` for an edited scene's."""
    kind, value = fact
    if kind == "scene":
        return upstream(str(value))
    if kind in ("duration", "file") and value is not None:
        return float(value)
    return None


# Headers and renders round a length to the container's time base: allow that much.
_SLACK = 0.05


def _check_trims(
    cut: Cut, length_of: Callable[[str], float | None], diags: Diagnostics, unknown: frozenset[str]
) -> None:
    """In and out points inside each scene's length (E264); crossfades no longer than
    what they join (E265)."""
    lengths: list[float | None] = []
    for clip in cut.clips:
        length = None if clip.scene in unknown else length_of(clip.scene)
        start = clip.start.value if clip.start is not None else 0.0
        end = clip.end.value if clip.end is not None else length
        if length is not None:
            for point, word in ((clip.start, "in"), (clip.end, "out")):
                if point is not None and point.value > length + _SLACK:
                    diags.error(
                        "E264",
                        f"`{word} = {point.value:g}` is past the end of scene `{clip.scene}`, "
                        f"which lasts {length:g} s",
                        point.span,
                        hint=f"in and out points are seconds from 0 to {length:g}",
                    )
                    end = None
            if clip.end is None and start >= length:
                end = None
        lengths.append(None if end is None else max(0.0, end - start))
    # A clip gives the length of each crossfade it takes part in: into it and out of it.
    n = len(cut.clips)
    for i, clip in enumerate(cut.clips):
        fade_in = clip.transition.length if clip.transition is not None and i > 0 else 0.0
        nxt = cut.clips[i + 1].transition if i + 1 < n else None
        fade_out = nxt.length if nxt is not None else 0.0
        length = lengths[i]
        if length is None or fade_in + fade_out <= length + 1e-9:
            continue
        blame = nxt if nxt is not None and fade_out > length else clip.transition
        if blame is None:
            blame = nxt
        assert blame is not None
        shared = fade_in > 0 and fade_out > 0
        diags.error(
            "E265",
            f"scene `{clip.scene}` plays {length:g} s, too short for "
            + (
                f"a {fade_in:g} s and a {fade_out:g} s crossfade"
                if shared
                else f"a {blame.length:g} s {blame.kind}"
            ),
            blame.span,
            hint="shorten the transition, or trim the scene less",
        )


# -- renderers ----------------------------------------------------------------------------


def _edge_label(e: Edge) -> str:
    return f"{e.role} ← {e.part}"


def render_text(graph: Graph, *, assets: bool = False) -> str:
    """A tree from the scenes that depend on nothing; a scene reached twice says so."""
    lines: list[str] = []
    printed: set[str] = set()
    by_src: dict[str, list[Edge]] = {}
    for e in graph.edges:
        by_src.setdefault(e.src, []).append(e)

    in_cycle = {n for c in graph.cycles for n in c}

    def visit(name: str, prefix: str, label: str, last: bool, top: bool) -> None:
        branch = "" if top else ("└─ " if last else "├─ ")
        marks = [label] if label else []
        if name in in_cycle and "in a cycle" not in marks:
            marks.append("in a cycle")  # every scene of a cycle says so, wherever it shows
        suffix = f"  ({', '.join(marks)})" if marks else ""
        if name in printed:
            lines.append(f"{prefix}{branch}{name}{suffix} (see above)")
            return
        printed.add(name)
        lines.append(f"{prefix}{branch}{name}{suffix}")
        child_prefix = prefix if top else prefix + ("   " if last else "│  ")
        kids: list[tuple[str, str | None]] = []
        if assets:
            kids.extend((f"{kind} {leaf}", None) for kind, leaf in graph.leaves.get(name, []))
        seen: dict[str, list[str]] = {}
        for e in by_src.get(name, []):
            seen.setdefault(e.dst, []).append(_edge_label(e))
        kids.extend((dst, ", ".join(labels)) for dst, labels in seen.items())
        for i, (kid, kid_label) in enumerate(kids):
            is_last = i == len(kids) - 1
            if kid_label is None:
                lines.append(f"{child_prefix}{'└─ ' if is_last else '├─ '}· {kid}")
            else:
                visit(kid, child_prefix, kid_label, is_last, False)

    has_upstream = {e.dst for e in graph.edges}
    for name in graph.scenes:
        if name not in has_upstream:
            visit(name, "", "", True, True)
    for name in graph.scenes:
        if name not in printed:
            visit(name, "", "in a cycle" if name in in_cycle else "after a cycle", True, True)
    return "\n".join(lines) + ("\n" if lines else "")


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(graph: Graph, *, assets: bool = False, title: str = "storyc") -> str:
    out = [f"digraph {_q(title)} {{", "  rankdir=LR;", "  node [shape=box];"]
    in_cycle = {n for c in graph.cycles for n in c}
    for name in graph.scenes:
        mark = ' [color=red, xlabel="in a cycle"]' if name in in_cycle else ""
        out.append(f"  {_q(name)}{mark};")
    if assets:
        for name in graph.scenes:
            for kind, leaf in graph.leaves.get(name, []):
                node = f"{kind}:{leaf}"
                out.append(f"  {_q(node)} [shape=note, label={_q(f'{kind} {leaf}')}];")
                out.append(f"  {_q(node)} -> {_q(name)} [style=dashed];")
    for e in graph.edges:
        out.append(f"  {_q(e.src)} -> {_q(e.dst)} [label={_q(_edge_label(e))}];")
    out.append("}")
    return "\n".join(_unique(out)) + "\n"


def _mq(text: str) -> str:
    return '"' + text.replace('"', "#quot;") + '"'


def render_mermaid(graph: Graph, *, assets: bool = False) -> str:
    """Mermaid `flowchart`; node ids are generated because scene names may clash with keywords."""
    ids = {name: f"s{i}" for i, name in enumerate(graph.scenes)}
    out = ["flowchart LR"]
    for name in graph.scenes:
        out.append(f"  {ids[name]}[{_mq(name)}]")
    if assets:
        leaf_ids: dict[tuple[str, str], str] = {}
        for name in graph.scenes:
            for leaf in graph.leaves.get(name, []):
                if leaf not in leaf_ids:
                    leaf_ids[leaf] = f"a{len(leaf_ids)}"
                    out.append(f"  {leaf_ids[leaf]}([{_mq(' '.join(leaf))}])")
                out.append(f"  {leaf_ids[leaf]} -.-> {ids[name]}")
    for e in graph.edges:
        out.append(f"  {ids[e.src]} -->|{_mq(_edge_label(e))}| {ids[e.dst]}")
    cycle = [ids[n] for n in graph.scenes if any(n in c for c in graph.cycles)]
    if cycle:
        out.append("  classDef cycle stroke:#d33,stroke-width:2px")
        out.append(f"  class {','.join(cycle)} cycle")
    return "\n".join(_unique(out)) + "\n"


RENDERERS = {"text": render_text, "dot": render_dot, "mermaid": render_mermaid}
