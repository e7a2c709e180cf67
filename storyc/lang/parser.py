"""Parser: the text of one .story file to a syntax tree (`storyc.lang.ast.File`).

Stage: first stage of the front end, called by the loader. In: source text and its
project-relative label. Out: `ParseResult` (the tree, or as much as is known, and
syntax diagnostics E001-E005 and E015, worded by `storyc.lang.syntax_errors`). No I/O beyond
reading the grammar once.

One Lark LALR parser with the contextual lexer is built on first use and shared (so a
parse is not re-entrant); a transformer runs inline while parsing, so no Lark parse tree
is ever built and no Lark type leaves this module.

A syntax error does not stop the file: parsing starts again at the next line that begins
a declaration (`scene x`, `image x`, `defaults {`, ...), so a file with three mistakes
shows three errors. A file with any syntax error is marked incomplete, and the resolver
does not run on it (one typo must not cause a cascade of follow-on errors).
"""

from __future__ import annotations

import builtins
import re
from bisect import bisect_right
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

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
from storyc.lang.syntax_errors import Unexpected, char_error, control_char_error, explain

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


# Digits a number may have before its decimal point. Far beyond any duration, count or
# price, and every such number is exact as a float, so JSON output never says `Infinity`
# (a number of 309 digits is infinite as a float; one of 4,300 cannot even become an int).
MAX_DIGITS = 15

# Characters that have no business in a story and that a terminal would obey when an
# excerpt is shown: C0 controls except tab, line feed, form feed and carriage return;
# DEL; C1 controls; and the bidirectional overrides and isolates that make a line read
# differently from what the compiler sees ("Trojan Source").
CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MAX_CONTROL_REPORTS = 10
# Syntax errors reported per file; after so many, the rest is noise.
MAX_SYNTAX_ERRORS = 50


_D = TypeVar("_D", bound=ast.Decl)


class _ToAst(Transformer[Token, Any]):
    """Builds `storyc.lang.ast` nodes while the LALR parser reduces (no parse tree).

    Per parse: `file` (the label in spans), `decls` (top-level declarations completed so
    far, kept when a syntax error stops the parse), `problems` (diagnostics about tokens
    that parse but cannot be used, such as a number too large)."""

    def __init__(self) -> None:
        super().__init__()
        self.file = ""
        self.decls: builtins.list[ast.Decl] = []
        self.problems: builtins.list[Diagnostic] = []

    def _decl(self, decl: _D) -> _D:
        self.decls.append(decl)
        return decl

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
        span = self._span(c[0])
        whole = text.lstrip("-").split(".", 1)[0].lstrip("0")
        if len(whole) > MAX_DIGITS:
            self.problems.append(
                Diagnostic(
                    "E015",
                    Severity.ERROR,
                    f"number too large: {len(whole):,} digits before the decimal point; "
                    f"at most {MAX_DIGITS}",
                    span,
                    hint="durations, counts and prices are small numbers; check for a typo",
                )
            )
            return ast.Num(0, span, text)
        if "." in text:
            return ast.Num(float(text), span, text)
        # int() refuses strings of more than 4,300 digits, leading zeros included
        return ast.Num(int(text[0] + whole if text[0] == "-" else whole or "0"), span, text)

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
        # c = [`[`, value or None, ..., `]`]: the brackets give the span, even when empty
        items = [v for v in c[1:-1] if v is not None]
        return ast.ListV(items, _join(self._span(c[0]), self._span(c[-1])))

    def setting(self, c: builtins.list[Any]) -> ast.Setting:
        name_span = self._span(c[0])
        value = c[1]
        return ast.Setting(str(c[0]), name_span, value, _join(name_span, value.span))

    def block(self, c: builtins.list[Any]) -> ast.Block:
        settings = [s for s in c if isinstance(s, ast.Setting)]
        return ast.Block(settings, _join(self._span(c[0]), self._span(c[-1])))

    def body(self, c: builtins.list[Any]) -> builtins.list[ast.Setting]:
        return [s for s in c if isinstance(s, ast.Setting)]

    def parent(self, c: builtins.list[Token]) -> ast.Ref:
        span = self._span(c[0])
        return ast.Ref(str(c[0]), span, span)

    # declarations ------------------------------------------------------------
    def include(self, c: builtins.list[Any]) -> ast.Include:
        return self._decl(ast.Include(c[1], _join(self._span(c[0]), c[1].span)))

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
        return self._decl(ast.ProjectDecl(title, title_span, rest[-1], self._span(kw)))

    def let(self, c: builtins.list[Any]) -> ast.Let:
        c = c[1:]
        return self._decl(ast.Let(str(c[0]), self._span(c[0]), c[1]))

    def asset(self, c: builtins.list[Any]) -> ast.AssetDecl:
        return self._decl(ast.AssetDecl(str(c[0]), str(c[1]), self._span(c[1]), c[2]))

    def element(self, c: builtins.list[Any]) -> ast.ElementDecl:
        c = c[1:]
        return self._decl(ast.ElementDecl(str(c[0]), self._span(c[0]), c[1]))

    def style(self, c: builtins.list[Any]) -> ast.StyleDecl:
        c = c[1:]
        parent = c[1] if len(c) == 3 else None
        return self._decl(ast.StyleDecl(str(c[0]), self._span(c[0]), parent, c[-1]))

    def scene(self, c: builtins.list[Any]) -> ast.SceneDecl:
        c = c[1:]
        parent = c[1] if len(c) == 3 else None
        return self._decl(ast.SceneDecl(str(c[0]), self._span(c[0]), parent, c[-1]))

    def defaults(self, c: builtins.list[Any]) -> ast.DefaultsDecl:
        return self._decl(ast.DefaultsDecl(c[1], self._span(c[0])))

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
        return self._decl(ast.CutDecl(str(c[0]), name_span, items, span))

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


