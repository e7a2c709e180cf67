"""The project index: every declared name, every place a name is used, every include.

Stage: editor (for the language server). In: a `Loaded` project (syntax trees and the
text of each file). Out: an `Index` answering "what is at this offset of this file",
"where is this name declared" and "where is it used". Pure; no I/O.

Uses are found in the syntax trees, so positions are exact: a reference (`start =
arrival.last_frame`, `refs = [poster]`, `use = noir`, a cut's scenes), a parent style
(`scene a : noir`), an `@mention` inside a string (only where the string maps exactly
onto the source; see `storyc.resolve.prompt.source_offset`), a `let` variable inside a
prompt template (`{{ style }}`), and an `include` path (which names a file).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field

from storyc.base.diagnostics import Span
from storyc.lang import ast
from storyc.lang.loader import Loaded
from storyc.lang.tokens import DECL_TYPES, tokenize
from storyc.resolve.prompt import source_offset

# Words inside `{{ ... }}` / `{% ... %}` that may name a `let` variable (not attributes,
# not inside quotes: a rough cut that the declared names then filter).
_TEMPLATE_TAG = re.compile(r"\{\{(.*?)\}\}|\{%(.*?)%\}", re.S)
_TEMPLATE_WORD = re.compile(r"""(?<![\w.'"])([A-Za-z_][A-Za-z0-9_]*)""")
# just before a filter's or a test's name (`| title`, `is not upper`), matched at the end
_FILTER_OR_TEST = re.compile(r"(?:\|\s*|\bis\s+(?:not\s+)?)\Z")


@dataclass(frozen=True, slots=True)
class Symbol:
    name: str
    kind: str  # "image", "video", "element", "style", "scene", "cut", "let"
    file: str
    span: Span  # the name where it is declared
    extent: Span  # the whole declaration


@dataclass(frozen=True, slots=True)
class Use:
    name: str
    file: str
    span: Span  # exactly the name's characters (what a rename replaces)
    kind: str  # "ref", "parent", "mention", "template", "include"
    attr: str | None = None  # `last_frame` in `arrival.last_frame`
    target: str | None = None  # include: the label of the file it loads
    scene: str | None = None  # mention: the scene whose setting holds it


@dataclass
class Index:
    # by name: assets, elements, styles, scenes and cuts (one set of names), and each `let`
    # whose name none of those has (`lets` holds every `let`: theirs is another set of
    # names, `let harbour` and `scene harbour` may both be declared)
    symbols: dict[str, Symbol] = field(default_factory=dict)
    uses: dict[str, list[Use]] = field(default_factory=dict)  # by file
    decls: dict[str, list[tuple[ast.Decl, Span]]] = field(default_factory=dict)  # by file
    texts: dict[str, str] = field(default_factory=dict)
    lets: dict[str, Symbol] = field(default_factory=dict)

    def at(self, file: str, offset: int) -> Symbol | Use | None:
        """The declaration name or the use whose characters hold `offset` (or end at it)."""
        for use in self.uses.get(file, ()):
            if use.span.start <= offset <= use.span.end:
                return use
        for sym in (*self.symbols.values(), *self.lets.values()):
            if sym.file == file and sym.span.start <= offset <= sym.span.end:
                return sym
        return None

    def symbol_of(self, hit: Symbol | Use) -> Symbol | None:
        """The declaration a name at some place stands for: a template's word is a `let`,
        any other use one of the other declarations."""
        if isinstance(hit, Symbol):
            return hit
        if hit.kind == "template":
            return self.lets.get(hit.name)
        sym = self.symbols.get(hit.name)
        return sym if sym is not None and sym.kind != "let" else None

    def uses_of(self, name: str, let: bool | None = None) -> Iterator[Use]:
        """The uses of `name`: of the `let` (`let=True`), of the other declaration of
        that name (`let=False`), or of either (None)."""
        for uses in self.uses.values():
            for use in uses:
                if (
                    use.name == name
                    and use.kind != "include"
                    and (let is None or (use.kind == "template") == let)
                ):
                    yield use


@dataclass
class _FilePart:
    tree: ast.File
    includes: dict[int, str]
    symbols: list[Symbol]
    uses: list[Use]
    decls: list[tuple[ast.Decl, Span]]
    # the `let`s its prompt templates name, for the project's set of `let`s it was found
    # with (a file unchanged, with the same `let`s, is not walked again: at 1,000 scenes
    # walking every file's templates was half of each check in the editor)
    template: tuple[frozenset[str], dict[str, frozenset[str]], list[Use]] | None = None
    # what its declarations say of template variables (see `_vars_of`), once per tree
    vars: _Vars | None = None


# What one file contributes, by label: reused while its tree (from the parse cache) and
# its includes are the same, so an edit re-indexes only the file it changed.
Memo = dict[str, _FilePart]


@dataclass
class _Vars:
    """One file's part of `_shadows`: the `vars` of its project and defaults blocks, each
    style's and scene's own `vars` (only those that have some), what each inherits from,
    and the names of its styles and scenes."""

    base: set[str]
    own: dict[str, set[str]]
    parent: dict[str, str]
    names: list[str]


def _vars_of(tree: ast.File, part: _FilePart | None) -> _Vars:
    if part is not None and part.tree is tree and part.vars is not None:
        return part.vars
    out = _Vars(set(), {}, {}, [])
    for item in tree.items:
        if isinstance(item, ast.ProjectDecl | ast.DefaultsDecl):
            out.base |= _var_names(item.settings)
        elif isinstance(item, ast.StyleDecl | ast.SceneDecl):
            out.names.append(item.name)
            own = _var_names(item.settings)
            if own:
                out.own.setdefault(item.name, set()).update(own)
            up = item.parent.name if item.parent is not None else None
            for st in item.settings:
                if st.name == "use" and isinstance(st.value, ast.Ref):
                    up = st.value.name
            if up is not None:
                out.parent[item.name] = up
    if part is not None and part.tree is tree:
        part.vars = out
    return out


def build(loaded: Loaded, memo: Memo | None = None) -> Index:
    index = Index()
    for f in loaded.files:
        index.texts[f.label] = f.text
        part = memo.get(f.label) if memo is not None else None
        if part is None or part.tree is not f.tree or part.includes != f.includes:
            part = _index_file(f.label, f.text, f.tree, f.includes)
            if memo is not None:
                memo[f.label] = part
        for sym in part.symbols:
            if sym.kind == "let":
                index.lets.setdefault(sym.name, sym)
            else:
                index.symbols.setdefault(sym.name, sym)
        index.decls[f.label] = part.decls
        index.uses[f.label] = list(part.uses)
    for name, sym in index.lets.items():
        index.symbols.setdefault(name, sym)
    lets = frozenset(index.lets)
    parts = [memo.get(f.label) if memo is not None else None for f in loaded.files]
    found_vars = [_vars_of(f.tree, p) for f, p in zip(loaded.files, parts, strict=True)]
    shadows = _shadows(found_vars) if lets else {}
    for f, part, fv in zip(loaded.files, parts, found_vars, strict=True):
        # no `vars` anywhere (the usual case): nothing to compare, nothing walked
        here = {n: shadows[n] for n in fv.names if n in shadows} if shadows else {}
        if part is not None and part.tree is f.tree and part.template is not None:
            known, seen, found = part.template
            if known == lets and seen == here:
                index.uses[f.label].extend(found)
                continue
        found = list(_template_uses(f.tree, f.label, f.text, set(lets), shadows))
        if part is not None and part.tree is f.tree:
            part.template = (lets, here, found)
        index.uses[f.label].extend(found)
    return index


def _index_file(label: str, text: str, tree: ast.File, includes: dict[int, str]) -> _FilePart:
    extents = _extents(label, text)
    part = _FilePart(tree, dict(includes), [], [], [])
    for i, item in enumerate(tree.items):
        extent = extents[i] if i < len(extents) else Span.point(label)
        part.decls.append((item, extent))
        _collect(item, label, text, part.uses)
        if isinstance(item, ast.Include):
            s = item.path.span
            inner = Span.from_offsets(label, text, s.start + 1, max(s.start + 1, s.end - 1))
            part.uses.append(Use(item.path.value, label, inner, "include", target=includes.get(i)))
            continue
        sym = _symbol(item, label, extent)
        if sym is not None:
            part.symbols.append(sym)
    if not tree.complete:
        # A syntax error stopped the parser: the names declared at the top level still
        # count (for completion while the file is being typed).
        part.symbols.extend(_declared_names(label, text))
    return part


def _extents(file: str, text: str) -> list[Span]:
    """Each top-level declaration's extent: its keyword to its last token."""
    toks = [t for t in tokenize(text).tokens if t.kind != "COMMENT"]
    starts = [i for i, t in enumerate(toks) if t.kind in DECL_TYPES]
    out: list[Span] = []
    for n, i in enumerate(starts):
        last = (starts[n + 1] if n + 1 < len(starts) else len(toks)) - 1
        out.append(Span.from_offsets(file, text, toks[i].start, toks[last].end))
    return out


_KIND_OF = {
    "IMAGE": "image",
    "VIDEO": "video",
    "ELEMENT": "element",
    "STYLE": "style",
    "SCENE": "scene",
    "CUT": "cut",
    "LET": "let",
}


def _declared_names(file: str, text: str) -> Iterator[Symbol]:
    toks = [t for t in tokenize(text).tokens if t.kind != "COMMENT"]
    for a, b in zip(toks, toks[1:], strict=False):
        kind = _KIND_OF.get(a.kind)
        if kind is not None and b.kind == "NAME":
            span = Span.from_offsets(file, text, b.start, b.end)
            yield Symbol(b.text, kind, file, span, Span.from_offsets(file, text, a.start, b.end))


def _symbol(item: ast.Decl, file: str, extent: Span) -> Symbol | None:
    if isinstance(item, ast.AssetDecl):
        return Symbol(item.name, item.kind, file, item.name_span, extent)
    if isinstance(item, ast.ElementDecl):
        return Symbol(item.name, "element", file, item.name_span, extent)
    if isinstance(item, ast.StyleDecl):
        return Symbol(item.name, "style", file, item.name_span, extent)
    if isinstance(item, ast.SceneDecl):
        return Symbol(item.name, "scene", file, item.name_span, extent)
    if isinstance(item, ast.CutDecl):
        return Symbol(item.name, "cut", file, item.name_span, extent)
    if isinstance(item, ast.Let):
        return Symbol(item.name, "let", file, item.name_span, extent)
    return None


def settings_of(item: ast.Decl) -> list[ast.Setting]:
    if isinstance(item, ast.ProjectDecl | ast.ElementDecl | ast.StyleDecl | ast.SceneDecl):
        return item.settings
    if isinstance(item, ast.DefaultsDecl):
        return item.settings
    return []


def _collect(item: ast.Decl, file: str, text: str, out: list[Use]) -> None:
    scene = item.name if isinstance(item, ast.SceneDecl) else None
    if isinstance(item, ast.StyleDecl | ast.SceneDecl) and item.parent is not None:
        p = item.parent
        out.append(Use(p.name, file, p.name_span, "parent"))
    if isinstance(item, ast.Let):
        _values(item.value, file, text, out, scene)
    elif isinstance(item, ast.CutDecl):
        for entry in item.items:
            if isinstance(entry, ast.CutEntry):
                _values(entry.value, file, text, out, scene)
    elif isinstance(item, ast.AssetDecl):
        pass
    for s in settings_of(item):
        _values(s.value, file, text, out, scene)


def _values(v: ast.Value, file: str, text: str, out: list[Use], scene: str | None) -> None:
    if isinstance(v, ast.Ref):
        if v.attr is None and v.name in ("true", "false"):
            return
        out.append(Use(v.name, file, v.name_span, "ref", attr=v.attr))
    elif isinstance(v, ast.ListV):
        for item in v.items:
            _values(item, file, text, out, scene)
    elif isinstance(v, ast.Block):
        for s in v.settings:
            _values(s.value, file, text, out, scene)
    elif isinstance(v, ast.Str):
        for m in ast.MENTION.finditer(v.value):
            at = source_offset(v, text, m.start(1))
            if at is None or text[at : at + len(m.group(1))] != m.group(1):
                continue
            span = Span.from_offsets(file, text, at, at + len(m.group(1)))
            out.append(Use(m.group(1), file, span, "mention", scene=scene))


def _strings(v: ast.Value) -> Iterator[ast.Str]:
    if isinstance(v, ast.Str):
        yield v
    elif isinstance(v, ast.ListV):
        for item in v.items:
            yield from _strings(item)
    elif isinstance(v, ast.Block):
        for s in v.settings:
            yield from _strings(s.value)


def _var_names(settings: list[ast.Setting]) -> set[str]:
    return {
        v.name
        for st in settings
        if st.name == "vars" and isinstance(st.value, ast.Block)
        for v in st.value.settings
    }


def _shadows(files: list[_Vars]) -> dict[str, frozenset[str]]:
    """For each style and scene, the template variables its `vars` (or those of the
    project, the defaults, the styles it inherits from, or for a style the scenes and
    styles inheriting from it) may set: such a name in its templates is not the `let`.
    Only the names for which that is not empty: none at all when no block has `vars`."""
    base: set[str] = set()
    own: dict[str, set[str]] = {}
    parent: dict[str, str] = {}
    for v in files:
        base |= v.base
        for name, names in v.own.items():
            own.setdefault(name, set()).update(names)
    if not base and not own:
        return {}
    for v in files:
        parent.update(v.parent)
    children: dict[str, list[str]] = {}
    for child, up in parent.items():
        children.setdefault(up, []).append(child)
    out: dict[str, frozenset[str]] = {}
    for name in (n for v in files for n in v.names):
        names = set(base)
        seen: set[str] = set()
        k: str | None = name
        while k is not None and k not in seen:
            seen.add(k)
            names |= own.get(k, set())
            k = parent.get(k)
        todo = list(children.get(name, ()))
        while todo:
            c = todo.pop()
            if c in seen:
                continue
            seen.add(c)
            names |= own.get(c, set())
            todo.extend(children.get(c, ()))
        if names:
            out[name] = frozenset(names)
    return out


def _template_uses(
    tree: ast.File,
    file: str,
    text: str,
    lets: set[str],
    shadows: dict[str, frozenset[str]] | None = None,
) -> Iterator[Use]:
    if not lets:
        return
    for item in tree.items:
        shadowed = (shadows or {}).get(getattr(item, "name", ""), frozenset())
        if not isinstance(item, ast.StyleDecl | ast.SceneDecl):
            shadowed = frozenset()
        values = [s.value for s in settings_of(item)]
        if isinstance(item, ast.Let):
            values.append(item.value)
        for v in values:
            for node in _strings(v):
                if "{" not in node.value:
                    continue
                for tag in _TEMPLATE_TAG.finditer(node.value):
                    body_start = tag.start(1) if tag.group(1) is not None else tag.start(2)
                    body = tag.group(1) if tag.group(1) is not None else tag.group(2)
                    for w in _TEMPLATE_WORD.finditer(body):
                        if w.group(1) not in lets or w.group(1) in shadowed:
                            continue
                        if _FILTER_OR_TEST.search(body, 0, w.start(1)):
                            continue  # `x | title`, `x is upper`: Jinja's, not the `let`
                        at = source_offset(node, text, body_start + w.start(1))
                        if at is None or text[at : at + len(w.group(1))] != w.group(1):
                            continue
                        span = Span.from_offsets(file, text, at, at + len(w.group(1)))
                        yield Use(w.group(1), file, span, "template")
