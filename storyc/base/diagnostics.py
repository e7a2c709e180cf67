"""Diagnostics: located, coded messages about a story — data plus one pure renderer.

Stage: shared by every compiler stage. In: spans and messages. Out: `Diagnostic`
values, rendered text (`render`) or JSON-ready dicts (`to_json`). No I/O: the
source text needed for excerpts is handed in through a `SourceMap`.

Text from a story reaches a terminal through these renderers, so they never pass on a
control character (an escape sequence in a prompt could retitle the window, hide text or
worse): `printable` shows each as an escape (`\\x1b`), and excerpts of long lines are cut
to a window around the place they point at.

Every code is documented in docs/diagnostics.md (a test enforces this). Codes:

    E0xx  syntax and file loading           (parser, loader)
    E1xx / W1xx  names, types, settings, templates, files, graph  (resolver)
    E2xx / W2xx  model rules and target lowering                  (rules, targets)
    E3xx / W3xx  build-time problems that point at the story      (planner, executor)
"""

from __future__ import annotations

import json
import re
from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from enum import StrEnum


class Severity(StrEnum):
    ERROR = "error"
    WARNING = "warning"
    NOTE = "note"


_SHORT = 2048  # below this, counting lines costs less than making their table
_NEWLINE = re.compile("\n")
# the last long text spans were made in, and where its lines start (a string is
# immutable: the same object is the same text); one tuple, replaced whole
_lines: tuple[str, list[int]] = ("", [0])


def _line_starts(text: str) -> list[int]:
    global _lines
    last = _lines
    if last[0] is text:
        return last[1]
    starts = [0, *(m.end() for m in _NEWLINE.finditer(text))]
    _lines = (text, starts)
    return starts


@dataclass(frozen=True, slots=True)
class Span:
    """A region of one source file. Lines and columns are 1-based; `end_*` is exclusive.

    `file` is the path as shown to the user: relative to the project root when the
    file is inside it, otherwise as given. `start`/`end` are character offsets.
    """

    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    start: int = 0
    end: int = 0

    @staticmethod
    def point(file: str, line: int = 1, col: int = 1, offset: int = 0) -> Span:
        return Span(file, line, col, line, col + 1, offset, offset + 1)

    @staticmethod
    def from_offsets(file: str, text: str, start: int, end: int) -> Span:
        """Build a span from character offsets into `text` (clamped into the text).
        Many spans of one long text (the editor's index of a file) look their lines up
        in a table of where lines start, made once per text, instead of counting every
        line from the start of the text for each one."""
        start = max(0, min(start, len(text)))
        end = max(start, min(end, len(text)))
        if len(text) < _SHORT:
            line = text.count("\n", 0, start) + 1
            col = start - (text.rfind("\n", 0, start) + 1) + 1
            end_line = text.count("\n", 0, end) + 1
            end_col = end - (text.rfind("\n", 0, end) + 1) + 1
            return Span(file, line, col, end_line, end_col, start, end)
        starts = _line_starts(text)
        line = bisect_right(starts, start)
        end_line = bisect_right(starts, end)
        return Span(
            file,
            line,
            start - starts[line - 1] + 1,
            end_line,
            end - starts[end_line - 1] + 1,
            start,
            end,
        )

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True, slots=True)
class Diagnostic:
    code: str
    severity: Severity
    message: str
    span: Span | None = None
    hint: str | None = None
    notes: tuple[tuple[str, Span | None], ...] = ()

    @property
    def is_error(self) -> bool:
        return self.severity is Severity.ERROR

    def sort_key(self) -> tuple[str, int, int, str, str]:
        if self.span is None:
            return ("", 0, 0, self.code, self.message)
        return (self.span.file, self.span.line, self.span.col, self.code, self.message)


@dataclass
class Diagnostics:
    """An ordered, de-duplicated collection that stages append to."""

    items: list[Diagnostic] = field(default_factory=list)
    _seen: set[Diagnostic] = field(default_factory=set, repr=False)

    def add(self, diag: Diagnostic) -> None:
        if diag not in self._seen:
            self._seen.add(diag)
            self.items.append(diag)

    def error(
        self,
        code: str,
        message: str,
        span: Span | None = None,
        *,
        hint: str | None = None,
        notes: tuple[tuple[str, Span | None], ...] = (),
    ) -> None:
        self.add(Diagnostic(code, Severity.ERROR, message, span, hint, notes))

    def warning(
        self,
        code: str,
        message: str,
        span: Span | None = None,
        *,
        hint: str | None = None,
        notes: tuple[tuple[str, Span | None], ...] = (),
    ) -> None:
        self.add(Diagnostic(code, Severity.WARNING, message, span, hint, notes))

    def note(
        self, code: str, message: str, span: Span | None = None, *, hint: str | None = None
    ) -> None:
        self.add(Diagnostic(code, Severity.NOTE, message, span, hint))

    def extend(self, diags: Iterable[Diagnostic]) -> None:
        for d in diags:
            self.add(d)

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.items)

    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.is_error]

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=Diagnostic.sort_key)

    def __iter__(self) -> Iterator[Diagnostic]:
        return iter(self.items)

    def __len__(self) -> int:
        return len(self.items)


