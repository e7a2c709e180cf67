"""Parser: the text of one .story file to a syntax tree (`storyc.lang.ast.File`).

Stage: first stage of the front end, called by the loader. In: source text and its
project-relative label. Out: `ParseResult` (the tree, or as much as is known, and
syntax diagnostics E001-E005, worded by `storyc.lang.syntax_errors`). No I/O beyond reading
the grammar once.

One Lark LALR parser with the contextual lexer is built on first use and shared; a
transformer runs inline while parsing, so no Lark parse tree is ever built and no Lark
type leaves this module. A syntax error stops that file.
"""

from __future__ import annotations

import builtins
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, cast

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from storyc.base.diagnostics import Diagnostic, Severity, Span
from storyc.lang import ast
from storyc.lang.lexicon import COMMENT as COMMENT
from storyc.lang.lexicon import KEYWORD_TYPES as _KEYWORD_TYPES
from storyc.lang.lexicon import MAX_NESTING as MAX_NESTING
from storyc.lang.lexicon import PUNCT as _PUNCT
from storyc.lang.lexicon import TOKEN as _TOKEN
from storyc.lang.lexicon import WANTS_NAME as _WANTS_NAME
from storyc.lang.lexicon import WHITESPACE as WHITESPACE
from storyc.lang.lexicon import dedent_long as dedent_long
from storyc.lang.lexicon import long_layout as long_layout
from storyc.lang.syntax_errors import Unexpected, char_error, explain

_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
_ESCAPE_RE = re.compile(r"\\(.)")


@dataclass
class ParseResult:
    file: ast.File
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # Offsets of the keywords that start the file's declarations, one per item of a file
    # that parsed (the lexer notes them as it goes; `declaration_starts` finds them alone).
    starts: list[int] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


def _tok_span(file: str, tok: Token) -> Span:
    return Span(
        file,
        tok.line or 1,
        tok.column or 1,
        tok.end_line or 1,
        tok.end_column or 1,
        tok.start_pos or 0,
        tok.end_pos or 0,
    )


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col, a.start, b.end)


def _place_empty(value: ast.Value, at: Span) -> ast.Value:
    # An empty list or block has no token of its own to take a position from (the
    # brackets are not kept): point at the name it is assigned to.
    if isinstance(value, ast.ListV | ast.Block) and value.span.end == 0:
        value.span = at
    return value


