"""The executor: carry out the plan, in dependency order, never paying twice.

Stage: execute. In: a `Plan` and the `Planner` that made it (`storyc.plan.planner`), a
backend, the project's effects (`storyc.build.effects.ProjectIO`: store, journal, lock
file, names) and `BuildOptions`. Out: a `BuildResult` (per-scene outcome, submissions,
money) plus those effects. I/O: through the effects and the backend only.

The planner decides, the executor obeys. Each take arrives with one decision
(`TakePlan.action`), carried out by one method of the dispatch table `_OBTAIN`:

    reuse   record what is known (and enter it in the key index if it was missing)
    pull    download it from the team store (`storyc.build.team`), verified
    fetch   download the recorded URL, keep it only if it is the recorded digest
    follow  follow the journal's task id (re-attach), never send again
    decide  stop: an earlier attempt's fate is unknown (storyc adopt / storyc forget)
    render  send it: within the budget, within `--jobs`, intent journaled first (with a
            team store: under a claim, so that one machine pays; pushed after)

A scene whose keys could not be known when the plan was made (it uses the output of a
scene that renders first) is decided by the same planner once those outputs exist.
(A new way to obtain an output is a new action in the planner and one more entry in
`_OBTAIN`, as `pull` was for the team store.)

Money, on every path:
- a take's estimate is reserved (`storyc.build.budget`) in the same synchronous step as
  the decision to send it, before any await; it is given back only when the take is
  known not to have cost anything;
- a take holds a `--jobs` slot from that decision until its task finished and its
  output is in the store, so `--jobs` bounds the tasks in flight at the provider;
- the first stop request (Ctrl-C) means no new `POST /apps/run`: it is checked at
  every await between the decision and the request (inputs, uploads, each retry of the
  POST); tasks already sent are followed to the end. A second one stops following:
  what was sent stays in the journal, exactly, for the next build to re-attach;
- an attempt with no task id is never sent again without the user's word.

A failed scene fails its dependents, not its neighbours.

Not waiting (`BuildOptions.detach`: `--detach`, or a build collecting after one): a take is
sent and recorded exactly as above and then not followed: it ends `running` and keeps its
slot (it is in flight either way), and `follow` asks the provider once: a finished task is
collected, one still running is left `running`. A scene that uses a `running` scene is
`deferred`, as is a take that finds no free slot. `collect_only` (the webhook receiver)
sends nothing at all: every `render` is `deferred`. After the scenes, tasks an earlier
build sent for these scenes that no take followed (the scene was edited meanwhile) are
asked about once and collected into the store, the journal and the key index.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Coroutine
from decimal import Decimal
from typing import Any, TypeVar

from storyc.backends import (
    Backend,
    BackendError,
    FetchFailed,
    Finished,
    Job,
    MaybeSent,
    NotSent,
    SetupError,
    StillRunning,
    TaskFailed,
)
from storyc.build import faults
from storyc.build.budget import Budget, OverBudget, Slots
from storyc.build.effects import ProjectIO, resolve_inputs
from storyc.build.outcome import (
    BLOCKED,
    DEFERRED,
    DONE,
    EXPIRED,
    FAILED,
    OVER_BUDGET,
    REUSED,
    RUNNING,
    STOPPED,
    UNKNOWN,
    UNSETTLED,
    BuildOptions,
    BuildResult,
    SceneOutcome,
    TakeOutcome,
)
from storyc.build.progress import Reporter
from storyc.build.team import TeamLink, TeamStopped, TeamUnknown
from storyc.plan import pricing
from storyc.plan.planner import Plan, Planner, ScenePlan, TakePlan
from storyc.targets.request import SCENE_MARKER, Request

T = TypeVar("T")


class _Stop(Exception):
    """Internal: this take must not go on (budget, interruption, unknown attempt)."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


class _Interrupted(Exception):
    """Internal: a stop was requested while the take was still preparing to send."""


# what a build that does not wait says about what it leaves
COLLECT = "collect it with `storyc build` (or `storyc webhook serve`)"
LATER = "a later `storyc build` sends it"


