"""Syntax error messages: what was expected, what was found, and what to do.

Stage: part of the parser (`storyc.lang.parser` hands over the failing token as plain data).
In: the text, the unexpected token (or end of file) and the token types the LALR parser
would have accepted. Out: one `Diagnostic` (E001-E005) that says e.g. "missing `}`
before `scene`: the block `scene arrival {` is not closed". Pure text analysis; no I/O.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass

from storyc.base.diagnostics import Diagnostic, Severity, Span

KEYWORDS = (
    "include",
    "project",
    "let",
    "image",
    "video",
    "element",
    "style",
    "defaults",
    "scene",
    "cut",
)


@dataclass(frozen=True, slots=True)
class Unexpected:
    type: str  # token type, or "$END" at the end of the text
    text: str
    start: int
    span: Span | None  # None at the end of the text
    expected: frozenset[str]


_TOKEN_WORDS = {
    "LBRACE": "`{`",
    "RBRACE": "`}`",
    "EQUAL": "`=`",
    "LSQB": "`[`",
    "RSQB": "`]`",
    "COMMA": "`,`",
    "DOT": "`.`",
    "LPAR": "`(`",
    "RPAR": "`)`",
    "COLON": "`:`",
    "NAME": "a name",
    "STRING": "a string",
    "LONG_STRING": "a string",
    "NUMBER": "a number",
    "$END": "the end of the file",
    "_SEP": "`,`",
}
_VALUE_TOKENS = {"STRING", "LONG_STRING", "NUMBER", "LSQB", "LBRACE", "NAME"}
_DECL_TOKENS = {k.upper() for k in KEYWORDS}  # as the lexer types them
_UNQUOTED = re.compile(r"(?<!\w)([A-Za-z_]\w*)[ \t]*=[ \t]*((?:[A-Za-z_]\w*[ \t]+)+)$")
_SKIP = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\[^\n])*"|#[^\n]*|//[^\n]*|/\*[\s\S]*?\*/|[{}]')


def _found(tok: Unexpected) -> str:
    if tok.type == "$END":
        return "the end of the file"
    text = tok.text
    if len(text) > 30:
        text = text[:27] + "..."
    return f"`{text}`"


def _open_block(text: str, upto: int) -> tuple[int, str] | None:
    """The innermost `{` still open at offset `upto`, and the words before it."""
    stack: list[int] = []
    for m in _SKIP.finditer(text, 0, upto):
        if m.group() == "{":
            stack.append(m.start())
        elif m.group() == "}" and stack:
            stack.pop()
    if not stack:
        return None
    pos = stack[-1]
    line_start = text.rfind("\n", 0, pos) + 1
    head = " ".join(text[line_start:pos].split()) or "{"
    return pos, head


def _missing_brace(text: str, file: str, at: int, before: str) -> Diagnostic | None:
    opened = _open_block(text, at)
    if opened is None:
        return None
    pos, head = opened
    where = Span.from_offsets(file, text, pos, pos + 1)
    if at >= len(text.rstrip()):
        msg = f"missing `}}` at the end of the file: the block `{head} {{` is never closed"
        span = where
    else:
        msg = f"missing `}}` before {before}: the block `{head} {{` is not closed"
        span = Span.from_offsets(file, text, at, at + 1)
    return Diagnostic(
        "E004",
        Severity.ERROR,
        msg,
        span,
        hint="add `}` after the last setting of that block",
        notes=(("the block opens here", where),) if span != where else (),
    )


def char_error(text: str, file: str, pos: int) -> Diagnostic:
    span = Span.from_offsets(file, text, pos, pos + 1)
    ch = text[pos : pos + 1]
    if text.startswith('"""', pos):
        return Diagnostic(
            "E002",
            Severity.ERROR,
            'unterminated long string: `"""` is never closed',
            span,
            hint='close the string with `"""`',
        )
    if ch == '"':
        return Diagnostic(
            "E002",
            Severity.ERROR,
            "unterminated string",
            span,
            hint='close the string with `"` on the same line; use """...""" for '
            "text over several lines",
        )
    shown = ch if ch.isprintable() and not ch.isspace() else repr(ch)
    return Diagnostic(
        "E001",
        Severity.ERROR,
        f"unexpected character `{shown}`",
        span,
        hint="names use letters, digits and `_`; text goes in double quotes",
    )


