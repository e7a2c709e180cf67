"""Hostile and careless text at the syntax level: every error in one run, honest hints,
numbers and characters that used to crash or reach the terminal, and no quadratic time.

Each test here failed before the change it guards (issue 8); the fuzz reproducers are kept
as plain examples so that they run on every commit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storyc.base.diagnostics import SourceMap, render_all
from storyc.compiler import compile_project
from storyc.lang import ast
from storyc.lang.parser import parse_text


def _codes(text: str) -> list[tuple[str, int]]:
    res = parse_text(text, "main.story")
    return [(d.code, d.span.line if d.span else 0) for d in res.diagnostics]


def test_three_syntax_errors_show_three() -> None:
    text = (
        "scene a {\n"  # 1: never closed
        '  prompt = "x"\n'
        "\n"
        "scene b {\n"  # 4
        '  prompt = "y"\n'
        "}\n"
        "scene c { prompt = z q }\n"  # 7: `q` starts a setting with no `=`
        "scene d { duration = 5 $ }\n"  # 8: a stray character
        'image e "e.png"\n'
    )
    assert _codes(text) == [("E004", 4), ("E003", 7), ("E001", 8)]
    res = parse_text(text, "main.story")
    # what parses is kept (the scene after the lost brace, the last declaration) ...
    names = [getattr(d, "name", None) for d in res.file.items]
    assert "b" in names and "e" in names
    # ... but a file with syntax errors is never resolved
    assert not res.file.complete


def test_recovery_skips_setting_lines_that_look_like_declarations() -> None:
    # `video = arrival` inside a scene is a setting: restarting there would invent errors
    text = "scene a { prompt = x y\n  video = arrival\n}\nscene b { prompt = 5 5 }\n"
    assert [c for c, _ in _codes(text)] == ["E003", "E003"]


def test_errors_are_capped_per_file() -> None:
    text = "scene a { prompt = x y }\n" * 500
    assert len(parse_text(text, "main.story").diagnostics) == 50


def test_unescaped_inner_quote_gets_the_escape_as_hint() -> None:
    text = 'scene a {\n  prompt = "She said "Hope" and left"\n}\n'
    (diag,) = parse_text(text, "main.story").diagnostics
    assert diag.code == "E003"
    assert "ends it early" in diag.message
    assert diag.hint is not None
    assert 'prompt = "She said \\"Hope\\" and left"' in diag.hint
    assert "Hope = <value>" not in diag.hint
    assert diag.span is not None and (diag.span.line, diag.span.col) == (2, 12)


@pytest.mark.parametrize(
    "value",
    [
        "9" * 4301,  # more digits than int() accepts
        "1" + "0" * 309 + ".0",  # infinite as a float
        "-" + "7" * 16,
    ],
)
def test_huge_numbers_are_located_errors(value: str) -> None:
    text = f"scene a {{ duration = {value} }}\n"
    (diag,) = parse_text(text, "main.story").diagnostics
    assert diag.code == "E015"
    assert "at most 15" in diag.message
    assert diag.span is not None and diag.span.col == 22


def test_long_but_small_numbers_are_fine() -> None:
    res = parse_text("let a = 000000000000000000000000005\nlet b = 2.50000000000000000001\n")
    assert res.ok
    values = [d.value.value for d in res.file.items if isinstance(d, ast.Let)]  # type: ignore[union-attr]
    assert values == [5, 2.5]


def test_huge_frame_time_is_an_error_not_infinity(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        'project "P" { aspect = "16:9" }\n'
        'scene a { prompt = "x" duration = 5 }\n'
        f'scene b {{ start = a.frame(1{"0" * 309}.0) prompt = "y" duration = 5 }}\n'
    )
    comp = compile_project(tmp_path)
    assert "E015" in [d.code for d in comp.diagnostics]
    assert "Infinity" not in comp.dumps_lines()


def test_control_characters_are_errors_and_never_printed_raw() -> None:
    text = 'scene a {\n  prompt = "title\x1b]0;owned\x07 \x9b31m"\n}\n'
    res = parse_text(text, "main.story")
    assert [d.code for d in res.diagnostics] == ["E001", "E001", "E001"]
    assert "U+001B (ESC)" in res.diagnostics[0].message
    shown = render_all(res.diagnostics, SourceMap({"main.story": text}))
    assert "\x1b" not in shown and "\x07" not in shown and "\x9b" not in shown
    assert "\\x1b]0;owned\\x07" in shown
    # the caret is under the escape as shown
    lines = shown.splitlines()
    at = lines.index('2 |   prompt = "title\\x1b]0;owned\\x07 \\x9b31m"')
    assert lines[at + 1].index("^") == lines[at].index("\\x1b")


def test_bidi_override_is_an_error() -> None:
    (diag,) = parse_text('let a = "abc\u202edef"\n').diagnostics
    assert diag.code == "E001" and "U+202E" in diag.message


def test_empty_nested_list_has_its_own_sane_span() -> None:
    text = "scene a {\n  refs = [x, []]\n}\n"
    res = parse_text(text, "main.story")
    assert res.ok
    scene = res.file.items[0]
    assert isinstance(scene, ast.SceneDecl)
    outer = scene.settings[0].value
    assert isinstance(outer, ast.ListV)
    inner = outer.items[1]
    assert isinstance(inner, ast.ListV) and inner.items == []
    s = inner.span
    assert (s.line, s.col, s.end_line, s.end_col) == (2, 14, 2, 16)
    assert text[s.start : s.end] == "[]"
    o = outer.span
    assert text[o.start : o.end] == "[x, []]"
    for span in (s, o):
        assert (span.end_line, span.end_col) >= (span.line, span.col)


def test_empty_nested_list_is_reported_where_it_is(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        'project "P" { aspect = "16:9" }\nscene a {\n  prompt = "x"\n  refs = [[]]\n}\n'
    )
    comp = compile_project(tmp_path)
    spans = [(d.code, d.span.line, d.span.col) for d in comp.diagnostics if d.span]
    assert ("E104", 4, 11) in spans


def _long_word_then_error(n: int) -> str:
    return 'scene a { prompt = "' + "a" * n + '" 5 }\n'


@pytest.mark.timeout(120)
def test_a_syntax_error_after_a_megabyte_of_word_characters_is_explained() -> None:
    # quadratic before: 20 s at 20k characters, hours at 1 MB (bench/bench_syntax_errors.py)
    (diag,) = parse_text(_long_word_then_error(1_000_000), "main.story").diagnostics
    assert diag.code == "E003"