class SourceMap:
    """Maps the `file` of a span to its text, for excerpts. Filled by the loader."""

    def __init__(self, texts: dict[str, str] | None = None) -> None:
        self.texts: dict[str, str] = dict(texts or {})

    def add(self, file: str, text: str) -> None:
        self.texts[file] = text

    def line(self, file: str, line: int) -> str | None:
        text = self.texts.get(file)
        if text is None:
            return None
        # Split once per text, not once per diagnostic: a file with thousands of warnings
        # would otherwise be split thousands of times.
        cache: dict[str, tuple[str, list[str]]] = self.__dict__.setdefault("_lines", {})
        hit = cache.get(file)
        if hit is None or hit[0] is not text:
            hit = cache[file] = (text, text.split("\n"))
        lines = hit[1]
        if 1 <= line <= len(lines):
            return lines[line - 1].rstrip("\r")
        return None


# C0 controls but tab and line feed, DEL, C1 controls, the bidirectional overrides and
# isolates, and the line and paragraph separators.
_UNPRINTABLE = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")
# JSON keeps these raw (it escapes only C0): escape them too, so `--json` on a terminal is safe.
_JSON_UNSAFE = re.compile(r"[\x7f-\x9f\u202a-\u202e\u2066-\u2069\u2028\u2029]")


def _escape(m: re.Match[str]) -> str:
    code = ord(m.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def printable(text: str) -> str:
    """`text` with every control character shown as an escape (`\\x1b`, `\\u202e`);
    tabs and line breaks are kept. For anything from a story that reaches a terminal."""
    return _UNPRINTABLE.sub(_escape, text) if _UNPRINTABLE.search(text) else text


def json_safe(text: str) -> str:
    """JSON text with the characters JSON leaves raw (DEL, C1, bidi controls) escaped as
    `\\uXXXX`: the same document, safe to print."""
    return _JSON_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", text)


EXCERPT_WIDTH = 160  # columns of a source line shown around the place a diagnostic marks


def _excerpt(span: Span, sources: SourceMap) -> list[str]:
    src = sources.line(span.file, span.line)
    if src is None:
        return []
    gutter = str(span.line)
    pad = " " * len(gutter)

    def shown(raw: str) -> str:
        return printable(raw.replace("\n", " ")).expandtabs(4)

    expanded = shown(src)
    # Columns are in characters of the raw line; recompute after escapes and tab expansion.
    start = len(shown(src[: max(0, span.col - 1)]))
    if span.end_line == span.line:
        width = max(1, len(shown(src[: max(0, span.end_col - 1)])) - start)
    else:
        width = max(1, len(expanded) - start)
    if len(expanded) > EXCERPT_WIDTH:
        # A window around the start of the span, marked with `…` where it is cut.
        first = max(0, min(start - EXCERPT_WIDTH // 4, len(expanded) - EXCERPT_WIDTH))
        last = first + EXCERPT_WIDTH
        lead = "…" if first > 0 else ""
        expanded = lead + expanded[first:last] + ("…" if last < len(expanded) else "")
        width = max(1, min(width, last - start))
        start = start - first + len(lead)
    marker = "^" if width == 1 else "^" * width
    return [f"{pad} |", f"{gutter} | {expanded}", f"{pad} | {' ' * start}{marker}"]


def render(diag: Diagnostic, sources: SourceMap) -> str:
    """Render one diagnostic as text, rustc-style. Pure; control characters escaped."""
    head = f"{diag.severity.value}[{diag.code}]: {printable(diag.message)}"
    out: list[str] = []
    if diag.span is not None:
        out.append(f"{printable(str(diag.span))}: {head}")
        out.extend(_excerpt(diag.span, sources))
    else:
        out.append(head)
    for text, span in diag.notes:
        if span is not None:
            out.append(f"  = note: {printable(text)} ({printable(str(span))})")
        else:
            out.append(f"  = note: {printable(text)}")
    if diag.hint:
        out.append(f"  = hint: {printable(diag.hint)}")
    return "\n".join(out)


def render_all(diags: Iterable[Diagnostic], sources: SourceMap) -> str:
    items = list(diags)
    parts = [render(d, sources) for d in items]
    n_err = sum(1 for d in items if d.severity is Severity.ERROR)
    n_warn = sum(1 for d in items if d.severity is Severity.WARNING)
    if items:
        parts.append(summary(n_err, n_warn))
    return "\n\n".join(parts[:-1]) + ("\n\n" if len(parts) > 1 else "") + parts[-1] if parts else ""


def summary(n_err: int, n_warn: int) -> str:
    def plural(n: int, word: str) -> str:
        return f"{n} {word}{'' if n == 1 else 's'}"

    return f"{plural(n_err, 'error')}, {plural(n_warn, 'warning')}"


def span_json(span: Span | None) -> dict[str, object] | None:
    if span is None:
        return None
    return {
        "file": span.file,
        "line": span.line,
        "col": span.col,
        "end_line": span.end_line,
        "end_col": span.end_col,
    }


def to_json(diag: Diagnostic) -> dict[str, object]:
    return {
        "code": diag.code,
        "severity": diag.severity.value,
        "message": diag.message,
        "span": span_json(diag.span),
        "hint": diag.hint,
        "notes": [{"message": m, "span": span_json(s)} for m, s in diag.notes],
    }


def dumps_json(diags: Iterable[Diagnostic]) -> str:
    items = [to_json(d) for d in diags]
    return json_safe(json.dumps({"diagnostics": items}, indent=2, ensure_ascii=False))
