"""Positions: character offsets and 1-based spans to LSP positions, and back.

Stage: editor (for the language server). In: a file's text and the position encoding the
client and server agreed on (UTF-16 unless the client offered another). Out: LSP
`Position`/`Range` values, offsets. Pure; no I/O.
"""

from __future__ import annotations

import bisect
from pathlib import Path
from urllib.parse import unquote, urlparse

from lsprotocol import types as lsp

from storyc.base.diagnostics import Span
from storyc.lang.tokens import line_starts


class Lines:
    """Converts between character offsets / 1-based spans and LSP positions in the
    negotiated encoding (UTF-16 unless the client chose otherwise)."""

    def __init__(self, text: str, encoding: str = "utf-16") -> None:
        self.text = text
        self.starts = line_starts(text)
        self.encoding = encoding

    def _line(self, n: int) -> str:
        if n >= len(self.starts):
            return ""
        end = self.starts[n + 1] - 1 if n + 1 < len(self.starts) else len(self.text)
        return self.text[self.starts[n] : end]

    def _units(self, s: str) -> int:
        if s.isascii() or self.encoding == "utf-32":
            return len(s)
        if self.encoding == "utf-8":
            return len(s.encode("utf-8"))
        return len(s.encode("utf-16-le")) // 2

    def position(self, offset: int) -> lsp.Position:
        offset = max(0, min(offset, len(self.text)))
        n = bisect.bisect_right(self.starts, offset) - 1
        return lsp.Position(n, self._units(self.text[self.starts[n] : offset]))

    def at(self, line: int, col: int) -> lsp.Position:
        """A 1-based line and character column (as in a `Span`)."""
        text = self._line(line - 1)
        return lsp.Position(max(0, line - 1), self._units(text[: max(0, col - 1)]))

    def range(self, span: Span) -> lsp.Range:
        return lsp.Range(self.at(span.line, span.col), self.at(span.end_line, span.end_col))

    def offset(self, pos: lsp.Position) -> int:
        if pos.line >= len(self.starts):
            return len(self.text)
        start = self.starts[pos.line]
        line = self._line(pos.line)
        if line.isascii() or self.encoding == "utf-32":
            return start + min(pos.character, len(line))
        units = 0
        for i, ch in enumerate(line):
            if units >= pos.character:
                return start + i
            units += self._units(ch)
        return start + len(line)


def uri_to_path(uri: str) -> Path:
    return Path(unquote(urlparse(uri).path))


def path_to_uri(path: Path) -> str:
    return path.as_uri()
