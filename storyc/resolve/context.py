"""What the parts of the resolver share: the name table, settings layers, kind words.

Stage: part of the resolver (`storyc.resolve.resolver` fills these in; `scene` and `prompt`
read them). In/out: plain data, plus `Context`, the view of the resolver that the scene
and prompt helpers are given (so they never import the resolver that calls them). No I/O.
"""

from __future__ import annotations

import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from storyc.base.diagnostics import Diagnostics, Span
from storyc.lang import ast
from storyc.lang.loader import Loaded, LoadedFile
from storyc.resolve.model import Asset, Origin

if TYPE_CHECKING:
    from storyc.resolve.files import FileResolver

KIND_WORDS = {
    "image": "an image asset",
    "video": "a video asset",
    "element": "an element",
    "style": "a style",
    "scene": "a scene",
    "cut": "a cut",
}


@dataclass
class Named:
    """One declaration in the shared namespace of assets, elements, styles, scenes, cuts."""

    kind: str  # "image", "video", "element", "style", "scene", "cut"
    decl: ast.Decl
    file: LoadedFile
    span: Span


class Names(dict[str, Named]):
    """The shared namespace, in declaration order. `pool(kinds)` lists the names of those
    kinds for "did you mean" hints; a subclass may hold names it does not store (the
    incremental compiler keeps unchanged scenes out of the resolver's way)."""

    def pool(self, kinds: tuple[str, ...]) -> list[str]:
        return [n for n, d in self.items() if d.kind in kinds]


@dataclass
class Layer:
    origin: Origin
    settings: dict[str, ast.Setting]
    file: LoadedFile
    # The block had a setting storyc does not know (E102): perhaps a misspelt input, so
    # what the scenes that inherit it are is not certain.
    unknown: bool = False


class LineIndex:
    """Offsets to spans in one file, by binary search (`Span.from_offsets` scans the
    whole text for every call, which is quadratic over a file of many scenes)."""

    def __init__(self, file: str, text: str) -> None:
        self.file = file
        self.text = text
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def span(self, start: int, end: int) -> Span:
        n = len(self.text)
        start = max(0, min(start, n))
        end = max(start, min(end, n))
        line = bisect_right(self.starts, start)
        end_line = bisect_right(self.starts, end)
        return Span(
            self.file,
            line,
            start - self.starts[line - 1] + 1,
            end_line,
            end - self.starts[end_line - 1] + 1,
            start,
            end,
        )


class Context(Protocol):
    """The resolver as its scene and prompt helpers see it."""

    loaded: Loaded
    diags: Diagnostics
    files: FileResolver
    names: Names
    used: set[str]
    targets: Sequence[str] | None
    assets_by_name: dict[str, Asset]

    def unknown(
        self,
        name: str,
        span: Span,
        kinds: tuple[str, ...],
        what: str = ...,
        code: str = ...,
    ) -> None: ...
