"""Story files as lists of declarations, re-read one declaration at a time.

Stage: compiler (the front of `storyc.compiler.incremental`). In: a story file's text,
and what the same file held before. Out: `FileDecls`: each top-level declaration's
kind, name, fingerprint and position, its syntax tree parsed on demand; or, for a file
with a syntax error, the parse of the whole file. Pure; no I/O.

A declaration's region runs from its keyword to the next declaration's keyword (or the
end of the file), trailing comments included; its fingerprint is a digest of that text
alone, so moving a declaration changes its position, never its fingerprint. After an
edit only the regions between the edit and the next unchanged keyword are scanned again
(`storyc.lang.parser.declaration_starts`, the lexer's rules) and only regions whose text
changed are parsed. Each is parsed on its own, placed at its offset, line and column
by padding (the same parser, the same spans as a whole-file parse); the file is
parsed whole when any region fails, so syntax errors are worded exactly as ever.

Spans that point into a declaration can be kept relative to its keyword (`rel_span`,
`abs_span`): when the declaration moves, they move with it.
"""

from __future__ import annotations

import hashlib
from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field

from storyc.base.diagnostics import Span
from storyc.check.taint import DeclInfo, decl_info
from storyc.lang import ast
from storyc.lang.parser import CONTROL, ParseResult, declaration_starts, parse_text

# The keyword of each kind of declaration (assets use `image` or `video`).
KINDS: dict[type, str] = {
    ast.Include: "include",
    ast.ProjectDecl: "project",
    ast.Let: "let",
    ast.ElementDecl: "element",
    ast.StyleDecl: "style",
    ast.SceneDecl: "scene",
    ast.DefaultsDecl: "defaults",
    ast.CutDecl: "cut",
}
# Kinds that share one namespace (a name declared twice is E101).
NAMED = ("image", "video", "element", "style", "scene", "cut")

Anchor = tuple[int, int, int]  # (offset, line, column) of a declaration's keyword
# Past this many declarations to parse, one whole-file parse costs less than a parser call
# per region (each call has a fixed cost several times a declaration's own).
MANY_REGIONS = 24
Rel = tuple[int, int, int, int, int, int]


def fingerprint(text: str) -> str:
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def kind_of(node: ast.Decl) -> str:
    if isinstance(node, ast.AssetDecl):
        return node.kind
    return KINDS[type(node)]


def rel_span(span: Span, a: Anchor) -> Rel:
    """`span` relative to an anchor: offsets and lines as differences, columns as
    differences only on the anchor's own line (a line below keeps its column)."""
    off, line, col = a
    dl, del_ = span.line - line, span.end_line - line
    return (
        span.start - off,
        span.end - off,
        dl,
        span.col - col if dl == 0 else span.col,
        del_,
        span.end_col - col if del_ == 0 else span.end_col,
    )


def abs_span(file: str, r: Rel | list[int], a: Anchor) -> Span:
    off, line, col = a
    s, e, dl, c, del_, ec = r
    return Span(
        file,
        line + dl,
        col + c if dl == 0 else c,
        line + del_,
        col + ec if del_ == 0 else ec,
        off + s,
        off + e,
    )


@dataclass(eq=False)
class Decl:
    """One top-level declaration: what does not change when it moves. Its position is
    kept by its `FileDecls` (`anchor(i)`), so moving a thousand of them is cheap."""

    kind: str
    name: str
    fp: str  # fingerprint of the region's text
    name_rel: Rel | None  # the name's span, relative to the keyword
    info: DeclInfo  # for storyc.check.taint, its `start` relative to the keyword
    node: ast.Decl | None = None  # syntax tree, valid at `node_at`
    node_at: Anchor | None = None


def describe(node: ast.Decl, a: Anchor, fp: str) -> Decl:
    name_span: Span | None = getattr(node, "name_span", None)
    info = decl_info(node)
    return Decl(
        kind_of(node),
        getattr(node, "name", ""),
        fp,
        rel_span(name_span, a) if name_span is not None else None,
        DeclInfo(info.start - a[0], info.kind, info.name, info.refs),
        node,
        a,
    )


