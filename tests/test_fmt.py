"""`storyc fmt`: one canonical layout that changes no meaning and loses no comment.

- every example project and every ```story block of the docs is already formatted;
- for generated stories laid out at random (spaces, line breaks, comments of all three
  kinds between any two tokens) and for mutations of them: the layout is a fixed point
  (`fmt(fmt(x)) == fmt(x)`), parses to the same tree as the input (positions and quoting
  aside) with the same comments, and is refused exactly when the parser refuses the input;
- the token stream types every token as the parser's lexer does;
- the command: rewrite in place, `--check`, `--diff`, stdin, a file with a syntax error
  left byte for byte as it was, with the parser's diagnostic.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_parser_props import STORY

from storyc.editor.fmt import format_text, layout, verify
from storyc.lang.parser import StoryLexer, parse_text
from storyc.lang.tokens import code, comments, tokenize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = sorted((ROOT / "examples").rglob("*.story"))
FENCE = re.compile(r"^```story([^\n]*)\n(.*?)^```\s*$", re.M | re.S)
DOC_BLOCKS = [
    (f"{doc.name}:{text.count(chr(10), 0, m.start()) + 1}", m.group(2))
    for doc in [*sorted((ROOT / "docs").glob("*.md")), ROOT / "README.md"]
    for text in [doc.read_text("utf-8")]
    for m in FENCE.finditer(text)
]


def _fmt(text: str) -> str:
    result = format_text(text)
    assert result.text is not None, (text, result.diagnostics, result.problem)
    return result.text


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: str(p.relative_to(ROOT)))
def test_examples_are_formatted(path: Path) -> None:
    text = path.read_text("utf-8")
    assert _fmt(text) == text


@pytest.mark.parametrize("where,body", DOC_BLOCKS, ids=[w for w, _ in DOC_BLOCKS])
def test_doc_examples_are_formatted(where: str, body: str) -> None:
    result = format_text(body)
    if result.text is None:  # an example of a syntax error stays as written
        assert result.diagnostics, where
        return
    assert result.text == body, f"{where} is not formatted"


def test_a_messy_story_gets_the_canonical_layout() -> None:
    messy = (
        "\n\n# header\n"
        'project   "X"{aspect="16:9"; quality = "pro",}\n'
        "let a=1   // one\n"
        "let bbb = [x,y]\n"
        'image  m  "a.png"\n'
        'video longer_name "b.mp4"\n'
        'scene s1:noir{prompt="""hi"""   duration=5\n'
        "refs=[\na, # first\nb\n]\n"
        'vars{x=1 y="2"}\n\n\n'
        "/* block\n   comment */\n"
        "start = a.frame( 2.5 )\n}\n"
        "scene f {\n\n}\n"
        "cut final=[s1,\n   f]\n\n\n"
    )
    assert _fmt(messy) == (
        "# header\n"
        'project "X" { aspect = "16:9", quality = "pro" }\n'
        "let a   = 1 // one\n"
        "let bbb = [x, y]\n"
        'image m           "a.png"\n'
        'video longer_name "b.mp4"\n'
        "scene s1 : noir {\n"
        '  prompt = "hi", duration = 5\n'
        "  refs = [\n"
        "    a, # first\n"
        "    b,\n"
        "  ]\n"
        '  vars { x = 1, y = "2" }\n'
        "\n"
        "  /* block\n   comment */\n"
        "  start = a.frame(2.5)\n"
        "}\n"
        "scene f {}\n"
        "cut final = [s1,\n  f]\n"
    )


def test_long_strings_move_with_their_line_and_keep_their_value() -> None:
    text = (
        'scene a {\n        prompt = """\n            one\n              two\n            """\n}\n'
    )
    out = _fmt(text)
    assert out == 'scene a {\n  prompt = """\n      one\n        two\n      """\n}\n'
    assert verify(text, out) is None
    # A first line that shares the quotes' line cannot move without changing the value.
    text = 'scene a {\n    prompt = """one\n    two"""\n}\n'
    assert _fmt(text) == 'scene a {\n  prompt = """one\n    two"""\n}\n'


# -- generated and mutated stories ---------------------------------------------------------

TRIVIA = st.sampled_from(
    [" ", "", "  ", "\n", "\n\n\n", "\t", " # note\n", " // note\n", " /* note */ ", "/*a\n b*/"]
)


@st.composite
def laid_out(draw: st.DrawFn) -> str:
    """A generated story with random trivia between its tokens."""
    text = draw(STORY)
    toks = code(tokenize(text))
    out: list[str] = []
    for i, tok in enumerate(toks):
        out.append(tok.text)
        if i + 1 < len(toks):
            gap = draw(TRIVIA)
            if not gap.strip() and not gap:
                # two words must stay apart, punctuation may touch
                joined = tok.text[-1:].isalnum() or tok.text.endswith("_")
                nxt = toks[i + 1].text[:1]
                if joined and (nxt.isalnum() or nxt in "_-"):
                    gap = " "
            out.append(gap)
    if draw(st.booleans()):
        out.append("\n# trailing comment")
    return "".join(out)


def _properties(text: str) -> None:
    parsed = parse_text(text, "main.story")
    result = format_text(text, "main.story")
    if not parsed.ok:
        assert result.text is None and result.diagnostics == parsed.diagnostics
        return
    assert result.text is not None, (text, result.problem)
    out = result.text
    assert verify(text, out) is None, (text, out)
    assert comments(tokenize(out)) == comments(tokenize(text))
    assert _fmt(out) == out, (text, out)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(laid_out())
def test_layout_is_faithful_and_a_fixed_point(text: str) -> None:
    _properties(text)


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(laid_out(), st.data())
def test_mutated_stories_are_formatted_or_refused_like_the_parser(
    text: str, data: st.DataObject
) -> None:
    if text:
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 4)))
        junk = data.draw(
            st.sampled_from(["", "}", "{", '"', "=", "[", "]", ",", ";", "#", "\n", "scene", "."])
        )
        text = text[:i] + junk + text[j:]
    _properties(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='scene{}[]()=,;."@ \n:#/*abc1-', max_size=60))
def test_noise_is_refused_exactly_when_the_parser_refuses_it(text: str) -> None:
    assert (layout(text) is None) == (not parse_text(text).ok), text


@settings(max_examples=150, deadline=None)
@given(laid_out())
def test_tokens_are_typed_as_the_parser_types_them(text: str) -> None:
    ours = [(t.kind, t.text, t.start, t.end) for t in code(tokenize(text))]
    theirs = [(t.type, str(t), t.start_pos, t.end_pos) for t in StoryLexer(None).lex(text)]
    assert ours == theirs


def test_nesting_beyond_the_parsers_limit_is_refused() -> None:
    text = "let x = " + "[" * 70 + "]" * 70 + "\n"
    result = format_text(text)
    assert result.text is None and result.diagnostics[0].code == "E003"


# -- the command ---------------------------------------------------------------------------


def _storyc(*args: str, cwd: Path, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storyc", *args],
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=60,
    )


MESSY = 'scene a{prompt="x"   duration=5}\n'
NEAT = 'scene a { prompt = "x", duration = 5 }\n'


def test_cli_rewrites_checks_diffs_and_reads_stdin(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(MESSY, "utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ok.story").write_text(NEAT, "utf-8")
    (tmp_path / ".storyc").mkdir()
    (tmp_path / ".storyc" / "x.story").write_text(MESSY, "utf-8")  # hidden: not touched

    r = _storyc("fmt", "--check", ".", cwd=tmp_path)
    assert r.returncode == 1 and r.stdout.split() == ["main.story"], r
    assert (tmp_path / "main.story").read_text("utf-8") == MESSY

    r = _storyc("fmt", "--check", "--diff", ".", cwd=tmp_path)
    assert r.returncode == 1
    assert "-" + MESSY.strip() in r.stdout and "+" + NEAT.strip() in r.stdout
    assert (tmp_path / "main.story").read_text("utf-8") == MESSY

    r = _storyc("fmt", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout.split() == ["main.story"], r
    assert (tmp_path / "main.story").read_text("utf-8") == NEAT
    assert (tmp_path / ".storyc" / "x.story").read_text("utf-8") == MESSY

    r = _storyc("fmt", "--check", cwd=tmp_path)
    assert r.returncode == 0 and r.stdout == ""

    r = _storyc("fmt", "-", cwd=tmp_path, stdin=MESSY)
    assert r.returncode == 0 and r.stdout == NEAT
    r = _storyc("fmt", "--check", "-", cwd=tmp_path, stdin=MESSY)
    assert r.returncode == 1 and r.stdout.strip() == "<stdin>"


def test_cli_leaves_a_file_with_a_syntax_error_untouched(tmp_path: Path) -> None:
    broken = 'scene a {\n  prompt  =  "x"\n  duration = \n}\n# note\n'
    (tmp_path / "main.story").write_bytes(broken.encode("utf-8"))
    (tmp_path / "other.story").write_text(MESSY, "utf-8")
    r = _storyc("fmt", ".", cwd=tmp_path)
    assert r.returncode == 1
    assert "main.story:4:1: error[E00" in r.stderr and "left as it is" in r.stderr
    assert (tmp_path / "main.story").read_bytes() == broken.encode("utf-8")
    assert (tmp_path / "other.story").read_text("utf-8") == NEAT  # the others still are
    r = _storyc("fmt", "no/such/file.story", cwd=tmp_path)
    assert r.returncode == 3 and "no such file" in r.stderr


def test_cut_entries_with_trims_and_transitions() -> None:
    text = "cut film=[dawn,crossfade( 0.5 ),nets{in=2 out=7.5}  // the middle\n,gulls {out=4}\n]\n"
    out = _fmt(text)
    assert out == (
        "cut film = [\n"
        "  dawn, crossfade(0.5), nets { in = 2, out = 7.5 }, // the middle\n"
        "  gulls { out = 4 },\n"
        "]\n"
    )
    assert verify(text, out) is None and _fmt(out) == out


@pytest.mark.parametrize(
    "text",
    [
        # found by the property test above: a line comment before a trailing separator put
        # the closing brace on a line of its own, and a second pass laid the block out anew
        'image mei "@mei walks {{ style }}" image mei "@mei walks {{ style }}" defaults '
        '{ prompt = "x" prompt =\n\n\n"x" # note\nfrontal # note\n= // note\nvideo // note\n,}'
        " cut a = [ ]",
        # a separator after a line comment: `, ` was added before the comment, then dropped
        'image mei "@mei walks {{ style }}" image\n\n\nmei # note\n"@mei walks {{ style }}" '
        "// note\ndefaults // note\n{ // note\nfrontal /* note */ =/*a\n b*/video # note\n"
        ',prompt = "x" prompt = "x" } cut a = [ ]',
        # a separator on a line of its own, the next setting after it on that line
        'project "{% for %}" { keep_sound =x_1 # note\n. # note\nx\n,prompt = a . last_frame }'
        " defaults { }",
    ],
)
def test_formatting_twice_changes_nothing_after_separators_and_comments(text: str) -> None:
    _properties(text)