class _Window:
    """Where the parse in progress starts (`start`), and where the last declaration
    keyword the lexer handed over was (`decl_start`): a syntax error belongs to that
    declaration, and recovery skips it."""

    start = 0
    decl_start = 0


_window = _Window()


# Where the last `StoryLexer.lex` found declarations starting (parsing is single-threaded:
# the parser and its transformer are shared already).
_STARTS: list[int] = []


class StoryLexer(Lexer):
    __future_interface__ = 0

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, text: str) -> Any:  # type: ignore[override]
        win = _window
        pos, n = win.start, len(text)
        line = text.count("\n", 0, pos) + 1
        line_start = text.rfind("\n", 0, pos) + 1
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
                    win.decl_start = pos
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


# Where parsing may start again after a syntax error: a line that begins a declaration,
# outside strings and comments. `video = x` inside a scene is a setting, not a restart.
_RESTART = re.compile(
    r'(?P<skip>"""[\s\S]*?(?:"""|\Z)|"(?:[^"\\\n]|\\[^\n])*"?|#[^\n]*|//[^\n]*'
    r"|/\*[\s\S]*?(?:\*/|\Z))"
    r"|(?m:^)[ \t]*(?P<decl>(?:scene|style|element|image|video|cut|let)[ \t]+[A-Za-z_]"
    r'|defaults[ \t]*\{|include[ \t]+"|project\b)'
)


def _restarts(text: str) -> list[int]:
    return [m.start("decl") for m in _RESTART.finditer(text) if m.group("decl") is not None]


