"""Cut entries in the language: trims and transitions, parsed, resolved and checked."""

from __future__ import annotations

from pathlib import Path

from storyc.compiler import compile_project
from storyc.lang import ast
from storyc.lang.parser import parse_text

STORY = """
project "Cuts" { aspect = "16:9" }
scene a { prompt = "one" duration = 5 }
scene b { prompt = "two" duration = 10 }
cut final = [a, crossfade(0.5), b { in = 2, out = 7.5 }, a { out = 4 },]
cut empty = []
"""


def test_cut_entries_parse_with_trims_and_transitions() -> None:
    res = parse_text(STORY, "main.story")
    assert res.ok, res.diagnostics
    cut = res.file.items[-2]
    assert isinstance(cut, ast.CutDecl)
    kinds = [type(i).__name__ for i in cut.items]
    assert kinds == ["CutEntry", "CutTransition", "CutEntry", "CutEntry"]
    fade = cut.items[1]
    assert isinstance(fade, ast.CutTransition)
    assert (fade.kind, fade.length.value) == ("crossfade", 0.5)
    assert STORY[fade.span.start : fade.span.end] == "crossfade(0.5)"
    entry = cut.items[2]
    assert isinstance(entry, ast.CutEntry) and entry.trim is not None
    assert [s.name for s in entry.trim.settings] == ["in", "out"]
    empty = res.file.items[-1]
    assert isinstance(empty, ast.CutDecl) and empty.items == []


def test_a_missing_comma_between_entries_says_so() -> None:
    res = parse_text("cut final = [a b]", "main.story")
    assert [d.message for d in res.diagnostics] == ["expected `,` or `]` in a list, found `b`"]
    res = parse_text("cut final = [a { in = 1 } b]", "main.story")
    assert [d.message for d in res.diagnostics] == ["expected `,` or `]` in a list, found `b`"]


def test_resolved_clips_carry_trims_and_the_transition_into_them(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    comp = compile_project(tmp_path)
    assert not comp.has_errors, comp.diagnostics
    assert comp.project is not None
    cut = comp.project.cuts["final"]
    assert [c.scene for c in cut.clips] == ["a", "b", "a"]
    assert [n for n, _ in cut.scenes] == ["a", "b", "a"]
    a, b, a2 = cut.clips
    assert a.start is None and a.end is None and a.transition is None
    assert b.start is not None and b.start.value == 2.0
    assert b.end is not None and b.end.value == 7.5
    assert b.transition is not None and b.transition.length == 0.5
    assert a2.transition is None and a2.end is not None and a2.end.value == 4.0


def test_trims_of_a_scene_whose_input_is_missing_are_not_judged(tmp_path: Path) -> None:
    # the edited video is missing: its length is unknown, so only E130 is reported
    (tmp_path / "main.story").write_text(
        'video v "gone.mp4"\nscene e { edit = v prompt = "rain on @v" }\n'
        "cut final = [e { out = 8 }]\n",
        "utf-8",
    )
    codes = {d.code for d in compile_project(tmp_path).diagnostics if d.is_error}
    assert "E130" in codes and "E264" not in codes
