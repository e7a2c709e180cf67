"""Where the incremental compiler, the compiled state, the formatter and the editor meet.

Each test is a defect a hostile review found: a story saved with CRLF line endings sends
other prompts (and keys) than the same story with LF; a `let` named after a quoted `}}`
in a template is not a dependency of the scene, so an engine (watch, the editor) or the
compiled state (`storyc plan` after `storyc plan`) keeps the old prompt after the `let`
changes; a rename of a `let` rewrites a scene's `{{ name }}` that its `vars` shadow (the
prompt silently changes) and a Jinja filter of the same name (the template breaks); a
story file or an asset swapped for a link to the same bytes outside the project passes
from what was kept where a compile from scratch says E017/E140; `storyc fmt` rewrites a
file with the umask's mode instead of its own.
"""

from __future__ import annotations

import os
import shutil
import stat
import time
from pathlib import Path
from types import SimpleNamespace

from storyc.cli import main
from storyc.compiler import compile_project
from storyc.compiler.incremental import Engine
from storyc.compiler.state import compile_with_state
from storyc.editor import index as index_mod
from storyc.lang.loader import load
from storyc.media import ffmpeg as media
from storyc.plan import keys

STORY = '''\
project "p" {
  aspect = "16:9"
}

scene a {
  prompt = """
    A wide shot of the harbour at dawn.
    Gulls circle overhead.
    """
  duration = 5
}
'''


def _key(root: Path) -> tuple[str, dict[int, str]]:
    c = compile_project(root)
    r = c.requests["a"]
    return r.body["input"]["prompt"], keys.scene_keys(r, backend="preview", upstream={})


def test_crlf_line_endings_send_the_same_prompt_under_the_same_keys(tmp_path: Path) -> None:
    (tmp_path / "lf").mkdir()
    (tmp_path / "crlf").mkdir()
    (tmp_path / "lf" / "main.story").write_bytes(STORY.encode())
    (tmp_path / "crlf" / "main.story").write_bytes(STORY.replace("\n", "\r\n").encode())
    prompt, lf_keys = _key(tmp_path / "lf")
    assert prompt == "A wide shot of the harbour at dawn.\nGulls circle overhead."
    assert _key(tmp_path / "crlf") == (prompt, lf_keys)


QUOTED = '''\
project "p" {
  aspect = "16:9"
}

let city = "Oslo"

scene a {
  prompt   = """{{ "}}" ~ city }} at dusk"""
  duration = 5
}
'''


def test_a_let_named_after_a_quoted_closing_tag_is_a_dependency(tmp_path: Path) -> None:
    main = tmp_path / "main.story"
    main.write_text(QUOTED, "utf-8")
    engine = Engine(tmp_path)
    assert engine.update().requests["a"].body["input"]["prompt"] == "}}Oslo at dusk"
    compile_with_state(tmp_path)
    edited = QUOTED.replace('"Oslo"', '"Lisbon"')
    comp = engine.update({str(main): edited})
    assert comp.requests["a"].body["input"]["prompt"] == "}}Lisbon at dusk"
    main.write_text(edited, "utf-8")
    stored = compile_with_state(tmp_path)  # from the compiled state of the first version
    assert stored.requests["a"].body["input"]["prompt"] == "}}Lisbon at dusk"


SHADOW = """\
project "p" {
  aspect = "16:9"
}

let city  = "Oslo"
let title = "The Night Market"

style lisbon {
  vars { city = "Lisbon" }
}

scene a {
  vars { city = "Lisbon" }
  prompt   = "A tram crosses {{ city }} at dusk"
  duration = 5
}

scene b : lisbon {
  prompt   = "Rain over {{ city }}"
  duration = 5
}

scene c {
  prompt   = "{{ title }}: rain over {{ city | title }}"
  duration = 5
}
"""


def _renamed(root: Path, old: str, new: str, at: str | None = None) -> str:
    """What the language server's rename writes (`lsp.rename`): every place the name at
    `at` (else the declaration of `old`) stands for what it stands for there."""
    from storyc.editor import lsp as lsp_mod

    idx = index_mod.build(load(root / "main.story"))
    text = (root / "main.story").read_text("utf-8")
    hit = idx.at("main.story", text.index(at) + 1) if at else idx.symbols[old]
    assert hit is not None and hit.name == old
    spans = lsp_mod._occurrences(SimpleNamespace(index=idx), hit, True)
    for s in sorted(spans, key=lambda s: -s.start):
        text = text[: s.start] + new + text[s.end :]
    return text


