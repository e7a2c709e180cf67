"""The no-op fast path (`storyc.build.fastpath`): a build identical to the last clean one
answers from a signature of stats with the same report, and every change that could
matter sends the next build down the normal path, which then does the right thing."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_build_support import build, make_project, rendered, summary

from storyc.build.fastpath import RACY_S, RECORD_NAME
from storyc.cli import main
from storyc.media import ffmpeg as media
from storyc.provider import loopback
from storyc.state.journal import Journal

# no frame extraction or edits: keeps each test to a few preview renders
STORY = """\
project "Test" { quality = "std"  aspect = "16:9" }
image market "assets/market.png"
scene arrival { prompt = "A walk through @market at dusk"  duration = 5 }
scene other { prompt = "An unrelated wide shot of the harbour"  duration = 5  takes = 2 }
"""


def _settle(root: Path, *args: str) -> list[dict]:  # type: ignore[type-arg]
    """Build, wait as between two real builds, build again (the normal path records the
    clean state: never one with a file changed within RACY_S of the build's start)."""
    code, _, err = build(root, *args)
    assert code == 0, err
    time.sleep(RACY_S + 0.05)
    code, events, err = build(root, *args)
    assert code == 0, err
    assert summary(events)["fast_path"] is False
    assert (root / ".storyc" / RECORD_NAME).exists()
    return events


def _fast(root: Path, *args: str) -> bool:
    code, events, err = build(root, *args)
    assert code == 0, err
    assert rendered(events) == []
    return bool(summary(events)["fast_path"])


@pytest.fixture
def root(tmp_path: Path) -> Path:
    return make_project(tmp_path / "p", STORY)


def test_same_report_without_the_work(root: Path) -> None:
    normal = _settle(root)
    code, events, err = build(root)
    assert code == 0 and err == ""
    assert summary(events)["fast_path"] is True
    strip = {"fast_path", "bytes_read", "bytes_verified", "cached_compilation"}
    assert [{k: v for k, v in e.items() if k not in strip} for e in events] == [
        {k: v for k, v in e.items() if k not in strip} for e in normal
    ]
    assert summary(events)["bytes_read"] == 0 and summary(events)["scenes"]["reused"] == 2
    # the plain report is the normal one too
    out_io = io.StringIO()  # results on stdout, as docs/cli.md says
    with contextlib.redirect_stdout(out_io):
        assert main(["build", str(root)]) == 0
    assert out_io.getvalue().splitlines() == [
        "plan: 0 scene(s), 0 take(s) to render with preview (free); 2 up to date",
        "build: 2 reused; 0 rendered (free)",
    ]


def test_fast_path_imports_nothing_heavy(root: Path) -> None:
    _settle(root)
    probe = (
        "import sys; from storyc.cli import main; code = main(['build', sys.argv[1], "
        "'--json']); heavy = [m for m in ('storyc.compiler', 'storyc.build.executor', 'lark', "
        "'pydantic', 'jinja2', 'httpx', 'asyncio') if m in sys.modules]; "
        "print('HEAVY', heavy, code)"
    )
    p = subprocess.run(
        [sys.executable, "-c", probe, str(root)], capture_output=True, text=True, timeout=60
    )
    assert '"fast_path": true' in p.stdout, p.stdout + p.stderr
    assert "HEAVY [] 0" in p.stdout, p.stdout + p.stderr


def test_touched_story_file_takes_the_normal_path(root: Path) -> None:
    _settle(root)
    os.utime(root / "main.story")  # same text, new time: the compiler must look again
    assert not _fast(root)
    # changed within RACY_S of that build's start: it could not record a clean state
    assert not _fast(root)


def test_discovery_reads_every_top_level_story_file(root: Path) -> None:
    (root / "main.story").rename(root / "film.story")  # found by its `project` block
    (root / "notes.story").write_text("\n", "utf-8")  # not part of the project
    _settle(root)
    assert _fast(root)
    # the same names, but now two files have a `project` block: discovery must refuse
    (root / "notes.story").write_text('project "Other" { }\n', "utf-8")
    code, events, err = build(root)
    assert code == 3 and "no storyc project" in events[0]["text"]


def test_edited_asset_renders_again(root: Path) -> None:
    _settle(root)
    media.make_test_image(root / "assets" / "market.png", 640, 360, seed=9)
    code, events, err = build(root)
    assert code == 0, err
    assert summary(events)["fast_path"] is False and rendered(events) == ["arrival"]


def test_deleted_render_link_comes_back(root: Path) -> None:
    _settle(root)
    (root / "renders" / "other.take2.mp4").unlink()
    assert not _fast(root)
    assert (root / "renders" / "other.take2.mp4").is_symlink()


@pytest.mark.parametrize("damage", ["delete", "corrupt"])
def test_damaged_store_object_renders_again(root: Path, damage: str) -> None:
    _settle(root)
    obj = (root / "renders" / "arrival.mp4").resolve()
    if damage == "delete":
        obj.unlink()
    else:
        os.chmod(obj, 0o644)
        with open(obj, "r+b") as f:
            f.write(b"\0" * 64)
    code, events, err = build(root)
    assert code == 0, err
    assert summary(events)["fast_path"] is False and rendered(events) == ["arrival"]
    assert (root / "renders" / "arrival.mp4").resolve().exists()


def test_other_options_take_the_normal_path(root: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    _settle(root)
    code, events, err = build(root, "--scene", "arrival")
    assert code == 0 and summary(events)["fast_path"] is False, err
    assert summary(events)["scenes"]["reused"] == 1
    code, events, err = build(root, "--backend", "inference", "--yes")
    # no key here: the normal path says so (the fast path never answers for another backend)
    assert code == 3 and "INFERENCE_API_KEY" in events[0]["text"]
    # one record, of the last clean build: the `--scene` one (not lost by a refused build)
    assert _fast(root, "--scene", "arrival")
    assert not _fast(root)


def test_paid_build_with_unknown_attempt_is_not_fast(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with loopback.serve(latency=0.02) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        paid = ("--backend", "inference", "--yes")
        _settle(root, *paid)
        assert _fast(root, *paid)
        with Journal(root / ".storyc" / "journal.sqlite") as j:  # an answer lost in transit
            att = j.begin(
                "sha256:" + "ab" * 32,
                "arrival",
                1,
                "kling-o1",
                "inference",
                None,
                body_digest="sha256:" + "cd" * 32,
            )
            j.mark_submitting(att)
            j.mark_failed(att, "connection lost")  # sent, answer lost: fate unknown
        for _ in range(2):
            code, events, err = build(root, *paid)
            assert summary(events)["fast_path"] is False
            assert "fate is unknown" in err
            time.sleep(RACY_S + 0.05)  # settled, and still never recorded


def test_every_option_that_decides_a_build_is_in_its_signature(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast path answers only a build asked in exactly the same way: each option that
    can change the result changes `options`; the same ones give the same signature."""
    import argparse

    from storyc.build.fastpath import options

    def ns(**kw: object) -> argparse.Namespace:
        base: dict[str, object] = dict(
            path=str(tmp_path), target=None, scenes=None, cuts=None, backend="preview",
            base_url=None, resubmit_unknown=False,
        )  # fmt: skip
        return argparse.Namespace(**{**base, **kw})

    monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
    plain = options(ns())
    assert options(ns()) == plain and options(ns(cuts=[])) == plain
    for change in (
        dict(target="inference/video-o1-v1"),
        dict(scenes=["arrival"]),
        dict(cuts=["final"]),
        dict(backend="inference"),
        dict(base_url="http://127.0.0.1:9"),
        dict(resubmit_unknown=True),
        dict(path=str(tmp_path / "elsewhere")),
    ):
        assert options(ns(**change)) != plain, change
    monkeypatch.setenv("INFERENCE_BASE_URL", "http://127.0.0.1:9")
    assert options(ns()) != plain


def test_discovery_lists_the_story_files_of_a_folder(tmp_path: Path) -> None:
    from storyc.build.fastpath import discovery

    for name in ("b.story", "a.story", "notes.txt", "c.story.bak"):
        (tmp_path / name).write_text("", "utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "d.story").write_text("", "utf-8")
    assert list(discovery(str(tmp_path))) == ["a.story", "b.story"]
    assert not discovery(str(tmp_path / "a.story"))  # a file: no folder to discover
    assert not discovery(str(tmp_path / "missing"))


def _build_args(path: Path, **more: object) -> Any:
    """`storyc build PATH`'s parsed options, as the fast path reads them (preview)."""
    import argparse

    return argparse.Namespace(
        path=str(path), target=None, scenes=None, cuts=None, backend="preview",
        base_url=None, resubmit_unknown=False, **more,
    )  # fmt: skip


def test_record_trusts_only_a_settled_complete_state(tmp_path: Path) -> None:
    """`record` writes nothing for a missing input, for an input changed (by its mtime or
    its ctime) too close to the build's start, or when it cannot write; with no inputs at
    all it records."""

    from storyc.build.fastpath import record, record_path

    args = _build_args(tmp_path)
    story = tmp_path / "main.story"
    story.write_text("x", "utf-8")
    root = str(tmp_path)
    ctime = story.stat().st_ctime_ns / 1e9
    later = ctime + RACY_S + 60  # a build that started well after the last change
    assert not record(root, args, [str(story), str(tmp_path / "gone")], {}, later)
    assert not os.path.exists(record_path(root))
    assert not record(root, args, [str(story)], {}, ctime + RACY_S / 2)  # racy: changed just now
    # an mtime set after the build's start (a tool restoring times) is as racy as a ctime
    os.utime(story, ns=(story.stat().st_atime_ns, int((later + 5) * 1e9)))
    assert not record(root, args, [str(story)], {}, later)
    assert not os.path.exists(record_path(root))
    assert record(root, args, [], {"note": 1}, later)  # nothing read: nothing to distrust
    assert os.path.exists(record_path(root))
    # .storyc/ cannot hold a record (a file in its place): not recorded, and no traceback
    other = tmp_path / "other"
    other.mkdir()
    (other / ".storyc").write_text("not a folder", "utf-8")
    assert not record(str(other), args, [], {}, later)


def test_options_of_a_command_without_cuts(tmp_path: Path) -> None:
    """A namespace with no `cuts` at all (a command that has none) reads as no cuts."""
    import argparse

    from storyc.build.fastpath import options

    base = dict(
        path=str(tmp_path), target=None, scenes=None, backend="preview",
        base_url=None, resubmit_unknown=False,
    )  # fmt: skip
    assert options(argparse.Namespace(**base))[6] == []
    assert options(argparse.Namespace(**base)) == options(argparse.Namespace(**base, cuts=None))


def test_a_story_file_as_the_path_finds_its_project(tmp_path: Path) -> None:
    from storyc.build.fastpath import _root

    story = tmp_path / "main.story"
    story.write_text("", "utf-8")
    assert _root(str(story)) == str(tmp_path)
    assert _root(str(tmp_path)) == str(tmp_path)
    assert _root(str(tmp_path / "missing.story")) is None


def test_code_paths_cover_the_package_and_the_grammar_but_not_caches() -> None:
    from storyc.build import fastpath

    pkg = os.path.dirname(os.path.dirname(os.path.abspath(fastpath.__file__)))
    grammar = os.path.join(os.path.dirname(pkg), "grammar")
    # what Python makes beside the modules it imports (absent when bytecode is not written)
    os.makedirs(os.path.join(pkg, "build", "__pycache__"), exist_ok=True)
    paths = fastpath.code_paths()
    assert all(p == pkg or p.startswith((pkg + os.sep, grammar)) for p in paths)
    assert os.path.join(grammar, "storyc.lark") in paths and grammar in paths
    assert os.path.abspath(fastpath.__file__) in paths and pkg in paths
    assert not any("__pycache__" in p for p in paths)
    assert all(p.endswith((".py", ".lark")) or os.path.isdir(p) for p in paths)
    assert paths == sorted(paths)


def test_a_change_exactly_racy_s_before_the_start_is_trusted(tmp_path: Path) -> None:

    from storyc.build.fastpath import record

    args = _build_args(tmp_path)
    story = tmp_path / "main.story"
    story.write_text("x", "utf-8")
    st = story.stat()
    newest = max(st.st_mtime_ns, st.st_ctime_ns) / 1e9
    started = newest + RACY_S
    assert started - RACY_S == newest  # exact in floating point at this magnitude
    assert record(str(tmp_path), args, [str(story)], {}, started)


def _recorded(tmp_path: Path, **report: object) -> tuple[object, Path]:
    """A project folder with a clean state recorded for `storyc build` (preview)."""

    from storyc.build.fastpath import record

    root = tmp_path / "proj"
    root.mkdir(parents=True)
    story = root / "main.story"
    story.write_text("x", "utf-8")
    args = _build_args(root, json=False)
    full: dict[str, object] = {
        "backend": "preview", "diagnostics": "", "plan_lines": ["plan: 1 scene"],
        "scenes": ["a"], "json": '{"event": "summary"}\n', "build_line": "built: 0 rendered",
    }  # fmt: skip
    full.update(report)
    st = story.stat()
    assert record(str(root), args, [str(story)], full, max(st.st_mtime, st.st_ctime) + 60)
    return args, story


def test_load_answers_only_the_same_command_on_the_same_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import json

    from storyc.build.fastpath import load, record_path

    monkeypatch.delenv("STORYC_NO_FASTPATH", raising=False)
    monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
    args, story = _recorded(tmp_path)
    data = load(args)  # type: ignore[arg-type]
    assert data is not None and data["build_line"] == "built: 0 rendered"
    monkeypatch.setenv("STORYC_NO_FASTPATH", "1")
    assert load(args) is None  # type: ignore[arg-type]
    monkeypatch.delenv("STORYC_NO_FASTPATH")
    # the story file as the path: its folder's record
    args.path = str(story)  # type: ignore[attr-defined]
    assert load(args) is None  # another path: other options
    args.path = str(story.parent)  # type: ignore[attr-defined]
    args.scenes = ["a"]  # type: ignore[attr-defined]
    assert load(args) is None  # type: ignore[arg-type]
    args.scenes = None  # type: ignore[attr-defined]
    (story.parent / "new.story").write_text("", "utf-8")  # discovery sees another file
    assert load(args) is None  # type: ignore[arg-type]
    (story.parent / "new.story").unlink()
    assert load(args) is not None  # type: ignore[arg-type]
    path = Path(record_path(str(story.parent)))
    good = json.loads(path.read_text())
    for damage in (
        {"diagnostics": 1}, {"json": None}, {"build_line": ["x"]}, {"plan_lines": [1]},
        {"scenes": [None]}, {"stats": [[5, 1, 1, 1, 1]]}, {"stats": [["/x", 1]]},
        {"options": None},
    ):  # fmt: skip
        path.write_text(json.dumps({**good, **damage}))
        assert load(args) is None, damage  # type: ignore[arg-type]
    for raw in ("[1, 2]", "not json", "[" * 100_000):
        path.write_text(raw)
        assert load(args) is None, raw[:10]  # type: ignore[arg-type]
    path.unlink()
    assert load(args) is None  # type: ignore[arg-type]
    args.path = str(tmp_path / "missing")  # type: ignore[attr-defined]
    assert load(args) is None  # type: ignore[arg-type]


@pytest.mark.parametrize("field", ["size", "mtime", "ino", "ctime"])
def test_load_refuses_any_stat_that_moved(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, field: str
) -> None:
    import json

    from storyc.build.fastpath import load, record_path

    monkeypatch.delenv("STORYC_NO_FASTPATH", raising=False)
    monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
    args, story = _recorded(tmp_path)
    path = Path(record_path(str(story.parent)))
    data = json.loads(path.read_text())
    [[p, size, mtime, ino, ctime]] = data["stats"]
    moved = {"size": size + 1, "mtime": mtime + 1, "ino": ino + 1, "ctime": ctime + 1}
    values = {"size": size, "mtime": mtime, "ino": ino, "ctime": ctime, field: moved[field]}
    data["stats"] = [[p, values["size"], values["mtime"], values["ino"], values["ctime"]]]
    path.write_text(json.dumps(data))
    assert load(args) is None  # type: ignore[arg-type]
    data["stats"] = [[p, size, mtime, ino, ctime]]
    path.write_text(json.dumps(data))
    assert load(args) is not None  # type: ignore[arg-type]
    story.unlink()
    assert load(args) is None  # type: ignore[arg-type]


def test_a_paid_clean_state_needs_the_key_to_be_answered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storyc.build.fastpath import load

    monkeypatch.delenv("STORYC_NO_FASTPATH", raising=False)
    monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
    monkeypatch.delenv("INFERENCE_API_KEY", raising=False)
    args, _ = _recorded(tmp_path, backend="inference")
    assert load(args) is None  # type: ignore[arg-type]
    monkeypatch.setenv("INFERENCE_API_KEY", "k")
    assert load(args) is not None  # type: ignore[arg-type]


def test_try_fast_prints_the_recorded_report(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from storyc.build.fastpath import try_fast

    monkeypatch.delenv("STORYC_NO_FASTPATH", raising=False)
    monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
    args, _ = _recorded(
        tmp_path, diagnostics="warning[W211]: x", plan_lines=["plan: 2 scenes", "all reused"]
    )
    assert try_fast(args) == 0  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    assert out == "plan: 2 scenes\nall reused\nbuilt: 0 rendered\n"
    assert err.startswith("warning[W211]: x\n")
    args.json = True  # type: ignore[attr-defined]
    assert try_fast(args) == 0  # type: ignore[arg-type]
    out, err = capsys.readouterr()
    assert out == '{"event": "summary"}\n' and err == "warning[W211]: x\n"
    args2, _ = _recorded(tmp_path / "quiet")
    assert try_fast(args2) == 0  # type: ignore[arg-type]
    assert capsys.readouterr().err == ""  # no diagnostics: nothing on stderr
    args2.scenes = ["other"]  # type: ignore[attr-defined]
    assert try_fast(args2) is None  # type: ignore[arg-type]


def test_try_fast_on_a_terminal_shows_each_scene_reused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storyc.build.fastpath import try_fast

    class Terminal(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.delenv("STORYC_NO_FASTPATH", raising=False)
    monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
    args, _ = _recorded(tmp_path, scenes=["harbour_at_dusk"])
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    assert try_fast(args) == 0  # type: ignore[arg-type]
    shown = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", term.getvalue())  # without the colours
    # the scene's row: its name, its state, and why (its output is reused)
    assert re.search(r"harbour_at_dusk +reused +reused", shown), shown
    # the live table takes over stdout while it runs: the report's lines go through it
    assert "plan: 1 scene" in shown and "built: 0 rendered" in shown