def explain(tok: Unexpected, text: str, file: str) -> Diagnostic:
    expected = set(tok.expected)
    if tok.type == "$END":
        pos = len(text)
        span = Span.from_offsets(file, text, max(0, len(text.rstrip()) - 1), len(text.rstrip()))
    else:
        pos = tok.start
        span = tok.span or Span.from_offsets(file, text, pos, pos + 1)
    found = _found(tok)
    prev = re.search(r"([A-Za-z_]\w*)\s*$", text[:pos])
    prev_word = prev.group(1) if prev else ""

    # Inside a block, end of file or a declaration keyword almost always means a lost `}`.
    if tok.type == "$END" or (
        prev_word in KEYWORDS and "EQUAL" in expected and tok.type in ("NAME", "STRING", "LBRACE")
    ):
        before = "the end of the file" if tok.type == "$END" else f"`{prev_word}`"
        at = prev.start(1) if tok.type != "$END" and prev else pos
        diag = _missing_brace(text, file, at, before)
        if diag is not None:
            return diag
    line_start = text.rfind("\n", 0, pos) + 1
    unquoted = (
        _UNQUOTED.search(text, max(line_start, pos - 400), pos) if tok.type == "NAME" else None
    )
    if unquoted is not None:
        start = unquoted.start(2)
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        value = re.split(r"[}#,;]|//", text[start:end])[0].strip()
        return Diagnostic(
            "E003",
            Severity.ERROR,
            f"unquoted text after `{unquoted.group(1)} =`",
            Span.from_offsets(file, text, start, start + len(value)),
            hint=f'text goes in double quotes: {unquoted.group(1)} = "{value}"',
        )
    if "RSQB" in expected and "COMMA" not in expected:
        return Diagnostic(
            "E003",
            Severity.ERROR,
            f"expected another list item or `]`, found {found}",
            span,
            hint="close the list with `]`",
        )
    if expected & _DECL_TOKENS and not expected & {"EQUAL", "RBRACE"}:
        if tok.type == "RBRACE":
            return Diagnostic(
                "E003",
                Severity.ERROR,
                "unmatched `}`",
                span,
                hint="remove it, or check the `{` of the block above",
            )
        hint = "a file is a list of declarations: " + ", ".join(KEYWORDS)
        close = difflib.get_close_matches(tok.text, KEYWORDS, n=1) if tok.type == "NAME" else []
        if close:
            hint = f"did you mean `{close[0]}`?"
        return Diagnostic(
            "E003",
            Severity.ERROR,
            f"expected a declaration (`scene`, `image`, `element`, ...), found {found}",
            span,
            hint=hint,
        )
    if expected <= {"EQUAL", "LBRACE"} and "EQUAL" in expected:
        return Diagnostic(
            "E003",
            Severity.ERROR,
            f"expected `=` after `{prev_word}`, found {found}",
            span,
            hint=f"write `{prev_word} = <value>`; text goes in double quotes",
        )
    # After a cut entry a `{` (its trim) may follow: that is no place that wants a value.
    if expected & _VALUE_TOKENS and not expected & {"EQUAL", "RBRACE", "COMMA"}:
        if tok.type == "$END":
            return Diagnostic(
                "E005",
                Severity.ERROR,
                "unexpected end of file: a value is missing",
                span,
                hint="finish the last setting",
            )
        return Diagnostic(
            "E003",
            Severity.ERROR,
            f'expected a value (a "string", a number, a name or a [list]), found {found}',
            span,
            hint='text must be in double quotes, e.g. prompt = "..."',
        )
    if "RSQB" in expected and "COMMA" in expected:
        return Diagnostic(
            "E003",
            Severity.ERROR,
            f"expected `,` or `]` in a list, found {found}",
            span,
            hint="separate list items with commas and close the list with `]`",
        )
    if "RBRACE" in expected and "NAME" in expected:
        return Diagnostic(
            "E003",
            Severity.ERROR,
            f"expected a setting (`name = value`) or `}}`, found {found}",
            span,
            hint="each setting is a name, `=` and a value",
        )
    if tok.type == "$END":
        return Diagnostic(
            "E005",
            Severity.ERROR,
            "unexpected end of file",
            span,
            hint="the last declaration is incomplete",
        )
    wanted = sorted({_TOKEN_WORDS.get(t, t.lower()) for t in expected})
    want = " or ".join(wanted[:4]) if wanted else "something else"
    return Diagnostic("E003", Severity.ERROR, f"expected {want}, found {found}", span)
