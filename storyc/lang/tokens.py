"""The token stream of a .story file with nothing dropped: code tokens, comments, line breaks.

Stage: beside the parser, for tools that must keep what the parser skips (the formatter,
the language server). In: the text of one file. Out: a list of `Tok` covering every code
token and comment in order, each knowing how many line breaks precede it. Pure; no I/O.

It shares the parser's lexical definitions (`storyc.lang.lexicon`: the token patterns,
the punctuation and keyword tables, the contextual keyword rule, the nesting limit)
rather than restating them, and types every code token exactly as the parser's lexer does
(a test holds the two to that). Unlike the parser's lexer it never stops: a character
that starts no token, or an unterminated string, becomes an `ERROR` token, so an editor
still sees the rest of a half-typed file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from storyc.lang.lexicon import (
    COMMENT,
    KEYWORD_TYPES,
    MAX_NESTING,
    PUNCT,
    TOKEN,
    WANTS_NAME,
    WHITESPACE,
)

# Optional whitespace, then a comment, a token (the parser's own groups), or else one bad
# character (an unterminated string swallows the rest of its line, as an editor shows
# it), or the end: one match per token, whitespace included.
_SCAN = re.compile(
    rf"(?:{WHITESPACE})?(?:(?P<COMMENT>{COMMENT})|{TOKEN.pattern}"
    r'|(?P<ERROR>"[^\n]*|[\s\S])|\Z)'
)
_GROUP_NAMES = {index: name for name, index in _SCAN.groupindex.items()}
OPENERS = frozenset(("LBRACE", "LSQB", "LPAR"))
CLOSERS = frozenset(("RBRACE", "RSQB", "RPAR"))
DECL_TYPES = frozenset(KEYWORD_TYPES.values())


@dataclass(slots=True)
class Tok:
    """One token: its type as the parser names it (`NAME`, `STRING`, `LBRACE`, `SCENE`,
    ...), or `COMMENT` or `ERROR`; its text and offsets; `nl`, the number of line breaks
    between the previous token (or the start of the file) and this one."""

    kind: str
    text: str
    start: int
    end: int
    nl: int

    @property
    def is_line_comment(self) -> bool:
        return self.kind == "COMMENT" and not self.text.startswith("/*")


@dataclass(slots=True)
class Stream:
    tokens: list[Tok]
    nl_at_end: int  # line breaks after the last token
    too_deep: bool  # a `[`/`{` opened more than MAX_NESTING deep (a syntax error)
    errors: bool  # some ERROR token


def tokenize(text: str) -> Stream:
    """Every token and comment of `text`, typed as the parser's lexer types them."""
    out: list[Tok] = []
    append = out.append
    nl = 0
    depth = 0
    deepest = 0
    prev = ""
    errors = False
    keyword = KEYWORD_TYPES.get
    punct = PUNCT
    wants = WANTS_NAME
    count = text.count
    names = _GROUP_NAMES
    for m in _SCAN.finditer(text):
        group = m.lastindex
        if group is None:  # the end (trailing whitespace)
            nl = count("\n", m.start())
            break
        kind = names[group]
        start, end = m.span(group)
        value = text[start:end]
        nl = count("\n", m.start(), start) if start != m.start() else 0
        if kind == "PUNCT":
            kind = punct[value]
            if kind == "LBRACE" or kind == "LSQB":
                depth += 1
                if depth > deepest:
                    deepest = depth
            elif (kind == "RBRACE" or kind == "RSQB") and depth:
                depth -= 1
        elif kind == "NAME":
            if depth == 0 and prev not in wants:
                kind = keyword(value, "NAME")
        elif kind == "ERROR":
            errors = True
        append(Tok(kind, value, start, end, nl))
        if kind != "COMMENT":  # comments are trivia to the contextual keyword rule too
            prev = kind
        nl = 0
    return Stream(out, nl, deepest > MAX_NESTING, errors)


def code(stream: Stream) -> list[Tok]:
    """The tokens the parser sees (no comments)."""
    return [t for t in stream.tokens if t.kind != "COMMENT"]


def comments(stream: Stream) -> list[str]:
    """Every comment's text, in order, without trailing whitespace."""
    return [t.text.rstrip() for t in stream.tokens if t.kind == "COMMENT"]


def line_starts(text: str) -> list[int]:
    """Offsets where each line begins (for offset <-> line/column)."""
    return [0, *(m.end() for m in re.finditer("\n", text))]
