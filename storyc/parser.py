"""Parser: the text of one .story file to a syntax tree (`storyc.ast.File`).

Stage: first stage of the front end, called by the loader. In: source text and its
project-relative label. Out: `ParseResult` (the tree, or as much as is known, and
syntax diagnostics E001-E005). No I/O beyond reading the grammar once.

One Lark LALR parser with the contextual lexer is built on first use and shared; a
transformer runs inline while parsing, so no Lark parse tree is ever built and no Lark
type leaves this module. Lark's errors are translated here into messages that say what
is missing and where (see `_explain`). A syntax error stops that file.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources
from pathlib import Path
from typing import Any

from lark import Lark, Token, Transformer
from lark.exceptions import UnexpectedInput, UnexpectedToken
from lark.lexer import Lexer

from storyc import ast
from storyc.diagnostics import Diagnostic, Severity, Span

KEYWORDS = ("include", "project", "let", "image", "video", "element", "style", "defaults",
            "scene", "cut")
_ESCAPES = {"n": "\n", "t": "\t", '"': '"', "\\": "\\", "r": "\r"}
_ESCAPE_RE = re.compile(r"\\(.)")


@dataclass
class ParseResult:
    file: ast.File
    diagnostics: list[Diagnostic] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.diagnostics


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line or 1, tok.column or 1, tok.end_line or 1, tok.end_column or 1,
                tok.start_pos or 0, tok.end_pos or 0)


def _join(a: Span, b: Span) -> Span:
    return Span(a.file, a.line, a.col, b.end_line, b.end_col, a.start, b.end)


def dedent_long(raw: str) -> str:
    """The value of a `\"\"\"...\"\"\"` string: the first line break after the opening
    quotes and the blank last line are dropped, and common indentation is removed."""
    body = raw
    first, nl, rest = body.partition("\n")
    if nl and not first.strip():
        body = rest
    lines = body.split("\n")
    if len(lines) > 1 and not lines[-1].strip():
        lines.pop()
    indents = [len(ln) - len(ln.lstrip(" \t")) for ln in lines if ln.strip()]
    cut = min(indents) if indents else 0
    return "\n".join(ln[cut:] if ln.strip() else "" for ln in lines)


def _place_empty(value: ast.Value, at: Span) -> ast.Value:
    # An empty list or block has no token of its own to take a position from (the
    # brackets are not kept): point at the name it is assigned to.
    if isinstance(value, ast.ListV | ast.Block) and value.span.end == 0:
        value.span = at
    return value


class _ToAst(Transformer[Token, Any]):
    """Builds `storyc.ast` nodes while the LALR parser reduces (no parse tree)."""

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
            end = Span(end.file, end.line, end.col, end.end_line, end.end_col + 1,
                       end.start, end.end + 1)
        return ast.Ref(str(c[0]), _join(name_span, end), name_span, str(c[1]), attr_span, arg)

    def list(self, c: list[Any]) -> ast.ListV:
        items = [v for v in c if v is not None]
        # An empty list gets its position from the parent (see _place_empty).
        span = _join(items[0].span, items[-1].span) if items else Span(self.file, 1, 1, 1, 1)
        return ast.ListV(items, span)

    def setting(self, c: list[Any]) -> ast.Setting:
        name_span = self._span(c[0])
        value = _place_empty(c[1], name_span)
        return ast.Setting(str(c[0]), name_span, value, _join(name_span, value.span))

    def block(self, c: list[Any]) -> ast.Block:
        settings = [s for s in c if isinstance(s, ast.Setting)]
        span = _join(settings[0].span, settings[-1].span) if settings else Span(self.file, 1, 1, 1, 1)
        return ast.Block(settings, span)

    def body(self, c: list[Any]) -> list[ast.Setting]:
        return [s for s in c if isinstance(s, ast.Setting)]

    def parent(self, c: list[Token]) -> ast.Ref:
        span = self._span(c[0])
        return ast.Ref(str(c[0]), span, span)

    # declarations ------------------------------------------------------------
    def include(self, c: list[Any]) -> ast.Include:
        return ast.Include(c[1], _join(self._span(c[0]), c[1].span))

    def project(self, c: list[Any]) -> ast.ProjectDecl:
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

    def let(self, c: list[Any]) -> ast.Let:
        c = c[1:]
        name_span = self._span(c[0])
        return ast.Let(str(c[0]), name_span, _place_empty(c[1], name_span))

    def asset(self, c: list[Any]) -> ast.AssetDecl:
        return ast.AssetDecl(str(c[0]), str(c[1]), self._span(c[1]), c[2])

    def element(self, c: list[Any]) -> ast.ElementDecl:
        c = c[1:]
        return ast.ElementDecl(str(c[0]), self._span(c[0]), c[1])

    def style(self, c: list[Any]) -> ast.StyleDecl:
        c = c[1:]
        parent = c[1] if len(c) == 3 else None
        return ast.StyleDecl(str(c[0]), self._span(c[0]), parent, c[-1])

    def scene(self, c: list[Any]) -> ast.SceneDecl:
        c = c[1:]
        parent = c[1] if len(c) == 3 else None
        return ast.SceneDecl(str(c[0]), self._span(c[0]), parent, c[-1])

    def defaults(self, c: list[Any]) -> ast.DefaultsDecl:
        return ast.DefaultsDecl(c[1], self._span(c[0]))

    def cut(self, c: list[Any]) -> ast.CutDecl:
        c = c[1:]
        items: ast.ListV = c[1]
        name_span = self._span(c[0])
        _place_empty(items, name_span)
        return ast.CutDecl(str(c[0]), name_span, items)

    def start(self, c: list[Any]) -> list[ast.Decl]:
        return list(c)


def _grammar_text() -> str:
    # Installed: package data of `storyc.grammar`; from a source tree (or an editable
    # install made before that mapping existed): the file beside the package.
    try:
        return resources.files("storyc.grammar").joinpath("storyc.lark").read_text("utf-8")
    except (ModuleNotFoundError, FileNotFoundError):
        return (Path(__file__).resolve().parent.parent / "grammar" / "storyc.lark").read_text("utf-8")


# The lexer ---------------------------------------------------------------------
# Lark's own lexers cost several microseconds per token; this one scans with two
# compiled regular expressions and makes the same tokens the grammar declares. It is
# contextual the same way: a keyword is a keyword only where a declaration can start
# (outside any `{ }`/`[ ]`, and not right after a word that wants a name).

_TRIVIA = re.compile(r"(?:[ \t\r\n\f\ufeff]+|#[^\n]*|//[^\n]*|/\*[\s\S]*?\*/)+")
_TOKEN = re.compile(
    r'(?P<LONG_STRING>"""[\s\S]*?""")'
    r'|(?P<STRING>"(?!"")(?:[^"\\\n]|\\[^\n])*")'
    r"|(?P<NUMBER>-?[0-9]+(?:\.[0-9]+)?)"
    r"|(?P<NAME>[A-Za-z_][A-Za-z0-9_]*)"
    r"|(?P<PUNCT>[=:,;{}.()\[\]])"
)
_PUNCT = {"=": "EQUAL", ":": "COLON", ",": "COMMA", ";": "SEMICOLON", "{": "LBRACE",
          "}": "RBRACE", ".": "DOT", "(": "LPAR", ")": "RPAR", "[": "LSQB", "]": "RSQB"}
_KEYWORD_TYPES = {k: k.upper() for k in KEYWORDS}
_WANTS_NAME = {"SCENE", "STYLE", "ELEMENT", "IMAGE", "VIDEO", "LET", "CUT", "PROJECT", "COLON",
               "EQUAL", "DOT", "COMMA", "LSQB", "LPAR"}
_new_token = Token._future_new if hasattr(Token, "_future_new") else Token


class LexError(Exception):
    def __init__(self, pos: int) -> None:
        super().__init__(pos)
        self.pos = pos


class StoryLexer(Lexer):
    __future_interface__ = 0

    def __init__(self, lexer_conf: Any) -> None:
        pass

    def lex(self, text: str) -> Any:  # type: ignore[override]
        pos, n = 0, len(text)
        line, line_start = 1, 0
        depth = 0
        prev = ""
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
            kind = m.lastgroup
            value = m.group()
            end = m.end()
            if kind == "PUNCT":
                kind = _PUNCT[value]
                if kind in ("LBRACE", "LSQB"):
                    depth += 1
                elif kind in ("RBRACE", "RSQB") and depth:
                    depth -= 1
            elif kind == "NAME" and depth == 0 and prev not in _WANTS_NAME:
                kind = _KEYWORD_TYPES.get(value, "NAME")
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


@lru_cache(maxsize=1)
def _parser() -> tuple[Lark, _ToAst]:
    grammar = _grammar_text()
    transformer = _ToAst()
    lark = Lark(grammar, parser="lalr", lexer=StoryLexer, transformer=transformer,
                propagate_positions=False, maybe_placeholders=True)
    return lark, transformer


def parse_text(text: str, file: str = "<story>") -> ParseResult:
    """Parse one file's text. Never raises: problems come back as diagnostics."""
    lark, transformer = _parser()
    transformer.file = file
    try:
        items = lark.parse(text)
    except LexError as exc:
        diag = _char_error(text, file, exc.pos)
        return ParseResult(ast.File(file, [], complete=False), [diag])
    except UnexpectedInput as exc:
        return ParseResult(ast.File(file, [], complete=False), [_explain(exc, text, file)])
    except RecursionError:
        span = Span.from_offsets(file, text, 0, 0)
        diag = Diagnostic("E003", Severity.ERROR, "the file is nested too deeply to read", span,
                          hint="split deeply nested lists or blocks")
        return ParseResult(ast.File(file, [], complete=False), [diag])
    return ParseResult(ast.File(file, items))