class _ToAst(Transformer[Token, Any]):
    """Builds `storyc.lang.ast` nodes while the LALR parser reduces (no parse tree)."""

    def __init__(self) -> None:
        super().__init__()
        self.file = ""

    def _span(self, tok: Token) -> Span:
        return _tok_span(self.file, tok)

    # values -----------------------------------------------------------------
    def string(self, c: list[Token]) -> ast.Str:
        tok = c[0]
        span = self._span(tok)
        text = str(tok)
        if tok.type == "LONG_STRING":
            inner = text[3:-3]
            value = dedent_long(inner)
            start = span.start + 3 if value == inner else -1
            return ast.Str(value, span, True, start)
        inner = text[1:-1]
        if "\\" not in inner:
            return ast.Str(inner, span, False, span.start + 1)
        value = _ESCAPE_RE.sub(lambda m: _ESCAPES.get(m.group(1), m.group(0)), inner)
        return ast.Str(value, span, False, -1)

    def number(self, c: list[Token]) -> ast.Num:
        text = str(c[0])
        value: int | float = float(text) if "." in text else int(text)
        return ast.Num(value, self._span(c[0]), text)

    def call(self, c: list[Token]) -> ast.Num:
        return self.number(c)

    def ref(self, c: list[Any]) -> ast.Ref:
        name_span = self._span(c[0])
        if len(c) == 1:
            return ast.Ref(str(c[0]), name_span, name_span)
        attr_span = self._span(c[1])
        arg = c[2] if len(c) > 2 else None
        end = arg.span if arg is not None else attr_span
        if arg is not None:  # include the closing parenthesis
            end = Span(
                end.file, end.line, end.col, end.end_line, end.end_col + 1, end.start, end.end + 1
            )
        return ast.Ref(str(c[0]), _join(name_span, end), name_span, str(c[1]), attr_span, arg)

    def list(self, c: builtins.list[Any]) -> ast.ListV:
        items = [v for v in c if v is not None]
        # An empty list gets its position from the parent (see _place_empty).
        span = _join(items[0].span, items[-1].span) if items else Span(self.file, 1, 1, 1, 1)
        return ast.ListV(items, span)

    def setting(self, c: builtins.list[Any]) -> ast.Setting:
        name_span = self._span(c[0])
        value = _place_empty(c[1], name_span)
        return ast.Setting(str(c[0]), name_span, value, _join(name_span, value.span))

    def block(self, c: builtins.list[Any]) -> ast.Block:
        settings = [s for s in c if isinstance(s, ast.Setting)]
        span = (
            _join(settings[0].span, settings[-1].span) if settings else Span(self.file, 1, 1, 1, 1)
        )
        return ast.Block(settings, span)

    def body(self, c: builtins.list[Any]) -> builtins.list[ast.Setting]:
        return [s for s in c if isinstance(s, ast.Setting)]

    def parent(self, c: builtins.list[Token]) -> ast.Ref:
        span = self._span(c[0])
        return ast.Ref(str(c[0]), span, span)

    # declarations ------------------------------------------------------------
    def include(self, c: builtins.list[Any]) -> ast.Include:
        return ast.Include(c[1], _join(self._span(c[0]), c[1].span))

    def project(self, c: builtins.list[Any]) -> ast.ProjectDecl:
        kw, *rest = c
        title: str | None = None
        title_span: Span | None = None
        if len(rest) == 2:
            t = rest[0]
            if isinstance(t, ast.Str):
                title, title_span = t.value, t.span
            else:
                title, title_span = str(t), self._span(t)
        return ast.ProjectDecl(title, title_span, rest[-1], self._span(kw))

    def let(self, c: builtins.list[Any]) -> ast.Let:
        c = c[1:]
        name_span = self._span(c[0])
        return ast.Let(str(c[0]), name_span, _place_empty(c[1], name_span))

    def asset(self, c: builtins.list[Any]) -> ast.AssetDecl:
        return ast.AssetDecl(str(c[0]), str(c[1]), self._span(c[1]), c[2])

    def element(self, c: builtins.list[Any]) -> ast.ElementDecl:
        c = c[1:]
        return ast.ElementDecl(str(c[0]), self._span(c[0]), c[1])

    def style(self, c: builtins.list[Any]) -> ast.StyleDecl:
        c = c[1:]
        parent = c[1] if len(c) == 3 else None
        return ast.StyleDecl(str(c[0]), self._span(c[0]), parent, c[-1])

    def scene(self, c: builtins.list[Any]) -> ast.SceneDecl:
        c = c[1:]
        parent = c[1] if len(c) == 3 else None
        return ast.SceneDecl(str(c[0]), self._span(c[0]), parent, c[-1])

    def defaults(self, c: builtins.list[Any]) -> ast.DefaultsDecl:
        return ast.DefaultsDecl(c[1], self._span(c[0]))

    def cut_item(self, c: builtins.list[Any]) -> ast.CutEntry:
        value: ast.Value = c[0]
        trim: ast.Block | None = c[1] if len(c) > 1 else None
        if trim is not None and trim.span.end == 0:  # `name {}`: no position of its own
            trim.span = value.span
        end = trim.span if trim is not None else value.span
        return ast.CutEntry(value, trim, _join(value.span, end))

    def cut_transition(self, c: builtins.list[Any]) -> ast.CutTransition:
        kind_span = self._span(c[0])
        length = self.number([c[1]])
        span = _join(kind_span, length.span)
        span = Span(
            span.file,
            span.line,
            span.col,
            span.end_line,
            span.end_col + 1,
            span.start,
            span.end + 1,
        )  # include the closing parenthesis
        return ast.CutTransition(str(c[0]), kind_span, length, span)

    def cut_list(self, c: builtins.list[Any]) -> builtins.list[ast.CutItem]:
        return [v for v in c if v is not None]

    def cut(self, c: builtins.list[Any]) -> ast.CutDecl:
        c = c[1:]
        items: builtins.list[ast.CutItem] = c[1]
        name_span = self._span(c[0])
        span = _join(items[0].span, items[-1].span) if items else name_span
        return ast.CutDecl(str(c[0]), name_span, items, span)

    def start(self, c: builtins.list[Any]) -> builtins.list[ast.Decl]:
        return list(c)


