"""One planner: what `storyc plan` says a paid build will send, and what it costs, is
what `storyc build` then sends — on every example and on random graphs (chains, edits
of another scene's output, takes), against the loopback provider."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from test_build_support import build, summary
from test_money_budget import SceneSpec, _story, graphs

from storyc.cli import main
from storyc.provider import loopback

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
PAID = ("--backend", "inference", "--yes")


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with loopback.serve(latency=0.02, fast_outputs=False) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        yield srv


def _plan(root: Path) -> dict:  # type: ignore[type-arg]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(io.StringIO()):
        assert main(["plan", str(root), "--backend", "inference", "--json"]) == 0
    return json.loads(out.getvalue())  # type: ignore[no-any-return]


def _same_as_the_build(root: Path, server: loopback.LoopbackServer) -> None:
    plan = _plan(root)
    will = {n: len(s["render"]) for n, s in plan["scenes"].items() if s["render"]}
    first = len(server.submissions)
    code, events, err = build(root, *PAID)
    assert code == 0, err
    consent = next(e for e in events if e.get("event") == "plan")
    # the consent and the budget saw the same plan as `storyc plan`
    assert consent["render"] == will and consent["unknown"] == plan["unknown_prices"]
    assert Decimal(consent["estimate"]) == Decimal(plan["known_total"])
    sent: dict[str, int] = {}
    for e in events:
        if e.get("state") == "submitting":
            scene = e["scene"].split("#")[0]
            sent[scene] = sent.get(scene, 0) + 1
    assert sent == will
    assert len(server.submissions) - first == sum(will.values())
    assert plan["total"] is not None and Decimal(summary(events)["sent"]) == Decimal(plan["total"])


@pytest.mark.parametrize(
    "example", sorted(p.name for p in EXAMPLES.iterdir() if (p / "main.story").exists())
)
def test_plan_is_what_every_example_sends(
    example: str, tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    root = tmp_path / example
    shutil.copytree(
        EXAMPLES / example, root, ignore=shutil.ignore_patterns(".storyc", "renders", "storyc.lock")
    )
    _same_as_the_build(root, server)
    # built against the live schema (v2), with no request refused
    assert all(s["outcome"] == "completed" for s in server.submissions)


@settings(
    max_examples=5,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=graphs())
def test_plan_is_what_a_random_graph_sends(
    server: loopback.LoopbackServer, spec: list[SceneSpec]
) -> None:
    story, _ = _story(spec)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "g"
        from test_build_support import make_project

        make_project(root, story)
        _same_as_the_build(root, server)
