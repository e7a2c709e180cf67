"""The language server's pure parts: positions in the client's encoding, what a mention
was lowered to, the completion context of a half-typed file, and the project index."""

from __future__ import annotations

from pathlib import Path

import pytest
from lsprotocol import types as lsp

from storyc.editor import index as index_mod
from storyc.editor.complete import context as _context
from storyc.editor.hover import lowered_mentions as _lowered_mentions
from storyc.editor.positions import Lines
from storyc.lang.loader import ParseCache, load


def test_positions_count_utf16_units_by_default() -> None:
    text = 'scene a {\n  prompt = "\U0001f3ac @mei"\n}\n'
    at = text.index("@mei")
    utf16 = Lines(text)
    assert utf16.position(at) == lsp.Position(1, 15)  # the clapper board is two units
    assert utf16.offset(lsp.Position(1, 15)) == at
    assert Lines(text, "utf-32").position(at) == lsp.Position(1, 14)
    assert Lines(text, "utf-8").position(at) == lsp.Position(1, 17)


def test_lowered_mentions_are_read_between_the_literal_pieces() -> None:
    prompt = "@mei walks past @market, @mei smiles"
    spans = [(0, 4), (16, 23), (25, 29)]
    sent = "@image_2 walks past @image_1, @image_2 smiles"
    assert _lowered_mentions(prompt, spans, sent) == ["@image_2", "@image_1", "@image_2"]
    assert _lowered_mentions(prompt, spans, "something else") == [None, None, None]


def test_completion_context_of_a_half_typed_file() -> None:
    text = 'scene a : \nscene b {\n  quality = "\n  refs = [x, \n  ]\n  wa'
    assert _context(text, text.index(": ") + 2).where == "parent"
    ctx = _context(text, text.index('"\n') + 1)
    assert (ctx.where, ctx.setting, ctx.in_string) == ("value", "quality", True)
    assert _context(text, text.index("x, ") + 3).where == "value"
    ctx = _context(text, len(text))
    assert (ctx.where, ctx.block) == ("setting", "SCENE")
    assert ctx.prefix_start == len(text) - 2


def test_index_finds_uses_in_every_form(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        'include "cast.story"\n'
        'let look = "noir"\n'
        'style dark { quality = "pro" }\n'
        'scene a : dark { prompt = "@mei in {{ look }}" }\n'
        'scene b { start = a.last_frame, prompt = "x" }\n'
        "cut final = [a, b]\n",
        "utf-8",
    )
    (tmp_path / "cast.story").write_text('element mei { frontal = "m.png" }\n', "utf-8")
    idx = index_mod.build(load(tmp_path))
    kinds = {(u.name, u.kind) for uses in idx.uses.values() for u in uses}
    assert {
        ("cast.story", "include"),
        ("look", "template"),
        ("dark", "parent"),
        ("mei", "mention"),
        ("a", "ref"),
        ("b", "ref"),
    } <= kinds
    assert idx.symbols["mei"].file == "cast.story"
    text = idx.texts["main.story"]
    (mention,) = [u for u in idx.uses["main.story"] if u.kind == "mention"]
    assert text[mention.span.start : mention.span.end] == "mei" and mention.scene == "a"


def test_index_kept_between_checks_follows_the_lets(tmp_path: Path) -> None:
    # a file that did not change keeps its template uses only while the project's `let`s
    # are the same: a `let` declared (or removed) elsewhere changes what its templates name
    (tmp_path / "main.story").write_text(
        'include "lets.story"\nscene a { prompt = "rain in {{ mood }}, {{ look }}" }\n', "utf-8"
    )
    lets = tmp_path / "lets.story"
    lets.write_text('let look = "noir"\n', "utf-8")
    cache = ParseCache()
    memo: index_mod.Memo = {}

    def templated() -> set[str]:
        idx = index_mod.build(load(tmp_path, cache=cache), memo)
        return {u.name for u in idx.uses["main.story"] if u.kind == "template"}

    assert templated() == {"look"}
    assert templated() == {"look"}  # kept: the same tree, the same lets
    lets.write_text('let look = "noir"\nlet mood = "calm"\n', "utf-8")
    assert templated() == {"look", "mood"}
    lets.write_text('let mood = "calm"\n', "utf-8")
    assert templated() == {"mood"}


