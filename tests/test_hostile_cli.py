"""The command line with hostile stories and careless users: nothing a story holds reaches
the terminal raw, NO_COLOR means no styles at all, usage and exit codes are honest, and a
project is found from any folder inside it."""

from __future__ import annotations

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyc.base.terminal import rich_options, styled
from storyc.cli import main

CONTROL = [chr(c) for c in (*range(0x00, 0x09), *range(0x0B, 0x20), *range(0x7F, 0xA0))]


def _run(
    *args: str, cwd: Path | None = None, env: dict[str, str] | None = None
) -> tuple[int, str, str]:
    proc = subprocess.run(
        [sys.executable, "-m", "storyc", *args],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=cwd,
        env={**os.environ, **(env or {})},
    )
    return proc.returncode, proc.stdout, proc.stderr


def _main(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(args))
        except SystemExit as exc:
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def _no_control(text: str) -> None:
    bad = sorted({f"U+{ord(c):04X}" for c in text if c in CONTROL and c not in "\n"})
    assert not bad, f"raw control characters reached the output: {bad}"


def test_escape_sequences_made_by_a_template_never_reach_the_terminal(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        'project "P" { aspect = "16:9" }\n'
        'let title = "x"\n'
        "scene a { prompt = \"{{ '\\x1b]0;owned\\x07\\x9b31m' }} {{ title }}\" duration = 5 }\n"
    )
    for args in (["compile"], ["compile", "--json"], ["check"], ["check", "--format", "json"]):
        code, out, err = _main(*args, str(tmp_path))
        assert code == 1, (args, err)
        _no_control(out + err)
    assert "E144" in _main("check", str(tmp_path))[2]


def test_a_project_name_from_a_folder_with_escapes_is_shown_escaped(tmp_path: Path) -> None:
    root = tmp_path / "film\x1b[2J"
    root.mkdir()
    (root / "main.story").write_text('scene a { prompt = "x" duration = 5 aspect = "1:1" }\n')
    code, out, err = _main("check", str(root))
    assert code == 0, err
    _no_control(out + err)
    assert "\\x1b[2J" in out


def test_json_output_escapes_what_json_leaves_raw(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        'project "P" { aspect = "16:9" }\n'
        "scene a { prompt = \"{{ '\\x85 and \\u202e' }}\" duration = 5 }\n"
    )
    code, out, _ = _main("check", str(tmp_path), "--format", "json")
    _no_control(out)
    assert "\u202e" not in out and json.loads(out)["ok"] is False


