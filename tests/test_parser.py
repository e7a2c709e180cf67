"""Parser and loader: syntax trees, spans, syntax errors, includes, discovery, ParseCache."""

from __future__ import annotations

import pickle
from dataclasses import fields, is_dataclass
from pathlib import Path

import pytest

from storyc.lang import ast
from storyc.lang.loader import ParseCache, load
from storyc.lang.parser import dedent_long, parse_text

SAMPLE = '''\
# a comment
project "Night Market" { target = "inference/video-o1"  quality = "std" }
let style = "35mm film"   // another comment
let cam = { lens = "35mm", moves = ["dolly", "pan"], n = 2, on = true }
/* a block
   comment */
image market "assets/market.jpg"
video alley = "assets/alley.mp4"
element mei { frontal = "mei.png"  refs = ["a.png", "b.png",]  description = "a woman" }
style noir : base { quality = "pro"; takes = 2 }
defaults { duration = 5 }
scene arrival : noir {
  prompt = """
      @mei walks
        through @market
      """
  start = other.frame(2.5)
  end = other.first_frame
  refs = []
  video = alley
  style = x
  vars { mood = "calm" }
}
include "cast.story"
cut final = [arrival, other]
'''


def _walk(node: object):
    yield node
    if isinstance(node, list):
        for item in node:
            yield from _walk(item)
    elif is_dataclass(node):
        for f in fields(node):
            yield from _walk(getattr(node, f.name))


def test_sample_parses_into_typed_nodes() -> None:
    res = parse_text(SAMPLE, "main.story")
    assert res.ok, res.diagnostics
    kinds = [type(i).__name__ for i in res.file.items]
    assert kinds == [
        "ProjectDecl",
        "Let",
        "Let",
        "AssetDecl",
        "AssetDecl",
        "ElementDecl",
        "StyleDecl",
        "DefaultsDecl",
        "SceneDecl",
        "Include",
        "CutDecl",
    ]
    project = res.file.items[0]
    assert isinstance(project, ast.ProjectDecl) and project.title == "Night Market"
    assert [s.name for s in project.settings] == ["target", "quality"]
    video = res.file.items[4]
    assert isinstance(video, ast.AssetDecl) and (video.kind, video.name) == ("video", "alley")
    style = res.file.items[6]
    assert isinstance(style, ast.StyleDecl) and style.parent is not None
    assert style.parent.name == "base" and [s.name for s in style.settings] == ["quality", "takes"]
    scene = res.file.items[8]
    assert isinstance(scene, ast.SceneDecl)
    by = {s.name: s.value for s in scene.settings}
    assert (
        isinstance(by["prompt"], ast.Str) and by["prompt"].value == "@mei walks\n  through @market"
    )
    start = by["start"]
    assert isinstance(start, ast.Ref) and (start.name, start.attr) == ("other", "frame")
    assert start.arg is not None and start.arg.value == 2.5
    assert isinstance(by["refs"], ast.ListV) and by["refs"].items == []
    # Declaration keywords are ordinary names inside a block.
    assert isinstance(by["video"], ast.Ref) and by["video"].name == "alley"
    assert isinstance(by["style"], ast.Ref)
    assert isinstance(by["vars"], ast.Block)
    cam = res.file.items[2]
    assert isinstance(cam, ast.Let) and isinstance(cam.value, ast.Block)
    assert [s.name for s in cam.value.settings] == ["lens", "moves", "n", "on"]


def test_spans_point_at_the_written_text() -> None:
    res = parse_text(SAMPLE, "main.story")
    for node in _walk(res.file.items):
        for f in ("name_span", "span"):
            span = getattr(node, f, None)
            if span is None or not hasattr(span, "start"):
                continue
            assert span.file == "main.story"
            assert 0 <= span.start <= span.end <= len(SAMPLE)
        if isinstance(node, ast.Setting | ast.Let):
            s = node.name_span
            assert SAMPLE[s.start : s.end] == node.name
        if isinstance(node, ast.Str) and node.content_start >= 0:
            assert SAMPLE[node.content_start : node.content_start + len(node.value)] == node.value
    scene = res.file.items[8]
    assert isinstance(scene, ast.SceneDecl)
    assert (scene.name_span.line, scene.name_span.col) == (12, 7)


