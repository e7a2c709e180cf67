"""The executor's decisions, in process: what it sends, what it records before and after,
what it gives back, when it stops; against the real loopback provider (real HTTP on
127.0.0.1) and the real preview backend, with a real store, journal and lock file.

Builds run as `storyc build` reach these paths too, but in a child process that
`tools/mutation.py executor` cannot tie to a function; these run the executor itself, each
in well under a second or two, so that every mutant of `storyc/build/executor.py` meets
the tests of its function.
"""

from __future__ import annotations

import asyncio
import io
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from s3_support import ACCESS, Bucket, S3Server
from test_build_support import edit_story, make_project

from storyc.backends import BackendOptions, create
from storyc.base.hashing import DigestCache
from storyc.build import faults
from storyc.build.effects import ProjectIO
from storyc.build.executor import Executor, _Stop, _worst, unknown_message
from storyc.build.outcome import BuildOptions, BuildResult
from storyc.build.progress import Reporter
from storyc.build.team import TeamLink
from storyc.compiler import Compilation, compile_project
from storyc.plan.planner import Plan, Planner, RemoteLookup
from storyc.provider import loopback
from storyc.provider.loopback.faults import FaultPlan
from storyc.provider.task import TERMINAL
from storyc.provider.uploads import UploadRegistry
from storyc.remote.claims import ClaimBook, Owner, _host_id
from storyc.remote.planning import plan_with_remote
from storyc.remote.team import TeamStore, open_team
from storyc.state.journal import Attempt, Journal
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

HEAD = 'project "Exec" { quality = "std"  aspect = "16:9" }\n'
STORY = (
    HEAD
    + 'scene one { prompt = "A quiet street"  duration = 5 }\n'
    + 'scene pair { prompt = "Two takes of the harbour"  duration = 10  takes = 2 }\n'
    + 'scene after { start = one.last_frame  prompt = "Then the door opens"  duration = 10 }\n'
    + 'scene snow { edit = one  prompt = "Make it snow" }\n'
)
ASSETS = Path(__file__).parent / "cases" / "payload" / "_assets"
TAKE = Decimal("0.42")  # a 5 s std take
LONG = Decimal("0.84")  # a 10 s one (each take of `pair`)


TAKES = (
    HEAD
    + 'scene one { prompt = "A quiet street"  duration = 5 }\n'
    + 'scene pair { prompt = "Two takes of the harbour"  duration = 5  takes = 2 }\n'
    + 'scene next { start = pair.last_frame  prompt = "Then the boat"  duration = 5 }\n'
)


def scenes(n: int) -> str:
    return HEAD + "".join(
        f'scene s{i} {{ prompt = "Shot number {i}"  duration = 5 }}\n' for i in range(n)
    )


class Events(Reporter):
    """Every scene event, in order; `hook(label, state, detail)` is called on each."""

    def __init__(self) -> None:
        super().__init__(io.StringIO())
        self.log: list[tuple[str, str, str]] = []
        self.notes: list[str] = []
        self.hook: Callable[[str, str, str], None] | None = None

    def _scene(self, scene: str, state: str, detail: str) -> None:
        self.log.append((scene, state, detail))
        if self.hook is not None:
            self.hook(scene, state, detail)

    def note(self, text: str) -> None:
        self.notes.append(text)

    def of(self, label: str) -> list[str]:
        return [state for s, state, _ in self.log if s == label]

    def detail(self, label: str, state: str) -> str:
        found = [d for s, st, d in self.log if s == label and st == state]
        assert found, (label, state, self.log)
        return found[-1]


class Rig:
    """A project on disk with its store, lock file and journal, built in this process."""

    def __init__(
        self, root: Path, story: str, backend: str, server: loopback.LoopbackServer | None
    ) -> None:
        self.root = make_project(root, story)
        self.backend = backend
        self.server = server
        self.store = Store.for_project(self.root)
        self.lock = LockFile()
        self.paid = backend != "preview"
        self.journal = Journal(self.root / ".storyc" / "journal.sqlite") if self.paid else None
        self.digests = DigestCache(self.root / ".storyc" / "digests.json")
        self.comp: Compilation = compile_project(self.root)
        self.events = Events()
        self.executor: Executor | None = None
        self.planner: Planner | None = None

    def edit(self, old: str, new: str) -> None:
        edit_story(self.root, old, new)
        self.comp = compile_project(self.root)

    def project_io(self) -> ProjectIO:
        return ProjectIO(
            self.root, self.store, self.journal, self.lock, self.digests, backend=self.backend
        )

    def plan(
        self,
        *names: str,
        resubmit_unknown: bool = False,
        live_build: bool = False,
        remote: RemoteLookup | None = None,
    ) -> tuple[Plan, ProjectIO]:
        assert not self.comp.has_errors, [d.message for d in self.comp.diagnostics]
        pio = self.project_io()
        sources = pio.sources(
            resubmit_unknown=resubmit_unknown, live_build=live_build, remote=remote
        )
        self.planner = Planner(self.comp.requests, self.comp.order, sources)
        return self.planner.plan(set(names) if names else None), pio

    def build(
        self,
        *names: str,
        hook: Callable[[Executor, str, str, str], None] | None = None,
        before: Callable[[Executor], None] | None = None,
        resubmit_unknown: bool = False,
        live_build: bool = False,
        team: TeamStore | None = None,
        **options: Any,
    ) -> BuildResult:
        self.events = Events()
        link = None
        if team is None:
            plan, pio = self.plan(*names, resubmit_unknown=resubmit_unknown, live_build=live_build)
        else:  # as `storyc build` with a team store: asked first, pulled, not paid
            made: list[tuple[Plan, ProjectIO]] = []

            def make(remote: RemoteLookup | None) -> Plan:
                made.append(self.plan(*names, resubmit_unknown=resubmit_unknown, remote=remote))
                return made[-1][0]

            plan = plan_with_remote(make, team)
            pio = made[-1][1]
            link = TeamLink(
                team,
                note=self.events.scene,
                poll=0.05,
                resubmit_unknown=resubmit_unknown,
            )
        opts = BuildOptions(backend=self.backend, resubmit_unknown=resubmit_unknown, **options)

        async def go() -> BuildResult:
            url = self.server.url if self.server is not None else None
            key = self.server.api_key if self.server is not None else None
            backend = create(
                self.backend,
                BackendOptions(self.root, self.store, url, key, poll_interval=0.02),
            )
            await backend.open()
            pio.base_url = getattr(backend, "base_url", None)
            assert self.planner is not None
            ex = Executor(plan, self.planner, backend, pio, opts, self.events, link)
            self.executor = ex
            if hook is not None:
                self.events.hook = lambda s, st, d: hook(ex, s, st, d)
            if before is not None:
                before(ex)
            try:
                return await ex.run()
            finally:
                await backend.close()

        return asyncio.run(go())

    def attempts(self, scene: str | None = None) -> list[Attempt]:
        assert self.journal is not None
        return [a for a in self.journal.all() if scene is None or a.scene == scene]

    def key(self, scene: str, take: int = 1, **up: str) -> str:
        return self.project_io().key(self.comp.requests[scene], take, up)

    def sent(self) -> int:
        assert self.server is not None
        return len(self.server.submissions)

    def close(self) -> None:
        if self.journal is not None:
            self.journal.close()


@pytest.fixture(scope="module")
def server() -> Iterator[loopback.LoopbackServer]:
    with loopback.serve(latency=0.05, fast_outputs=True) as srv:
        yield srv


@pytest.fixture
def provider(server: loopback.LoopbackServer) -> Iterator[loopback.LoopbackServer]:
    """The module's provider with no faults (each test adds its own)."""
    server.provider.options.faults = FaultPlan()
    server.provider.options.latency = 0.05
    yield server
    server.provider.options.faults = FaultPlan()


@pytest.fixture
def paid(tmp_path: Path, provider: loopback.LoopbackServer) -> Iterator[Rig]:
    rig = Rig(tmp_path / "p", STORY, "inference", provider)
    yield rig
    rig.close()


def paid_rig(tmp_path: Path, provider: loopback.LoopbackServer, story: str) -> Rig:
    return Rig(tmp_path / "q", story, "inference", provider)


@pytest.fixture
def fault_points(monkeypatch: pytest.MonkeyPatch) -> Callable[[dict[str, float]], None]:
    """Pause the build at named points (`storyc.build.faults`), for this test only."""

    def arm(pauses: dict[str, float]) -> None:
        monkeypatch.setattr(faults, "_rules", {p: ("sleep", s) for p, s in pauses.items()})

    monkeypatch.setattr(faults, "_rules", {})
    return arm


# -- pure pieces --------------------------------------------------------------------------


def test_worst_error_is_a_failure_then_the_most_telling_stop() -> None:
    fail = RuntimeError("boom")
    stops = {s: _Stop(s, s) for s in ("deferred", "running", "stopped", "expired")}
    unknown, over = _Stop("unknown", "u"), _Stop("over-budget", "o")
    assert _worst([stops["deferred"], fail, unknown]) is fail
    assert _worst([stops["deferred"], over, unknown]) is unknown
    assert _worst([stops["stopped"], over]) is over
    assert _worst([stops["stopped"], stops["expired"]]) is stops["expired"]
    assert _worst([stops["running"], stops["stopped"]]) is stops["stopped"]
    assert _worst([stops["deferred"], stops["running"]]) is stops["running"]
    assert _worst([stops["deferred"]]) is stops["deferred"]
    odd = _Stop("blocked", "b")
    assert _worst([odd, _Stop("blocked", "c")]) is odd


