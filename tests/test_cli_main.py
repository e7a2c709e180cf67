"""The command-line entry: one module per command group, imported only when needed."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from storyc.cli import COMMAND_MODULES, COMMANDS, build_parser


def _loaded_after(args: list[str]) -> set[str]:
    code = (
        "import sys\nfrom storyc.cli import main\n"
        f"try:\n    main({args!r})\nexcept SystemExit:\n    pass\n"
        "print(' '.join(m for m in sys.modules if m.startswith('storyc.cli.')),"
        " file=sys.stderr)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    ).stderr.split()
    return set(out)


def test_every_command_is_mapped_to_the_module_that_registers_it() -> None:
    for name, module in COMMANDS.items():
        parser = build_parser(name)
        sub = next(a for a in parser._actions if a.dest == "command")
        assert name in sub.choices, f"{module} does not register `{name}`"
    full = build_parser()
    sub = next(a for a in full._actions if a.dest == "command")
    assert set(sub.choices) == set(COMMANDS)
    assert set(COMMANDS.values()) == set(COMMAND_MODULES)


def test_a_command_imports_only_its_own_module() -> None:
    assert _loaded_after(["pick", "--help"]) == {"storyc.cli.build"}
    # the daemon's client is shared by `storyc daemon` and the commands it serves
    assert _loaded_after(["--help"]) == set(COMMAND_MODULES) | {"storyc.cli.client"}
    assert _loaded_after(["plan", "--help"]) == {"storyc.cli.plan", "storyc.cli.client"}


def test_every_command_shares_the_internal_error_boundary(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import storyc.build.session as bs
    from storyc.cli import ExitCode, main

    def boom(self: object) -> int:
        raise RuntimeError("simulated fault\nsecond line")

    monkeypatch.setattr(bs.BuildSession, "run", boom)
    assert main(["build", str(tmp_path)]) == ExitCode.FAILED
    assert capsys.readouterr().err == "storyc: internal error: RuntimeError: simulated fault\n"


def test_check_hashes_an_unchanged_asset_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from storyc.base import hashing
    from storyc.cli import ExitCode, main
    from storyc.media import ffmpeg as media

    media.make_test_image(tmp_path / "market.png", 640, 360)
    os.utime(tmp_path / "market.png", (1_700_000_000, 1_700_000_000))  # not "just written"
    (tmp_path / "main.story").write_text(
        'project "T" { aspect = "16:9" }\nimage market "market.png"\n'
        'scene a { start = market  prompt = "The market at dawn"  duration = 5 }\n',
        "utf-8",
    )
    assert main(["check", str(tmp_path)]) == ExitCode.OK
    reads: list[str] = []
    real = hashing.digest_file

    def counting(path: object) -> tuple[str, int]:
        reads.append(str(path))
        return real(path)  # type: ignore[arg-type]

    monkeypatch.setattr(hashing, "digest_file", counting)
    assert main(["check", str(tmp_path)]) == ExitCode.OK
    assert main(["compile", str(tmp_path), "--json"]) == ExitCode.OK
    assert reads == []


def test_the_commands_that_ask_the_daemon_first_are_those_it_serves() -> None:
    from storyc.cli import ASKS_DAEMON
    from storyc.cli.client import SERVED, STREAMED

    assert SERVED - STREAMED == ASKS_DAEMON  # build asks after its fast path (cli/build.py)