# Error explanations ---------------------------------------------------------

_TOKEN_WORDS = {
    "LBRACE": "`{`", "RBRACE": "`}`", "EQUAL": "`=`", "LSQB": "`[`", "RSQB": "`]`",
    "COMMA": "`,`", "DOT": "`.`", "LPAR": "`(`", "RPAR": "`)`", "COLON": "`:`",
    "NAME": "a name", "STRING": "a string", "LONG_STRING": "a string", "NUMBER": "a number",
    "$END": "the end of the file", "_SEP": "`,`",
}
_VALUE_TOKENS = {"STRING", "LONG_STRING", "NUMBER", "LSQB", "LBRACE", "NAME"}
_DECL_TOKENS = {"INCLUDE", "PROJECT", "LET", "IMAGE", "VIDEO", "ELEMENT", "STYLE", "DEFAULTS",
                "SCENE", "CUT"}
_UNQUOTED = re.compile(r"(?<!\w)([A-Za-z_]\w*)[ \t]*=[ \t]*((?:[A-Za-z_]\w*[ \t]+)+)$")
_SKIP = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\[^\n])*"|#[^\n]*|//[^\n]*|/\*[\s\S]*?\*/|[{}]')


def _found(tok: Token) -> str:
    if tok.type == "$END":
        return "the end of the file"
    text = str(tok)
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
    return Diagnostic("E004", Severity.ERROR, msg, span,
                      hint="add `}` after the last setting of that block",
                      notes=(("the block opens here", where),) if span != where else ())


