"""Syntax error messages: what was expected, what was found, and what to do.

Stage: part of the parser (`storyc.lang.parser` hands over the failing token as plain data).
In: the text, the unexpected token (or end of file) and the token types the LALR parser
would have accepted. Out: one `Diagnostic` (E001-E005) that says e.g. "missing `}`
before `scene`: the block `scene arrival {` is not closed". Pure text analysis; no I/O.

Every look at the text is bounded (the current line, or a scan that starts where the
parse started), so explaining an error costs time linear in the text however it is shaped.
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


def _open_block(text: str, upto: int, start: int = 0) -> tuple[int, str] | None:
    """The innermost `{` opened since `start` still open at offset `upto`, and the words
    before it."""
    stack: list[int] = []
    for m in _SKIP.finditer(text, start, upto):
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


def _missing_brace(text: str, file: str, at: int, before: str, start: int = 0) -> Diagnostic | None:
    opened = _open_block(text, at, start)
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


_CONTROL_NAMES = {
    0x00: "NUL",
    0x07: "BEL",
    0x08: "backspace",
    0x1B: "ESC",
    0x7F: "DEL",
    0x9B: "CSI",
    0x9D: "OSC",
    0x202E: "right-to-left override",
    0x202D: "left-to-right override",
}


def control_char_error(text: str, file: str, pos: int) -> Diagnostic:
    """An invisible control character (see `storyc.lang.parser.CONTROL`), wherever it is."""
    code = ord(text[pos])
    name = _CONTROL_NAMES.get(code)
    shown = f"U+{code:04X}" + (f" ({name})" if name else "")
    return Diagnostic(
        "E001",
        Severity.ERROR,
        f"invisible control character {shown}",
        Span.from_offsets(file, text, pos, pos + 1),
        hint="remove it: a story is plain text (tabs and line breaks are fine); control "
        "characters can make a line read differently from what storyc sees",
    )


def char_error(text: str, file: str, pos: int) -> Diagnostic:
    span = Span.from_offsets(file, text, pos, pos + 1)
    ch = text[pos : pos + 1]
    if ch and _is_control(ch):
        return control_char_error(text, file, pos)
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
    shown = ch if ch.isprintable() and not ch.isspace() else f"U+{ord(ch):04X}" if ch else "?"
    return Diagnostic(
        "E001",
        Severity.ERROR,
        f"unexpected character `{shown}`",
        span,
        hint="names use letters, digits and `_`; text goes in double quotes",
    )


def _is_control(ch: str) -> bool:
    code = ord(ch)
    return (
        (code < 0x20 and ch not in "\t\n\r\f")
        or 0x7F <= code <= 0x9F
        or 0x202A <= code <= 0x202E
        or 0x2066 <= code <= 0x2069
    )


def _word_before(text: str, pos: int) -> tuple[str, int]:
    """The word that ends right before `pos` (whitespace between allowed) and its offset;
    ("", pos) when there is none. Scans back over that word only: a regular expression
    searched over `text[:pos]` tries every start in a long run of word characters, which
    is quadratic (3.6 s at 20k characters, hours at 1 MB)."""
    end = pos
    while end > 0 and text[end - 1].isspace():
        end -= 1
    start = end
    while start > 0 and (text[start - 1].isalnum() or text[start - 1] == "_"):
        start -= 1
    word = text[start:end]
    if not word or not (word[0].isalpha() or word[0] == "_") or not word.isascii():
        return "", pos
    return word, start


# A string closed too early by an unescaped `"` inside it: `= "She said "Hope` + error.
_INNER_QUOTE = re.compile(
    r'(?P<name>[A-Za-z_]\w*)[ \t]*=[ \t]*"(?:[^"\\\n]|\\[^\n])*"'
    r"[ \t]*(?P<word>[A-Za-z_]\w*)(?:[ \t]+[A-Za-z_]\w*)*[ \t]*$"
)
_LOOKBACK = 400  # characters of the current line looked at by the patterns above


def _inner_quote(tok: Unexpected, text: str, file: str, pos: int) -> Diagnostic | None:
    if tok.type not in ("STRING", "NAME", "NUMBER"):
        return None
    line_start = text.rfind("\n", 0, pos) + 1
    m = _INNER_QUOTE.search(text, max(line_start, pos - _LOOKBACK), pos)
    if m is None:
        return None
    line_end = text.find("\n", pos)
    line_end = len(text) if line_end < 0 else line_end
    first = text.index('"', m.end("name"))
    last = text.rfind('"', pos, line_end)
    if last <= first:
        return None
    inner = re.sub(r'(?<!\\)"', r'\\"', text[first + 1 : last])
    fixed = f'{m.group("name")} = "{inner}"'
    if len(fixed) > 100:
        fixed = f'{m.group("name")} = "... \\"{m.group("word")}\\" ..."'
    return Diagnostic(
        "E003",
        Severity.ERROR,
        'a `"` inside a string ends it early',
        Span.from_offsets(file, text, first, last + 1),
        hint=f'write \\" for a quote inside a string: {fixed}',
    )


def explain(tok: Unexpected, text: str, file: str, chunk: int = 0) -> Diagnostic:
    """The diagnostic for `tok`. `chunk`: where the parse that met it started (a block
    opened before that was reported already)."""
    expected = set(tok.expected)
    if tok.type == "$END":
        pos = len(text)
        span = Span.from_offsets(file, text, max(0, len(text.rstrip()) - 1), len(text.rstrip()))
    else:
        pos = tok.start
        span = tok.span or Span.from_offsets(file, text, pos, pos + 1)
    found = _found(tok)
    prev_word, prev_start = _word_before(text, pos)

    # Inside a block, end of file or a declaration keyword almost always means a lost `}`.
    if tok.type == "$END" or (
        prev_word in KEYWORDS and "EQUAL" in expected and tok.type in ("NAME", "STRING", "LBRACE")
    ):
        before = "the end of the file" if tok.type == "$END" else f"`{prev_word}`"
        at = prev_start if tok.type != "$END" and prev_word else pos
        diag = _missing_brace(text, file, at, before, chunk)
        if diag is not None:
            return diag
    if "EQUAL" in expected:
        quoted = _inner_quote(tok, text, file, pos)
        if quoted is not None:
            return quoted
    line_start = text.rfind("\n", 0, pos) + 1
    unquoted = (
        _UNQUOTED.search(text, max(line_start, pos - _LOOKBACK), pos)
        if tok.type == "NAME"
        else None
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
