"""A scene touched by a front-end error is never lowered, so a build can never pay for it.

The resolver reports a missing file and leaves the asset out; without this check the
scene would compile to a text-to-video request — a different, paid video.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from storyc.base.diagnostics import Diagnostic, Severity, Span
from storyc.compiler import compile_project
from storyc.media import ffmpeg as media

BASE = """
project "T" { aspect = "16:9" }
image market "market.png"
image gone "missing.png"
element mei { frontal = "mei.png" }
element ghost { frontal = "missing.png" }
scene free { prompt = "A quiet street at night" }
scene uses_gone { start = gone  prompt = "The market wakes" }
scene mentions_gone { prompt = "A lantern over @gone" }
scene uses_ghost { prompt = "@ghost waves" }
scene uses_mei { prompt = "@mei waves at @market" }
scene after_gone { start = uses_gone.last_frame  prompt = "Later that night" }
cut final = [free, uses_gone]
"""


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("img")
    media.make_test_image(d / "a.png", 640, 480)
    return d / "a.png"


def _project(tmp_path: Path, images: Path, story: str) -> Path:
    for name in ("market.png", "mei.png"):
        (tmp_path / name).write_bytes(images.read_bytes())
    (tmp_path / "main.story").write_text(story, "utf-8")
    return tmp_path


def test_missing_asset_blocks_exactly_the_scenes_that_use_it(tmp_path: Path, images: Path) -> None:
    comp = compile_project(_project(tmp_path, images, BASE))
    errors = [(d.code, d.span.line, d.span.col) for d in comp.diagnostics if d.is_error and d.span]
    # the two missing files, each at its path: `gone`'s (line 4), `ghost`'s frontal (line 6)
    assert errors == [("E130", 4, 12), ("E130", 6, 27)]
    assert len([d for d in comp.diagnostics if d.is_error]) == 2
    assert set(comp.requests) == {"free", "uses_mei"}
    assert set(comp.broken) == {"uses_gone", "mentions_gone", "uses_ghost"}
    assert "gone" in comp.broken["uses_gone"]
    assert comp.blocked == {"after_gone": "uses_gone"}


def test_elements_and_styles_carry_the_taint(tmp_path: Path, images: Path) -> None:
    """A scene whose style (or its style's parent) names a broken element, or whose style
    itself has an error, is blocked: lowering it would send a different, paid video."""
    story = (
        'project "T" { aspect = "16:9" }\n'
        'element ghost { frontal = "missing.png" }\n'
        'element echo { frontal = "mei.png"  description = "like @ghost" }\n'
        'style haunted { vars { who = "@ghost" } }\n'
        "style haunted_wide : haunted { takes = 2 }\n"
        'style loud { quality = "ultra" }\n'
        'scene via_chain : haunted_wide { prompt = "{{ who }} appears" }\n'
        'scene via_use { use = haunted  prompt = "A quiet hall" }\n'
        'scene via_element { prompt = "@echo waves" }\n'
        'scene via_bad_style { use = loud  prompt = "A loud hall" }\n'
        'scene clean { prompt = "An empty hall" }\n'
    )
    comp = compile_project(_project(tmp_path, images, story))
    errors = [(d.code, d.span.line) for d in comp.diagnostics if d.is_error and d.span]
    assert errors == [("E130", 2), ("E105", 6)]
    assert set(comp.requests) == {"clean"}
    assert comp.broken == {
        "via_chain": "`ghost` has an error (main.story:2:27: E130)",
        "via_use": "`ghost` has an error (main.story:2:27: E130)",
        "via_element": "`ghost` has an error (main.story:2:27: E130)",
        "via_bad_style": "`loud` has an error (main.story:6:24: E105)",
    }


def test_error_inside_a_scene_blocks_only_that_scene(tmp_path: Path, images: Path) -> None:
    story = BASE.replace('image gone "missing.png"\n', "").replace(
        'element ghost { frontal = "missing.png" }\n', ""
    )
    story = "\n".join(ln for ln in story.splitlines() if "gone" not in ln and "ghost" not in ln)
    story = story.replace(
        'scene free { prompt = "A quiet street at night" }',
        'scene free { prompt = "A quiet street at night"  quality = "ultra" }',
    )
    story += "\ncut final = [free, uses_mei]\n"
    comp = compile_project(_project(tmp_path, images, story))
    assert set(comp.broken) == {"free"}
    assert set(comp.requests) == {"uses_mei"}


def test_error_outside_scenes_blocks_every_scene(tmp_path: Path, images: Path) -> None:
    story = (
        'project "T" { aspect = "16:9"  qualty = "std" }\n'
        'scene a { prompt = "One" }\nscene b { prompt = "Two" }\n'
    )
    comp = compile_project(_project(tmp_path, images, story))
    assert [(d.code, d.span.line, d.span.col) for d in comp.diagnostics if d.is_error] == [
        ("E102", 1, 32)
    ]
    assert comp.requests == {}
    why = "the story has an error outside any scene (main.story:1:32: E102)"
    assert comp.broken == {"a": why, "b": why}


def test_error_in_a_cut_blocks_nothing(tmp_path: Path, images: Path) -> None:
    story = 'project "T" { aspect = "16:9" }\nscene a { prompt = "One" }\ncut final = [a, nope]\n'
    comp = compile_project(_project(tmp_path, images, story))
    assert [(d.code, d.span.line, d.span.col) for d in comp.diagnostics if d.is_error] == [
        ("E110", 3, 17)
    ]
    assert set(comp.requests) == {"a"} and comp.broken == {}


def test_no_cascade_from_a_missing_input(tmp_path: Path, images: Path) -> None:
    """A missing start frame must not make the scene look like a text-to-video one."""
    story = (
        'project "T" { aspect = "16:9" }\nimage hero "assets/hero.png"\n'
        'scene extra { start = hero  prompt = "@hero smiles"  duration = 7 }\n'
    )
    comp = compile_project(_project(tmp_path, images, story))
    assert [d.code for d in comp.diagnostics if d.severity != "note"] == ["E130"]


def test_warnings_and_command_line_errors_block_nothing(tmp_path: Path, images: Path) -> None:
    story = (
        'project "T" { aspect = "16:9" }\n'
        'scene a { prompt = "One"  keep_sound = true }\n'  # W102, inside the scene
        'scene b { prompt = "Two" }\n'
    )
    comp = compile_project(_project(tmp_path, images, story), scenes=["a", "b", "nope"])
    found = [(d.code, d.span.line if d.span else None) for d in comp.diagnostics]
    assert ("W102", 2) in found and ("E246", None) in found
    assert set(comp.requests) == {"a", "b"} and comp.broken == {}


def test_every_error_is_traced_whatever_comes_before_it(tmp_path: Path, images: Path) -> None:
    """An error in a cut, a scene already blocked, a style that names a style declared after
    it: none of them stops the tracing of the errors and scenes that follow."""
    story = (
        'project "T" { aspect = "16:9" }\n'
        'element ghost { frontal = "missing.png" }\n'
        "style outer : inner { takes = 2 }\n"  # names `inner`, declared below
        'style inner { vars { who = "@ghost" } }\n'
        "cut first = [nope]\n"
        'scene early { prompt = "One"  quality = "ultra" }\n'
        'scene late : outer { prompt = "Two" }\n'
        'scene fine { prompt = "Three" }\n'
    )
    comp = compile_project(_project(tmp_path, images, story))
    errors = [(d.code, d.span.line) for d in comp.diagnostics if d.is_error and d.span]
    assert errors == [("E130", 2), ("E110", 5), ("E105", 6)]
    assert comp.broken == {
        "early": "the scene has an error (main.story:6:41: E105)",
        "late": "`ghost` has an error (main.story:2:27: E130)",
    }
    assert set(comp.requests) == {"fine"}


def test_an_error_at_the_first_character_of_a_declaration_is_its_own() -> None:
    from storyc.check.taint import _owner, file_regions
    from storyc.lang.parser import parse_text

    tree = parse_text('scene a { prompt = "x" }\nscene b { prompt = "y" }\n', "main.story").file
    decls = file_regions(tree)
    a, b = decls
    assert (a.name, b.name) == ("a", "b")
    assert _owner(decls, b.start) is b
    assert _owner(decls, b.start - 1) is a
    assert _owner(decls, 0) is None  # before every declaration (the `scene` keyword)


def _diag(code: str, span: Span | None, severity: Severity = Severity.ERROR) -> Diagnostic:
    return Diagnostic(code, severity, "x", span)


def test_broken_scenes_reads_diagnostics_in_the_order_given() -> None:
    """The tracing itself, on diagnostics made by hand: in any order, with or without a
    location, in a file it has no tree for."""
    from storyc.check.taint import broken_scenes
    from storyc.lang.parser import parse_text

    text = 'scene a { prompt = "x" }\nscene b { prompt = "y" }\ncut c = [a]\n'
    tree = parse_text(text, "main.story").file
    a, b, c = tree.items

    def at(decl: object, file: str = "main.story") -> Span:
        start = decl.name_span.start + 1  # type: ignore[attr-defined]
        return Span(file, 1, 1, 1, 2, start, start + 1)

    warn_then_error = [_diag("W102", at(a), Severity.WARNING), _diag("E105", at(b))]
    assert broken_scenes([tree], warn_then_error) == {
        "b": f"the scene has an error ({at(b)}: E105)"
    }
    cut_then_scene = [_diag("E110", at(c)), _diag("E105", at(b))]
    assert set(broken_scenes([tree], cut_then_scene)) == {"b"}
    # nowhere to put it: every scene is blocked, and the reason has no location to show
    assert broken_scenes([tree], [_diag("E100", None)]) == {
        "a": "the story has an error outside any scene (E100)",
        "b": "the story has an error outside any scene (E100)",
    }
    # located in a file the trees do not cover: blocks everything too, never raises
    elsewhere = _diag("E100", at(a, "gone.story"))
    assert set(broken_scenes([tree], [elsewhere])) == {"a", "b"}
