"""Syntax trees of .story files: what was written, where, before any meaning is given.

Stage: output of `storyc.lang.parser` (one `File` per story file), input of the loader
(includes) and the resolver. Plain, pickle-able dataclasses with a `Span` on every
node; no Lark types leak past the parser. No I/O.

Booleans are not special syntax: `true`/`false` are `Ref`s that the resolver reads as
booleans where a boolean is expected, so a name never collides with a keyword.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from storyc.base.diagnostics import Span

# An `@name` mention inside a string (not part of an e-mail address or a dotted word).
MENTION = re.compile(r"(?<![\w@.])@([A-Za-z_][A-Za-z0-9_]*)")


@dataclass(slots=True)
class Str:
    value: str  # escapes processed; long strings dedented
    span: Span
    long: bool = False  # written as """..."""
    # Offset of `value[0]` in the source text, or -1 when escapes/dedenting make the
    # mapping inexact (mentions and template errors then point at the whole string).
    content_start: int = -1


@dataclass(slots=True)
class Num:
    value: int | float
    span: Span
    text: str


@dataclass(slots=True)
class Ref:
    """`name`, `name.attr` or `name.attr(arg)`, e.g. `arrival.frame(2.5)`."""

    name: str
    span: Span
    name_span: Span
    attr: str | None = None
    attr_span: Span | None = None
    arg: Num | None = None


@dataclass(slots=True)
class ListV:
    items: list[Value]
    span: Span


@dataclass(slots=True)
class Block:
    settings: list[Setting]
    span: Span


Value = Str | Num | Ref | ListV | Block


@dataclass(slots=True)
class Setting:
    name: str
    name_span: Span
    value: Value
    span: Span


@dataclass(slots=True)
class Include:
    path: Str
    span: Span


@dataclass(slots=True)
class ProjectDecl:
    title: str | None
    title_span: Span | None
    settings: list[Setting]
    span: Span  # the `project` keyword


@dataclass(slots=True)
class Let:
    name: str
    name_span: Span
    value: Value


@dataclass(slots=True)
class AssetDecl:
    kind: str  # "image" | "video"
    name: str
    name_span: Span
    path: Str


@dataclass(slots=True)
class ElementDecl:
    name: str
    name_span: Span
    settings: list[Setting]


@dataclass(slots=True)
class StyleDecl:
    name: str
    name_span: Span
    parent: Ref | None
    settings: list[Setting]


@dataclass(slots=True)
class SceneDecl:
    name: str
    name_span: Span
    parent: Ref | None  # `scene x : style_name { ... }`
    settings: list[Setting]


@dataclass(slots=True)
class DefaultsDecl:
    settings: list[Setting]
    span: Span


@dataclass(slots=True)
class CutEntry:
    """One entry of a cut: normally a scene's name, optionally trimmed by a block
    (`arrival { in = 1, out = 4.5 }`). `value` is whatever was written, so the resolver
    can say what is wrong with it."""

    value: Value
    trim: Block | None
    span: Span


@dataclass(slots=True)
class CutTransition:
    """A transition between the entries around it: `crossfade(0.5)`."""

    kind: str
    kind_span: Span
    length: Num
    span: Span


CutItem = CutEntry | CutTransition


@dataclass(slots=True)
class CutDecl:
    name: str
    name_span: Span
    items: list[CutItem]
    span: Span  # the list, `[` to `]` (the name's span when the list is empty)


Decl = (
    Include
    | ProjectDecl
    | Let
    | AssetDecl
    | ElementDecl
    | StyleDecl
    | SceneDecl
    | DefaultsDecl
    | CutDecl
)


@dataclass(slots=True)
class File:
    path: str  # project-relative label, as in spans
    items: list[Decl] = field(default_factory=list)
    complete: bool = True  # False when a syntax error stopped parsing early