def _grammar_text() -> str:
    # Installed: package data of `storyc.grammar`; from a source tree (or an editable
    # install made before that mapping existed): the file beside the package.
    try:
        return resources.files("storyc.grammar").joinpath("storyc.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parents[2] / "grammar" / "storyc.lark").read_text("utf-8")


# The lexer ---------------------------------------------------------------------
# Lark's own lexers cost several microseconds per token; this one scans with two
# compiled regular expressions and makes the same tokens the grammar declares. It is
# contextual the same way: a keyword is a keyword only where a declaration can start
# (outside any `{ }`/`[ ]`, and not right after a word that wants a name). What the
# tokens are is `storyc.lang.lexicon`, shared with the comment-keeping token stream.

_TRIVIA = re.compile(rf"(?:{WHITESPACE}|{COMMENT})+")
_new_token = Token._future_new if hasattr(Token, "_future_new") else Token


class LexError(Exception):
    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


class TooDeep(LexError):
    """A `[` or `{` opened more than `MAX_NESTING` deep, at `pos`."""


# Where the last `StoryLexer.lex` found declarations starting (parsing is single-threaded:
# the parser and its transformer are shared already).
_STARTS: list[int] = []


class StoryLexer(Lexer):
    __future_interface__ = 0

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, text: str) -> Any:  # type: ignore[override]
        pos, n = 0, len(text)
        line, line_start = 1, 0
        depth = 0
        prev = ""
        starts = _STARTS
        starts.clear()
        trivia, token, new = _TRIVIA.match, _TOKEN.match, _new_token
        while True:
            m = trivia(text, pos)
            if m is not None:
                end = m.end()
                nl = text.count("\n", pos, end)
                if nl:
                    line += nl
                    line_start = text.rfind("\n", pos, end) + 1
                pos = end
            if pos >= n:
                return
            m = token(text, pos)
            if m is None:
                raise LexError(pos)
            kind = m.lastgroup or ""
            value = m.group()
            end = m.end()
            if kind == "PUNCT":
                kind = _PUNCT[value]
                if kind in ("LBRACE", "LSQB"):
                    depth += 1
                    if depth > MAX_NESTING:
                        raise TooDeep(pos)
                elif kind in ("RBRACE", "RSQB") and depth:
                    depth -= 1
            elif kind == "NAME" and depth == 0 and prev not in _WANTS_NAME:
                kind = _KEYWORD_TYPES.get(value, "NAME")
                if kind != "NAME":
                    starts.append(pos)
            col = pos - line_start + 1
            if kind == "LONG_STRING" and "\n" in value:
                end_line = line + value.count("\n")
                end_col = end - (text.rfind("\n", pos, end) + 1) + 1
                yield new(kind, value, pos, line, col, end_line, end_col, end)
                line, line_start = end_line, text.rfind("\n", pos, end) + 1
            else:
                yield new(kind, value, pos, line, col, line, col + (end - pos), end)
            prev = kind
            pos = end