def test_no_lark_types_leak_and_trees_pickle() -> None:
    res = parse_text(SAMPLE, "main.story")
    for node in _walk(res.file):
        assert not type(node).__module__.startswith("lark"), type(node)
        if isinstance(node, str):
            assert type(node) is str  # lark Tokens are str subclasses
    again = pickle.loads(pickle.dumps(res.file))
    assert again == res.file


def test_string_escapes_and_long_strings() -> None:
    res = parse_text('let a = "say \\"hi\\"\\n"\nlet b = """\n    one\n      two\n    """\n', "m")
    a, b = res.file.items
    assert isinstance(a, ast.Let) and isinstance(a.value, ast.Str)
    assert a.value.value == 'say "hi"\n' and a.value.content_start == -1
    assert isinstance(b, ast.Let) and isinstance(b.value, ast.Str) and b.value.long
    assert b.value.value == "one\n  two"
    assert dedent_long("one line") == "one line"
    assert dedent_long("\n  a\n\n  b\n  ") == "a\n\nb"


@pytest.mark.parametrize(
    "text,code,words",
    [
        ('scene a { prompt = "x"\n', "E004", "missing `}` at the end of the file"),
        ('scene a { prompt = "x"\nscene b { prompt = "y" }', "E004", "missing `}` before `scene`"),
        ('scene a { prompt = "x\n}', "E002", "unterminated string"),
        ('scene a { prompt = """x }', "E002", "unterminated long string"),
        ("sceen a { }", "E003", "expected a declaration"),
        ('scene a { prompt "x" }', "E003", "expected `=` after `prompt`"),
        ("scene a { prompt = }", "E003", "expected a value"),
        ("scene a { prompt = a night market }", "E003", "unquoted text after `prompt =`"),
        ("cut c = [a b]", "E003", "expected `,` or `]`"),
        ("cut c = [a, }", "E003", "expected another list item or `]`"),
        ("scene a { $ }", "E001", "unexpected character `$`"),
        ("}", "E003", "unmatched `}`"),
        ("image x", "E005", "unexpected end of file"),
        ("let x =", "E005", "a value is missing"),
        ("let x = " + "[" * 2000 + "]" * 2000, "E003", "nested more than 64 deep"),
    ],
)
def test_syntax_errors_are_explained(text: str, code: str, words: str) -> None:
    res = parse_text(text, "main.story")
    assert not res.file.complete
    assert len(res.diagnostics) == 1
    d = res.diagnostics[0]
    assert d.code == code and words in d.message, d
    assert d.span is not None and d.span.file == "main.story"
    assert d.hint


def test_misspelt_keyword_gets_did_you_mean() -> None:
    d = parse_text("elemnt mei { }", "m").diagnostics[0]
    assert d.hint == "did you mean `element`?"


# Loader --------------------------------------------------------------------------