def test_the_unknown_message_names_the_take_only_among_several() -> None:
    assert unknown_message("arrival", 1, 1) == (
        "an earlier submission of this request may have reached the provider (its fate is "
        "unknown), so it is not sent again. Find the task on the provider's dashboard and run "
        "`storyc adopt arrival TASK_ID`; if it never ran, `storyc forget arrival`; or build "
        "with --resubmit-unknown to send it again (this may pay twice)"
    )
    assert "`storyc adopt arrival TASK_ID --take 2`" in unknown_message("arrival", 2, 2)
    one = unknown_message("arrival", 1, 1)
    assert "`storyc adopt arrival TASK_ID`;" in one and "`storyc forget arrival`" in one
    assert "--take" not in one and "--resubmit-unknown" in one
    two = unknown_message("arrival", 2, 3)
    assert "storyc adopt arrival TASK_ID --take 2" in two
    assert "`storyc forget arrival --take 2`" in two


def test_stop_asks_three_things_in_turn(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "p", scenes(1), "preview", None)
    plan, pio = rig.plan()

    async def go() -> None:
        backend = create("preview", BackendOptions(rig.root, rig.store))
        assert rig.planner is not None
        ex = Executor(plan, rig.planner, backend, pio, BuildOptions(), rig.events)
        assert ex._may_send() and ex.result.interrupted is False
        ex.stop("asked by the user")
        assert ex.result.interrupted is True
        assert ex.result.stopped_reason == "asked by the user"
        assert not ex._may_send() and not ex._abandon.is_set()
        ex.stop("again")
        assert ex._abandon.is_set() and ex.result.stopped_reason == "asked by the user"
        plain = Executor(plan, rig.planner, backend, pio, BuildOptions(), rig.events)
        plain.stop()
        assert plain.result.stopped_reason == "interrupted"
        sleeper = asyncio.create_task(asyncio.sleep(30))
        ex._tasks.append(sleeper)
        ex.stop()
        await asyncio.gather(sleeper, return_exceptions=True)
        assert sleeper.cancelled()

    asyncio.run(go())


def test_may_send_and_halt(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "p", scenes(1), "preview", None)
    plan, pio = rig.plan()
    backend = create("preview", BackendOptions(rig.root, rig.store))
    assert rig.planner is not None
    ex = Executor(plan, rig.planner, backend, pio, BuildOptions(), rig.events)
    ex._halt("over budget: first", sends_too=False)
    assert ex.result.halted == "over budget: first" and ex._may_send()
    ex._halt("no balance", sends_too=True)
    assert ex.result.halted == "over budget: first"  # the first reason stays
    assert ex._refused == "no balance" and not ex._may_send()
    ex._halt("another", sends_too=True)
    assert ex._refused == "no balance"
    collecting = BuildOptions(collect_only=True)
    assert not Executor(plan, rig.planner, backend, pio, collecting, rig.events)._may_send()


# -- a paid take: decided, reserved, journaled, sent, followed, recorded -------------------


def test_a_paid_take_is_recorded_before_it_is_sent_and_after_it_finished(paid: Rig) -> None:
    seen: dict[str, Any] = {}

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "submitting":  # told right before the POST leaves
            (att,) = paid.attempts("one")
            seen["state"], seen["sent"] = att.state, paid.sent() - before
            seen["request"], seen["committed"] = att.request, ex.result.committed

    before = paid.sent()
    result = paid.build("one", hook=hook)
    assert seen["state"] == "submitting" and seen["sent"] == 0 and seen["request"]
    assert seen["committed"] == TAKE  # reserved before anything was awaited
    assert paid.sent() - before == 1
    assert (result.submitted, result.sent, result.committed) == (1, TAKE, TAKE)
    assert result.failed_attempts == 0 and result.billed is None and result.ok
    (att,) = paid.attempts("one")
    out = result.scenes["one"]
    take = out.takes[1]
    assert (out.scene, out.state, out.picked) == ("one", "done", 1)
    assert (take.how, take.key) == ("rendered", paid.key("one"))
    assert (att.state, att.key, att.take, att.estimate) == ("completed", take.key, 1, TAKE)
    assert att.task_id == take.task_id and att.output == take.digest and att.url == take.url
    assert att.base_url == paid.server.url and att.body_digest and not att.detached  # type: ignore[union-attr]
    assert take.cost == TAKE and take.duration == 5  # as the provider reported it
    rec = paid.store.lookup_render(take.key)
    assert rec is not None and (rec.output, rec.task_id, rec.url) == (
        take.digest,
        take.task_id,
        take.url,
    )
    assert rec.scene == "one" and rec.take == 1 and rec.duration == take.duration
    entry = paid.lock.table("inference")["one"]
    assert [(t.key, t.output, t.cost) for t in entry.takes] == [(take.key, take.digest, TAKE)]
    states = paid.events.of("one")
    assert states[:2] == ["preparing", "submitting"] and states[-1] == "done"
    assert "submitted" in states and paid.events.detail("one", "done") == "rendered"
    assert "task:downloading" in states  # the provider's progress, as it comes
    assert paid.events.detail("one", "submitted") == f"task {take.task_id}"
    assert paid.events.detail("one", "preparing") == "hashing inputs, frames"
    assert paid.executor is not None and paid.executor.in_flight == 0
    assert paid.executor.budget.cap is None


def test_every_take_is_sent_once_under_its_own_label(paid: Rig) -> None:
    before = paid.sent()
    result = paid.build("pair")
    assert paid.sent() - before == 2 and result.submitted == 2 and result.sent == 2 * LONG
    out = result.scenes["pair"]
    assert sorted(out.takes) == [1, 2] and out.picked == 1
    assert out.takes[1].digest and out.takes[1].key != out.takes[2].key
    assert "submitting" in paid.events.of("pair#1") and "submitting" in paid.events.of("pair#2")
    assert paid.events.of("pair")[-1] == "done"
    assert sorted(a.take for a in paid.attempts("pair")) == [1, 2]
    # built again: nothing is sent, every take is reused from the key index
    again = paid.build("pair")
    assert paid.sent() - before == 2 and again.submitted == 0 and again.reused == 2
    assert again.scenes["pair"].state == "reused"
    assert {t.how for t in again.scenes["pair"].takes.values()} == {"reused"}
    assert again.scenes["pair"].takes[2].digest == out.takes[2].digest


