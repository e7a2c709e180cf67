"""A scene as the incremental compiler keeps it: what it consulted and what it produced.

Stage: compiler (data of `storyc.compiler.incremental`). In: a resolved scene's
diagnostics, edges, media checks and lowered request. Out: a `Unit` of plain data (what
`storyc.compiler.state` writes as JSON) with its spans relative to the declarations they
point into, and the functions that turn it back into `Diagnostic`s and a `Request` at
the declarations' current places. Pure; no I/O.

Encoded spans: `[k, *rel]`, k indexing the unit's `anchors` (0 is its own declaration;
`storyc.compiler.decls.rel_span` gives `rel`), or `[-1, file, line, col, end_line,
end_col, start, end]` for a span outside every declaration. Encoded diagnostics:
`[code, severity, message, span, hint, [[note, span], ...]]`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from storyc.base.diagnostics import Diagnostic, Severity, Span
from storyc.compiler.decls import Anchor, abs_span, rel_span
from storyc.resolve.model import ElementUse, Input, LocalFile, RemoteFile, Scene, SceneOutput
from storyc.targets.request import Request

ABSENT = "-"  # the value of a dependency on something that does not exist


def digest(*parts: object) -> str:
    h = hashlib.blake2b(digest_size=16)
    for part in parts:
        h.update(str(part).encode("utf-8", "surrogatepass"))
        h.update(b"\0")
    return h.hexdigest()


def plain(v: Any) -> Any:
    """A resolved value without spans: what a scene receives, not where it was written."""
    if isinstance(v, Input):
        return ("input", plain(v.source), v.name)
    if isinstance(v, ElementUse):
        return ("element", v.name)
    if isinstance(v, LocalFile | RemoteFile | SceneOutput):
        return repr(v)
    if isinstance(v, list | tuple):
        return [plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): plain(x) for k, x in v.items()}
    return repr(v)


@dataclass(eq=False)
class Unit:
    """One scene: plain data, plus (in memory only) its live model and decoded parts."""

    scene: str
    label: str  # the file it is declared in
    fp: str  # its declaration's fingerprint
    deps: dict[str, str]  # what it consulted -> what that was
    anchors: list[str]  # declarations its spans point into; [0] is its own
    res: list[Any]  # diagnostics of resolving it
    used: list[str]  # names it uses (for W101)
    edges: list[Any]  # [upstream scene, part, role, span]
    leaves: list[Any]  # [kind, name]
    graph: list[Any]  # its E241 diagnostics
    media: list[Any]  # [path, [diagnostics]] per local file it names itself, in order
    low: list[Any] | None = None  # rules and lowering diagnostics, once checked
    ok: bool = False  # lowered without errors
    res_error: bool = False  # resolving it reported an error
    homes: list[str] = field(default_factory=list)  # files its diagnostics sort into
    length: list[Any] = field(default_factory=lambda: ["unknown", None])  # graph.length_fact
    aspect: str | None = None  # the aspect it asks for (cuts are framed by their scenes')
    low_rules: int = 0  # how many of `low`, from the start, the rules reported
    low_full: bool = False  # lowered too (a broken scene is only checked by the rules)
    # this process only:
    version: int = field(default=0, repr=False)  # new for every (re)computation
    model: Scene | None = field(default=None, repr=False)
    model_at: Any = field(default=None, repr=False)
    model_gen: int = field(default=-1, repr=False)  # the engine update that made `model`
    # (index, len(anchors), the files its anchors are in), kept while the index is the same
    labels_at: Any = field(default=None, repr=False)
    decoded: Any = field(default=None, repr=False)  # (key, Decoded)
    _req: Request | None = field(default=None, repr=False)

    def req(self) -> Request | None:
        """The lowered request (None: not lowered, or lowered with errors)."""
        return self._req

    def pairs(self) -> tuple[tuple[str, str, str], ...]:
        return tuple((e[0], e[1], e[2]) for e in self.edges)


Locate = Callable[[Span], tuple[str, Anchor] | None]


class Encoder:
    """Encodes one unit's spans; `locate(span)` names the declaration holding a span
    (an anchor identity, see `storyc.compiler.incremental`) and where it starts."""

    def __init__(
        self,
        own: str,
        own_label: str,
        own_at: Anchor,
        own_end: int,
        locate: Locate,
        anchors: list[str] | None = None,
    ) -> None:
        self.own_label = own_label
        self.own_at = own_at
        self.own_end = own_end
        self.locate = locate
        self.anchors = list(anchors) if anchors else [own]
        self.outside: set[str] = set()  # files with spans outside every declaration
        self.homes: set[str] = set()  # files of the diagnostics' own spans

    def span(self, span: Span | None) -> Any:
        if span is None:
            return None
        if span.file == self.own_label and self.own_at[0] <= span.start < self.own_end:
            return [0, *rel_span(span, self.own_at)]
        found = self.locate(span)
        if found is None:
            self.outside.add(span.file)
            return [
                -1,
                span.file,
                span.line,
                span.col,
                span.end_line,
                span.end_col,
                span.start,
                span.end,
            ]
        ident, at = found
        if ident not in self.anchors:
            self.anchors.append(ident)
        return [self.anchors.index(ident), *rel_span(span, at)]

    def diag(self, d: Diagnostic) -> list[Any]:
        self.homes.add(d.span.file if d.span is not None else "")
        return [
            d.code,
            d.severity.value,
            d.message,
            self.span(d.span),
            d.hint,
            [[m, self.span(s)] for m, s in d.notes],
        ]


class Decoder:
    """Places encoded spans at `now`: each anchor's (label, anchor) today."""

    def __init__(self, now: list[tuple[str, Anchor] | None]) -> None:
        self.now = now

    def span(self, rec: Any) -> Span | None:
        if rec is None:
            return None
        k = rec[0]
        if k < 0:
            return Span(*rec[1:])
        at = self.now[k]
        if at is None:
            raise LookupError("a unit outlived a declaration it points into")
        return abs_span(at[0], rec[1:], at[1])

    def diag(self, rec: list[Any]) -> Diagnostic:
        code, sev, message, span, hint, notes = rec
        return Diagnostic(
            code,
            Severity(sev),
            message,
            self.span(span),
            hint,
            tuple((m, self.span(s)) for m, s in notes),
        )

    def diags(self, recs: list[Any]) -> list[Diagnostic]:
        return [self.diag(r) for r in recs]