def test_rename_of_a_let_leaves_shadowing_vars_and_filters_alone(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(SHADOW, "utf-8")
    before = {n: r.body["input"]["prompt"] for n, r in compile_project(tmp_path).requests.items()}
    assert before["a"] == "A tram crosses Lisbon at dusk"
    for old, new, want in (
        (
            "city",
            "town",
            ["let town", "{{ town | title }}", "crosses {{ city }}", "over {{ city }}"],
        ),
        ("title", "heading", ["let heading", "{{ heading }}:", "{{ city | title }}"]),
    ):
        out = tmp_path / f"{old}"
        out.mkdir()
        text = _renamed(tmp_path, old, new)
        assert all(w in text for w in want), text
        (out / "main.story").write_text(text, "utf-8")
        comp = compile_project(out)
        assert not comp.has_errors, comp.rendered()
        assert {n: r.body["input"]["prompt"] for n, r in comp.requests.items()} == before


SAME = """\
project "p" {
  aspect = "16:9"
}

let harbour = "a foggy harbour"

scene harbour {
  prompt   = "Boats in {{ harbour }}"
  duration = 5
}

scene pier {
  start    = harbour.last_frame
  prompt   = "The pier"
  duration = 5
}
"""


def test_a_let_and_a_scene_of_the_same_name_are_renamed_apart(tmp_path: Path) -> None:
    """`let harbour` and `scene harbour` are two declarations (two sets of names): a
    rename of either, from anywhere it is named, leaves the other as it is."""
    (tmp_path / "main.story").write_text(SAME, "utf-8")
    before = {n: r.body["input"]["prompt"] for n, r in compile_project(tmp_path).requests.items()}
    for at, want in (
        ("harbour.last_frame", ["scene quay", "start    = quay.last_frame", "{{ harbour }}"]),
        ("harbour {", ["scene quay", "start    = quay.last_frame", "{{ harbour }}"]),
        ("harbour }}", ["let quay", "{{ quay }}", "scene harbour", "= harbour.last_frame"]),
        ("harbour =", ["let quay", "{{ quay }}", "scene harbour", "= harbour.last_frame"]),
    ):
        out = tmp_path / str(len(at))
        out.mkdir(exist_ok=True)
        text = _renamed(tmp_path, "harbour", "quay", at)
        assert all(w in text for w in want), text
        (out / "main.story").write_text(text, "utf-8")
        comp = compile_project(out)
        assert not comp.has_errors, comp.rendered()
        got = {n: r.body["input"]["prompt"] for n, r in comp.requests.items()}
        assert sorted(got.values()) == sorted(before.values())


def test_files_swapped_for_links_outside_are_checked_again(tmp_path: Path) -> None:
    root = tmp_path / "p"
    (root / "img").mkdir(parents=True)
    media.make_test_image(root / "img" / "a.png", 640, 480, seed=3)
    (tmp_path / "a.png").write_bytes((root / "img" / "a.png").read_bytes())
    (root / "main.story").write_text(
        'project "p" { aspect = "16:9"  duration = 5 }\ninclude "b.story"\n'
        'image a "img/a.png"\nscene m { prompt = "main"  start = a }\n',
        "utf-8",
    )
    (root / "b.story").write_text('scene b { prompt = "b" }\n', "utf-8")
    (tmp_path / "b.story").write_text('scene b { prompt = "b" }\n', "utf-8")
    engine = Engine(root)
    assert not engine.update().has_errors
    assert not compile_with_state(root).has_errors
    for name, code in (("img/a.png", "E140"), ("b.story", "E017")):
        (root / name).unlink()
        (root / name).symlink_to(tmp_path / Path(name).name)
        time.sleep(0.05)
        want = [(d.code, d.span) for d in compile_project(root).diagnostics if d.code == code]
        assert want
        for comp in (engine.update(), compile_with_state(root)):
            assert [(d.code, d.span) for d in comp.diagnostics if d.code == code] == want


def test_a_folder_swapped_for_a_link_outside_is_checked_again(tmp_path: Path) -> None:
    """Not the file but its folder becomes a link (`img/` -> a copy outside the project):
    each file in it is elsewhere too, though none of them is a link."""
    root = tmp_path / "p"
    (root / "img").mkdir(parents=True)
    media.make_test_image(root / "img" / "a.png", 640, 480, seed=3)
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "a.png").write_bytes((root / "img" / "a.png").read_bytes())
    (root / "main.story").write_text(
        'project "p" { aspect = "16:9"  duration = 5 }\n'
        'image a "img/a.png"\nscene m { prompt = "main"  start = a }\n',
        "utf-8",
    )
    engine = Engine(root)
    assert not engine.update().has_errors
    assert not compile_with_state(root).has_errors
    shutil.rmtree(root / "img")
    (root / "img").symlink_to(tmp_path / "outside")
    time.sleep(0.05)
    want = [(d.code, d.span) for d in compile_project(root).diagnostics if d.code == "E140"]
    assert want
    for comp in (engine.update(), compile_with_state(root)):
        assert [(d.code, d.span) for d in comp.diagnostics if d.code == "E140"] == want


def test_fmt_keeps_the_files_mode(tmp_path: Path) -> None:
    for name, mode in (("private.story", 0o600), ("shared.story", 0o664)):
        path = tmp_path / name
        path.write_text('scene a {prompt="x"\nduration=5}\n', "utf-8")
        os.chmod(path, mode)
        assert main(["fmt", str(path)]) == 0
        assert path.read_text("utf-8").startswith("scene a { prompt")
        assert stat.S_IMODE(path.stat().st_mode) == mode


def test_fmt_of_a_crlf_file_is_lf_throughout_and_means_the_same() -> None:
    from storyc.editor.fmt import format_text, verify

    crlf = STORY.replace("\n", "\r\n")
    out = format_text(crlf)
    assert out.text == format_text(STORY).text  # no CRLF left inside the long string
    assert "\r" not in out.text
    assert verify(crlf, out.text) is None
    assert format_text(out.text).text == out.text