def _error(exc: Exception, text: str, file: str, chunk: int) -> tuple[Diagnostic, int]:
    """The diagnostic for what stopped the parse, and the offset where it happened."""
    if isinstance(exc, TooDeep):
        span = Span.from_offsets(file, text, exc.pos, exc.pos + 1)
        diag = Diagnostic(
            "E003",
            Severity.ERROR,
            f"lists and blocks nested more than {MAX_NESTING} deep",
            span,
            hint="split deeply nested lists or blocks",
        )
        return diag, exc.pos
    if isinstance(exc, LexError):
        return char_error(text, file, exc.pos), exc.pos
    if isinstance(exc, UnexpectedToken):
        tok = exc.token
        at_end = tok.type == "$END"
        found = Unexpected(
            tok.type,
            "" if at_end else str(tok),
            len(text) if at_end else tok.start_pos or 0,
            None if at_end else _tok_span(file, tok),
            frozenset(exc.expected),
        )
        return explain(found, text, file, chunk), found.start
    # UnexpectedInput is not raised with this lexer; kept as a safety net
    pos = getattr(exc, "pos_in_stream", 0) or 0
    return char_error(text, file, pos), pos


def parse_text(text: str, file: str = "<story>") -> ParseResult:
    """Parse one file's text. Never raises: problems come back as diagnostics."""
    lark, transformer = _parser()
    transformer.file = file
    transformer.decls = []
    transformer.problems = []
    diags: list[Diagnostic] = []
    seen: set[Diagnostic] = set()

    def report(d: Diagnostic) -> None:
        if d not in seen:
            seen.add(d)
            diags.append(d)

    for k, m in enumerate(CONTROL.finditer(text)):
        if k == _MAX_CONTROL_REPORTS:
            break
        report(control_char_error(text, file, m.start()))
    restarts: list[int] | None = None
    start, syntax_errors = 0, 0
    while True:
        _window.start = _window.decl_start = start
        try:
            lark.parse(text)  # the transformer collects the declarations as they finish
            break
        except RecursionError:
            span = Span.from_offsets(file, text, start, start)
            report(
                Diagnostic(
                    "E003",
                    Severity.ERROR,
                    "the file is nested too deeply to read",
                    span,
                    hint="split deeply nested lists or blocks",
                )
            )
            break
        except (LexError, UnexpectedInput) as exc:
            diag, at = _error(exc, text, file, start)
            report(diag)
            syntax_errors += 1
            if syntax_errors >= MAX_SYNTAX_ERRORS:
                break
            if restarts is None:
                restarts = _restarts(text)
            # The declaration the error is in is skipped. An error on a declaration's
            # own keyword belongs to the one before it (a lost `}` or value).
            owner = _window.decl_start
            if at == owner and at > start:
                start = at
                continue
            i = bisect_right(restarts, max(owner, start))
            if i == len(restarts):
                break
            start = restarts[i]
    for d in transformer.problems:
        report(d)
    items: list[ast.Decl] = list(transformer.decls)
    if not diags:
        return ParseResult(ast.File(file, items), starts=list(_STARTS))
    return ParseResult(_with_includes(items, text, file), diags)


_INCLUDE_LINE = re.compile(r'^[ \t]*include[ \t]+"([^"\\\n]*)"', re.M)


def _with_includes(items: list[ast.Decl], text: str, file: str) -> ast.File:
    """A file with errors: what was parsed, plus every `include` line the errors hid, so
    that the files it includes are read and checked too. Marked incomplete."""
    have = {d.span.start for d in items if isinstance(d, ast.Include)}
    for m in _INCLUDE_LINE.finditer(text):
        start = m.start() + (len(m.group()) - len(m.group().lstrip()))
        if start in have:
            continue
        path_span = Span.from_offsets(file, text, m.start(1) - 1, m.end(1) + 1)
        value = ast.Str(m.group(1), path_span, False, m.start(1))
        items.append(ast.Include(value, Span.from_offsets(file, text, start, m.end())))
    items.sort(key=lambda d: _decl_start(d))
    return ast.File(file, items, complete=False)


def _decl_start(d: ast.Decl) -> int:
    if isinstance(d, ast.Include | ast.ProjectDecl | ast.DefaultsDecl):
        return d.span.start
    return d.name_span.start
