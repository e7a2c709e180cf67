"""Which scenes the front end's errors touch, so the compiler lowers none of them.

Stage: compiler core, between resolve and lower. In: the syntax trees of the loaded
files and the resolver's diagnostics. Out: scene → a one-line reason it cannot be
built. Pure; no I/O.

The resolver keeps going after an error so one run reports every problem: a missing
asset file is reported and the asset left out of the model. Lowering such a scene
would produce a request for a different video than the one written (a text-to-video
where an image-to-video was meant), and a build would pay for it. So every error is
traced to the declaration it sits in, and from there to the scenes that depend on it:

- an error inside a scene blocks that scene;
- an error inside an asset, element or style blocks everything that names it
  (elements and styles naming a broken name are broken in turn);
- an error inside a cut blocks nothing (a cut renders nothing);
- any other error (project, defaults, let, include, outside every declaration, or
  with no location) may change any scene, so it blocks them all.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from storyc.base.diagnostics import Diagnostic
from storyc.lang import ast

# Errors that are about the command line, not the story.
_NOT_STORY = frozenset({"E246"})


def _spans(value: ast.Value | None) -> Iterator[int]:
    if value is None:
        return
    yield value.span.start
    if isinstance(value, ast.ListV):
        for item in value.items:
            yield from _spans(item)
    elif isinstance(value, ast.Block):
        for s in value.settings:
            yield s.span.start


def _start(decl: ast.Decl) -> int:
    if isinstance(decl, ast.Include):
        return decl.span.start
    if isinstance(decl, ast.ProjectDecl | ast.DefaultsDecl):
        return decl.span.start
    starts = [decl.name_span.start]
    if isinstance(decl, ast.AssetDecl):
        starts.append(decl.path.span.start)
    elif isinstance(decl, ast.Let):
        starts.extend(_spans(decl.value))
    elif isinstance(decl, ast.CutDecl):
        starts.append(decl.span.start)
    else:
        starts.extend(s.span.start for s in decl.settings)
    # The keyword (`scene`, `image`, ...) comes before the name: back up to the line start
    # is not possible without the text, so the region starts at the earliest node.
    return min(starts)


def _names(values: Iterable[ast.Value]) -> set[str]:
    """Names a declaration refers to: `Ref`s and `@mentions` in strings."""
    out: set[str] = set()
    stack = list(values)
    while stack:
        v = stack.pop()
        if isinstance(v, ast.Ref):
            out.add(v.name)
        elif isinstance(v, ast.Str):
            out.update(ast.MENTION.findall(v.value))
        elif isinstance(v, ast.ListV):
            stack.extend(v.items)
        elif isinstance(v, ast.Block):
            stack.extend(s.value for s in v.settings)
    return out


def _refs(decl: ast.Decl) -> set[str]:
    if isinstance(decl, ast.ElementDecl):
        return _names(s.value for s in decl.settings)
    if isinstance(decl, ast.StyleDecl | ast.SceneDecl):
        names = _names(s.value for s in decl.settings)
        if decl.parent is not None:
            names.add(decl.parent.name)
        return names
    return set()


def _owner(decls: list[tuple[int, ast.Decl]], offset: int) -> ast.Decl | None:
    """The declaration whose region (its start up to the next one's) holds `offset`."""
    owner = None
    for start, decl in decls:
        if start > offset:
            break
        owner = decl
    return owner


def broken_scenes(trees: Iterable[ast.File], diagnostics: Iterable[Diagnostic]) -> dict[str, str]:
    """Scene name → why it must not be lowered, for every scene an error touches."""
    regions: dict[str, list[tuple[int, ast.Decl]]] = {}
    scenes: list[ast.SceneDecl] = []
    named: list[ast.ElementDecl | ast.StyleDecl] = []
    for tree in trees:
        decls = sorted(((_start(d), d) for d in tree.items), key=lambda p: p[0])
        regions[tree.path] = decls
        for _, d in decls:
            if isinstance(d, ast.SceneDecl):
                scenes.append(d)
            elif isinstance(d, ast.ElementDecl | ast.StyleDecl):
                named.append(d)

    everything: str | None = None
    bad_scenes: dict[str, str] = {}
    bad_names: dict[str, str] = {}  # asset/element/style → why
    for diag in diagnostics:
        if not diag.is_error or diag.code in _NOT_STORY:
            continue
        where = f"{diag.span}: {diag.code}" if diag.span else diag.code
        found = regions.get(diag.span.file) if diag.span else None
        owner = _owner(found, diag.span.start) if found and diag.span else None
        if isinstance(owner, ast.SceneDecl):
            bad_scenes.setdefault(owner.name, f"the scene has an error ({where})")
        elif isinstance(owner, ast.AssetDecl | ast.ElementDecl | ast.StyleDecl):
            bad_names.setdefault(owner.name, f"`{owner.name}` has an error ({where})")
        elif isinstance(owner, ast.CutDecl):
            continue
        elif everything is None:
            everything = f"the story has an error outside any scene ({where})"

    if everything is not None:
        return {s.name: everything for s in scenes}
    # Elements and styles that name a broken name are broken too (to a fixed point).
    changed = True
    while changed:
        changed = False
        for d in named:
            if d.name in bad_names:
                continue
            hit = next((n for n in sorted(_refs(d)) if n in bad_names), None)
            if hit is not None:
                bad_names[d.name] = bad_names[hit]
                changed = True
    for s in scenes:
        if s.name in bad_scenes:
            continue
        hit = next((n for n in sorted(_refs(s)) if n in bad_names), None)
        if hit is not None:
            bad_scenes[s.name] = bad_names[hit]
    return bad_scenes