class LazyDecoder(Decoder):
    """A `Decoder` whose anchors are found the first time a span is placed: a file's
    diagnostics are mostly notes nobody prints, and finding where 200 declarations are
    costs more than the rest of an edit."""

    def __init__(self, make: Callable[[], list[tuple[str, Anchor] | None]]) -> None:
        self._make: Callable[[], list[tuple[str, Anchor] | None]] | None = make
        self._now: list[tuple[str, Anchor] | None] = []

    @property  # a read-only view of what Decoder keeps as an attribute
    def now(self) -> list[tuple[str, Anchor] | None]:  # type: ignore[override]
        if self._make is not None:
            self._now, self._make = self._make(), None
        return self._now


@dataclass
class Decoded:
    """A unit's diagnostics at today's places, by phase."""

    res: list[Diagnostic]
    graph: list[Diagnostic]
    media: list[tuple[str, list[Diagnostic]]]
    low: list[Diagnostic] | None
    homes: set[str] = field(default_factory=set)  # files of their own spans (where they sort)
    touches: set[str] = field(default_factory=set)  # files any span (notes too) is in

    def __post_init__(self) -> None:
        everything = [*self.res, *self.graph, *(x for _, ds in self.media for x in ds)]
        for d in [*everything, *(self.low or ())]:
            self.homes.add(d.span.file if d.span is not None else "")
            self.touches.update(s.file for _, s in d.notes if s is not None)
        self.touches |= self.homes