def declaration_starts(text: str, pos: int = 0, stop: int | None = None) -> list[int] | None:
    """Offsets of the keywords that start top-level declarations, scanning `text` from
    `pos` (where the lexer must be between declarations) with `StoryLexer`'s rules; at
    the first such keyword at or after `stop` the scan ends (it is included). None when
    a token comes before the first declaration or the text cannot be lexed: the file
    then has a syntax error only a whole parse words properly.

    The incremental compiler re-parses one declaration at a time between these offsets;
    keep this in step with `StoryLexer.lex`."""
    trivia, token, punct, keywords = _TRIVIA.match, _TOKEN.match, _PUNCT, _KEYWORD_TYPES
    n = len(text)
    depth = 0
    prev = ""
    out: list[int] = []
    while True:
        m = trivia(text, pos)
        if m is not None:
            pos = m.end()
        if pos >= n:
            return out
        m = token(text, pos)
        if m is None:
            return None
        kind = m.lastgroup or ""
        if kind == "PUNCT":
            kind = punct[m.group()]
            if kind in ("LBRACE", "LSQB"):
                depth += 1
            elif kind in ("RBRACE", "RSQB") and depth:
                depth -= 1
        elif kind == "NAME" and depth == 0 and prev not in _WANTS_NAME:
            found = keywords.get(m.group())
            if found is not None:
                kind = found
                out.append(pos)
                if stop is not None and pos >= stop:
                    return out
        if not out:
            return None
        prev = kind
        pos = m.end()


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, _ToAst]:
    grammar = _grammar_text()
    transformer = _ToAst()
    lark = Lark(
        grammar,
        parser="lalr",
        lexer=StoryLexer,
        transformer=transformer,
        propagate_positions=False,
        maybe_placeholders=True,
    )
    return lark, transformer


def parse_text(text: str, file: str = "<story>") -> ParseResult:
    """Parse one file's text. Never raises: problems come back as diagnostics."""
    lark, transformer = _parser()
    transformer.file = file
    try:
        items = cast(list[ast.Decl], lark.parse(text))  # the transformer ran inline
    except TooDeep as exc:
        span = Span.from_offsets(file, text, exc.pos, exc.pos + 1)
        diag = Diagnostic(
            "E003",
            Severity.ERROR,
            f"lists and blocks nested more than {MAX_NESTING} deep",
            span,
            hint="split deeply nested lists or blocks",
        )
        return ParseResult(_salvage(text, file), [diag])
    except LexError as exc:
        diag = char_error(text, file, exc.pos)
        return ParseResult(_salvage(text, file), [diag])
    except UnexpectedToken as exc:
        tok = exc.token
        at_end = tok.type == "$END"
        found = Unexpected(
            tok.type,
            "" if at_end else str(tok),
            tok.start_pos or 0,
            None if at_end else _tok_span(file, tok),
            frozenset(exc.expected),
        )
        return ParseResult(_salvage(text, file), [explain(found, text, file)])
    except UnexpectedInput as exc:  # not raised with this lexer; kept as a safety net
        diag = char_error(text, file, getattr(exc, "pos_in_stream", 0) or 0)
        return ParseResult(_salvage(text, file), [diag])
    except RecursionError:
        span = Span.from_offsets(file, text, 0, 0)
        diag = Diagnostic(
            "E003",
            Severity.ERROR,
            "the file is nested too deeply to read",
            span,
            hint="split deeply nested lists or blocks",
        )
        return ParseResult(ast.File(file, [], complete=False), [diag])
    return ParseResult(ast.File(file, items), starts=list(_STARTS))


_INCLUDE_LINE = re.compile(r'^[ \t]*include[ \t]+"([^"\\\n]*)"', re.M)


def _salvage(text: str, file: str) -> ast.File:
    """What a broken file still tells: its `include` lines, so that the files it
    includes are read and checked too. The file stays marked incomplete."""
    items: list[ast.Decl] = []
    for m in _INCLUDE_LINE.finditer(text):
        path_span = Span.from_offsets(file, text, m.start(1) - 1, m.end(1) + 1)
        value = ast.Str(m.group(1), path_span, False, m.start(1))
        start = m.start() + (len(m.group()) - len(m.group().lstrip()))
        items.append(ast.Include(value, Span.from_offsets(file, text, start, m.end())))
    return ast.File(file, items, complete=False)