def test_the_server_starts_from_the_state_a_command_left(tmp_path: Path) -> None:
    """Opening a project: the engine starts from the compiled state `storyc check` left
    (the folder's state: commands name the folder), so nothing is compiled again; a file
    that is not the folder's entry starts fresh."""
    from test_incremental import snapshot

    from storyc.base.hashing import DigestCache
    from storyc.compiler import compile_project
    from storyc.compiler.state import compile_with_state
    from storyc.editor.project import ProjectState

    root = tmp_path / "p"
    root.mkdir()
    (root / "main.story").write_text(
        'project "P" { aspect = "16:9" }\nlet c = "Lisbon"\n'
        'scene a { prompt = "A tram in {{ c }}" }\nscene b { prompt = "@nobody" }\n',
        "utf-8",
    )
    (root / "other.story").write_text('scene solo { prompt = "Alone" }\n', "utf-8")
    compile_with_state(root)  # what `storyc check` in the folder leaves
    state = ProjectState((root / "main.story").resolve(), root.resolve(), digests=DigestCache())
    engine = state.start_engine()
    assert sorted(engine.units) == ["a", "b"]  # restored, before any update
    comp = engine.update({}, replace=True)
    assert engine.stats.resolved == [] and engine.stats.regions_parsed == 0
    assert snapshot(comp) == snapshot(compile_project(root))
    alone = ProjectState((root / "other.story").resolve(), root.resolve(), digests=DigestCache())
    assert alone.start_engine().units == {}


def test_an_engine_started_from_the_folder_state_keeps_checking_its_entry(
    tmp_path: Path,
) -> None:
    """The server opened `film.story`, the folder's only file with a `project` block, and
    started its engine from the folder's state: that engine then compiled the folder, not
    the entry. Once a second file with a `project` block was saved beside it, each check
    answered E011 (several entries, no span: nothing shown) and the entry's own errors,
    which `storyc check film.story` reports, were never shown again."""
    from storyc.base.hashing import DigestCache
    from storyc.compiler import compile_project
    from storyc.compiler.state import compile_with_state
    from storyc.editor.project import ProjectState

    root = tmp_path / "p"
    root.mkdir()
    film = root / "film.story"
    film.write_text(
        'project "P" { aspect = "16:9" }\nscene a { prompt = "@nobody waves" }\n', "utf-8"
    )
    compile_with_state(root)  # what `storyc check` in the folder leaves
    state = ProjectState(film.resolve(), root.resolve(), digests=DigestCache())
    engine = state.start_engine()
    first = engine.update({}, replace=True)
    assert [d.code for d in first.diagnostics] == [
        d.code for d in compile_project(film).diagnostics
    ]
    (root / "old.story").write_text('project "Q" { aspect = "16:9" }\n', "utf-8")
    comp = engine.update({}, replace=True)
    assert comp.found
    assert [d.code for d in comp.diagnostics] == [d.code for d in compile_project(film).diagnostics]


@pytest.mark.parametrize("record", ["index.json", "q-"])
def test_a_fifo_planted_in_the_state_never_blocks_the_server_or_check(
    tmp_path: Path, record: str
) -> None:
    """The state's records were read with `read_bytes`/`open`: a FIFO planted as a record
    (no writer) blocked `storyc check` and, now that it opens projects from the state,
    the language server's first check for ever. A record that is not a regular file is
    read as absent, as the builder's lock already is."""
    import os
    import subprocess
    import sys

    from storyc.base.hashing import DigestCache
    from storyc.compiler import compile_project
    from storyc.compiler.state import compile_with_state, state_dir

    root = tmp_path / "p"
    root.mkdir()
    (root / "main.story").write_text(
        'project "P" { aspect = "16:9" }\nscene a { prompt = "@nobody waves" }\n', "utf-8"
    )
    compile_with_state(root, digests=DigestCache())
    folder = state_dir(root, root, None)
    if record == "index.json":
        planted = folder / "index.json"
        (root / "main.story").write_text(  # the answer is not the last one: records read
            'project "P" { aspect = "16:9" }\nscene b { prompt = "@nobody waves" }\n', "utf-8"
        )
    else:
        planted = next(folder.glob("q-*.json"))
    planted.unlink()
    os.mkfifo(planted)
    want = sorted(d.code for d in compile_project(root).diagnostics)
    script = (
        "import sys\nfrom pathlib import Path\n"
        "from storyc.base.hashing import DigestCache\n"
        "from storyc.editor.project import ProjectState\n"
        "root = Path(sys.argv[1]).resolve()\n"
        "state = ProjectState(root / 'main.story', root, digests=DigestCache())\n"
        "comp = state.start_engine().update({}, replace=True)\n"
        "print(' '.join(sorted(d.code for d in comp.diagnostics)))\n"
    )
    for argv in (
        [sys.executable, "-c", script, str(root)],  # the server's start
        [sys.executable, "-m", "storyc", "check", str(root)],
    ):
        try:
            p = subprocess.run(argv, capture_output=True, text=True, timeout=60)
        except subprocess.TimeoutExpired:
            pytest.fail(f"{argv[1:3]} blocked on the planted FIFO {planted.name}")
        assert "Traceback" not in p.stderr, p.stderr
        if argv[1] == "-c":
            assert p.stdout.split() == want, p.stderr