@dataclass(eq=False)
class FileDecls:
    """A story file's text and its declarations, or `whole`, the parse of the whole file,
    when it does not parse. `starts`, `lines`, `cols`: each declaration's keyword."""

    label: str
    text: str
    decls: list[Decl] | None
    starts: list[int] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    cols: list[int] = field(default_factory=list)
    whole: ParseResult | None = None
    parses: int = 0  # regions (or whole files) parsed to make this from the previous

    @property
    def ok(self) -> bool:
        return self.decls is not None

    def anchor(self, i: int) -> Anchor:
        return (self.starts[i], self.lines[i], self.cols[i])

    def end(self, i: int) -> int:
        return self.starts[i + 1] if i + 1 < len(self.starts) else len(self.text)

    def index_at(self, offset: int) -> int:
        """The index of the declaration whose region holds `offset` (-1: none)."""
        return bisect_right(self.starts, offset) - 1

    def name_span(self, i: int) -> Span | None:
        assert self.decls is not None
        r = self.decls[i].name_rel
        return abs_span(self.label, r, self.anchor(i)) if r is not None else None

    def taint(self, i: int) -> DeclInfo:
        assert self.decls is not None
        info = self.decls[i].info
        return DeclInfo(self.starts[i] + info.start, info.kind, info.name, info.refs)

    def node(self, i: int) -> ast.Decl:
        """Declaration `i`'s syntax tree at its current position (parsed now if it moved)."""
        assert self.decls is not None
        d = self.decls[i]
        a = self.anchor(i)
        if d.node is None or d.node_at != a:
            parsed = _parse_region(self.text, self.label, a, self.end(i))
            if parsed is None:  # a region of a file that parsed always parses
                raise ValueError(f"{self.label}: the declaration at {a[0]} no longer parses")
            d.node, d.node_at = parsed, a
        return d.node

    def nodes(self, indices: list[int]) -> list[ast.Decl]:
        """The trees of declarations `indices`: one whole-file parse when many are
        missing (a parser call per region costs more than the file, past a few dozen)."""
        assert self.decls is not None
        decls = self.decls
        missing = [
            i for i in indices if decls[i].node is None or decls[i].node_at != self.anchor(i)
        ]
        if len(missing) > MANY_REGIONS:
            result = parse_text(self.text, self.label)
            if not result.diagnostics and len(result.file.items) == len(decls):
                for i, node in enumerate(result.file.items):
                    decls[i].node, decls[i].node_at = node, self.anchor(i)
        return [self.node(i) for i in indices]

    def items(self) -> list[ast.Decl]:
        """Every declaration's tree (what a whole-file parse gives)."""
        if self.decls is None:
            assert self.whole is not None
            return list(self.whole.file.items)
        return [self.node(i) for i in range(len(self.decls))]


def _parse_region(text: str, label: str, a: Anchor, end: int) -> ast.Decl | None:
    start, line, col = a
    # Padding puts the region at its offset, line and column, so every span (and every
    # offset the parser records) is what a whole-file parse gives, with no rewriting.
    pad = " " * (start - (line - 1) - (col - 1)) + "\n" * (line - 1) + " " * (col - 1)
    result = parse_text(pad + text[start:end], label)
    if result.diagnostics or len(result.file.items) != 1:
        return None
    return result.file.items[0]


