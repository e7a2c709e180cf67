"""The lexical grammar of .story files: what the tokens are, and long strings' values.

Stage: part of "load", shared by the parser's lexer (`storyc.lang.parser`) and the token
stream that keeps comments (`storyc.lang.tokens`, for the formatter and the language
server), so the two can never disagree on what a token is. Plain data and two pure
functions; no Lark here, so tools that only need tokens do not pay for importing it.
"""

from __future__ import annotations

import re

from storyc.lang.syntax_errors import KEYWORDS

WHITESPACE = r"[ \t\r\n\f\ufeff]+"
COMMENT = r"#[^\n]*|//[^\n]*|/\*[\s\S]*?\*/"
TOKEN = re.compile(
    r'(?P<LONG_STRING>"""[\s\S]*?""")'
    r'|(?P<STRING>"(?!"")(?:[^"\\\n]|\\[^\n])*")'
    r"|(?P<NUMBER>-?[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<NAME>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<PUNCT>[=:,;{}.()\[\]])"
)
PUNCT = {
    "=": "EQUAL",
    ":": "COLON",
    ",": "COMMA",
    ";": "SEMICOLON",
    "{": "LBRACE",
    "}": "RBRACE",
    ".": "DOT",
    "(": "LPAR",
    ")": "RPAR",
    "[": "LSQB",
    "]": "RSQB",
}
KEYWORD_TYPES = {k: k.upper() for k in KEYWORDS}
WANTS_NAME = {
    "SCENE",
    "STYLE",
    "ELEMENT",
    "IMAGE",
    "VIDEO",
    "LET",
    "CUT",
    "PROJECT",
    "COLON",
    "EQUAL",
    "DOT",
    "COMMA",
    "LSQB",
    "LPAR",
}

# Deeper than any story needs, shallow enough that every later stage may recurse over
# values (the resolver, taint) without meeting Python's recursion limit.
MAX_NESTING = 64


def long_layout(raw: str) -> tuple[int, list[str], int]:
    """How a `\"\"\"...\"\"\"` string's inner text `raw` becomes its value: the offset in `raw`
    where the kept lines begin, those lines (not yet dedented), and the indentation cut
    from every non-blank one. The first line break after the opening quotes and the blank
    last line are dropped."""
    skip = 0
    body = raw
    first, nl, rest = raw.partition("\n")
    if nl and not first.strip():
        skip = len(first) + 1
        body = rest
    lines = body.split("\n")
    if len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
    return skip, lines, min(indents) if indents else 0


def dedent_long(raw: str) -> str:
    """The value of a `\"\"\"...\"\"\"` string (see `long_layout`). A line break is one
    `\\n` whether the file was saved with LF or CRLF endings: the same story checked out
    on Windows (git `core.autocrlf`) must send the same prompt, under the same keys."""
    _, lines, cut = long_layout(raw)
    return "\n".join(ln[cut:].removesuffix("\r") if ln.strip() else "" for ln in lines)
