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

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass

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


@dataclass(frozen=True, slots=True)
class DeclInfo:
    """What taint needs of one declaration: where its region starts, what it is, what it
    names. Plain data, so a compiler that keeps declarations between runs can keep these."""

    start: int
    kind: str  # "scene", "asset", "element", "style", "cut" or "other"
    name: str
    refs: tuple[str, ...]  # sorted


def decl_info(decl: ast.Decl) -> DeclInfo:
    if isinstance(decl, ast.SceneDecl):
        kind = "scene"
    elif isinstance(decl, ast.AssetDecl):
        kind = "asset"
    elif isinstance(decl, ast.ElementDecl):
        kind = "element"
    elif isinstance(decl, ast.StyleDecl):
        kind = "style"
    elif isinstance(decl, ast.CutDecl):
        kind = "cut"
    else:
        kind = "other"
    name = getattr(decl, "name", "") if kind != "other" else ""
    return DeclInfo(_start(decl), kind, name, tuple(sorted(_refs(decl))))


def file_regions(tree: ast.File) -> list[DeclInfo]:
    """A file's declarations in the order of their regions."""
    return sorted((decl_info(d) for d in tree.items), key=lambda i: i.start)


def _owner(decls: Sequence[DeclInfo], offset: int) -> DeclInfo | None:
    """The declaration whose region (its start up to the next one's) holds `offset`."""
    owner = None
    for info in decls:
        if info.start > offset:
            break
        owner = info
    return owner


def broken_scenes(trees: Iterable[ast.File], diagnostics: Iterable[Diagnostic]) -> dict[str, str]:
    """Scene name → why it must not be lowered, for every scene an error touches."""
    return broken_from({tree.path: file_regions(tree) for tree in trees}, diagnostics)


def broken_from(
    regions: Mapping[str, Sequence[DeclInfo]], diagnostics: Iterable[Diagnostic]
) -> dict[str, str]:
    """`broken_scenes` over each file's `file_regions`, files in loading order."""
    scenes: list[DeclInfo] = []
    named: list[DeclInfo] = []
    for decls in regions.values():
        for d in decls:
            if d.kind == "scene":
                scenes.append(d)
            elif d.kind in ("element", "style"):
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
        kind = owner.kind if owner is not None else None
        if owner is not None and kind == "scene":
            bad_scenes.setdefault(owner.name, f"the scene has an error ({where})")
        elif owner is not None and kind in ("asset", "element", "style"):
            bad_names.setdefault(owner.name, f"`{owner.name}` has an error ({where})")
        elif kind == "cut":
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
            hit = next((n for n in d.refs if n in bad_names), None)
            if hit is not None:
                bad_names[d.name] = bad_names[hit]
                changed = True
    for s in scenes:
        if s.name in bad_scenes:
            continue
        hit = next((n for n in s.refs if n in bad_names), None)
        if hit is not None:
            bad_scenes[s.name] = bad_names[hit]
    return bad_scenes
