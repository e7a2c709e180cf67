"""The formatter: one canonical layout for a .story file, with every comment where it was.

Stage: editor. In: the text of one story file. Out: `Formatted` — the text in canonical
layout, or the syntax diagnostic that stops it (the text is then left as it is). Pure;
no I/O (`storyc fmt` reads and writes the files).

It works on the token stream (`storyc.lang.tokens`), not on the syntax tree, so nothing
the parser skips is lost, and it changes only what carries no meaning:

- indentation (two spaces a level), spaces between tokens, trailing spaces, blank lines
  (at most one in a row, none just inside a bracket, none at the start or end);
- the `=` of settings on consecutive lines of a block (and of consecutive `let`s,
  assets and cuts) line up;
- separators: in a block, settings on one line are separated by `, ` and a `,`/`;` at
  the end of a line goes; a list laid over several lines ends every item with `,`,
  one on a single line has no trailing comma;
- a list or block that breaks after its opening bracket (or before its closing one)
  puts both brackets on lines of their own; `=`, `,`, `.` and the bracket that opens
  a body or a setting's value never start a line; every declaration starts one;
- `\"\"\"...\"\"\"` on one line becomes `"..."` when that means the same; the lines of a
  long string move with the line they belong to when its value stays the same.

Line breaks the writer chose are otherwise kept (`terraform fmt`'s rule). The layout is
decided by a small recursive descent over the tokens that accepts exactly the grammar
(tests hold it to the parser); anything it does not accept goes to the parser, whose
diagnostic is returned. `verify` re-parses both texts and compares the trees and the
comments: `storyc fmt` refuses to write a file whose meaning would change.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields, is_dataclass

from storyc.base.diagnostics import Diagnostic, Span
from storyc.lang import ast
from storyc.lang.lexicon import dedent_long
from storyc.lang.tokens import DECL_TYPES, Stream, Tok, comments, tokenize

STEP = 2  # spaces per level

_KEEP, _FORCE, _NEVER = 0, 1, 2  # whether a token starts a line: as written, always, never
_VALUE_START = frozenset(("STRING", "LONG_STRING", "NUMBER", "NAME", "LSQB", "LBRACE"))
_STRINGS = frozenset(("STRING", "LONG_STRING"))


@dataclass
class Formatted:
    """The result for one text: `text` is the canonical layout, or None when a syntax
    error (in `diagnostics`) stops formatting; `source` is the input."""

    source: str
    text: str | None
    diagnostics: list[Diagnostic] = field(default_factory=list)
    # set when the parser accepts a text the layout does not (a bug in the layout)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.text is not None

    @property
    def changed(self) -> bool:
        return self.text is not None and self.text != self.source


class _Reject(Exception):
    """The tokens are not a story; the parser says why."""


class _Line:
    __slots__ = ("indent", "pieces", "group", "head", "at", "multi")

    def __init__(self, indent: int) -> None:
        self.indent = indent
        self.pieces: list[str] = []
        self.group: object = None  # lines of one group align their `at` piece
        self.head = 0  # width of the text before piece `at`
        self.at = -1
        self.multi = False  # holds a token that spans lines


class _Printer:
    def __init__(self, text: str, stream: Stream) -> None:
        self.text = text
        self.toks = toks = stream.tokens
        n = len(toks)
        kinds = [t.kind for t in toks]
        # next_code[i]: index of the first code token at or after i (n at the end);
        # ahead[i]: its kind ("$END" at the end). Most files have few comments.
        if "COMMENT" in kinds:
            nxt = [n] * (n + 1)
            for i in range(n - 1, -1, -1):
                nxt[i] = i if kinds[i] != "COMMENT" else nxt[i + 1]
            self.ahead = [kinds[j] if j < n else "$END" for j in nxt]
        else:
            nxt = list(range(n + 1))
            self.ahead = [*kinds, "$END"]
        self.next_code = nxt
        self.kinds = kinds
        self.i = 0
        self.lines: list[_Line] = []
        self.line: _Line | None = None
        self.indent = 0  # indentation of statements at this point
        self.fresh = True  # nothing written since the start or the last opening bracket
        self.broken = False  # a line comment was written: the next token starts a line
        self.blocks = 0

    # -- reading ----------------------------------------------------------------------
    def peek(self) -> str:
        return self.ahead[self.i]

    def peek2(self) -> str:
        j = self.next_code[self.i]
        if j >= len(self.toks):
            return "$END"
        j = self.next_code[j + 1]
        return self.toks[j].kind if j < len(self.toks) else "$END"

    # -- writing ----------------------------------------------------------------------
    def _newline(self, indent: int, blank: bool) -> _Line:
        lines = self.lines
        if blank and lines and lines[-1].pieces and not self.fresh:
            lines.append(_Line(0))
        line = _Line(indent)
        lines.append(line)
        self.line = line
        return line

    def _add(self, line: _Line, piece: str, space: bool) -> None:
        pieces = line.pieces
        # No space inside `[`, except before a comment.
        if pieces and space and (not pieces[-1].endswith("[") or piece[0] in "#/"):
            piece = " " + piece
        pieces.append(piece)

    def _comments(self, cindent: int) -> None:
        toks = self.toks
        while self.i < len(toks) and toks[self.i].kind == "COMMENT":
            c = toks[self.i]
            self.i += 1
            text = c.text.rstrip()
            line = self.line
            if line is None or c.nl or self.broken:
                line = self._newline(cindent, c.nl >= 2)
                line.pieces.append(text)
            else:
                self._add(line, text, True)
            if "\n" in text:
                line.multi = True
            self.broken = c.is_line_comment
            self.fresh = False

    def put(
        self,
        kind: str | frozenset[str],
        brk: int,
        indent: int,
        *,
        space: bool = True,
        blank: bool = False,
        cindent: int | None = None,
    ) -> Tok:
        """Write the next code token, which must be of `kind`, after the comments
        before it; `brk` says whether it starts a line, at `indent`."""
        toks = self.toks
        tok = toks[self.i]  # an IndexError past the end is a rejection (see `layout`)
        if tok.kind == "COMMENT":
            self._comments(indent if cindent is None else cindent)
            tok = toks[self.i]
        k = tok.kind
        if k != kind and (type(kind) is str or k not in kind):
            raise _Reject
        self.i += 1
        line = self.line
        if line is None or self.broken or brk == _FORCE or (brk == _KEEP and tok.nl):
            line = self._newline(indent, blank and tok.nl >= 2)
        text = tok.text
        if k == "LONG_STRING":
            text = self._long(tok, line)
            if "\n" in text:
                line.multi = True
        pieces = line.pieces
        # No space inside `[`.
        if pieces and space and not pieces[-1].endswith("["):
            pieces.append(" " + text)
        else:
            pieces.append(text)
        self.broken = False
        self.fresh = False
        return tok

    def drop(self, kind: str, cindent: int) -> None:
        """Consume a separator without writing it (its comments are written)."""
        self._comments(cindent)
        if self.toks[self.i].kind != kind:
            raise _Reject
        self.i += 1

    def mark(self) -> tuple[_Line, int]:
        assert self.line is not None
        return self.line, len(self.line.pieces)

    def _long(self, tok: Tok, line: _Line) -> str:
        raw = tok.text
        if "\r\n" in raw:  # a file saved with CRLF: its lines end as every other line
            lf = raw.replace("\r\n", "\n")
            if dedent_long(lf[3:-3]) == dedent_long(raw[3:-3]):
                raw = lf
        inner = raw[3:-3]
        if "\n" not in raw:
            value = dedent_long(inner)
            if '"' not in value and "\\" not in value:
                return f'"{value}"'
            return raw
        # Move the string's lines with its line, when that leaves its value as it is
        # (not after a comment over lines: its last line is where the string starts).
        if line.multi:
            return raw
        text = self.text
        start = text.rfind("\n", 0, tok.start) + 1
        j = start
        while j < tok.start and text[j] == " ":
            j += 1
        if j < tok.start and text[j] == "\t":
            return raw
        delta = line.indent - (j - start)
        if delta == 0:
            return raw
        parts = raw.split("\n")
        rest = parts[1:]
        if delta > 0:
            pad = " " * delta
            rest = [pad + p if p.strip() else p for p in rest]
        else:
            cut = -delta
            if any(p.strip() and not p.startswith(" " * cut) for p in rest):
                return raw
            rest = [p[cut:] if p.strip() else p for p in rest]
        moved = "\n".join([parts[0], *rest])
        return moved if dedent_long(moved[3:-3]) == dedent_long(inner) else raw

    # -- the grammar --------------------------------------------------------------------
    def run(self) -> str:
        while self.peek() != "$END":
            self.decl()
        self._comments(0)
        out: list[str] = []
        _align(self.lines)
        for line in self.lines:
            out.append(" " * line.indent + "".join(line.pieces) if line.pieces else "")
        while out and not out[-1]:
            out.pop()
        return "\n".join(out) + "\n" if out else ""

    def decl(self) -> None:
        kind = self.peek()
        if kind not in DECL_TYPES:
            raise _Reject
        self.put(kind, _FORCE, 0, blank=True)
        line = self.mark()[0]
        cont = STEP
        if kind == "INCLUDE":
            self.put(_STRINGS, _NEVER, cont)
        elif kind == "PROJECT":
            if self.peek() in ("STRING", "LONG_STRING", "NAME"):
                self.put(frozenset(("STRING", "LONG_STRING", "NAME")), _NEVER, cont)
            self.body()
        elif kind in ("LET", "CUT"):
            self.put("NAME", _NEVER, cont)
            self.put("EQUAL", _NEVER, cont)
            self._candidate(line, kind)
            if kind == "CUT":
                if self.peek() != "LSQB":
                    raise _Reject
                self.list(_NEVER, cont, False, self.cut_item)
            else:
                self.value(self._after_equal(), cont)
            self._settle(line)
        elif kind in ("IMAGE", "VIDEO"):
            self.put("NAME", _NEVER, cont)
            nxt = self.put(frozenset(("EQUAL", "STRING", "LONG_STRING")), _NEVER, cont)
            self._candidate(line, "ASSET")
            if nxt.kind == "EQUAL":
                self.put(_STRINGS, _KEEP, cont)
            self._settle(line)
        elif kind == "DEFAULTS":
            self.body()
        else:  # ELEMENT, STYLE, SCENE
            self.put("NAME", _NEVER, cont)
            if kind != "ELEMENT" and self.peek() == "COLON":
                self.put("COLON", _NEVER, cont)
                self.put("NAME", _NEVER, cont)
            self.body()

    def _after_equal(self) -> int:
        """A list or block opens on the line of its `=`; a string or a name may follow
        on the next line (a long prompt often does)."""
        return _NEVER if self.peek() in ("LSQB", "LBRACE") else _KEEP

    def _candidate(self, line: _Line, group: object) -> None:
        """`line` may align its last piece (just written) with its neighbours' when the
        statement started the line and stays on it (see `_settle`)."""
        if self.line is not line:
            return
        line.group = group
        line.at = len(line.pieces) - 1
        line.head = len("".join(line.pieces[: line.at]))

    def _settle(self, line: _Line) -> None:
        # A long string may continue the line (it is one piece of it); a list or block
        # laid over lines takes the statement off it.
        if self.line is not line:
            line.group = None

    def _multiline(self, open_i: int) -> bool | None:
        """Whether the bracket at `open_i` is laid over several lines; None when it is
        empty with nothing inside."""
        toks = self.toks
        close = self._match(open_i)
        first = self.next_code[open_i + 1]
        if first == close:
            if close == open_i + 1:
                return None
            return any(t.nl for t in toks[open_i + 1 : close + 1]) or any(
                t.is_line_comment for t in toks[open_i + 1 : close]
            )
        for t in toks[open_i + 1 : first + 1]:
            if t.nl or t.is_line_comment:
                return True
        # back from the closing bracket past comments and the trailing separators the
        # layout drops: a line break or line comment after the last item puts the bracket
        # on a line of its own, so the bracket is laid over lines (else a second pass would
        # find it there and lay it out differently)
        j = close - 1
        while toks[j].kind in ("COMMENT", "COMMA", "SEMICOLON"):
            j -= 1
        return any(t.nl or t.is_line_comment for t in toks[j + 1 : close + 1])

    def _match(self, open_i: int) -> int:
        """The index of the bracket that closes the one at `open_i`."""
        kinds = self.kinds
        depth = 0
        for j in range(open_i, len(kinds)):
            k = kinds[j]
            if k == "LBRACE" or k == "LSQB":
                depth += 1
            elif k == "RBRACE" or k == "RSQB":
                depth -= 1
                if depth == 0:
                    return j
        raise _Reject

    def _open(self, kind: str, brk: int, indent: int, blank: bool) -> tuple[bool | None, int]:
        open_i = self.next_code[self.i]
        ml = self._multiline(open_i)
        self.put(kind, brk, indent, blank=blank)
        saved = self.indent
        assert self.line is not None
        self.indent = self.line.indent + STEP
        self.fresh = True
        return ml, saved

    def _close(self, kind: str, ml: bool | None, saved: int) -> None:
        inner = self.indent
        self.indent = saved
        self.put(
            kind,
            _FORCE if ml else _NEVER,
            inner - STEP,
            space=ml is not None,
            cindent=inner,
        )

    def body(self, brk: int = _NEVER, indent: int | None = None, blank: bool = False) -> None:
        """`{ setting* }`: a declaration's body or a block value."""
        if self.peek() != "LBRACE":
            raise _Reject
        where = self.indent + STEP if indent is None else indent
        ml, saved = self._open("LBRACE", brk, where, blank)
        self.blocks += 1
        group = ("block", self.blocks)
        first = True
        while self.peek() != "RBRACE":
            self.setting(group, _FORCE if ml and first else _KEEP)
            first = False
            at = self.mark()
            start = self.i  # what lies between this setting and the next, separator too
            kind = self.peek()
            if kind in ("COMMA", "SEMICOLON"):
                self.drop(kind, self.indent)
                kind = self.peek()
            if kind == "RBRACE":
                break
            if kind != "NAME":
                raise _Reject
            # Another setting on the same line is set off by `, `: on the same line means
            # no comment on a line of its own and no line comment before it, on either side
            # of the dropped separator (whose own line break the layout does not keep)
            j = start
            same = True
            while self.toks[j].kind != "NAME":
                t = self.toks[j]
                if t.kind == "COMMENT" and (t.nl or t.is_line_comment):
                    same = False
                j += 1
            if same and not self.toks[j].nl:
                at[0].pieces.insert(at[1], ",")
        self._close("RBRACE", ml, saved)

    def setting(self, group: object, brk: int) -> None:
        self.put("NAME", brk, self.indent, blank=True)
        line = self.line
        assert line is not None
        head = len(line.pieces) == 1
        if self.peek() == "LBRACE":  # `vars { ... }`: no `=`, so it ends a group
            self.body()
            return
        self.put("EQUAL", _NEVER, self.indent + STEP)
        if head:
            self._candidate(line, group)
        self.value(self._after_equal(), self.indent + STEP)
        self._settle(line)

    def value(self, brk: int, indent: int, blank: bool = False) -> None:
        kind = self.peek()
        if kind in _STRINGS or kind == "NUMBER":
            self.put(kind, brk, indent, blank=blank)
        elif kind == "NAME":
            self.put("NAME", brk, indent, blank=blank)
            if self.peek() == "DOT":
                cont = indent + STEP
                self.put("DOT", _NEVER, cont, space=False)
                self.put("NAME", _NEVER, cont, space=False)
                if self.peek() == "LPAR":
                    self.put("LPAR", _NEVER, cont, space=False)
                    self.put("NUMBER", _NEVER, cont, space=False)
                    self.put("RPAR", _NEVER, cont, space=False)
        elif kind == "LSQB":
            self.list(brk, indent, blank)
        elif kind == "LBRACE":
            self.body(brk, indent, blank)
        else:
            raise _Reject

    def cut_item(self, brk: int, indent: int, blank: bool = False) -> None:
        """A cut's entry: a scene, maybe trimmed (`arrival { in = 1 }`), or a
        transition (`crossfade(0.5)`)."""
        if self.peek() == "NAME" and self.peek2() == "LPAR":
            self.put("NAME", brk, indent, blank=blank)
            cont = indent + STEP
            self.put("LPAR", _NEVER, cont, space=False)
            self.put("NUMBER", _NEVER, cont, space=False)
            self.put("RPAR", _NEVER, cont, space=False)
            return
        self.value(brk, indent, blank)
        if self.peek() == "LBRACE":
            self.body(_NEVER, indent + STEP)

    def list(
        self,
        brk: int,
        indent: int,
        blank: bool,
        item: Callable[[int, int, bool], None] | None = None,
    ) -> None:
        item = item or self.value
        ml, saved = self._open("LSQB", brk, indent, blank)
        first = True
        last: tuple[_Line, int] | None = None
        while self.peek() != "RSQB":
            if not first:
                if self.peek() != "COMMA":
                    raise _Reject
                if self.peek2() == "RSQB":
                    self.drop("COMMA", self.indent)
                    break
                assert last is not None
                last[0].pieces.insert(last[1], ",")
                self.drop("COMMA", self.indent)
            item(_FORCE if ml and first else _KEEP, self.indent, not first)
            first = False
            last = self.mark()
        if ml and last is not None:
            last[0].pieces.insert(last[1], ",")
        self._close_list(ml, saved)

    def _close_list(self, ml: bool | None, saved: int) -> None:
        inner = self.indent
        self.indent = saved
        self.put("RSQB", _FORCE if ml else _NEVER, inner - STEP, space=False, cindent=inner)