def _common_prefix(a: str, b: str) -> int:
    lo, hi = 0, min(len(a), len(b))
    while lo < hi:  # the longest n with a[:n] == b[:n], by bisection (memcmp, not a loop)
        mid = (lo + hi + 1) // 2
        if a.startswith(b[lo:mid], lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def _common_suffix(a: str, b: str, limit: int) -> int:
    lo, hi = 0, min(len(a), len(b)) - limit
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if a.endswith(b[len(b) - mid : len(b) - lo], 0, len(a) - lo):
            lo = mid
        else:
            hi = mid - 1
    return lo


def read_file(
    label: str, text: str, old: FileDecls | None = None, parsed: ParseResult | None = None
) -> FileDecls:
    """The declarations of `text`, reusing what `old` (the same file before) knew, or the
    whole file's `parsed` result (`parse_text(text, label)` made already)."""
    if old is not None and old.text == text and old.label == label:
        return old
    if parsed is not None or old is None or old.decls is None or old.label != label:
        return _whole(label, text, parsed)
    return _edit(old, text) or _whole(label, text)


def _whole(label: str, text: str, parsed: ParseResult | None = None) -> FileDecls:
    result = parsed if parsed is not None else parse_text(text, label)
    n = 0 if parsed is not None else 1
    starts = result.starts if not result.diagnostics else None
    items = result.file.items
    if starts is None or len(starts) != len(items) or not result.file.complete:
        return FileDecls(label, text, None, whole=result, parses=n)
    lines, cols = _positions(text, starts, 0, 1, 1)
    decls: list[Decl] = []
    for i, node in enumerate(items):
        start = starts[i]
        if not text.startswith(kind_of(node), start):
            return FileDecls(label, text, None, whole=result, parses=1)
        end = starts[i + 1] if i + 1 < len(starts) else len(text)
        decls.append(describe(node, (start, lines[i], cols[i]), fingerprint(text[start:end])))
    return FileDecls(label, text, decls, starts, lines, cols, parses=n)


def _positions(
    text: str, starts: list[int], prev: int, line: int, col: int
) -> tuple[list[int], list[int]]:
    """Lines and columns of `starts`, counting on from (`prev`, `line`, `col`)."""
    lines: list[int] = []
    cols: list[int] = []
    for start in starts:
        nl = text.count("\n", prev, start)
        if nl:
            line += nl
            col = start - text.rfind("\n", prev, start)
        else:
            col += start - prev
        prev = start
        lines.append(line)
        cols.append(col)
    return lines, cols


def _edit(old: FileDecls, text: str) -> FileDecls | None:
    """Scan the new text around the change only; parse only regions whose text is new.
    None when a region does not parse (the caller parses the whole file)."""
    assert old.decls is not None
    before = old.text
    p = _common_prefix(before, text)
    s = _common_suffix(before, text, p)
    delta = len(text) - len(before)
    change_end = len(text) - s
    # The first declaration that may differ: the last whose keyword starts before the
    # change (a change right at a keyword may turn the region before into another).
    if not old.starts or p <= old.starts[0]:
        a, pos = 0, 0
    else:
        a = bisect_left(old.starts, p) - 1
        pos = old.starts[a]
    window: list[int] = []
    stop = change_end
    tail = len(old.starts)  # old index from which declarations only moved
    while True:
        found = declaration_starts(text, pos, stop)
        if found is None:
            return None
        if not found or found[-1] < stop:
            window += found  # the scan reached the end of the file
            break
        q = found[-1]
        j = bisect_right(old.starts, q - delta) - 1
        if j >= 0 and old.starts[j] == q - delta and j >= a:  # in step again
            window += found[:-1]
            tail = j
            break
        window += found[:-1]
        pos, stop = q, q + 1
    # The text before the first declaration is in no region: what a whole parse reports
    # there, a control character (E001) in a comment, is looked for here (any token there
    # already stopped `declaration_starts`).
    if a == 0:
        first = (
            window[0]
            if window
            else old.starts[tail] + delta
            if tail < len(old.starts)
            else len(text)
        )
        if CONTROL.search(text, 0, first):
            return None
    # Head: unchanged. Window: scanned again. Tail: the old declarations, moved by delta.
    if a > 0:
        line, col, prev = old.lines[a - 1], old.cols[a - 1], old.starts[a - 1]
    else:
        line, col, prev = 1, 1, 0
    w_lines, w_cols = _positions(text, window, prev, line, col)
    by_fp: dict[str, list[Decl]] = {}
    for d in old.decls[a:tail]:
        by_fp.setdefault(d.fp, []).append(d)
    t_starts = [x + delta for x in old.starts[tail:]]
    ends = window[1:] + [t_starts[0] if t_starts else len(text)] if window else []
    decls = list(old.decls[:a])
    parses = 0
    fps = [fingerprint(text[start:end]) for start, end in zip(window, ends, strict=True)]
    if sum(1 for fp in fps if fp not in by_fp) > MANY_REGIONS:
        return None  # a paste of many declarations: one whole parse costs less
    for start, ln, cl, fp, end in zip(window, w_lines, w_cols, fps, ends, strict=True):
        same = by_fp.get(fp)
        if same:
            decls.append(same.pop(0))  # its tree is re-placed when asked for (`node`)
            continue
        node = _parse_region(text, old.label, (start, ln, cl), end)
        parses += 1
        if node is None or not text.startswith(kind_of(node), start):
            return None
        decls.append(describe(node, (start, ln, cl), fp))
    decls += old.decls[tail:]
    if t_starts:
        t_lines, t_cols = _tail_positions(old, text, tail, t_starts, change_end, before, p)
    else:
        t_lines, t_cols = [], []
    return FileDecls(
        old.label,
        text,
        decls,
        old.starts[:a] + window + t_starts,
        old.lines[:a] + w_lines + t_lines,
        old.cols[:a] + w_cols + t_cols,
        parses=parses,
    )


def _tail_positions(
    old: FileDecls, text: str, tail: int, t_starts: list[int], change_end: int, before: str, p: int
) -> tuple[list[int], list[int]]:
    old_end = change_end - (len(text) - len(before))
    dline = text.count("\n", p, change_end) - before.count("\n", p, old_end)
    lines = [x + dline for x in old.lines[tail:]]
    cols = old.cols[tail:]
    # Only declarations on the line where the change ends change column.
    nl = text.find("\n", change_end)
    k = 0
    while k < len(t_starts) and (nl < 0 or t_starts[k] < nl):
        k += 1
    if k:
        cols = cols[:]
        for i in range(k):
            start = t_starts[i]
            cols[i] = start - (text.rfind("\n", 0, start) + 1) + 1
    return lines, cols