def test_the_budget_stops_the_build_at_the_first_take_that_does_not_fit(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    rig = paid_rig(tmp_path, provider, scenes(3))
    before = rig.sent()
    result = rig.build(max_cost=TAKE)
    assert rig.sent() - before == 1
    states = {s: o.state for s, o in result.scenes.items()}
    assert states == {"s0": "done", "s1": "over-budget", "s2": "over-budget"}
    assert "would exceed the budget of $0.42" in (result.scenes["s1"].error or "")
    assert result.scenes["s2"].error == "not submitted: the budget is spent"
    assert rig.events.detail("s2", "over-budget") == "not submitted: the budget is spent"
    assert (result.halted or "").startswith("over budget: $0.42 already sent or reserved")
    assert result.committed == TAKE and result.sent == TAKE
    assert rig.executor is not None and rig.executor.budget.cap == TAKE
    assert rig.executor._refused is None  # what fits was still sent
    assert len(rig.attempts()) == 1  # nothing journaled for what was not sent
    rig.close()


def test_a_budget_with_room_sends_everything(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    rig = paid_rig(tmp_path, provider, scenes(2))
    result = rig.build(max_cost=2 * TAKE)
    assert result.ok and result.submitted == 2 and result.committed == 2 * TAKE
    assert result.halted is None
    rig.close()


def test_a_budget_refuses_a_take_of_unknown_cost_and_says_why(paid: Rig) -> None:
    paid.build("one")
    before = paid.sent()
    result = paid.build("snow", max_cost=Decimal(5))  # `one` is not built now: its length
    assert paid.planner is not None  # is not known to the plan, so neither is the price
    price = paid.planner.price(paid.comp.requests["snow"])
    assert price.amount is None and price.reason
    snow = result.scenes["snow"]
    assert (snow.state, snow.error) == (
        "over-budget",
        f"not submitted: its cost is unknown ({price.reason}), and a budget needs a price",
    )
    assert paid.sent() == before and paid.attempts("snow") == [] and result.committed == 0


def test_a_balance_refusal_halts_every_send_that_has_not_left(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    rig = paid_rig(tmp_path, provider, scenes(3))
    provider.add_fault("submit:402:times=1")
    result = rig.build(jobs=1, retries=3)
    states = sorted(o.state for o in result.scenes.values())
    assert states == ["failed", "failed", "failed"]
    refused = [o for o in result.scenes.values() if "not submitted" not in (o.error or "")]
    assert len(refused) == 1 and result.halted and result.halted in (refused[0].error or "")
    others = [o.error for o in result.scenes.values() if o is not refused[0]]
    assert others == [f"not submitted: {result.halted}"] * 2
    assert result.committed == 0 and result.submitted == 0  # every reservation came back
    assert rig.executor is not None and rig.executor._refused == result.halted
    (failed,) = rig.attempts()  # the others were never journaled
    assert failed.state == "failed" and not failed.may_have_cost
    assert failed.error == result.halted
    assert provider.faults.counts["submit"] == 1  # nothing else reached the provider
    rig.close()


@pytest.mark.parametrize("refusal", ["402", "401"])  # no balance; a refused key
def test_a_refusal_stops_the_sends_still_preparing(
    tmp_path: Path, provider: loopback.LoopbackServer, refusal: str
) -> None:
    story = (
        HEAD
        + 'image market "assets/market.png"\n'
        + 'scene s0 { prompt = "The first shot"  duration = 5 }\n'
        + "".join(
            f'scene s{i} {{ prompt = "Shot {i} of @market"  duration = 5 }}\n' for i in (1, 2)
        )
    )
    rig = paid_rig(tmp_path, provider, story)
    provider.add_fault(f"submit:{refusal}:times=1")
    provider.add_fault("upload:delay:seconds=0.5")  # s1 and s2 still upload when s0 is refused
    result = rig.build(jobs=4)
    assert [result.scenes[s].state for s in ("s0", "s1", "s2")] == ["failed"] * 3
    assert result.halted and result.halted in (result.scenes["s0"].error or "")
    assert (result.setup_error == result.halted) is (refusal == "401")
    for s in ("s1", "s2"):
        assert result.scenes[s].error == f"not submitted: {result.halted}"
    assert result.committed == 0 and result.submitted == 0
    states = sorted(a.state for a in rig.attempts())
    assert states == ["failed", "not_sent", "not_sent"]
    assert provider.faults.counts["submit"] == 1
    rig.close()


def test_a_turned_away_send_is_given_back_and_sent_again(paid: Rig) -> None:
    paid.server.add_fault("submit:429:retry_after=1000:times=1")  # type: ignore[union-attr]
    before = paid.sent()
    result = paid.build("one")
    assert result.ok and paid.sent() - before == 1
    assert (result.submitted, result.committed, result.sent) == (1, TAKE, TAKE)
    first, second = paid.attempts("one")
    assert first.state == "failed" and not first.may_have_cost and first.task_id is None
    assert second.state == "completed"
    assert "retrying" in paid.events.of("one") and first.error
    assert paid.events.detail("one", "retrying") == f"{first.error} (attempt 2)"


def test_a_take_among_several_turned_away_is_sent_again_under_its_own_label(paid: Rig) -> None:
    paid.server.add_fault("submit:429:retry_after=1000:times=1")  # type: ignore[union-attr]
    result = paid.build("pair")
    assert result.ok and result.submitted == 2
    retried = [(s, d) for s, state, d in paid.events.log if state == "retrying"]
    assert len(retried) == 1 and retried[0][0] in ("pair#1", "pair#2")
    assert retried[0][1].endswith(" (attempt 2)")


def test_a_send_turned_away_more_often_than_the_retries_fails(paid: Rig) -> None:
    paid.server.add_fault("submit:429:retry_after=1000")  # type: ignore[union-attr]
    result = paid.build("one", retries=1)
    assert result.scenes["one"].state == "failed" and result.committed == 0
    assert [a.state for a in paid.attempts("one")] == ["failed", "failed"]
    assert paid.events.of("one").count("retrying") == 1
    none = paid.build("one", retries=0)
    assert none.scenes["one"].state == "failed" and len(paid.attempts("one")) == 3
    assert "retrying" not in paid.events.of("one")


def test_a_send_that_may_have_arrived_is_never_sent_again(paid: Rig) -> None:
    paid.server.add_fault("submit:drop:times=1")  # type: ignore[union-attr]
    result = paid.build("one", retries=3)
    out = result.scenes["one"]
    assert out.state == "unknown" and "storyc adopt one TASK_ID" in (out.error or "")
    (att,) = paid.attempts("one")
    assert att.state == "unknown" and att.may_have_cost
    assert att.error and (out.error or "").startswith(f"{att.error}; ")  # the journal says why
    assert result.committed == TAKE  # it may have cost: it stays reserved
    assert result.submitted == 0 and "retrying" not in paid.events.of("one")
    assert paid.server.faults.counts["submit"] == 1  # type: ignore[union-attr]


def test_a_failed_task_is_paid_for_and_sent_again_within_the_retries(paid: Rig) -> None:
    paid.server.add_fault("submit:fail:times=1")  # type: ignore[union-attr]
    result = paid.build("one")
    assert result.ok and result.submitted == 2 and result.sent == 2 * TAKE
    assert result.failed_attempts == 1 and result.failed_cost == TAKE
    first, second = paid.attempts("one")
    assert first.state == "failed" and first.task_id and first.may_have_cost
    assert (first.error or "").startswith(f"task {first.task_id} failed on the provider")
    assert second.state == "completed"
    assert "retrying" in paid.events.of("one")


def test_a_task_rejected_for_the_balance_stops_the_build(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    rig = paid_rig(tmp_path, provider, scenes(2))
    provider.add_fault("submit:reject:times=1")
    result = rig.build(jobs=1, retries=3)
    states = [result.scenes[s].state for s in ("s0", "s1")]
    assert states == ["failed", "failed"] and result.submitted == 1
    assert result.scenes["s1"].error == f"not submitted: {result.halted}"
    assert result.failed_attempts == 1 and provider.faults.counts["submit"] == 1
    rig.close()


def test_a_refused_key_is_a_setup_error_that_halts(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    rig = paid_rig(tmp_path, provider, scenes(2))
    provider.add_fault("submit:401:times=1")
    result = rig.build(jobs=1)
    assert result.setup_error and result.halted == result.setup_error
    assert [result.scenes[s].state for s in ("s0", "s1")] == ["failed", "failed"]
    assert result.scenes["s1"].error == f"not submitted: {result.setup_error}"
    assert result.committed == 0 and result.submitted == 0
    (att,) = rig.attempts()
    assert att.state == "failed" and not att.may_have_cost
    assert att.error == result.setup_error
    rig.close()


# -- not waiting, collecting, re-attaching -------------------------------------------------


def test_a_detached_take_is_sent_recorded_and_left_running(paid: Rig) -> None:
    paid.server.provider.options.latency = 1.5  # type: ignore[union-attr]
    result = paid.build("one", detach=True)
    out = result.scenes["one"]
    (att,) = paid.attempts("one")
    assert out.state == "running" and att.state == "submitted" and att.detached
    assert result.running == [("one", att.task_id)]
    counts = paid.server.faults.counts  # type: ignore[union-attr]
    assert counts["submit"] == 1 and not {"task", "status", "stream"} & set(counts)  # not asked
    assert out.error == (
        f"task {att.task_id} sent; collect it with `storyc build` (or `storyc webhook serve`)"
    )
    assert result.submitted == 1 and result.committed == TAKE
    assert paid.executor is not None and paid.executor.in_flight == 1  # it keeps its slot
    # asked again without waiting: still running, left as it is
    asked = counts.get("status", 0)
    again = paid.build("one", detach=True)
    assert again.scenes["one"].state == "running" and again.submitted == 0
    assert counts["status"] == asked + 1  # once: not asked again as another build's task
    assert again.running == [("one", att.task_id)]
    assert paid.events.detail("one", "collecting") == f"task {att.task_id}"
    assert "is running" in (again.scenes["one"].error or "") or "queued" in (
        again.scenes["one"].error or ""
    )
    assert paid.executor.in_flight == 1
    # finished: the next build that waits re-attaches and records it, paying nothing more
    paid.server.provider.options.latency = 0.05  # type: ignore[union-attr]
    done = paid.build("one")
    take = done.scenes["one"].takes[1]
    assert (done.reattached, done.submitted, take.how) == (1, 0, "reattached")
    assert take.task_id == att.task_id and take.cost == TAKE
    assert paid.events.detail("one", "re-attaching") == f"task {att.task_id}"
    assert paid.attempts("one")[0].state == "completed" and len(paid.attempts("one")) == 1
    assert paid.store.lookup_render(take.key) is not None
    assert paid.executor.in_flight == 0


def test_a_detached_take_that_finished_is_collected(paid: Rig) -> None:
    first = paid.build("one", detach=True)
    assert first.scenes["one"].state == "running"
    (att,) = paid.attempts("one")
    for _ in range(100):  # the provider finishes it (latency 0.05 s)
        result = paid.build("one", detach=True)
        if result.scenes["one"].state != "running":
            break
    assert result.scenes["one"].state == "done" and result.collected == 1
    assert result.reattached == 0 and result.submitted == 0
    take = result.scenes["one"].takes[1]
    assert take.how == "collected" and take.task_id == att.task_id and take.cost == TAKE
    assert paid.attempts("one")[0].state == "completed"


def test_a_re_attached_task_that_failed_is_sent_again(paid: Rig) -> None:
    paid.server.add_fault("submit:fail:times=1")  # type: ignore[union-attr]
    first = paid.build("one", detach=True)
    assert first.scenes["one"].state == "running"
    result = paid.build("one")
    assert result.ok and result.submitted == 1 and result.reattached == 0
    failed, sent = paid.attempts("one")
    assert failed.state == "failed" and sent.state == "completed"
    assert paid.events.detail("one", "retrying").startswith(f"task {failed.task_id} failed")
    assert result.scenes["one"].takes[1].how == "rendered"
    assert result.committed == TAKE  # the new send was reserved


def test_a_detached_build_defers_what_finds_no_free_slot(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    rig = paid_rig(tmp_path, provider, scenes(2))
    provider.provider.options.latency = 5.0
    result = rig.build(detach=True, jobs=1)
    states = sorted(o.state for o in result.scenes.values())
    assert states == ["deferred", "running"] and result.submitted == 1
    deferred = next(o for o in result.scenes.values() if o.state == "deferred")
    assert deferred.error == (
        "not sent: 1 task(s) in flight (--jobs); a later `storyc build` sends it"
    )
    assert result.committed == TAKE
    rig.close()


def test_a_scene_that_uses_a_running_scene_is_deferred(paid: Rig) -> None:
    paid.server.provider.options.latency = 5.0  # type: ignore[union-attr]
    result = paid.build("one", "after", detach=True)
    assert result.scenes["one"].state == "running"
    assert result.scenes["after"].state == "deferred"
    assert result.scenes["after"].error == (
        "uses scene 'one', not rendered yet; a later `storyc build` sends it"
    )
    assert paid.events.detail("after", "waiting") == "for one"


def test_collecting_only_sends_nothing(paid: Rig) -> None:
    before = paid.sent()
    result = paid.build("one", collect_only=True)
    assert paid.sent() == before and result.submitted == 0
    assert result.scenes["one"].state == "deferred"
    assert result.scenes["one"].error == (
        "not sent: collecting only; a later `storyc build` sends it"
    )
    assert paid.attempts() == []


def test_jobs_bounds_the_tasks_in_flight(tmp_path: Path, provider: loopback.LoopbackServer) -> None:
    rig = paid_rig(tmp_path, provider, scenes(3))
    result = rig.build(jobs=1)
    assert result.ok and result.submitted == 3
    assert rig.executor is not None and rig.executor.slots.peak == 1
    waited = [s for s in ("s0", "s1", "s2") if "pending" in rig.events.of(s)]
    assert len(waited) == 2
    assert rig.events.detail(waited[0], "pending") == "waiting for a free slot"
    rig.close()


def test_tasks_sent_for_an_earlier_version_are_collected(paid: Rig) -> None:
    paid.server.provider.options.latency = 0.3  # type: ignore[union-attr]
    paid.build("one", detach=True)
    (old,) = paid.attempts("one")
    paid.edit('"A quiet street"', '"A quiet street at night"')
    paid.server.provider.options.latency = 0.05  # type: ignore[union-attr]
    for _ in range(100):  # the next build that finds the old task finished collects it
        result = paid.build("one")
        if result.collected:
            break
    assert result.collected == 1 and result.scenes["one"].state in ("done", "reused")
    found = paid.journal.get(old.id)  # type: ignore[union-attr]
    assert found.state == "completed" and found.output
    rec = paid.store.lookup_render(old.key)
    assert rec is not None and rec.output == found.output and rec.task_id == old.task_id
    assert rec.scene == "one" and rec.take == 1 and rec.url == found.url
    assert rec.duration == 5  # as the provider reported it
    assert paid.events.notes == [
        f"one: collected task {old.task_id}, sent for an earlier version of the scene "
        "(kept in the store: going back to it costs nothing)"
    ]
    # going back to it costs nothing
    paid.edit('"A quiet street at night"', '"A quiet street"')
    back = paid.build("one")
    assert back.submitted == 0 and back.scenes["one"].takes[1].digest == found.output


def test_every_take_re_attached_and_every_stray_collected_is_counted(paid: Rig) -> None:
    paid.build("pair", detach=True)
    done = paid.build("pair")  # waits: both takes re-attached
    assert done.ok and (done.reattached, done.submitted) == (2, 0)
    # each under its own label, as it was sent
    reattached = [s for s, state, _ in paid.events.log if state == "re-attaching"]
    assert sorted(reattached) == ["pair#1", "pair#2"]
    paid.edit('"Two takes of the harbour"', '"Two takes of the harbour at dusk"')
    paid.build("pair", detach=True)
    sent = [a.task_id for a in paid.attempts("pair") if a.state == "submitted"]
    book = paid.server.provider.book  # type: ignore[union-attr]
    for _ in range(500):  # both finished on the provider before the next build asks
        if all(book.state[t] in TERMINAL for t in sent):
            break
        time.sleep(0.02)
    paid.edit('"Two takes of the harbour at dusk"', '"Two takes of the harbour at night"')
    result = paid.build("pair")
    assert len(sent) == 2 and result.ok and result.collected == 2
    assert len(paid.events.notes) == 2


def test_every_take_collected_without_waiting_is_counted(paid: Rig) -> None:
    paid.build("pair", detach=True)
    sent = [a.task_id for a in paid.attempts("pair")]
    book = paid.server.provider.book  # type: ignore[union-attr]
    for _ in range(500):  # both finished on the provider before the next build asks
        if all(book.state[t] in TERMINAL for t in sent):
            break
        time.sleep(0.02)
    result = paid.build("pair", detach=True)
    assert result.scenes["pair"].state == "done" and result.submitted == 0
    assert (result.collected, result.reattached) == (2, 0)


def test_a_stray_task_that_failed_is_recorded_failed(paid: Rig) -> None:
    paid.server.add_fault("submit:fail:times=1")  # type: ignore[union-attr]
    paid.build("one", detach=True)
    (old,) = paid.attempts("one")
    paid.edit('"A quiet street"', '"A quiet street at night"')
    for _ in range(100):
        paid.build("one")
        if paid.journal.get(old.id).state != "submitted":  # type: ignore[union-attr]
            break
    failed = paid.journal.get(old.id)  # type: ignore[union-attr]
    # the provider's own words: what `storyc journal` shows for a task paid for nothing
    assert failed.state == "failed" and "generation failed" in (failed.error or "")
    assert paid.store.lookup_render(old.key) is None and paid.events.notes == []


# -- stopping ------------------------------------------------------------------------------


def test_a_stop_while_preparing_sends_nothing_and_gives_back(
    paid: Rig, fault_points: Callable[[dict[str, float]], None]
) -> None:
    fault_points({"hashing": 30.0})  # a long preparation, cut short by the stop

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "preparing":
            ex.stop("interrupted")

    before = paid.sent()
    result = paid.build("one", hook=hook)
    out = result.scenes["one"]
    assert (out.state, out.error) == ("stopped", "not sent: the build was interrupted")
    assert paid.sent() == before and result.committed == 0 and result.interrupted
    (att,) = paid.attempts("one")
    assert (att.state, att.error) == ("not_sent", "interrupted before sending")


def test_a_stop_at_the_last_moment_sends_nothing(paid: Rig) -> None:
    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "preparing":
            ex.stop("interrupted")  # the preparation is quick: the guard of the POST says no

    before = paid.sent()
    result = paid.build("one", hook=hook, retries=3)
    out = result.scenes["one"]
    assert (out.state, out.error) == ("stopped", "not sent: the build was interrupted")
    assert paid.sent() == before and result.committed == 0
    (att,) = paid.attempts("one")
    assert att.state == "not_sent" and "stopped" in (att.error or "")


def test_nothing_is_started_after_a_stop(tmp_path: Path, provider: loopback.LoopbackServer) -> None:
    rig = paid_rig(tmp_path, provider, scenes(2))
    result = rig.build(before=lambda ex: ex.stop("interrupted"))
    for out in result.scenes.values():
        assert (out.state, out.error) == ("stopped", "not started: the build was interrupted")
    assert rig.attempts() == [] and result.committed == 0
    rig.close()


def test_a_second_stop_leaves_a_sent_task_to_the_next_build(paid: Rig) -> None:
    paid.server.provider.options.latency = 5.0  # type: ignore[union-attr]

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "submitted":
            ex.stop()
            ex.stop()

    result = paid.build("one", hook=hook)
    (att,) = paid.attempts("one")
    out = result.scenes["one"]
    assert out.state == "stopped" and att.state == "submitted"
    assert out.error == (
        f"interrupted; task {att.task_id} stays recorded and is re-attached by the next build"
    )
    assert result.submitted == 1 and result.committed == TAKE


def test_a_free_render_is_finished_before_a_second_stop_can_abandon_it(tmp_path: Path) -> None:
    # the preview renders inside `submit`: by the time it is followed there is nothing left
    # to abandon, and what was rendered is kept
    rig = Rig(tmp_path / "p", scenes(1), "preview", None)

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "rendering":
            ex.stop()
            ex.stop()

    result = rig.build(hook=hook)
    out = result.scenes["s0"]
    assert (out.state, out.error, result.interrupted) == ("done", None, True)
    assert rig.store.has(out.takes[1].digest or "")


# -- free renders --------------------------------------------------------------------------


def test_a_preview_has_no_budget_no_journal_and_no_cost(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "p", TAKES, "preview", None)
    result = rig.build("one", "pair", max_cost=Decimal(0))
    assert result.ok and result.submitted == 3 and result.sent == 0 and result.committed == 0
    assert rig.executor is not None and rig.executor.budget.cap is None
    take = result.scenes["one"].takes[1]
    assert take.how == "rendered" and take.cost is None and take.task_id is None
    assert take.duration == 5.0
    assert "preparing" not in rig.events.of("one") and "rendering" in rig.events.of("one")
    assert "submitted" not in rig.events.of("one")
    assert rig.lock.table("preview")["one"].takes[0].cost == 0
    assert result.scenes["pair"].takes[1].digest != result.scenes["pair"].takes[2].digest


# -- obtaining a take without paying: reuse, recover, fetch --------------------------------


def test_an_output_the_key_index_lacks_is_recovered_into_it(paid: Rig) -> None:
    first = paid.build("one")
    take = first.scenes["one"].takes[1]
    rec = paid.store.lookup_render(take.key)
    assert rec is not None
    Path(paid.store._record_path("renders", take.key)).unlink()
    assert paid.store.lookup_render(take.key) is None
    result = paid.build("one")
    again = result.scenes["one"].takes[1]
    assert result.submitted == 0 and result.reused == 1
    assert (again.how, again.digest, again.task_id, again.url, again.cost) == (
        "recovered",
        take.digest,
        take.task_id,
        take.url,
        TAKE,
    )
    assert result.scenes["one"].state == "reused"  # settled at once: nothing to wait for
    assert paid.events.detail("one", "reused") == "recovered"
    found = paid.store.lookup_render(take.key)  # the index learnt it again
    assert found is not None and found.output == take.digest and found.task_id == take.task_id


def test_a_reused_take_without_a_known_length_is_measured(paid: Rig) -> None:
    first = paid.build("one")
    take = first.scenes["one"].takes[1]
    entry = paid.lock.table("inference")["one"]
    entry.takes[0].duration = None
    Path(paid.store._record_path("renders", take.key)).unlink()
    result = paid.build("one")
    again = result.scenes["one"].takes[1]
    assert again.how == "recovered" and again.duration == pytest.approx(take.duration, abs=0.1)
    assert paid.lock.table("inference")["one"].takes[0].duration == again.duration


def test_a_reused_take_keeps_its_recorded_length_unmeasured(paid: Rig) -> None:
    # a no-op build reads what the lock knows: it probes no video (4.5 s is not the file's)
    paid.build("one")
    paid.lock.table("inference")["one"].takes[0].duration = 4.5
    result = paid.build("one")
    again = result.scenes["one"].takes[1]
    assert again.how == "reused" and again.duration == 4.5


def test_a_missing_output_is_fetched_from_its_recorded_url_and_checked(paid: Rig) -> None:
    first = paid.build("one", "pair")
    take = first.scenes["one"].takes[1]
    paid.store.remove(take.digest)
    before = paid.sent()
    result = paid.build("one")
    again = result.scenes["one"].takes[1]
    assert paid.sent() == before and result.submitted == 0
    assert (again.how, again.digest, again.url, again.task_id, again.cost) == (
        "refetched",
        take.digest,
        take.url,
        take.task_id,
        TAKE,
    )
    assert paid.store.has(take.digest) and again.duration == take.duration
    assert paid.events.detail("one", "fetching") == "from the recorded URL"
    assert paid.events.detail("one", "done") == "refetched"
    rec = paid.store.lookup_render(take.key)
    assert rec is not None and rec.output == take.digest
    # a URL that now gives other bytes: not kept, not fetched again, rendered next time
    other = first.scenes["pair"].takes[1]
    paid.store.remove(take.digest)
    paid.lock.table("inference")["one"].takes[0].url = other.url
    bad = paid.build("one")
    out = bad.scenes["one"]
    assert out.state == "expired" and not paid.store.has(take.digest)
    assert (out.error or "").startswith("take 1: the recorded URL now gives other bytes")
    assert (out.error or "").endswith("; the next build renders it again ($0.42, asked first)")
    assert (paid.store.unfetchable(take.key, other.url or "") or "").startswith(
        "the recorded URL now gives other bytes than the recorded output"
    )
    assert paid.sent() == before and bad.committed == 0
    # the next plan tries the URL the render record holds, not the one that gave other bytes
    plan, _ = paid.plan("one")
    d = plan.scenes["one"].decisions[1]
    assert (d.action, d.url) == ("fetch", take.url)


def test_a_url_that_cannot_be_reached_now_is_tried_again_later(paid: Rig) -> None:
    first = paid.build("one")
    take = first.scenes["one"].takes[1]
    paid.store.remove(take.digest)
    paid.server.add_fault("download:503")  # type: ignore[union-attr]

    def quick(ex: Executor) -> None:  # the client's retries, without their pauses
        ex.backend.client.backoff_base = 0.0  # type: ignore[attr-defined]

    result = paid.build("one", before=quick)
    out = result.scenes["one"]
    assert out.state == "failed"
    assert (out.error or "").startswith("take 1: could not fetch its recorded URL: ")
    assert paid.events.detail("one", "failed") == out.error
    assert paid.store.unfetchable(take.key, take.url or "") is None
    plan, _ = paid.plan("one")
    assert plan.scenes["one"].decisions[1].action == "fetch"


def test_an_attempt_of_unknown_fate_waits_for_the_users_word(paid: Rig) -> None:
    paid.server.add_fault("submit:drop:times=1")  # type: ignore[union-attr]
    paid.build("one")
    before = paid.sent()
    result = paid.build("one", "after")
    out = result.scenes["one"]
    assert out.state == "unknown" and out.error == unknown_message("one", 1, 1)
    assert paid.sent() == before and result.committed == 0
    after = result.scenes["after"]
    assert (after.state, after.cause) == ("blocked", "unknown")
    assert after.error == "scene 'one' it uses did not render"
    # the user's word: send it again
    again = paid.build("one", resubmit_unknown=True)
    assert again.ok and again.submitted == 1 and paid.sent() == before + 1
    states = sorted(a.state for a in paid.attempts("one"))
    assert states == ["completed", "failed"]
    resolved = next(a for a in paid.attempts("one") if a.state == "failed")
    assert resolved.decision == "resend"


# -- scenes that use scenes ----------------------------------------------------------------


def test_a_scene_waits_for_the_frame_of_the_scene_it_uses(paid: Rig) -> None:
    result = paid.build("one", "after")
    one, after = result.scenes["one"], result.scenes["after"]
    assert one.state == after.state == "done"
    assert paid.events.detail("after", "waiting") == "for one"
    frame = paid.store.lookup_derived(one.takes[1].digest or "", "last_frame")
    assert frame is not None
    assert after.takes[1].key == paid.key("after", one=one.takes[1].digest or "")
    (att,) = paid.attempts("after")
    assert "uploading" in paid.events.of("after")
    assert paid.events.detail("after", "uploading") == "1 input(s)"
    assert "uploading" not in paid.events.of("one")  # it has no input to upload
    assert att.request and '"image"' in att.request and "$scene" not in att.request
    assert json.loads(att.request)["app"] == paid.comp.requests["after"].app  # whole, as sent
    # built again: the same upstream, nothing re-decided, nothing sent
    again = paid.build("one", "after")
    assert again.submitted == 0 and again.scenes["after"].state == "reused"
    # its upstream settled first, as planned: settled too, no scene task started
    assert paid.executor is not None and paid.executor._tasks == []


def test_a_scene_built_alone_uses_what_the_lock_file_records(paid: Rig) -> None:
    first = paid.build("one")
    digest = first.scenes["one"].takes[1].digest or ""
    result = paid.build("after", "snow")
    assert "one" not in result.scenes or result.scenes["one"].state == "reused"
    after = result.scenes["after"]
    assert after.state == "done" and after.takes[1].key == paid.key("after", one=digest)


def test_a_scene_built_alone_whose_upstream_has_no_output_is_blocked(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    rig = paid_rig(tmp_path, provider, STORY)
    plan, pio = rig.plan("one", "after")
    del plan.scenes["one"]  # as if `--scene after` with `one` never built
    plan.order = [s for s in plan.order if s != "one"]

    async def go() -> BuildResult:
        backend = create(
            "inference", BackendOptions(rig.root, rig.store, provider.url, provider.api_key)
        )
        await backend.open()
        assert rig.planner is not None
        ex = Executor(
            plan, rig.planner, backend, pio, BuildOptions(backend="inference"), rig.events
        )
        try:
            return await ex.run()
        finally:
            await backend.close()

    result = asyncio.run(go())
    after = result.scenes["after"]
    assert (after.state, after.error) == ("blocked", "uses scene 'one', which has no output yet")
    rig.close()


def test_an_edit_is_priced_by_the_length_of_the_video_it_edits(paid: Rig) -> None:
    result = paid.build("one", "snow")
    one = result.scenes["one"].takes[1]
    snow = result.scenes["snow"]
    assert snow.state == "done"
    (att,) = paid.attempts("snow")
    assert paid.planner is not None and one.duration is not None
    price = paid.planner.price(paid.comp.requests["snow"], one.duration)
    assert price.amount is not None and att.estimate == price.amount
    assert result.committed == TAKE + price.amount


def test_a_failed_scene_blocks_what_uses_it(paid: Rig) -> None:
    paid.server.add_fault("submit:fail")  # type: ignore[union-attr]
    result = paid.build("one", "after", "pair", retries=0)
    assert result.scenes["one"].state == "failed"
    after = result.scenes["after"]
    assert (after.state, after.cause) == ("blocked", "failed")
    assert after.error == "scene 'one' it uses did not render"
    assert paid.attempts("after") == []


def test_the_picked_take_is_what_dependents_use(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "p", TAKES, "preview", None)
    first = rig.build("pair")
    takes = first.scenes["pair"].takes
    rig.lock.table("preview")["pair"].picked = 2
    result = rig.build()
    assert result.scenes["pair"].picked == 2 and result.scenes["pair"].state == "reused"
    nxt = result.scenes["next"].takes[1]
    assert nxt.key == rig.key("next", pair=takes[2].digest or "")
    assert rig.lock.table("preview")["pair"].picked == 2
    # a picked take that is no longer one of the scene's: the first one
    rig.lock.table("preview")["pair"].picked = 3
    again = rig.build("pair")
    assert again.scenes["pair"].picked == 1


def test_a_scene_whose_upstream_must_be_fetched_first_waits_for_it(paid: Rig) -> None:
    first = paid.build("one", "after")
    one = first.scenes["one"].takes[1]
    paid.store.remove(one.digest or "")
    result = paid.build("one", "after")
    assert result.scenes["one"].takes[1].how == "refetched"
    after = result.scenes["after"]
    assert (
        after.state == "reused" and after.takes[1].digest == first.scenes["after"].takes[1].digest
    )
    assert paid.events.detail("after", "waiting") == "for one"  # not settled before it
    assert result.submitted == 0


def test_a_scene_with_a_take_reused_and_one_rendered_says_both(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "p", TAKES, "preview", None)
    first = rig.build("pair")
    second = first.scenes["pair"].takes[2]
    rig.store.remove(second.digest or "")
    result = rig.build("pair")
    out = result.scenes["pair"]
    assert out.state == "done" and result.submitted == 1 and result.reused == 1
    assert {n: t.how for n, t in out.takes.items()} == {1: "reused", 2: "rendered"}
    assert rig.events.detail("pair", "done") == "rendered, reused"


def test_an_attempt_being_sent_by_a_live_build_is_never_sent_again(paid: Rig) -> None:
    j = paid.journal
    assert j is not None
    a = j.begin(paid.key("one"), "one", 1, "inference/video-o1", "inference", TAKE)
    j.mark_submitting(a)
    before = paid.sent()
    result = paid.build("one", live_build=True)
    out = result.scenes["one"]
    assert (out.state, out.error) == ("unknown", unknown_message("one", 1, 1))
    assert paid.sent() == before and j.get(a).state == "submitting"
    # one take among several: the message names it
    b = j.begin(paid.key("pair", 2), "pair", 2, "inference/video-o1", "inference", LONG)
    j.mark_submitting(b)
    pair = paid.build("pair", live_build=True).scenes["pair"]
    assert (pair.state, pair.error) == ("unknown", unknown_message("pair", 2, 2))


def test_a_failed_edit_of_a_file_is_priced_by_the_files_length(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    story = HEAD + 'video street "assets/street.mp4"\n'
    story += 'scene local { edit = street  prompt = "Make it rain" }\n'
    root = tmp_path / "q"
    (root / "assets").mkdir(parents=True)
    shutil.copy(ASSETS / "street.mp4", root / "assets" / "street.mp4")
    rig = paid_rig(tmp_path, provider, story)
    provider.add_fault("submit:fail:times=1")
    rig.build(detach=True)
    result = rig.build()  # re-attached: failed, so sent again at the file's price
    assert result.ok and result.submitted == 1
    failed, sent = rig.attempts("local")
    length = rig.comp.media_duration("assets/street.mp4")
    assert rig.planner is not None and length
    price = rig.planner.price(rig.comp.requests["local"], length).amount
    assert price is not None and sent.estimate == price == failed.estimate
    rig.close()


def test_a_stray_task_still_running_is_left_running(paid: Rig) -> None:
    paid.server.provider.options.latency = 5.0  # type: ignore[union-attr]
    paid.build("one", detach=True)
    (old,) = paid.attempts("one")
    paid.edit('"A quiet street"', '"A quiet street at night"')
    result = paid.build("one", "pair", detach=True)
    assert result.collected == 0 and paid.events.notes == []
    assert paid.journal.get(old.id).state == "submitted"  # type: ignore[union-attr]
    # a build of other scenes only does not ask about it
    paid.server.provider.options.latency = 0.05  # type: ignore[union-attr]
    other = paid.build("pair")
    assert other.collected == 0
    assert paid.journal.get(old.id).state == "submitted"  # type: ignore[union-attr]


def test_a_stopped_build_asks_about_no_stray_task(paid: Rig) -> None:
    paid.build("one", detach=True)
    (old,) = paid.attempts("one")
    paid.edit('"A quiet street"', '"A quiet street at night"')
    time.sleep(0.2)  # it has finished on the provider
    result = paid.build("one", before=lambda ex: ex.stop())
    assert result.collected == 0 and paid.events.notes == []
    assert paid.journal.get(old.id).state == "submitted"  # type: ignore[union-attr]


def test_a_scene_uses_a_recorded_upstream_and_one_built_now(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    # `a` is not built now (its recorded output is used), `b` is: `c` waits for `b` and is
    # decided with both, whichever of its upstream scenes comes first
    story = (
        HEAD
        + 'scene a { prompt = "The shore"  duration = 5 }\n'
        + 'scene b { prompt = "The pier"  duration = 5 }\n'
        + 'scene c { start = a.last_frame  end = b.first_frame  prompt = "Between"  duration = 5 }\n'
    )
    rig = paid_rig(tmp_path, provider, story)
    assert list(rig.comp.requests["c"].upstream) == ["a", "b"]
    a = rig.build("a").scenes["a"].takes[1].digest
    result = rig.build("b", "c")
    b = result.scenes["b"].takes[1].digest
    c = result.scenes["c"]
    assert c.state == "done" and c.takes[1].how == "rendered"
    assert rig.events.detail("c", "waiting") == "for b"
    assert c.takes[1].key == rig.key("c", a=a, b=b)
    plan, _ = rig.plan()
    assert plan.scenes["c"].status == "up-to-date"
    rig.close()


def test_a_scene_whose_upstream_is_not_built_now_is_reused_at_once(paid: Rig) -> None:
    first = paid.build("one", "after")
    result = paid.build("after")  # `one` is not part of this build: as recorded
    after = result.scenes["after"]
    assert (
        after.state == "reused" and after.takes[1].digest == first.scenes["after"].takes[1].digest
    )
    assert paid.executor is not None and paid.executor._tasks == []  # settled, nothing awaited


def test_a_preview_build_asks_about_no_stray_task(tmp_path: Path) -> None:
    rig = Rig(tmp_path / "p", scenes(1), "preview", None)
    result = rig.build()
    assert result.ok and result.collected == 0 and rig.events.notes == []


def test_a_scene_the_plan_blocks_is_reported_and_blocks_its_dependents(paid: Rig) -> None:
    result = paid.build("after")  # `one` is not built now and has no output yet
    after = result.scenes["after"]
    assert (after.scene, after.state) == ("after", "blocked")
    assert after.error == "uses scene one, which has no output yet"
    assert paid.events.log == [("after", "blocked", "uses scene one, which has no output yet")]
    assert result.submitted == 0 and paid.attempts() == []
    assert paid.executor is not None and paid.executor._picked["after"].result() is None


# -- with a team store: pull before paying, one payer per request, push after --------------


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    for k, v in ACCESS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    s3.faults.clear()
    yield s3.new_bucket()
    s3.faults.clear()


def team_of(rig: Rig, bucket: Bucket) -> TeamStore:
    team = open_team(None, rig.store, flag=bucket.url, env={})
    assert team is not None
    return team


DEAD = Owner(_host_id(), 2**22 + 17, "", "gone")  # a build on this machine that died


def claim_as(team: TeamStore, owner: Owner, key: str, state: str, task_id: str | None) -> None:
    """Another build's claim on `key`, in `state`."""
    book = ClaimBook(team.client, owner)
    held = book.claim(key, "one", 1)
    assert not hasattr(held, "alive")
    if state != "claimed" or task_id:
        book.update(held, state=state, task_id=task_id)  # type: ignore[arg-type]


def task_of_another_machine(tmp_path: Path, provider: loopback.LoopbackServer) -> str:
    other = Rig(tmp_path / "other", STORY, "inference", provider)
    other.build("one", detach=True)
    (att,) = other.attempts("one")
    other.close()
    assert att.task_id
    return att.task_id


def test_a_paid_render_is_claimed_then_pushed_and_pulled_by_the_next_machine(
    tmp_path: Path, paid: Rig, bucket: Bucket
) -> None:
    first = paid.build("one", team=team_of(paid, bucket))
    take = first.scenes["one"].takes[1]
    assert take.how == "rendered" and first.submitted == 1
    assert "pushing" in paid.events.of("one") and "pushed" in paid.events.of("one")
    assert paid.events.detail("one", "pushing") == "to the team store"
    assert len(bucket.keys("renders/")) == 1 and bucket.keys("claims/") == []
    # another machine: pulled, not paid
    b = Rig(tmp_path / "b", STORY, "inference", paid.server)
    before = b.sent()
    result = b.build("one", team=team_of(b, bucket))
    got = result.scenes["one"].takes[1]
    assert b.sent() == before and result.submitted == 0 and result.committed == 0
    assert (got.how, got.digest, got.task_id) == ("pulled", take.digest, take.task_id)
    assert got.duration == take.duration and result.billed is None
    assert got.cost == TAKE  # what the machine that paid recorded, not this one's estimate
    plan, _ = b.plan("one")
    assert plan.scenes["one"].decisions[1].price.amount != TAKE
    assert b.events.detail("one", "pulling") == "from the team store"
    assert "pushing" not in b.events.of("one")
    rec = b.store.lookup_render(take.key)
    assert rec is not None and rec.output == take.digest
    assert b.lock.table("inference")["one"].takes[0].output == take.digest
    b.close()


def test_the_claim_says_submitting_before_the_request_leaves(paid: Rig, bucket: Bucket) -> None:
    # a holder that dies from here on leaves a take of unknown fate, not a free one
    seen: list[str] = []

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "submitting":  # right before the POST
            (name,) = bucket.keys("claims/")
            seen.append(json.loads(bucket.get(name))["state"])

    paid.build("one", team=team_of(paid, bucket), hook=hook)
    assert seen == ["submitting"] and bucket.keys("claims/") == []


def test_a_pulled_take_whose_record_has_no_length_nor_cost_is_measured_and_free(
    tmp_path: Path, paid: Rig, bucket: Bucket
) -> None:
    # a record pushed without a length or a cost (both optional): measured here, so the
    # lock and a base edit downstream know it; its cost is then what this build paid for
    # it (a pull: nothing), never an unknown cost
    take = paid.build("one", team=team_of(paid, bucket)).scenes["one"].takes[1]
    (name,) = bucket.keys("renders/")
    raw = json.loads(bucket.get(name))
    assert raw["duration"] == 5 and Decimal(raw["cost"]) == TAKE  # pushed with them
    del raw["duration"], raw["cost"]
    bucket.put(name, json.dumps(raw).encode())
    b = Rig(tmp_path / "b", STORY, "inference", paid.server)
    got = b.build("one", team=team_of(b, bucket)).scenes["one"].takes[1]
    assert got.how == "pulled" and got.duration == take.duration == 5
    assert got.cost == 0
    assert b.lock.table("inference")["one"].takes[0].duration == 5
    b.close()


def test_a_base_edit_the_team_has_in_part_is_priced_with_its_base_after_asking(
    tmp_path: Path, paid: Rig, bucket: Bucket
) -> None:
    # `one` renders here (the team lost it), so `snow` waits; once `one` is there the team
    # has `snow`'s first take: the second is still sent, priced from the length of `one`
    # (a budget refuses a take of unknown cost)
    story = HEAD + 'scene one { prompt = "A quiet street"  duration = 5 }\n'
    story += 'scene snow { edit = one  prompt = "Make it snow"  takes = 2 }\n'
    a = paid_rig(tmp_path, paid.server, story)  # type: ignore[arg-type]
    first = a.build(team=team_of(a, bucket))
    one = first.scenes["one"].takes[1].digest
    assert len(bucket.keys("renders/")) == 3
    for key in (a.key("one"), a.key("snow", 2, one=one)):
        for name in bucket.keys(f"renders/{key.removeprefix('sha256:')}/"):
            bucket.delete(name)
    a.close()
    b = Rig(tmp_path / "b", story, "inference", paid.server)
    result = b.build(team=team_of(b, bucket), max_cost=Decimal(5))
    snow = result.scenes["snow"]
    assert result.scenes["one"].takes[1].digest == one  # the same video: the same keys
    assert snow.state == "done", snow.error
    assert (snow.takes[1].how, snow.takes[2].how) == ("pulled", "rendered")
    assert b.events.detail("snow#1", "pulling") == "from the team store"
    assert b.planner is not None
    price = b.planner.price(b.comp.requests["snow"], 5.0).amount
    (att,) = b.attempts("snow")
    assert att.take == 2 and price is not None and att.estimate == price
    b.close()


def test_a_damaged_team_copy_is_rendered_here_at_its_price(
    tmp_path: Path, paid: Rig, bucket: Bucket, s3: S3Server
) -> None:
    paid.build("one", team=team_of(paid, bucket))
    b = Rig(tmp_path / "b", STORY, "inference", paid.server)
    s3.faults.add("GET", "/objects/", "corrupt", times=-1)
    before = b.sent()
    result = b.build("one", team=team_of(b, bucket))
    take = result.scenes["one"].takes[1]
    assert take.how == "rendered" and b.sent() == before + 1 and result.committed == TAKE
    (att,) = b.attempts("one")
    assert att.estimate == TAKE and att.state == "completed"
    b.close()


def test_a_team_copy_that_cannot_be_downloaded_fails_unpaid(
    tmp_path: Path, paid: Rig, bucket: Bucket, s3: S3Server
) -> None:
    paid.build("one", team=team_of(paid, bucket))
    b = Rig(tmp_path / "b", STORY, "inference", paid.server)
    s3.faults.add("GET", "/objects/", "error", times=-1, status=500)
    before = b.sent()
    result = b.build("one", team=team_of(b, bucket))
    out = result.scenes["one"]
    assert out.state == "failed" and "it is not paid for again" in (out.error or "")
    assert b.sent() == before and b.attempts() == []
    b.close()


def test_a_task_another_machine_is_sending_is_followed_not_sent(
    tmp_path: Path, paid: Rig, bucket: Bucket
) -> None:
    task = task_of_another_machine(tmp_path, paid.server)  # type: ignore[arg-type]
    team = team_of(paid, bucket)
    alive = Owner(_host_id(), os.getppid(), "", "busy")  # a live build on this machine
    claim_as(team, alive, paid.key("one"), "submitted", task)
    before = paid.sent()
    result = paid.build("one", team=team)
    take = result.scenes["one"].takes[1]
    assert paid.sent() == before and result.submitted == 0
    assert (take.how, take.task_id) == ("followed", task) and take.cost == TAKE
    assert paid.events.detail("one", "submitted") == f"task {task}"  # followed as its own
    assert "pushing" not in paid.events.of("one")  # the machine that paid pushes it
    assert len(bucket.keys("claims/")) == 1
    assert paid.attempts() == []


def test_a_task_of_a_machine_that_died_is_adopted_and_pushed(
    tmp_path: Path, paid: Rig, bucket: Bucket
) -> None:
    task = task_of_another_machine(tmp_path, paid.server)  # type: ignore[arg-type]
    team = team_of(paid, bucket)
    claim_as(team, DEAD, paid.key("one"), "submitted", task)
    before = paid.sent()
    result = paid.build("one", team=team)
    take = result.scenes["one"].takes[1]
    assert paid.sent() == before and (take.how, take.task_id) == ("adopted", task)
    assert "pushed" in paid.events.of("one")
    assert bucket.keys("claims/") == [] and len(bucket.keys("renders/")) == 1


def test_a_machine_that_died_while_sending_leaves_the_decision_to_the_user(
    paid: Rig, bucket: Bucket
) -> None:
    team = team_of(paid, bucket)
    claim_as(team, DEAD, paid.key("one"), "submitting", None)
    before = paid.sent()
    result = paid.build("one", team=team)
    out = result.scenes["one"]
    assert out.state == "unknown" and (out.error or "").startswith("warning[W344]")
    assert paid.sent() == before and paid.attempts() == []


def test_a_stop_while_waiting_for_another_machine_sends_nothing(paid: Rig, bucket: Bucket) -> None:
    team = team_of(paid, bucket)
    alive = Owner(_host_id(), os.getppid(), "", "busy")
    claim_as(team, alive, paid.key("one"), "claimed", None)

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "waiting":
            ex.stop()

    result = paid.build("one", team=team, hook=hook)
    out = result.scenes["one"]
    assert (out.state, out.error) == ("stopped", "not started: the build was interrupted")
    assert paid.attempts() == []


def test_a_refused_send_under_a_claim_releases_it(paid: Rig, bucket: Bucket) -> None:
    paid.server.add_fault("submit:402")  # type: ignore[union-attr]
    result = paid.build("one", team=team_of(paid, bucket))
    assert result.scenes["one"].state == "failed"
    assert bucket.keys("claims/") == [] and bucket.keys("renders/") == []


def test_a_send_stopped_at_the_last_moment_releases_its_claim(paid: Rig, bucket: Bucket) -> None:
    # the claim said `submitting`, but the guard of the POST said no: nothing left, so no
    # take of unknown fate is left for the team to adopt
    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "preparing":
            ex.stop("interrupted")

    result = paid.build("one", team=team_of(paid, bucket), hook=hook)
    (att,) = paid.attempts("one")
    assert result.scenes["one"].state == "stopped" and att.state == "not_sent"
    assert bucket.keys("claims/") == []


def test_a_re_attached_task_is_pushed_and_its_dead_claim_cleared(paid: Rig, bucket: Bucket) -> None:
    team = team_of(paid, bucket)
    paid.build("one", detach=True, team=team)
    (att,) = paid.attempts("one")
    assert len(bucket.keys("claims/")) == 1  # left with its task id
    # the build that sent it died: its claim names a process that is gone
    book = ClaimBook(team.client, DEAD)
    found = book.read(paid.key("one"))
    assert found is not None and found.task_id == att.task_id
    assert book.take_over(found, "one", 1, state="submitted", task_id=att.task_id)
    result = paid.build("one", team=team_of(paid, bucket))
    take = result.scenes["one"].takes[1]
    assert (take.how, result.reattached) == ("reattached", 1)
    assert "pushed" in paid.events.of("one")
    assert bucket.keys("claims/") == [] and len(bucket.keys("renders/")) == 1


def test_a_fetched_take_keeps_its_recorded_length_or_is_measured(paid: Rig) -> None:
    first = paid.build("pair")
    take = first.scenes["pair"].takes[2]
    entry = paid.lock.table("inference")["pair"]
    entry.takes[1].duration = 9.5  # what the lock file says is kept
    paid.store.remove(take.digest or "")
    result = paid.build("pair")
    got = result.scenes["pair"].takes[2]
    assert (got.how, got.duration) == ("refetched", 9.5)
    assert paid.events.detail("pair#2", "fetching") == "from the recorded URL"
    entry.takes[1].duration = None  # unknown: measured
    Path(paid.store._record_path("renders", take.key)).unlink()
    paid.store.remove(take.digest or "")
    again = paid.build("pair")
    got = again.scenes["pair"].takes[2]
    assert got.how == "refetched" and got.duration == pytest.approx(10.0, abs=0.2)


def test_an_edit_whose_url_died_is_priced_by_the_video_it_edits(paid: Rig) -> None:
    first = paid.build("one", "snow", "pair")
    snow = first.scenes["snow"].takes[1]
    paid.store.remove(snow.digest or "")
    Path(paid.store._record_path("renders", snow.key)).unlink()
    # the lock file's URL, tried first, now gives other bytes
    paid.lock.table("inference")["snow"].takes[0].url = first.scenes["pair"].takes[1].url
    result = paid.build("one", "snow")
    out = result.scenes["snow"]
    assert out.state == "expired"
    # an edit of a 5 s video: 5 s at the edit's price per second
    assert (out.error or "").endswith("; the next build renders it again ($0.63, asked first)")


def test_a_take_of_unknown_fate_among_several_is_named(paid: Rig) -> None:
    j = paid.journal
    assert j is not None
    a = j.begin(paid.key("pair", 2), "pair", 2, "inference/video-o1", "inference", LONG)
    j.mark_submitting(a)
    j.mark_failed(a, "the answer was lost")  # unknown
    result = paid.build("pair")
    out = result.scenes["pair"]
    assert out.state == "unknown" and out.error == unknown_message("pair", 2, 2)
    assert result.scenes["pair"].takes[1].how == "rendered"  # the other take is sent


def test_a_waiting_scene_recovers_what_the_index_lost(paid: Rig) -> None:
    first = paid.build("one", "after")
    one, after = first.scenes["one"].takes[1], first.scenes["after"].takes[1]
    paid.store.remove(one.digest or "")
    Path(paid.store._record_path("renders", after.key)).unlink()
    result = paid.build("one", "after")
    got = result.scenes["after"].takes[1]
    assert (got.how, got.digest) == ("recovered", after.digest)
    rec = paid.store.lookup_render(after.key)
    assert rec is not None and rec.scene == "after" and rec.output == after.digest


def test_a_damaged_team_copy_of_an_edit_is_priced_by_the_video_it_edits(
    tmp_path: Path, bucket: Bucket, s3: S3Server
) -> None:
    # each prompt its own video: the edit's bytes are not those of the video it edits
    with loopback.serve(latency=0.05) as own:
        a = Rig(tmp_path / "a", STORY, "inference", own)
        a.build("one", "snow", team=team_of(a, bucket))
        snow = a.lock.table("inference")["snow"].takes[0].output
        a.close()
        b = Rig(tmp_path / "b", STORY, "inference", own)
        s3.faults.add("GET", f"/objects/{(snow or '')[7:9]}/", "corrupt", times=-1)
        result = b.build("one", "snow", team=team_of(b, bucket))
        attempts = b.attempts("snow")
        b.close()
    assert result.ok and result.submitted == 1
    assert result.scenes["one"].takes[1].how == "pulled"
    assert result.scenes["snow"].takes[1].how == "rendered"
    assert [a.estimate for a in attempts] == [Decimal("0.63")]  # 5 s at the edit's price


def test_every_fault_point_of_a_paid_take_is_reached_once_in_order(
    paid: Rig, fault_points: Callable[[dict[str, float]], None], monkeypatch: pytest.MonkeyPatch
) -> None:
    # the hook that kills a build at each point (tests/test_money_recovery.py) must find
    # every point where the docstring of storyc.build.faults says it is
    fault_points({p: 0.0 for p in faults.POINTS})
    monkeypatch.setattr(faults, "_seen", {})
    result = paid.build("one")
    assert result.ok
    assert faults._seen == {p: 1 for p in faults.POINTS}
    assert list(faults._seen) == list(faults.POINTS)


def test_a_request_sent_again_after_a_stale_upload_is_what_the_journal_keeps(
    tmp_path: Path, provider: loopback.LoopbackServer
) -> None:
    story = HEAD + 'image market "assets/market.png"\n'
    story += 'scene s1 { prompt = "A walk through @market"  duration = 5 }\n'
    story += 'scene s2 { prompt = "Back through @market"  duration = 5 }\n'
    rig = paid_rig(tmp_path, provider, story)
    assert rig.build("s1").ok
    uploads = UploadRegistry(rig.root / ".storyc" / "uploads.json")
    (good,) = uploads.known_uris(provider.url)
    bogus = f"{provider.url}/files/{'0' * 32}/market.png"
    for d in list(uploads._entries[provider.url.rstrip("/")]):
        uploads.remember(provider.url, d, bogus, 1)  # a file the provider cleaned up
    before, posts = rig.sent(), len(provider.arrivals)
    result = rig.build("s2")
    assert result.ok and rig.sent() == before + 1 and result.submitted == 1
    assert len(provider.arrivals) == posts + 2  # refused for the stale file, then sent again
    (att,) = rig.attempts("s2")
    assert att.request and bogus not in att.request and good not in att.request
    assert f"{provider.url}/files/" in att.request  # the URI of the new upload
    assert json.loads(att.request)["app"] == rig.comp.requests["s2"].app  # whole, as sent
    rig.close()


def test_a_stray_that_cannot_be_recorded_does_not_fail_the_build(paid: Rig) -> None:
    # collecting an old task is a side job: a store that cannot take its record is not
    # this build's failure (the journal has it: the next build records it again)
    paid.build("one", detach=True)
    (old,) = paid.attempts("one")
    paid.edit('"A quiet street"', '"A quiet street at night"')
    new_key = paid.key("one")
    shard = Path(paid.store._record_path("renders", old.key)).parent
    assert shard != Path(paid.store._record_path("renders", new_key)).parent
    shard.parent.mkdir(parents=True, exist_ok=True)
    shard.write_text("in the way")  # the old key's records cannot be written
    time.sleep(0.2)  # the old task has finished on the provider
    result = paid.build("one")
    assert result.ok and result.submitted == 1
    assert result.collected == 0 and paid.events.notes == []  # its record failed
    assert paid.journal.get(old.id).state == "completed"  # type: ignore[union-attr]


def test_a_take_among_several_whose_answer_was_lost_is_named(paid: Rig) -> None:
    paid.server.add_fault("submit:drop:times=1")  # type: ignore[union-attr]
    result = paid.build("pair", jobs=1)
    out = result.scenes["pair"]
    (lost,) = [a for a in paid.attempts("pair") if a.state == "unknown"]
    assert out.state == "unknown"
    assert (out.error or "").endswith(unknown_message("pair", lost.take, 2))


def test_failed_tasks_add_up(paid: Rig) -> None:
    paid.server.add_fault("submit:fail:nth=1+2")  # type: ignore[union-attr]
    result = paid.build("one", retries=2)
    assert result.ok and result.submitted == 3
    assert (result.failed_attempts, result.failed_cost) == (2, 2 * TAKE)


def test_a_failed_task_of_unknown_cost_is_counted_and_sent_again(paid: Rig) -> None:
    paid.build("one")
    paid.server.add_fault("submit:fail:times=1")  # type: ignore[union-attr]
    result = paid.build("snow")  # `one` is not built now: the price of its edit is unknown
    assert result.ok and result.submitted == 2
    failed, sent = paid.attempts("snow")
    assert (failed.state, failed.estimate, sent.state) == ("failed", None, "completed")
    # paid for, at a price no one knows: counted, and adds nothing known to the cost
    assert (result.failed_attempts, result.failed_cost) == (1, 0)


def test_a_third_stop_while_preparing_gives_back_and_says_so(
    paid: Rig, fault_points: Callable[[dict[str, float]], None]
) -> None:
    fault_points({"hashing": 30.0})

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "preparing":
            for _ in range(3):  # the third cancels the take where it is
                ex.stop()

    before = paid.sent()
    result = paid.build("one", hook=hook)
    assert result.scenes["one"].state == "stopped" and paid.sent() == before
    assert result.committed == 0  # it had not started to send: nothing owed
    (att,) = paid.attempts("one")
    assert (att.state, att.error) == ("not_sent", "interrupted while sending")


def test_takes_waiting_for_another_machine_say_which(paid: Rig, bucket: Bucket) -> None:
    team = team_of(paid, bucket)
    alive = Owner(_host_id(), os.getppid(), "", "busy")
    for t in (1, 2):
        claim_as(team, alive, paid.key("pair", t), "claimed", None)
    waited: set[str] = set()

    def hook(ex: Executor, label: str, state: str, detail: str) -> None:
        if state == "waiting":
            waited.add(label)
            if waited == {"pair#1", "pair#2"}:
                ex.stop()

    result = paid.build("pair", team=team, hook=hook)
    assert waited == {"pair#1", "pair#2"} and result.scenes["pair"].state == "stopped"
    assert paid.attempts() == []