def _align(lines: list[_Line]) -> None:
    run: list[_Line] = []

    def flush() -> None:
        if len(run) > 1:
            width = max(ln.head for ln in run)
            for ln in run:
                piece = ln.pieces[ln.at]
                ln.pieces[ln.at] = " " * (width - ln.head + 1) + piece.lstrip(" ")
        run.clear()

    for line in lines:
        if line.group is None or (run and run[-1].group != line.group):
            flush()
        if line.group is not None:
            run.append(line)
    flush()


def layout(text: str) -> str | None:
    """The canonical layout of `text`, or None when it is not a story the grammar
    accepts (the parser then says why)."""
    stream = tokenize(text)
    if stream.errors or stream.too_deep:
        return None
    try:
        return _Printer(text, stream).run()
    except (_Reject, IndexError):
        return None


def format_text(text: str, file: str = "<story>") -> Formatted:
    """Format one story file's text. A syntax error leaves it as it is, with the parser's
    diagnostic. Never raises for bad input."""
    out = layout(text)
    if out is None:
        from storyc.lang.parser import parse_text  # only a file that does not lay out

        result = parse_text(text, file)
        if result.diagnostics:
            return Formatted(text, None, list(result.diagnostics))
        return Formatted(text, None, problem="the formatter cannot lay out this file")
    return Formatted(text, out)


# -- checking that a layout changed nothing ------------------------------------------------


def shape(node: object) -> object:
    """A syntax tree without positions and quoting: what the story means as written."""
    if isinstance(node, ast.Str):
        return ("Str", node.value)
    if isinstance(node, ast.Num):
        return ("Num", node.text)
    if isinstance(node, list):
        return [shape(n) for n in node]
    if is_dataclass(node):
        return (
            type(node).__name__,
            tuple(
                shape(getattr(node, f.name))
                for f in fields(node)
                if not isinstance(getattr(node, f.name), Span) and f.name != "content_start"
            ),
        )
    return node


def verify(before: str, after: str) -> str | None:
    """Why `after` is not a faithful layout of `before`, or None when it is: both parse,
    to the same tree (positions and quoting aside), with the same comments."""
    from storyc.lang.parser import parse_text

    a, b = parse_text(before), parse_text(after)
    if not a.ok or not b.ok:
        return "the formatted text does not parse" if a.ok else "the input does not parse"
    if shape(a.file.items) != shape(b.file.items):
        return "the formatted text means something else"
    if comments(tokenize(before)) != comments(tokenize(after)):
        return "a comment changed"
    return None
