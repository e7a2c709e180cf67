"""A submission the provider refused outright (400, 402) created no task: it is recorded as
failed — never as "fate unknown", which would hold the scene hostage to --resubmit-unknown —
and costs nothing."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from test_build_support import build, final_states, make_project, summary

from storyc.cli import main
from storyc.provider import loopback
from storyc.state.journal import Journal

SOLO = 'scene solo { prompt = "one shot"  duration = 5  aspect = "16:9" }\n'


def _paid(root: Path, *args: str) -> tuple[int, list, str]:  # type: ignore[type-arg]
    return build(root, "--backend", "inference", "--yes", "--retries", "0", *args)


def _states(root: Path) -> list[str]:
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        return [a.state for a in j.all()]


def test_400_is_a_known_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p", SOLO)  # compiled for v2; this server speaks v1
    with loopback.serve(schema="v1", latency=0.0) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = _paid(root)
        assert code == 1 and final_states(events)["solo"] == "failed"
        assert "rejected the request" in err and "resolution" in err
        assert srv.submissions == []
        assert _states(root) == ["failed"]
        assert summary(events)["committed"] in ("0", "0.000", "0.00")
        code, events, err = _paid(root)  # tried again (the story may have been fixed)
        assert "fate is unknown" not in err and final_states(events)["solo"] == "failed"


def test_402_is_a_known_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p", SOLO)
    with loopback.serve(latency=0.0) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        srv.add_fault("submit:402:nth=1")
        code, events, err = _paid(root)
        assert code == 1 and _states(root) == ["failed"]
        code, events, err = _paid(root)
        assert code == 0, err
        assert len(srv.submissions) == 1


@pytest.mark.parametrize(
    "args", [("--max-cost", "NaN"), ("--max-cost", "Infinity"), ("--wait", "nan"), ("--wait", "-1")]
)
def test_bad_amounts_are_one_line_usage_errors(tmp_path: Path, args: tuple[str, str]) -> None:
    # NaN once crashed --max-cost with a traceback; --wait nan waited for ever
    with pytest.raises(SystemExit) as exc:
        build(tmp_path, *args)
    assert exc.value.code == 2


def test_wait_before_the_path_takes_the_path(tmp_path: Path) -> None:
    # `--wait` takes an optional number of seconds: `build --wait DIR` must not read DIR as one
    root = make_project(tmp_path / "p")
    code, _, err = build(tmp_path, "--wait", str(root))  # build() puts tmp_path first
    assert code == 2 and "not a number of seconds" in err  # two paths: a usage error
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main(["build", "--wait", str(root)]) == 0
    assert (root / "storyc.lock").exists()
