"""Every independent error in one run, limits on what a story may ask for, honest hints,
and what a story's media say about its shape."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from storyc.compiler import compile_project
from storyc.media import ffmpeg as media
from storyc.plan.planner import make_plan
from storyc.state.lockfile import LockFile
from storyc.state.store import Store


def _project(root: Path, story: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.story").write_text(story)
    return root


def _diags(root: Path) -> list[tuple[str, int]]:
    return [(d.code, d.span.line if d.span else 0) for d in compile_project(root).diagnostics]


def test_a_typo_does_not_hide_the_duration_next_to_it(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        "scene a {\n"
        '  promt = "a harbour at dawn"\n'  # 3: a typo
        "  duration = 12\n"  # 4: reported in the same run
        "}\n",
    )
    codes = _diags(root)
    assert ("E102", 3) in codes and ("E204", 4) in codes


def test_rules_that_depend_on_a_failed_input_wait_for_it(tmp_path: Path) -> None:
    # `strat` may be a misspelt `start`: that the scene would be a text-to-video (which
    # must last 5 or 10 s and needs an aspect) is not known, so it is not said
    root = _project(
        tmp_path,
        'scene a {\n  strat = "x.png"\n  prompt = "a harbour"\n  duration = 7\n}\n',
    )
    codes = [c for c, _ in _diags(root)]
    assert "E102" in codes
    assert "E205" not in codes and "E208" not in codes


def test_independent_rule_errors_of_a_scene_with_errors_are_reported(tmp_path: Path) -> None:
    refs = ", ".join(f'"i{i}.png"' for i in range(9))
    root = _project(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        f'scene a {{\n  refs = [{refs}]\n  prompt = ""\n  duration = 5\n  watermrk = true\n}}\n',
    )
    for i in range(9):
        media.make_test_image(root / f"i{i}.png", 320, 320)
    codes = [c for c, _ in _diags(root)]
    # the typo, and independently: too many references, an empty prompt
    assert {"E102", "E202", "E212"} <= set(codes)


def test_e202_points_at_the_list(tmp_path: Path) -> None:
    refs = ", ".join(f'"i{i}.png"' for i in range(8))
    root = _project(
        tmp_path,
        f'project "P" {{ aspect = "16:9" }}\nscene a {{\n  refs = [{refs}]\n  prompt = "x"\n}}\n',
    )
    for i in range(8):
        media.make_test_image(root / f"i{i}.png", 320, 320)
    (diag,) = [d for d in compile_project(root).diagnostics if d.code == "E202"]
    assert diag.span is not None and (diag.span.line, diag.span.col) == (3, 10)


@pytest.mark.parametrize(
    ("setting", "value", "limit"),
    [("takes", "100000000", "from 1 to 20"), ("jobs", "1000", "from 1 to 64")],
)
def test_counts_have_a_limit(tmp_path: Path, setting: str, value: str, limit: str) -> None:
    where = "scene a" if setting == "takes" else 'project "P"'
    story = 'project "P" { aspect = "16:9" }\nscene a { prompt = "x" duration = 5 }\n'
    story = story.replace(where + " {", f"{where} {{ {setting} = {value}")
    root = _project(tmp_path, story)
    comp = compile_project(root)
    (diag,) = [d for d in comp.diagnostics if d.code == "E106"]
    assert limit in diag.message
    # and planning is instant: nothing asks for a hundred million takes
    plan = make_plan(comp, lock=LockFile(), store=Store(root / ".storyc"), backend="preview")
    assert sum(len(s.render) for s in plan.scenes.values()) <= 1


def test_duration_zero_suggests_a_duration_that_works(tmp_path: Path) -> None:
    root = _project(tmp_path, 'scene a { prompt = "x" aspect = "1:1" duration = 0 }\n')
    (diag,) = [d for d in compile_project(root).diagnostics if d.is_error]
    assert diag.code == "E204" and "from 3 to 10" in diag.message
    assert diag.hint is not None and "duration = 5" in diag.hint
    assert "duration = 1" not in diag.hint


def test_a_portrait_first_frame_in_a_landscape_project_is_reported(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        'image tall "tall.png"\n'
        'scene a {\n  start = tall\n  prompt = "@tall at dawn"\n  duration = 5\n}\n',
    )
    media.make_test_image(root / "tall.png", 540, 960)
    (diag,) = [d for d in compile_project(root).diagnostics if d.code == "W250"]
    assert "540×960 (portrait)" in diag.message and "16:9" in diag.message
    assert diag.span is not None and diag.span.line == 4
    # a landscape first frame says nothing
    media.make_test_image(root / "tall.png", 960, 540)
    assert "W250" not in [c for c, _ in _diags(root)]


def test_a_frame_past_the_end_of_its_scene_is_an_error(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        'scene a { prompt = "x" duration = 5 }\n'
        'scene b {\n  start = a.frame(99999)\n  prompt = "y"\n  duration = 5\n}\n'
        'scene c {\n  start = a.frame(4.9)\n  prompt = "z"\n  duration = 5\n}\n',
    )
    comp = compile_project(root)
    (diag,) = [d for d in comp.diagnostics if d.code == "E250"]
    assert diag.span is not None and diag.span.line == 4 and "lasts 5 s" in diag.message
    assert "c" in comp.requests and "b" not in comp.requests


def test_compile_of_one_scene_is_blocked_by_its_upstream_errors(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        'scene a { prompt = "x" duration = 5 promt = "typo" }\n'
        'scene b { start = a.last_frame prompt = "y" duration = 5 }\n',
    )
    comp = compile_project(root, scenes=["b"])
    assert comp.requests == {} and comp.blocked == {"b": "a"}
    assert "E102" in [d.code for d in comp.diagnostics]


def test_an_element_description_is_sent_not_dropped(tmp_path: Path) -> None:
    root = _project(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        'element mei { frontal = "mei.png"  description = "a woman in a  yellow raincoat" }\n'
        'scene a { prompt = "@mei waves, then @mei smiles" duration = 5 }\n',
    )
    media.make_test_image(root / "mei.png", 400, 400)
    for target in ("inference/video-o1", "inference/video-o1@v1"):
        comp = compile_project(root, target=target)
        req = comp.requests["a"]
        prompt = req.body["input"]["prompt"]
        # after the first mention only, spaces as one
        assert prompt.count("(a woman in a yellow raincoat)") == 1, prompt
        assert prompt.index("(a woman") < prompt.index("waves")
        assert any("description" in n for n in req.notes)


@pytest.mark.timeout(120)
def test_a_deep_style_chain_is_a_located_error_not_a_crash(tmp_path: Path) -> None:
    # declared child first, each style inheriting from the next: the resolver used to
    # follow it by recursion into Python's limit ("internal error: RecursionError")
    n = 3000
    styles = "".join(f"style s{i} : s{i + 1} {{ takes = 1 }}\n" for i in range(n))
    root = _project(
        tmp_path,
        'project "P" { aspect = "16:9" }\n'
        + styles
        + f'style s{n} {{ quality = "std" }}\n'
        + 'scene a : s0 { prompt = "x" duration = 5 }\n'
        + 'scene b : s2000 { prompt = "y" duration = 5 }\n',
    )
    comp = compile_project(root)
    assert "E145" in [d.code for d in comp.diagnostics]
    assert comp.requests == {}  # neither scene is sent without its styles


def test_how_deep_a_style_chain_is_does_not_depend_on_declaration_order(tmp_path: Path) -> None:
    # a chain of 71 styles: declared parent first it used to pass (each chain was made
    # from its parent's), declared child first it was E145; reordering declarations must
    # never change what a story means
    decls = ["style s0 { duration = 5 }\n"] + [f"style s{i + 1} : s{i} {{ }}\n" for i in range(70)]
    seen = set()
    for order in range(4):
        styles = list(decls)
        if order == 1:
            styles.reverse()
        elif order > 1:
            random.Random(order).shuffle(styles)
        root = _project(
            tmp_path / str(order),
            'project "P" { aspect = "16:9" }\n'
            + "".join(styles)
            + 'scene x : s70 { prompt = "x" }\nscene y : s63 { prompt = "y" }\n',
        )
        comp = compile_project(root)
        errors = [(d.code, d.message) for d in comp.diagnostics if d.is_error]
        seen.add((tuple(errors), tuple(sorted(comp.requests))))
    assert seen == {((("E145", _deep_message("s64", "s63")),), ("y",))}


def _deep_message(style: str, parent: str) -> str:
    return f"styles inherit from each other more than 64 deep (`{style}` -> `{parent}` -> ...)"


def test_did_you_mean_is_bounded(tmp_path: Path) -> None:
    # each suggestion compares with every declared name: thousands of unknown names over
    # thousands of scenes used to take minutes; after 200 the hints stop suggesting
    scenes = "".join(f'scene shot{i} {{ prompt = "x" duration = 5 }}\n' for i in range(300))
    cut = ", ".join(f"shto{i}" for i in range(300))
    root = _project(tmp_path, 'project "P" { aspect = "16:9" }\n' + scenes + f"cut c = [{cut}]\n")
    hints = [d.hint or "" for d in compile_project(root).diagnostics if d.code == "E110"]
    assert len(hints) == 300
    assert sum("did you mean" in h for h in hints) == 200
