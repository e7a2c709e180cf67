"""The budget is a reservation, `--jobs` bounds the tasks in flight at the provider:
against the loopback provider over real sockets, on fixed cases and on random graphs
(chains, edits of outputs, takes), caps and `--jobs`."""

from __future__ import annotations

import tempfile
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_build_support import build, final_states, make_project

from storyc.build.budget import Budget, OverBudget
from storyc.provider import loopback
from storyc.state.journal import Journal

HEAD = 'project "Budget" { quality = "std"  aspect = "16:9" }\n'
PAID = ("--backend", "inference", "--yes")
TAKE = Decimal("0.42")  # a 5 s std take


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with loopback.serve(latency=0.1, fast_outputs=True) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        yield srv


def _scenes(n: int, prefix: str = "s") -> str:
    return "".join(
        f'scene {prefix}{i} {{ prompt = "Shot {prefix}{i}"  duration = 5 }}\n' for i in range(n)
    )


def test_cap_holds_when_scenes_start_from_another_scenes_frame(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    # The estimate used to be checked before the await that extracts the upstream
    # frame and counted after it: every take holding a slot passed (8 sent, cap 2).
    story = (
        HEAD
        + 'scene a { prompt = "The harbour"  duration = 5 }\n'
        + "".join(
            f'scene b{i} {{ start = a.last_frame  prompt = "From the harbour {i}"  duration = 5 }}\n'
            for i in range(6)
        )
    )
    root = make_project(tmp_path / "p", story)
    assert build(root, *PAID, "--scene", "a")[0] == 0
    code, events, err = build(root, *PAID, "--max-cost", "0.84", "--jobs", "8")
    assert code == 4
    assert len(server.submissions) == 1 + 2
    assert "stopped at the budget ($0.84)" in err and "Raise --max-cost" in err
    assert list(final_states(events).values()).count("over-budget") == 4


def test_project_max_cost_is_the_budget(tmp_path: Path, server: loopback.LoopbackServer) -> None:
    story = HEAD.replace('aspect = "16:9"', 'aspect = "16:9"  max_cost = 0.42') + _scenes(3)
    root = make_project(tmp_path / "p", story)
    code, events, err = build(root, *PAID, "--jobs", "3")
    assert code == 4 and len(server.submissions) == 1  # 3 used to be sent where 1 fitted
    code, events, err = build(root, *PAID, "--max-cost", "5")  # a flag wins over the setting
    assert code == 0 and len(server.submissions) == 3


def test_unknown_cost_never_fits_a_budget() -> None:
    budget = Budget(Decimal("10"))
    with pytest.raises(OverBudget, match="cost is unknown"):
        budget.reserve(None, reason="the length of the video to edit is not known yet")
    assert budget.reserved == 0
    assert Budget(None).reserve(None) == 0  # no cap: nothing to hold it against


def test_reservation_comes_back_when_the_send_created_nothing(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    # The first take is turned away with 429 until the client gives up: no task was
    # created, so its reservation is given back and the second take fits the cap.
    root = make_project(tmp_path / "p", HEAD + _scenes(2))
    server.add_fault("submit:429:nth=1+2+3+4+5+6:retry_after=0")
    code, events, err = build(root, *PAID, "--max-cost", "0.42", "--jobs", "1", "--retries", "0")
    states = final_states(events)
    assert states == {"s0": "failed", "s1": "done"}, err
    assert len(server.submissions) == 1 and code == 1
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        assert [a.state for a in j.all()] == ["failed", "completed"]
        assert j.all()[0].task_id is None and not j.all()[0].may_have_cost


@pytest.mark.parametrize("fault", ["submit:402:nth=1", "submit:reject:nth=1"])
def test_balance_refusal_halts_the_rest_of_the_build(
    tmp_path: Path, server: loopback.LoopbackServer, fault: str
) -> None:
    root = make_project(tmp_path / "p", HEAD + _scenes(4))
    server.add_fault(fault)
    code, events, err = build(root, *PAID, "--jobs", "1")
    assert code == 1
    accepted = 0 if fault.startswith("submit:402") else 1  # a rejected task was created
    assert len(server.submissions) == accepted  # not one more after the refusal
    assert sum(s == "failed" for s in final_states(events).values()) == 4
    assert "balance" in err


def test_jobs_bounds_tasks_in_flight_at_the_provider(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", HEAD + _scenes(9))
    with loopback.serve(latency=0.6, fast_outputs=True) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        code, _, err = build(root, *PAID, "--jobs", "3")
        assert code == 0, err
        assert srv.peak_in_flight == 3  # never more; and the slots were used


# -- random graphs ---------------------------------------------------------------------

SceneSpec = tuple[str, int, int]  # (kind: text | start | edit, duration, takes)


@st.composite
def graphs(draw: st.DrawFn) -> list[SceneSpec]:
    n = draw(st.integers(1, 5))
    out: list[SceneSpec] = []
    for i in range(n):
        kind = "text" if i == 0 else draw(st.sampled_from(["text", "start", "edit"]))
        out.append((kind, draw(st.sampled_from([5, 10])), draw(st.integers(1, 2))))
    return out


def _story(spec: list[SceneSpec]) -> tuple[str, dict[str, Decimal]]:
    """The story and the price of one take of each scene (by its unique prompt)."""
    lines, price, length = [HEAD], {}, {}
    for i, (kind, dur, takes) in enumerate(spec):
        prompt = f"Graph shot {i}"
        up = f"g{i - 1}"
        if kind == "edit":  # as long as the video it edits, priced with a video input
            lines.append(
                f'scene g{i} {{ edit = {up}  prompt = "{prompt} of @{up}"  takes = {takes} }}\n'
            )
            length[i] = length[i - 1]
            price[prompt] = Decimal("0.126") * length[i]
        else:
            start = f"start = {up}.last_frame  " if kind == "start" else ""
            lines.append(
                f'scene g{i} {{ {start}prompt = "{prompt}"  duration = {dur}  takes = {takes} }}\n'
            )
            length[i] = dur
            price[prompt] = Decimal("0.084") * dur
    return "".join(lines), price


@settings(
    max_examples=6,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(spec=graphs(), cap_cents=st.integers(0, 400), jobs=st.integers(1, 4))
def test_random_graphs_never_exceed_the_cap_or_jobs(
    server: loopback.LoopbackServer, spec: list[SceneSpec], cap_cents: int, jobs: int
) -> None:
    story, price = _story(spec)
    cap = Decimal(cap_cents) / 100
    first = len(server.submissions)
    peak_before = server.provider.book.peak_in_flight
    server.provider.book.peak_in_flight = 0
    with tempfile.TemporaryDirectory() as tmp:
        root = make_project(Path(tmp) / "g", story)
        code, events, err = build(root, *PAID, "--max-cost", str(cap), "--jobs", str(jobs))
        sent = server.submissions[first:]
        spent = sum((price[s["input"]["prompt"].split(" of @")[0]] for s in sent), Decimal(0))
        assert spent <= cap, (spent, cap, err)
        assert server.provider.book.peak_in_flight <= jobs
        states = set(final_states(events).values())
        if "over-budget" in states:
            assert code == 4 and "stopped at the budget" in err
        else:
            assert code == 0, err
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            assert not [a for a in j.all() if a.state in ("planned", "submitting", "unknown")]
    server.provider.book.peak_in_flight = max(peak_before, server.provider.book.peak_in_flight)
