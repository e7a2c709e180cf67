"""`storyc init/check/compile/graph`: output streams, exit codes, JSON, and no tracebacks."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyc.cli import ExitCode, main

ROOT = Path(__file__).resolve().parent
ASSETS = ROOT / "cases" / "payload" / "_assets"
BAD = ROOT / "cases" / "diag_rules"


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    assert "Traceback" not in err and "internal error" not in err, err
    return code, out, err


@pytest.fixture
def film(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    work = tmp_path / "my-film"
    code, out, _ = run(capsys, "init", str(work), "--name", "Harbour")
    assert code == ExitCode.OK and "created" in out
    return work


def test_init_creates_a_clean_project(film: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert (film / ".gitignore").read_text("utf-8").splitlines() == [".storyc/", "renders/"]
    assert 'project "Harbour"' in (film / "main.story").read_text("utf-8")
    code, out, err = run(capsys, "check", str(film))
    assert code == ExitCode.OK
    assert out == "ok: Harbour: 2 scenes, 2 ready to render (1 note: --notes)\n"
    assert err == ""
    code, out, err = run(capsys, "check", str(film), "--notes")
    assert "note[W210]: aspect ratio 16:9 taken from the project default" in err
    assert "error[" not in err and "warning[" not in err


def test_init_refuses_to_overwrite(film: Path, capsys: pytest.CaptureFixture[str]) -> None:
    story = (film / "main.story").read_text("utf-8")
    code, _, err = run(capsys, "init", str(film))
    assert code == ExitCode.FAILED and "already exists" in err
    assert (film / "main.story").read_text("utf-8") == story


def test_init_keeps_an_existing_gitignore(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".gitignore").write_text("*.log\nrenders/\n", "utf-8")
    code, _, _ = run(capsys, "init", str(tmp_path))
    assert code == ExitCode.OK
    assert (tmp_path / ".gitignore").read_text("utf-8") == "*.log\nrenders/\n.storyc/\n"


def test_check_json(film: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "check", str(film), "--format", "json")
    doc = json.loads(out)
    assert code == ExitCode.OK and doc["ok"] is True and doc["scenes"] == 2
    assert all(d["severity"] == "note" for d in doc["diagnostics"])


def test_check_errors_go_to_stderr_with_exit_1(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(BAD / "duration_rules", tmp_path / "p")
    code, out, err = run(capsys, "check", str(tmp_path / "p"))
    assert code == ExitCode.FAILED and out == ""
    assert "error[E205]" in err and "\x1b[" not in err  # no colour when not a terminal


def test_no_project_is_an_environment_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = run(capsys, "check", str(tmp_path))
    assert code == ExitCode.ENVIRONMENT and "E011" in err
    assert run(capsys, "compile", str(tmp_path / "missing"))[0] == ExitCode.ENVIRONMENT


def test_compile_text(film: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compile", str(film), "--target", "inference/video-o1@v1")
    assert code == ExitCode.OK
    first, second = out.split("\n\n── ")
    assert first.startswith("── opening  [inference/video-o1@v1 · v1 · text-to-video")
    assert second.startswith("closer  [") and '"$scene": "opening"' in second
    assert "notes:\n  - aspect_ratio not sent" in second


def test_compile_json_is_one_document(film: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "compile", str(film), "--json", "--scene", "closer")
    doc = json.loads(out)
    assert code == ExitCode.OK and doc["order"] == ["closer"]
    assert doc["scenes"]["closer"]["body"]["app"] == "klingai/video-o1"
    code2, out2, _ = run(capsys, "compile", str(film), "--json", "--scene", "closer")
    assert out2 == out


def test_compile_unknown_target_is_usage(film: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(capsys, "compile", str(film), "--target", "nope")
    assert code == ExitCode.USAGE and "unknown target 'nope'" in err


@pytest.mark.parametrize(
    "fmt,needle",
    [
        ("text", "opening\n└─ closer  (first frame ← last_frame)"),
        ("dot", '"opening" -> "closer"'),
        ("mermaid", "flowchart LR"),
    ],
)
def test_graph_formats(
    film: Path, capsys: pytest.CaptureFixture[str], fmt: str, needle: str
) -> None:
    code, out, _ = run(capsys, "graph", str(film), "--format", fmt)
    assert code == ExitCode.OK and needle in out


def test_graph_cycle_exit_1(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shutil.copytree(BAD / "cycle", tmp_path / "p")
    code, out, err = run(capsys, "graph", str(tmp_path / "p"))
    assert code == ExitCode.FAILED and "E240" in err and "(in a cycle)" in out


def test_help_has_examples(capsys: pytest.CaptureFixture[str]) -> None:
    for cmd in ("init", "check", "compile", "graph"):
        with pytest.raises(SystemExit) as exc:
            main([cmd, "--help"])
        assert exc.value.code == 0
        assert "examples:" in capsys.readouterr().out


# The rule cases here, and the front end's bad stories (names, syntax, templates, files).
BAD_STORIES = sorted(
    p
    for d in (BAD, ROOT / "cases" / "diag")
    if d.is_dir()
    for p in d.iterdir()
    if (p / "main.story").is_file()
)


@pytest.mark.parametrize("case", BAD_STORIES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_bad_stories_never_hit_the_internal_error_path(
    case: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    shutil.copytree(case, tmp_path / "p")
    shutil.copytree(ASSETS, tmp_path / "p" / "assets", dirs_exist_ok=True)
    for cmd in ("check", "compile", "graph"):
        code, _, _ = run(capsys, cmd, str(tmp_path / "p"))
        assert code in (ExitCode.OK, ExitCode.FAILED)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.text(alphabet=st.sampled_from(list('scene project {}[]="@.:,5 \nabx{%}')), max_size=120))
def test_arbitrary_text_never_crashes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str
) -> None:
    (tmp_path / "main.story").write_text(text, "utf-8")
    for cmd in ("check", "compile"):
        code, _, _ = run(capsys, cmd, str(tmp_path))
        assert code in (ExitCode.OK, ExitCode.FAILED)


def test_internal_errors_are_one_line(
    monkeypatch: pytest.MonkeyPatch, film: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import storyc.cli.lang as lang

    def boom(*args: object, **kwargs: object) -> None:
        raise RuntimeError("simulated fault\nsecond line")

    monkeypatch.setattr(lang, "_compile", boom)
    code = main(["check", str(film)])
    err = capsys.readouterr().err
    assert code == ExitCode.FAILED
    assert err == "storyc: internal error: RuntimeError: simulated fault\n"


def test_colour_marks_severity_and_hint() -> None:
    from storyc.cli.lang import colourize

    text = colourize("main.story:1:1: error[E205]: bad\n  = hint: fix it")
    assert "\x1b[1;31merror[E205]\x1b[0m" in text and "\x1b[32mhint\x1b[0m" in text