def test_no_color_turns_off_bold_and_dim_too(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console
    from rich.text import Text

    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    monkeypatch.setenv("NO_COLOR", "1")
    assert not styled(Tty())
    buf = Tty()
    Console(file=buf, force_terminal=True, **rich_options()).print(
        Text("blocked", style="bold red"), Text("waiting", style="dim")
    )
    assert "\x1b" not in buf.getvalue()
    monkeypatch.setenv("NO_COLOR", "")  # set but empty: no-color.org says colour stays on
    assert styled(Tty())


def test_an_unknown_option_prints_the_commands_own_usage() -> None:
    code, _, err = _main("build", "--frobnicate")
    assert code == 2
    assert "usage: storyc build" in err and "unrecognized arguments: --frobnicate" in err
    code, _, err = _main("check", ".", "--nope")
    assert code == 2 and "usage: storyc check" in err


def test_plan_help_says_what_plan_returns(tmp_path: Path) -> None:
    _, out, _ = _main("plan", "--help")
    assert "1 the story has errors, or storyc.lock cannot be read" in out
    assert "3 no project" in out
    (tmp_path / "main.story").write_text('scene a { prompt = "x" duration = 5 aspect = "1:1" }\n')
    (tmp_path / "storyc.lock").write_text("<<<<<<< HEAD\n")
    assert _main("plan", str(tmp_path))[0] == 1
    assert _main("plan", str(tmp_path / "nowhere"))[0] == 3


def test_commands_find_the_project_from_a_folder_inside_it(tmp_path: Path) -> None:
    root = tmp_path / "film"
    (tmp_path / "stray.story").write_text('project "Not this one" {}\n')
    (root / "assets" / "chars").mkdir(parents=True)
    (root / "scenes").mkdir()
    (root / "main.story").write_text(
        'project "Found" { aspect = "16:9" }\ninclude "scenes/more.story"\n'
    )
    (root / "scenes" / "more.story").write_text('scene a { prompt = "x" duration = 5 }\n')
    for where in (root / "assets" / "chars", root / "scenes"):
        code, out, err = _run("check", cwd=where)
        assert code == 0, err
        assert out.startswith("ok: Found: 1 scene")
    code, _, err = _run("build", "--json", cwd=root / "assets")
    assert code == 0, err
    assert (root / ".storyc").is_dir() and (root / "renders" / "a.mp4").exists()
    assert not (root / "assets" / ".storyc").exists()


def test_no_project_anywhere_above_says_so(tmp_path: Path) -> None:
    (tmp_path / ".git").mkdir()  # the search ends at a repository's root
    (tmp_path / "sub").mkdir()
    code, _, err = _run("check", cwd=tmp_path / "sub")
    assert code == 3
    assert "or any folder above it" in err and "storyc init" in err


def test_graph_marks_every_scene_of_a_cycle(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        'project "Loop" { aspect = "16:9" }\n'
        'scene a { start = c.last_frame prompt = "1" duration = 5 }\n'
        'scene b { start = a.last_frame prompt = "2" duration = 5 }\n'
        'scene c { start = b.last_frame prompt = "3" duration = 5 }\n'
        'scene d { start = c.last_frame prompt = "4" duration = 5 }\n'
    )
    code, out, _ = _main("graph", str(tmp_path))
    assert code == 1
    lines = {ln.strip("│├└─ ").split()[0]: ln for ln in out.splitlines() if ln.strip()}
    for name in "abc":
        assert "in a cycle" in lines[name], out
    assert "in a cycle" not in lines["d"]
    dot = _main("graph", str(tmp_path), "--format", "dot")[1]
    assert dot.count('xlabel="in a cycle"') == 3


def test_a_lock_file_with_escapes_is_shown_escaped(tmp_path: Path) -> None:
    # storyc.lock is committed: text anyone can send in a pull request
    (tmp_path / "main.story").write_text('scene a { prompt = "x" duration = 5 aspect = "1:1" }\n')
    assert _main("build", str(tmp_path))[0] == 0
    lock = tmp_path / "storyc.lock"
    lock.write_text(lock.read_text().replace('prompt = "x"', 'prompt = "x\\u001b]0;owned\\u0007"'))
    (tmp_path / "main.story").write_text('scene a { prompt = "y" duration = 5 aspect = "1:1" }\n')
    for args in (["why", "a"], ["plan"], ["plan", "--json"]):
        code, out, err = _main(*args, str(tmp_path))
        _no_control(out + err)
    lock.write_text('version = 1\n[scenes.a]\nprompt = "\x1b[2J\n')
    code, out, err = _main("plan", str(tmp_path))
    assert code == 1
    _no_control(out + err)


@pytest.mark.parametrize("command", ["journal", "status", "gc", "push", "export", "build"])
def test_a_path_with_escapes_is_shown_escaped_when_there_is_no_project(
    tmp_path: Path, command: str
) -> None:
    where = tmp_path / "film\x1b]0;owned\x07"
    where.mkdir()
    args = [command, str(where)]
    if command == "export":
        args = [command, "final", str(where), "--to", str(tmp_path / "out")]
    code, out, err = _main(*args)
    assert code == 3, err
    assert "no storyc project at" in err and "\\x1b" in err
    _no_control(out + err)


def test_a_usage_error_repeats_the_refused_words_escaped() -> None:
    code, out, err = _main("export", "final", "a", "b\x1b]0;owned\x07", "--to", "x")
    assert code == 2 and "unrecognized arguments" in err and "\\x1b" in err
    _no_control(out + err)