def _write(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        p = root / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(text, "utf-8")


def test_nesting_at_the_limit_compiles_without_a_recursion_error(tmp_path: Path) -> None:
    from storyc.compiler import compile_project
    from storyc.lang.parser import MAX_NESTING

    deep = "[" * MAX_NESTING + "]" * MAX_NESTING
    (tmp_path / "main.story").write_text(f"project p {{ }}\nlet x = {deep}\n", "utf-8")
    comp = compile_project(tmp_path)
    assert not any(d.code == "E003" for d in comp.diagnostics), comp.diagnostics


def test_includes_expand_in_place_and_labels_are_project_relative(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "main.story": 'project "P" { }\ninclude "lib/cast.story"\nscene b { prompt = "b" }\n',
            "lib/cast.story": 'include "more.story"\nscene a { prompt = "a" }\n',
            "lib/more.story": 'include "cast.story"\n',  # back to a file being read: a cycle
        },
    )
    loaded = load(tmp_path)
    assert [f.label for f in loaded.files] == ["main.story", "lib/cast.story", "lib/more.story"]
    codes = [d.code for d in loaded.diagnostics]
    assert codes == ["E013"]
    assert (
        "lib/cast.story -> lib/more.story -> lib/cast.story" in loaded.diagnostics.items[0].message
    )
    names = [getattr(d, "name", None) for _, d in loaded.declarations()]
    assert names == [None, "a", "b"]  # project, then the include's scene, then main's
    assert set(loaded.sources.texts) == {"main.story", "lib/cast.story", "lib/more.story"}


def test_a_file_included_twice_is_loaded_once(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "main.story": 'include "a.story"\ninclude "b.story"\n',
            "a.story": 'include "common.story"\n',
            "b.story": 'include "common.story"\n',
            "common.story": 'scene c { prompt = "c" }\n',
        },
    )
    loaded = load(tmp_path)
    assert not loaded.diagnostics.items
    assert [d.name for _, d in loaded.declarations()] == ["c"]  # type: ignore[union-attr]


def test_missing_include_and_other_files_still_load(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "main.story": 'include "nope.story"\ninclude "bad.story"\ninclude "ok.story"\n',
            "bad.story": "scene x {",
            "ok.story": 'scene y { prompt = """\n  unterminated\n',
        },
    )
    loaded = load(tmp_path / "main.story")
    codes = sorted(d.code for d in loaded.diagnostics)
    assert codes == ["E002", "E004", "E012"]
    assert not loaded.complete


def test_includes_of_a_broken_file_are_still_checked(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "main.story": 'include "cast.story"\nscene a { prompt = "x"\n',
            "cast.story": "element mei { frontal = }\n",
        },
    )
    loaded = load(tmp_path)
    assert [(d.span.file if d.span else None, d.code) for d in loaded.diagnostics.sorted()] == [
        ("cast.story", "E003"),
        ("main.story", "E004"),
    ]
    assert not loaded.complete


def test_project_discovery(tmp_path: Path) -> None:
    _write(tmp_path / "one", {"film.story": 'project "F" { }\n', "cast.story": "\n"})
    loaded = load(tmp_path / "one")
    assert loaded.entry == "film.story" and not loaded.diagnostics.items
    _write(tmp_path / "two", {"a.story": 'project "A" { }\n', "b.story": 'project "B" { }\n'})
    assert [d.code for d in load(tmp_path / "two").diagnostics] == ["E011"]
    _write(tmp_path / "none", {"cast.story": "\n"})
    assert [d.code for d in load(tmp_path / "none").diagnostics] == ["E011"]
    assert [d.code for d in load(tmp_path / "missing").diagnostics] == ["E010"]
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "main.story").write_bytes(b"scene \xff")
    assert [d.code for d in load(tmp_path / "bin").diagnostics] == ["E010"]


def test_parse_cache_reparses_only_changed_files(tmp_path: Path) -> None:
    _write(
        tmp_path,
        {
            "main.story": 'project "P" { }\ninclude "a.story"\ninclude "b.story"\n',
            "a.story": 'scene a { prompt = "a" }\n',
            "b.story": 'scene b { prompt = "b" }\n',
        },
    )
    cache = ParseCache()
    first = load(tmp_path, cache=cache)
    assert cache.parses == 3
    load(tmp_path, cache=cache)
    assert cache.parses == 3
    (tmp_path / "b.story").write_text('scene b { prompt = "changed" }\n', "utf-8")
    second = load(tmp_path, cache=cache)
    assert cache.parses == 4
    assert first.files[1].tree is second.files[1].tree  # a.story: the same tree object