def _char_error(text: str, file: str, pos: int) -> Diagnostic:
    span = Span.from_offsets(file, text, pos, pos + 1)
    ch = text[pos:pos + 1]
    if text.startswith('"""', pos):
        return Diagnostic("E002", Severity.ERROR, 'unterminated long string: `"""` is never closed',
                          span, hint='close the string with `"""`')
    if ch == '"':
        return Diagnostic("E002", Severity.ERROR, "unterminated string", span,
                          hint='close the string with `"` on the same line; use """...""" for '
                               "text over several lines")
    shown = ch if ch.isprintable() and not ch.isspace() else repr(ch)
    return Diagnostic("E001", Severity.ERROR, f"unexpected character `{shown}`", span,
                      hint="names use letters, digits and `_`; text goes in double quotes")


def _explain(exc: UnexpectedInput, text: str, file: str) -> Diagnostic:
    if not isinstance(exc, UnexpectedToken):
        pos = getattr(exc, "pos_in_stream", 0) or 0
        return _char_error(text, file, pos)
    tok = exc.token
    expected = set(exc.expected)
    if tok.type == "$END":
        pos = len(text)
        span = Span.from_offsets(file, text, max(0, len(text.rstrip()) - 1), len(text.rstrip()))
    else:
        pos = tok.start_pos or 0
        span = _tok_span(file, tok)
    found = _found(tok)
    prev = re.search(r"([A-Za-z_]\w*)\s*$", text[:pos])
    prev_word = prev.group(1) if prev else ""

    # Inside a block, end of file or a declaration keyword almost always means a lost `}`.
    if tok.type == "$END" or (prev_word in KEYWORDS and "EQUAL" in expected
                              and tok.type in ("NAME", "STRING", "LBRACE")):
        before = "the end of the file" if tok.type == "$END" else f"`{prev_word}`"
        at = prev.start(1) if tok.type != "$END" and prev else pos
        diag = _missing_brace(text, file, at, before)
        if diag is not None:
            return diag
    line_start = text.rfind("\n", 0, pos) + 1
    unquoted = (_UNQUOTED.search(text, max(line_start, pos - 400), pos)
                if tok.type == "NAME" else None)
    if unquoted is not None:
        start = unquoted.start(2)
        end = text.find("\n", start)
        end = len(text) if end < 0 else end
        value = re.split(r"[}#,;]|//", text[start:end])[0].strip()
        return Diagnostic("E003", Severity.ERROR,
                          f"unquoted text after `{unquoted.group(1)} =`",
                          Span.from_offsets(file, text, start, start + len(value)),
                          hint=f'text goes in double quotes: {unquoted.group(1)} = "{value}"')
    if "RSQB" in expected and "COMMA" not in expected:
        return Diagnostic("E003", Severity.ERROR,
                          f"expected another list item or `]`, found {found}", span,
                          hint="close the list with `]`")
    if expected & _DECL_TOKENS and not expected & {"EQUAL", "RBRACE"}:
        if tok.type == "RBRACE":
            return Diagnostic("E003", Severity.ERROR, "unmatched `}`", span,
                              hint="remove it, or check the `{` of the block above")
        hint = "a file is a list of declarations: " + ", ".join(KEYWORDS)
        close = difflib.get_close_matches(str(tok), KEYWORDS, n=1) if tok.type == "NAME" else []
        if close:
            hint = f"did you mean `{close[0]}`?"
        return Diagnostic("E003", Severity.ERROR,
                          f"expected a declaration (`scene`, `image`, `element`, ...), found {found}",
                          span, hint=hint)
    if expected <= {"EQUAL", "LBRACE"} and "EQUAL" in expected:
        return Diagnostic("E003", Severity.ERROR,
                          f"expected `=` after `{prev_word}`, found {found}", span,
                          hint=f"write `{prev_word} = <value>`; text goes in double quotes")
    if expected & _VALUE_TOKENS and "EQUAL" not in expected and "RBRACE" not in expected:
        if tok.type == "$END":
            return Diagnostic("E005", Severity.ERROR, "unexpected end of file: a value is missing",
                              span, hint="finish the last setting")
        return Diagnostic("E003", Severity.ERROR,
                          f"expected a value (a \"string\", a number, a name or a [list]), found {found}",
                          span, hint='text must be in double quotes, e.g. prompt = "..."')
    if "RSQB" in expected and "COMMA" in expected:
        return Diagnostic("E003", Severity.ERROR, f"expected `,` or `]` in a list, found {found}",
                          span, hint="separate list items with commas and close the list with `]`")
    if "RBRACE" in expected and "NAME" in expected:
        return Diagnostic("E003", Severity.ERROR,
                          f"expected a setting (`name = value`) or `}}`, found {found}", span,
                          hint="each setting is a name, `=` and a value")
    if tok.type == "$END":
        return Diagnostic("E005", Severity.ERROR, "unexpected end of file", span,
                          hint="the last declaration is incomplete")
    wanted = sorted({_TOKEN_WORDS.get(t, t.lower()) for t in expected})
    want = " or ".join(wanted[:4]) if wanted else "something else"
    return Diagnostic("E003", Severity.ERROR, f"expected {want}, found {found}", span)
