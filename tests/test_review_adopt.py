"""Review of 769e129: adopt and forget never mix the attempts of two providers."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from test_build_support import build, make_project

from storyc.cli import main
from storyc.provider import loopback
from storyc.state.journal import Journal

STORY = (
    'project "P" { quality = "std"  aspect = "16:9" }\nscene a { prompt = "Only"  duration = 5 }\n'
)
PAID = ("--backend", "inference", "--yes", "--retries", "0")


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def test_adopt_never_gives_an_attempt_a_task_of_another_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The attempt of unknown fate went to provider A (its answer was lost: the task
    runs there). The same request was rehearsed on B, from another checkout. `storyc
    adopt a TASK --base-url B` read B's task, found the same input, and recorded B's task
    id for the attempt sent to A: every build against A then failed ("task ... not found
    on the provider"), and the task that does run at A can no longer be adopted.
    --base-url names where the attempts went, as for forget."""
    root = make_project(tmp_path / "p", STORY)
    with (
        loopback.serve(fast_outputs=True, faults=["submit:drop:nth=1"], api_key="k-test-a") as a,
        loopback.serve(fast_outputs=True, api_key=a.api_key) as b,
    ):
        monkeypatch.setenv("INFERENCE_API_KEY", a.api_key)
        monkeypatch.setenv("INFERENCE_BASE_URL", a.url)
        code, events, err = build(root, *PAID)
        assert code != 0 and len(a.submissions) == 1
        monkeypatch.setenv("INFERENCE_BASE_URL", b.url)
        other = make_project(tmp_path / "other", STORY)  # the rehearsal: another checkout
        code, events, err = build(other, *PAID)
        assert code == 0, err
        task_at_b = b.submissions[0]["task_id"]
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            (sent_to_a,) = j.unknown()
        code, text = _cli("adopt", "a", task_at_b, str(root), "--base-url", b.url)
        assert code == 1, text
        assert f"no attempt of unknown fate sent to {b.url} (they went to {a.url})" in text
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            assert j.get(sent_to_a.id).state == "unknown"
