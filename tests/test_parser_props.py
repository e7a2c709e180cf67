"""Property tests: no input, however broken, makes the front end raise.

Arbitrary text and grammar-generated stories (valid, and then mutated) go into
`parser.parse_text`; the result is a tree or diagnostics, never an exception, and every
span lies inside the text with line/column agreeing with its offsets. Generated stories
also go through load + resolve on disk.
"""

from __future__ import annotations

import tempfile
from dataclasses import fields, is_dataclass
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyc.base.diagnostics import Span
from storyc.compiler import frontend
from storyc.lang.parser import parse_text

NAMES = st.sampled_from(["a", "b", "mei", "market", "arrival", "video", "scene", "x_1", "true"])
SETTING_NAMES = st.sampled_from(
    [
        "prompt",
        "start",
        "end",
        "refs",
        "elements",
        "video",
        "edit",
        "motion",
        "keep_sound",
        "quality",
        "aspect",
        "duration",
        "takes",
        "target",
        "watermark",
        "use",
        "vars",
        "frontal",
        "description",
        "colour",
    ]
)
STRINGS = st.sampled_from(
    [
        '"x"',
        '""',
        '"@mei walks {{ style }}"',
        '"{{ nope }}"',
        '"{% for %}"',
        '"a.png"',
        '"m.mp4"',
        '"https://e.com/a.jpg"',
        '"http://e.com/a.jpg"',
        '"std"',
        '"16:9"',
        '"""\n  long @a\n  text\n  """',
        '"esc \\" \\n"',
        '"{{ s.__class__ }}"',
    ]
)


def _value(depth: int = 2) -> st.SearchStrategy[str]:
    leaf = st.one_of(
        STRINGS,
        st.integers(-3, 12).map(str),
        st.floats(0, 10, allow_nan=False).map(lambda f: f"{f:.1f}"),
        NAMES,
        st.tuples(NAMES, st.sampled_from(["last_frame", "first_frame", "frame(2.5)", "x"])).map(
            lambda t: f"{t[0]}.{t[1]}"
        ),
    )
    if depth == 0:
        return leaf
    inner = _value(depth - 1)
    return st.one_of(
        leaf,
        st.lists(inner, max_size=3).map(lambda xs: "[" + ", ".join(xs) + "]"),
        st.lists(st.tuples(NAMES, inner), max_size=2).map(
            lambda kv: "{ " + " ".join(f"{k} = {v}" for k, v in kv) + " }"
        ),
    )


SETTING = st.tuples(SETTING_NAMES, _value()).map(lambda t: f"{t[0]} = {t[1]}")
BODY = st.lists(SETTING, max_size=4).map(lambda ss: "{ " + "\n  ".join(ss) + " }")
DECL = st.one_of(
    st.tuples(st.just("project"), STRINGS, BODY).map(" ".join),
    st.tuples(st.just("let"), NAMES, st.just("="), _value()).map(" ".join),
    st.tuples(st.sampled_from(["image", "video"]), NAMES, STRINGS).map(" ".join),
    st.tuples(st.sampled_from(["element", "scene", "style"]), NAMES, BODY).map(" ".join),
    st.tuples(st.just("scene"), NAMES, st.just(":"), NAMES, BODY).map(" ".join),
    st.tuples(st.just("defaults"), BODY).map(" ".join),
    st.tuples(st.just("cut"), NAMES, st.just("="), st.lists(NAMES, max_size=3)).map(
        lambda t: f"{t[0]} {t[1]} = [{', '.join(t[3])}]"
    ),
    st.just("# comment"),
)
# Stories for the resolver test carry no include: a self-include is a cycle, which stops
# resolution before the interesting part.
STORY = st.lists(DECL, max_size=6).map("\n".join)
STORY_WITH_INCLUDE = st.lists(st.one_of(DECL, st.just('include "main.story"')), max_size=6).map(
    "\n".join
)


def _spans(node: object):
    if isinstance(node, Span):
        yield node
    elif isinstance(node, list | tuple):
        for item in node:
            yield from _spans(item)
    elif is_dataclass(node):
        for f in fields(node):
            yield from _spans(getattr(node, f.name))


def _check(text: str) -> None:
    res = parse_text(text, "main.story")
    if not text.strip(" \t\r\n\f\ufeff"):  # the language's whitespace (storyc.lang.lexicon)
        assert res.ok and not res.file.items, res.diagnostics
    # every syntax error is an error, located, so an editor can underline it
    assert all(d.is_error and d.span is not None for d in res.diagnostics), res.diagnostics
    for span in [*_spans(res.file), *(d.span for d in res.diagnostics if d.span)]:
        assert 0 <= span.start <= span.end <= len(text), span
        assert span == Span.from_offsets("main.story", text, span.start, span.end), span
    for d in res.diagnostics:
        assert d.code.startswith("E0") and d.message


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.text())
def test_arbitrary_text_never_raises(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet='scene{}[]()=,."@ \n:#/*abc1"""', max_size=80))
def test_story_like_noise_never_raises(text: str) -> None:
    _check(text)


@settings(max_examples=200, deadline=None)
@given(STORY)
def test_generated_stories_parse(text: str) -> None:
    res = parse_text(text, "main.story")
    assert res.ok, (text, res.diagnostics)
    _check(text)


@settings(max_examples=200, deadline=None)
@given(STORY_WITH_INCLUDE, st.data())
def test_mutated_stories_never_raise(text: str, data: st.DataObject) -> None:
    if text:
        i = data.draw(st.integers(0, len(text)))
        j = data.draw(st.integers(i, min(len(text), i + 5)))
        junk = data.draw(st.sampled_from(["", "}", "{", '"', "=", "[", "@", "$", "\n", "scene"]))
        text = text[:i] + junk + text[j:]
    _check(text)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(STORY)
def test_generated_stories_resolve_without_raising(text: str) -> None:
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "main.story").write_text(text, "utf-8")
        project, diags, sources = frontend(d)
        for diag in diags:
            assert diag.span is None or diag.span.file in sources.texts


@settings(max_examples=200, deadline=None)
@given(
    st.text(alphabet="ab\n\r é\t", min_size=1, max_size=300),
    st.integers(min_value=1, max_value=80),
    st.integers(min_value=-5, max_value=25000),
    st.integers(min_value=-5, max_value=25000),
)
def test_span_from_offsets_is_counting_lines(piece: str, times: int, a: int, b: int) -> None:
    """A long text's spans come from a table of line starts (made once per text): the
    same lines and columns as counting newlines from the start of the text."""
    long = piece * (2048 // len(piece) + times)  # at least 2,048 characters: the table
    for text in (long, piece):  # long and short, one after the other
        start = max(0, min(a, len(text)))
        end = max(start, min(b, len(text)))
        line = text.count("\n", 0, start) + 1
        col = start - (text.rfind("\n", 0, start) + 1) + 1
        end_line = text.count("\n", 0, end) + 1
        end_col = end - (text.rfind("\n", 0, end) + 1) + 1
        want = Span("f", line, col, end_line, end_col, start, end)
        assert Span.from_offsets("f", text, a, b) == want