def unknown_message(scene: str, take: int, takes: int) -> str:
    which = f" --take {take}" if takes > 1 else ""
    return (
        "an earlier submission of this request may have reached the provider (its fate "
        "is unknown), so it is not sent again. Find the task on the provider's dashboard "
        f"and run `storyc adopt {scene} TASK_ID{which}`; if it never ran, "
        f"`storyc forget {scene}{which}`; or build with --resubmit-unknown to send it again "
        "(this may pay twice)"
    )


class Executor:
    def __init__(
        self,
        plan: Plan,
        planner: Planner,
        backend: Backend,
        io: ProjectIO,
        options: BuildOptions,
        reporter: Reporter,
        team: TeamLink | None = None,
    ) -> None:
        self.team = team  # the team store: pull before paying, claim, push after
        self.plan = plan
        self.planner = planner
        self.order = [s for s in plan.order if s in plan.scenes]
        self.backend = backend
        self.io = io
        self.options = options
        self.report = reporter
        self.result = BuildResult()
        self.budget = Budget(options.max_cost if backend.paid else None)
        self.slots = Slots(options.jobs)
        self._stop = asyncio.Event()  # first interrupt: send nothing new
        self._abandon = asyncio.Event()  # second: stop following
        self._picked: dict[str, asyncio.Future[str | None]] = {}
        self._durations: dict[str, float | None] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._handled: set[int] = set()  # journal attempts this build sent or followed
        self._resent: set[int] = set()  # attempts of unknown fate resolved by sending again
        self._refused: str | None = None  # no request may leave any more (balance, key)
        self._OBTAIN: dict[str, Callable[[ScenePlan, TakePlan], Awaitable[TakeOutcome]]] = {
            "reuse": self._reuse_take,
            "pull": self._pull,
            "fetch": self._fetch,
            "follow": self._follow_attempt,
            "decide": self._decide,
            "render": self._render,
        }

    # -- control ------------------------------------------------------------------------
    @property
    def in_flight(self) -> int:
        return self.slots.busy

    def stop(self, reason: str = "interrupted") -> None:
        """First call: no new submissions (tasks already sent are followed to the end).
        Second: stop following too; what was sent stays re-attachable. Third: cancel
        everything at once (a send cut short mid-request is of unknown fate)."""
        if not self._stop.is_set():
            self.result.interrupted = True
            self.result.stopped_reason = reason
            self._stop.set()
        elif not self._abandon.is_set():
            self._abandon.set()
        else:
            for t in self._tasks:
                t.cancel()

    def _may_send(self) -> bool:
        """Asked right before each request leaves. A spent budget only stops new
        decisions (what was reserved fits); a stop request, a refused key or a balance
        refusal stops every send that has not left yet."""
        return not self._stop.is_set() and self._refused is None and not self.options.collect_only

    def _halt(self, why: str, *, sends_too: bool) -> None:
        if self.result.halted is None:
            self.result.halted = why
        if sends_too and self._refused is None:
            self._refused = why

    async def run(self) -> BuildResult:
        loop = asyncio.get_running_loop()
        self._picked = {s: loop.create_future() for s in self.order}
        for s in self.order:  # dependency order: upstream results are set before use
            sp = self.plan.scenes[s]
            if sp.status == "blocked":
                self._blocked(sp)
            elif not self._settled(sp):  # the no-op path stays synchronous
                self._tasks.append(asyncio.create_task(self._scene(s), name=s))
        try:
            # a scene's own errors end in its outcome; a third Ctrl-C cancels the scenes
            await asyncio.gather(*self._tasks, return_exceptions=True)
            if not self._stop.is_set():
                await self._strays()
        finally:
            for t in self._tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*self._tasks, return_exceptions=True)
            self.io.flush()
        return self.result

    # -- one scene ----------------------------------------------------------------------
    def _blocked(self, sp: ScenePlan) -> None:
        out = SceneOutcome(sp.name, state=BLOCKED, error=sp.blocked)
        self.result.scenes[sp.name] = out
        self.report.scene(sp.name, BLOCKED, detail=sp.blocked or "")
        self._picked[sp.name].set_result(None)

    def _settled(self, sp: ScenePlan) -> bool:
        """Finish a scene at once when every take is reused (nothing to wait for)."""
        if sp.status != "up-to-date" or any(d.action != "reuse" for d in sp.decisions.values()):
            return False  # something to fetch or pull first
        for up in sp.upstream:
            fut = self._picked.get(up)
            if fut is not None and (not fut.done() or fut.result() != sp.upstream[up]):
                return False
        out = SceneOutcome(sp.name, state=REUSED)
        for t, d in sp.decisions.items():
            out.takes[t] = self._reused(sp, d)
        self.result.scenes[sp.name] = out
        self._complete(out, sp)
        return True

    def _complete(self, out: SceneOutcome, sp: ScenePlan) -> None:
        scene = sp.name
        out.picked = sp.picked if sp.picked in out.takes else 1
        self._durations[scene] = out.takes[out.picked].duration
        self.io.record_scene(sp, out.takes, out.picked)
        self.report.scene(
            scene, out.state, detail=", ".join(sorted({t.how for t in out.takes.values()}))
        )
        self._picked[scene].set_result(out.takes[out.picked].digest)

    async def _scene(self, scene: str) -> None:
        sp = self.plan.scenes[scene]
        req = sp.request
        assert req is not None
        out = SceneOutcome(scene, state=DONE)
        self.result.scenes[scene] = out
        fut = self._picked[scene]
        try:
            upstream: dict[str, str] = {}
            for up in req.upstream:
                if up not in self._picked:  # not built now (`--scene`): as recorded
                    digest = self.io.recorded_output(up)
                    if digest is None:
                        raise _Stop(BLOCKED, f"uses scene {up!r}, which has no output yet")
                    upstream[up] = digest
                    continue
                if not self._picked[up].done():
                    self.report.scene(scene, "waiting", detail=f"for {up}")
                digest = await self._picked[up]
                if digest is None:
                    dep = self.result.scenes.get(up)
                    if dep is not None and dep.state in UNSETTLED:
                        raise _Stop(DEFERRED, f"uses scene {up!r}, not rendered yet; {LATER}")
                    out.cause = (dep.cause or dep.state) if dep else None
                    raise _Stop(BLOCKED, f"scene {up!r} it uses did not render")
                upstream[up] = digest
            if sp.status == "waiting" or upstream != sp.upstream:
                # its upstream outputs exist now: the planner decides it, as for any scene
                base = self._base_duration(req)
                sp = self.planner.decide(scene, upstream, base)
                if self.team is not None and await self.team.lookup_new(sp.keys.values()):
                    sp = self.planner.decide(scene, upstream, base)  # with the team's answer
            takes = await asyncio.gather(
                *(self._OBTAIN[d.action](sp, d) for d in sp.decisions.values()),
                return_exceptions=True,
            )
            errors = [t for t in takes if isinstance(t, BaseException)]
            for t in takes:
                if isinstance(t, TakeOutcome):
                    out.takes[t.take] = t
            if errors:
                # the takes that were obtained are in the lock file now, the scene is not
                self.io.record_takes(sp, out.takes)
                raise _worst(errors)
            out.state = REUSED if all(t.how == "reused" for t in out.takes.values()) else DONE
            self._complete(out, sp)
        except _Stop as stop:
            out.state, out.error = stop.state, str(stop)
            self.report.scene(scene, stop.state, detail=str(stop))
            fut.set_result(None)
        except asyncio.CancelledError:
            out.state = STOPPED
            fut.cancel()
            raise
        except (BackendError, OSError) as exc:
            out.state, out.error = FAILED, str(exc)
            self.report.scene(scene, FAILED, detail=str(exc))
            fut.set_result(None)
        except Exception as exc:  # a bug must not take the other scenes down with it
            out.state, out.error = FAILED, f"internal error: {type(exc).__name__}: {exc}"
            self.report.scene(scene, FAILED, detail=out.error)
            fut.set_result(None)

    def _base_duration(self, req: Request) -> float | None:
        marker = req.base_video
        if marker is None:
            return None
        if SCENE_MARKER in marker:
            return self._durations.get(str(marker[SCENE_MARKER]))
        return self.io.file_duration(str(marker.get("$file")))

    @staticmethod
    def _label(sp: ScenePlan, take: int) -> str:
        return sp.name if sp.takes <= 1 else f"{sp.name}#{take}"

    def _job(self, sp: ScenePlan, d: TakePlan) -> Job:
        assert sp.request is not None and d.key is not None
        return Job(sp.name, d.take, d.key, sp.request, {})

    # -- the five ways to obtain a take -------------------------------------------------
    def _reused(self, sp: ScenePlan, d: TakePlan) -> TakeOutcome:
        assert d.key is not None and d.output is not None
        out = TakeOutcome(
            d.take, d.key, d.output, d.task_id, d.url, d.cost, d.duration, how="reused"
        )
        if out.duration is None:
            out.duration = self.io.video_duration(d.output)
        if not d.indexed:  # found through the journal or the lock: the index learns it now
            out.how = "recovered"
            self.io.remember(d.key, d.output, sp.name, d.take, out)
        self.result.reused += 1
        return out

    async def _reuse_take(self, sp: ScenePlan, d: TakePlan) -> TakeOutcome:
        return self._reused(sp, d)

    async def _pull(self, sp: ScenePlan, d: TakePlan) -> TakeOutcome:
        """The team store has it: downloaded and verified, paid for by whoever rendered it.
        One it has but cannot deliver fails the take (`TeamPullFailed`), unpaid."""
        assert self.team is not None and d.key is not None and sp.request is not None
        rec = await self.team.pull(d.key, self._label(sp, d.take))
        if rec is None:  # a damaged copy (reported, W341): as if the team had none
            price = self.planner.price(sp.request, self._base_duration(sp.request))
            return await self._render(sp, dataclasses.replace(d, action="render", price=price))
        fin = Finished(rec.output, rec.task_id, None, rec.cost_decimal, rec.duration)
        return self._finished(sp, d, self._job(sp, d), fin, None, d.price.amount, how="pulled")

    async def _fetch(self, sp: ScenePlan, d: TakePlan) -> TakeOutcome:
        assert d.key is not None and d.url is not None and d.output is not None
        label = self._label(sp, d.take)
        self.report.scene(label, "fetching", detail="from the recorded URL")
        try:
            digest = await self.backend.refetch(d.url, d.output)
        except FetchFailed as exc:
            if not exc.permanent:
                raise BackendError(
                    f"take {d.take}: could not fetch its recorded URL: {exc}"
                ) from None
            self.io.mark_unfetchable(d.key, d.url, str(exc))
            assert sp.request is not None
            est = self.planner.price(sp.request, self._base_duration(sp.request))
            raise _Stop(
                EXPIRED,
                f"take {d.take}: {exc}; the next build renders it again "
                f"({pricing.format_estimate(est)}, asked first)",
            ) from None
        out = TakeOutcome(
            d.take, d.key, digest, d.task_id, d.url, d.cost, d.duration, how="refetched"
        )
        if out.duration is None:
            out.duration = self.io.video_duration(digest)
        self.io.remember(d.key, digest, sp.name, d.take, out)
        return out

    async def _decide(self, sp: ScenePlan, d: TakePlan) -> TakeOutcome:
        raise _Stop(UNKNOWN, unknown_message(sp.name, d.take, sp.takes))

    async def _follow_attempt(self, sp: ScenePlan, d: TakePlan) -> TakeOutcome:
        """Re-attach to a task an earlier build sent."""
        if d.task_id is None or d.attempt is None:  # never confirmed sent: never resent
            raise _Stop(UNKNOWN, unknown_message(sp.name, d.take, sp.takes))
        label = self._label(sp, d.take)
        job = self._job(sp, d)
        collecting = self.options.detach
        self.report.scene(
            label, "collecting" if collecting else "re-attaching", detail=f"task {d.task_id}"
        )
        done: TakeOutcome | None = None
        self._handled.add(d.attempt)
        self.slots.take_running()
        keep = False  # a task left running keeps its slot: it is in flight either way
        try:
            try:
                fin = await self._follow(label, job, d.task_id, d.attempt)
            except _Stop as stop:
                keep = stop.state == RUNNING
                raise
            except TaskFailed as exc:
                # known to have failed: sending it again is allowed (and reserved), within
                # --retries: that failure was the take's first try. A balance refusal
                # (status 13) is never sent again and stops every further submission.
                if exc.stop_all:
                    self._halt(str(exc), sends_too=True)
                if exc.stop_all or not exc.retryable or self.options.retries < 1:
                    raise
                self.report.scene(label, "retrying", detail=str(exc))
                assert sp.request is not None
                price = self.planner.price(sp.request, self._base_duration(sp.request))
                render = TakePlan(d.take, "render", d.key, price=price)
            else:
                if collecting:
                    self.result.collected += 1
                else:
                    self.result.reattached += 1
                est = self.io.attempt_estimate(d.attempt)
                how = "collected" if collecting else "reattached"
                done = self._finished(sp, d, job, fin, d.attempt, est, how=how)
        finally:
            if not keep:
                await self.slots.release()
        if done is not None:
            await self._push(label, job, done)
            if self.team is not None:  # its claim, left by the build that died: gone
                await self.team.clear_stale(done.key, done.task_id)
            return done
        return await self._render(sp, render, failures=1)

    async def _strays(self) -> None:
        """Tasks an earlier build sent for a request this build did not follow (the
        scene was edited meanwhile, or its take came from the team store): each is
        asked once; what finished is downloaded into the store, and the journal and key
        index learn it (reverting the edit is then free); what runs is left running.
        Only the scenes of this build are looked at."""
        if not self.backend.paid or self.io.journal is None:
            return
        wanted = set(self.plan.scenes)
        strays = [
            a
            for a in self.io.journal.in_flight()
            if a.id not in self._handled and a.scene in wanted and a.task_id
        ]
        await asyncio.gather(*(self._stray(a) for a in strays), return_exceptions=True)

    async def _stray(self, att: Any) -> None:
        sp = self.plan.scenes[att.scene]
        if sp.request is None:
            return
        job = Job(att.scene, att.take, att.key, sp.request, {})
        try:
            fin = await self.backend.follow(job, att.task_id, lambda st: None, wait=False)
        except TaskFailed as exc:
            self.io.journal_failed(att.id, str(exc))
            return
        except BackendError:  # still running, or unreachable: a later build asks again
            return
        self.io.journal_completed(att.id, fin.digest, fin.url, fin.billed)
        out = TakeOutcome(att.take, att.key, fin.digest, fin.task_id, fin.url, att.estimate)
        out.duration = fin.duration
        self.io.remember(att.key, fin.digest, att.scene, att.take, out)
        self.result.collected += 1
        self.report.note(
            f"{att.scene}: collected task {att.task_id}, sent for an earlier version of the "
            "scene (kept in the store: going back to it costs nothing)"
        )

    async def _render(self, sp: ScenePlan, d: TakePlan, *, failures: int = 0) -> TakeOutcome:
        if self.options.collect_only:  # the webhook receiver: it never sends
            raise _Stop(DEFERRED, f"not sent: collecting only; {LATER}")
        label = self._label(sp, d.take)
        # d.resend (--resubmit-unknown): those attempts of unknown fate are resolved only
        # when their request is sent again (`_submit`), never by a build that sends nothing
        while True:
            try:
                return await self._claim_and_submit(sp, d)
            except TaskFailed as exc:
                failures += 1
                if exc.stop_all:
                    self._halt(str(exc), sends_too=True)
                if not exc.retryable or failures > self.options.retries or exc.stop_all:
                    raise
                self.report.scene(label, "retrying", detail=f"{exc} (attempt {failures + 1})")

    async def _claim_and_submit(self, sp: ScenePlan, d: TakePlan) -> TakeOutcome:
        """`_submit`, under a claim in the team store when there is one: another machine
        sending the same request is followed instead, a render it pushed meanwhile is
        pulled, and what this machine renders is pushed (storyc.build.team)."""
        if self.team is None or not self.backend.paid:
            return await self._submit(sp, d)
        label, job = self._label(sp, d.take), self._job(sp, d)
        try:
            got = await self.team.acquire(
                job, label, lambda task_id: self._follow(label, job, task_id), self._stop.is_set
            )
        except TeamUnknown as exc:
            raise _Stop(UNKNOWN, str(exc)) from None
        except TeamStopped as exc:
            raise _Stop(STOPPED, str(exc)) from None
        claimed = got.claimed
        try:
            if got.finished is not None:  # pulled, followed or adopted: nothing sent
                done = self._finished(sp, d, job, got.finished, None, d.price.amount, how=got.how)
            else:
                done = await self._submit(sp, d, claimed)
            if got.how in ("", "adopted"):
                await self._push(label, job, done)
        except BaseException as exc:
            await self.team.settle(claimed, exc)
            raise
        await self.team.settle(claimed, None)
        return done

    async def _push(self, label: str, job: Job, done: TakeOutcome) -> None:
        if self.team is None or not self.backend.paid or done.digest is None:
            return
        path = self.io.store.get(done.digest)
        if path is None:
            return
        fin = Finished(done.digest, done.task_id, None, done.cost, done.duration)
        await self.team.push(
            self.team.record(job, self.backend.name, fin, path.stat().st_size), label
        )

    # -- sending ------------------------------------------------------------------------
    def _decide_to_send(self, sp: ScenePlan, d: TakePlan) -> tuple[Decimal, Decimal | None]:
        """The decision to send, with its reservation: synchronous, so atomic."""
        if self.result.halted is not None:
            if self.result.halted.startswith("over budget"):
                raise _Stop(OVER_BUDGET, "not submitted: the budget is spent")
            raise _Stop(FAILED, f"not submitted: {self.result.halted}")
        if self._stop.is_set():
            raise _Stop(STOPPED, "not started: the build was interrupted")
        est = d.price  # the planner's price of this take
        try:
            reserved = self.budget.reserve(est.amount, reason=est.reason)
        except OverBudget as exc:
            # the build stops here: taking a cheaper take instead would make what gets
            # rendered depend on timing
            self._halt(f"over budget: {exc}", sends_too=False)
            raise _Stop(OVER_BUDGET, f"not submitted: {exc}") from None
        self.result.committed = self.budget.reserved
        return reserved, est.amount

    def _give_back(self, amount: Decimal) -> None:
        self.budget.release(amount)
        self.result.committed = self.budget.reserved

    async def _unless_stopped(self, work: Coroutine[Any, Any, T]) -> T:
        """Run `work` (a preparation step before sending) unless a stop is requested
        meanwhile: then it is abandoned (uploads half-done cost nothing)."""
        task = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        try:
            done, _ = await asyncio.wait({task, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
        if task in done:
            return task.result()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise _Interrupted

    async def _pause(self, point: str) -> None:
        seconds = faults.reach(point)
        if seconds:
            await asyncio.sleep(seconds)

    async def _inputs(self, job: Job) -> dict[str, Any]:
        """Every input as a local file: assets re-hashed, upstream frames extracted."""
        await self._pause("hashing")
        return await resolve_inputs(self.io, job.request, self._picked_digests(job.request))

    async def _prepare(self, job: Job) -> Any:
        await self._pause("upload")
        return await self.backend.prepare(job)

    async def _submit(self, sp: ScenePlan, d: TakePlan, claimed: Any = None) -> TakeOutcome:
        label = self._label(sp, d.take)
        job = self._job(sp, d)
        paid = self.backend.paid
        if self.slots.full:
            if self.options.detach:  # a build that does not wait does not wait for a slot
                raise _Stop(
                    DEFERRED, f"not sent: {self.slots.limit} task(s) in flight (--jobs); {LATER}"
                )
            self.report.scene(label, "pending", detail="waiting for a free slot")
        await self.slots.acquire()
        keep = False  # a task left running keeps its slot
        try:
            # -- from here to the first await nothing else runs: decided and reserved --
            reserved, estimate = self._decide_to_send(sp, d)
            attempt = (
                self.io.journal_begin(job, estimate, detached=self.options.detach) if paid else None
            )
            if attempt is not None:
                self._handled.add(attempt)
            sent = False

            def on_send(body: dict[str, Any]) -> None:
                # called right before each POST, with nothing awaited in between
                nonlocal sent
                if attempt is not None:
                    if not sent:
                        for old in d.resend:  # the user said: send it again; it is, now
                            if old not in self._resent:
                                self._resent.add(old)
                                self.io.journal_resolve_unknown(old)
                        self.io.journal_submitting(attempt, job.request.app, body)
                        faults.reach("after-intent")
                    else:  # sent again after re-uploading an expired input
                        self.io.journal_request(attempt, job.request.app, body)
                sent = True
                self.report.scene(label, "submitting" if paid else "rendering")

            try:
                if paid:
                    self.report.scene(label, "preparing", detail="hashing inputs, frames")
                inputs = await self._unless_stopped(self._inputs(job))
                job = Job(job.scene, job.take, job.key, job.request, inputs)
                if paid and inputs:
                    self.report.scene(label, "uploading", detail=f"{len(inputs)} input(s)")
                prepared = await self._unless_stopped(self._prepare(job))
                if self.team is not None:  # the claim says so before the request leaves
                    await self.team.submitting(claimed)
                task_id = await self.backend.submit(
                    job, prepared, may_send=self._may_send, on_send=on_send
                )
                faults.reach("after-send")
            except _Interrupted:
                if claimed is not None:
                    claimed.not_sent = True
                self._give_back(reserved)
                if attempt is not None:
                    self.io.journal_not_sent(attempt, "interrupted before sending")
                raise _Stop(STOPPED, "not sent: the build was interrupted") from None
            except NotSent as exc:
                if claimed is not None:
                    claimed.not_sent = True
                self._give_back(reserved)
                if attempt is not None and exc.answered:  # turned away, nothing created
                    self.io.journal_failed(attempt, str(exc), refused=True)
                elif attempt is not None:
                    self.io.journal_not_sent(attempt, str(exc))
                if self._stop.is_set():
                    raise _Stop(STOPPED, "not sent: the build was interrupted") from None
                if self._refused is not None:
                    raise _Stop(FAILED, f"not submitted: {self._refused}") from None
                raise TaskFailed(str(exc), retryable=True) from None
            except MaybeSent as exc:
                if attempt is not None:
                    self.io.journal_unknown(attempt, str(exc))
                raise _Stop(
                    UNKNOWN, f"{exc}; {unknown_message(sp.name, d.take, sp.takes)}"
                ) from None
            except TaskFailed as exc:
                # raised by submit only when the provider answered with a refusal (400,
                # 402, another 4xx): it created no task, so this attempt cost nothing
                self._give_back(reserved)
                if attempt is not None:
                    self.io.journal_failed(attempt, str(exc), refused=True)
                raise
            except SetupError as exc:
                self._give_back(reserved)
                if attempt is not None:
                    self.io.journal_failed(attempt, str(exc), refused=True)
                self.result.setup_error = str(exc)
                self._halt(str(exc), sends_too=True)
                raise
            except BaseException:
                # cut short (a hard stop, a bug): unknown if the request had started
                if attempt is not None:
                    if self.io.journal_state(attempt) == "planned":
                        self._give_back(reserved)
                    self.io.journal_unknown(attempt, "interrupted while sending")
                raise
            self.result.submitted += 1
            self.result.sent += estimate or Decimal(0)
            if attempt is not None:
                self.io.journal_submitted(attempt, task_id)
                faults.reach("after-task-id")
            if self.team is not None:
                await self.team.submitted(claimed, task_id)
            if self.options.detach:  # submitted and recorded: not waited for
                keep = True
                self.result.running.append((label, task_id))
                raise _Stop(RUNNING, f"task {task_id} sent; {COLLECT}")
            try:
                fin = await self._follow(label, job, task_id, attempt)
            except TaskFailed:
                self.result.failed_attempts += 1
                self.result.failed_cost += estimate or Decimal(0)
                raise
            return self._finished(sp, d, job, fin, attempt, estimate, how="rendered")
        finally:
            if not keep:
                await self.slots.release()

    def _picked_digests(self, req: Request) -> dict[str, str]:
        out: dict[str, str] = {}
        for up in req.upstream:
            fut = self._picked.get(up)
            if fut is not None and fut.done() and not fut.cancelled() and fut.result():
                out[up] = fut.result()  # type: ignore[assignment]
            elif up not in self._picked:
                digest = self.io.recorded_output(up)
                if digest is not None:
                    out[up] = digest
        return out

    async def _follow(
        self, label: str, job: Job, task_id: str, attempt: int | None = None
    ) -> Finished:
        """The finished task; with `detach`, asked once (`_Stop(RUNNING)` if it runs on)."""
        wait = not self.options.detach
        if self.backend.paid and wait:
            self.report.scene(label, "submitted", detail=f"task {task_id}")
        follow = asyncio.create_task(
            self.backend.follow(
                job, task_id, lambda st: self.report.scene(label, f"task:{st}"), wait=wait
            )
        )
        abandon = asyncio.create_task(self._abandon.wait())
        try:
            done, _ = await asyncio.wait({follow, abandon}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abandon.cancel()
        if follow not in done:
            follow.cancel()
            await asyncio.gather(follow, return_exceptions=True)
            raise _Stop(
                STOPPED,
                f"interrupted; task {task_id} stays recorded and is re-attached by the next build"
                if self.backend.paid
                else "interrupted",
            )
        try:
            return follow.result()
        except StillRunning as exc:
            self.result.running.append((label, task_id))
            raise _Stop(RUNNING, f"task {task_id} is {exc.status}; {COLLECT}") from None
        except TaskFailed as exc:
            if attempt is not None:
                self.io.journal_failed(attempt, str(exc))
            raise

    def _finished(
        self,
        sp: ScenePlan,
        d: TakePlan,
        job: Job,
        fin: Finished,
        attempt: int | None,
        estimate: Decimal | None,
        *,
        how: str,
    ) -> TakeOutcome:
        """A finished task: journal, then key index (the lock file follows per scene)."""
        assert d.key is not None
        faults.reach("after-download")
        billed = fin.billed
        if billed is not None and how == "rendered":  # what this build paid, as reported
            self.result.billed = (self.result.billed or Decimal(0)) + billed
        cost = billed if billed is not None else (estimate if self.backend.paid else None)
        if attempt is not None:
            self.io.journal_completed(attempt, fin.digest, fin.url, billed)
            faults.reach("before-index")
        out = TakeOutcome(
            d.take, d.key, fin.digest, fin.task_id, fin.url, cost, fin.duration, how=how
        )
        if out.duration is None:
            out.duration = self.io.video_duration(fin.digest)
        self.io.remember(d.key, fin.digest, sp.name, d.take, out)
        return out


def _worst(errors: list[BaseException]) -> BaseException:
    """Of several takes' errors, the one that says most about the scene."""
    failures = [e for e in errors if not isinstance(e, _Stop)]
    if failures:  # a real failure says most (exit 1)
        return failures[0]
    for state in (UNKNOWN, OVER_BUDGET, EXPIRED, STOPPED, RUNNING, DEFERRED):
        for e in errors:
            if isinstance(e, _Stop) and e.state == state:
                return e
    return errors[0]


__all__ = [
    "BLOCKED",
    "DONE",
    "EXPIRED",
    "FAILED",
    "OVER_BUDGET",
    "REUSED",
    "STOPPED",
    "UNKNOWN",
    "BuildOptions",
    "BuildResult",
    "Executor",
    "SceneOutcome",
    "SetupError",
    "TakeOutcome",
    "unknown_message",
]
