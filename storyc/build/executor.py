"""The executor: render only what changed, in dependency order, never paying twice.

Stage: execute. In: a `Compilation` (requests per scene, topological order), a backend,
the project's store, journal and lock file, and `BuildOptions`. Out: a `BuildResult`
(per-scene outcome, submissions, cost) plus effects: objects in the store, journal
rows, `storyc.lock`, readable links under `renders/`. I/O: yes, all of it through
`storyc.build.effects` (store, journal, lock file) and the backend.

For every scene, once the scenes it uses are done, and for every take:

1. key = request_key(request, backend, take, upstream picked output digests);
2. the key's output already in the store → reuse it (reverting an edit renders nothing);
3. the lock file has this key with a URL, but the store lost it → fetch it again;
4. the journal has an attempt for this key that was sent → follow its task id
   (re-attach); one of unknown fate → stop unless the user said `--resubmit-unknown`;
5. otherwise submit: within the budget (work in flight counts), under the `--jobs`
   limit, with the intent recorded in the journal *before* the request leaves.

A failed scene fails its dependents, not its neighbours. A stop request (Ctrl-C)
prevents new submissions; requests already sent stay in the journal for re-attachment.
"""

from __future__ import annotations

import asyncio
import dataclasses
from decimal import Decimal
from typing import Any

from storyc.backends import (
    Backend,
    BackendError,
    Finished,
    Job,
    MaybeSent,
    NotSent,
    SetupError,
    TaskFailed,
)
from storyc.build.effects import ProjectIO, resolve_inputs
from storyc.build.outcome import (
    BLOCKED,
    DONE,
    FAILED,
    OVER_BUDGET,
    REUSED,
    STOPPED,
    UNKNOWN,
    BuildOptions,
    BuildResult,
    SceneOutcome,
    TakeOutcome,
    upstream_closure,
)
from storyc.build.progress import Reporter
from storyc.build.team import TeamLink, TeamStopped, TeamUnknown
from storyc.plan import pricing
from storyc.targets.request import Request


class _Stop(Exception):
    """Internal: this take must not start (budget, interruption, unknown attempt)."""

    def __init__(self, state: str, message: str) -> None:
        super().__init__(message)
        self.state = state


class Executor:
    def __init__(
        self,
        requests: dict[str, Request],
        order: list[str],
        backend: Backend,
        io: ProjectIO,
        options: BuildOptions,
        reporter: Reporter,
        team: TeamLink | None = None,
    ) -> None:
        self.requests = requests
        self.team = team  # the team store: pull before paying, claim, push after
        self.order = [s for s in order if s in requests]
        self.backend = backend
        self.io = io
        self.options = options
        self.report = reporter
        self.result = BuildResult()
        self._sem = asyncio.Semaphore(max(1, options.jobs))
        self._stop = asyncio.Event()
        self._halt_submissions: str | None = None
        self._picked: dict[str, asyncio.Future[str | None]] = {}
        self._durations: dict[str, float | None] = {}

    # -- control ------------------------------------------------------------------------
    def stop(self, reason: str = "interrupted") -> None:
        """Stop new submissions and stop waiting; what was sent stays re-attachable."""
        self.result.interrupted = True
        self.result.stopped_reason = reason
        self._stop.set()

    async def run(self) -> BuildResult:
        loop = asyncio.get_running_loop()
        self._picked = {s: loop.create_future() for s in self.order}
        wanted = upstream_closure(self.requests, self.options.scenes)
        tasks = []
        for s in self.order:  # dependency order: upstream results are set before use
            if s not in wanted:
                self._picked[s].set_result(self.io.locked_picked_digest(s))
            elif not self._reuse(s):  # the no-op path stays synchronous: no task per scene
                tasks.append(asyncio.create_task(self._scene(s), name=s))
        try:
            await asyncio.gather(*tasks)
        finally:
            for t in tasks:
                if not t.done():
                    t.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)
            self.io.flush()
        return self.result

    # -- one scene ----------------------------------------------------------------------
    def _reuse(self, scene: str) -> bool:
        """Finish `scene` at once if every take's output is already in the store."""
        req = self.requests[scene]
        upstream: dict[str, str] = {}
        for up in req.upstream:
            fut = self._picked.get(up)
            if fut is None or not fut.done() or fut.result() is None:
                return False
            upstream[up] = fut.result()  # type: ignore[assignment]
        takes: dict[int, TakeOutcome] = {}
        for t in range(1, max(1, req.takes) + 1):
            key = self.io.key(req, t, upstream)
            digest = self.io.lookup(key)
            if digest is None:
                return False
            takes[t] = TakeOutcome(t, key, digest, how="reused")
            self._fill_from_lock(scene, t, key, takes[t])
        self.result.reused += len(takes)
        out = SceneOutcome(scene, state=REUSED, takes=takes)
        self.result.scenes[scene] = out
        self._complete(out, req, upstream)
        return True

    def _complete(self, out: SceneOutcome, req: Request, upstream: dict[str, str]) -> None:
        scene = out.scene
        out.picked = self.io.picked_take(scene, len(out.takes))
        self._durations[scene] = out.takes[out.picked].duration
        self.io.record_scene(scene, req, upstream, out.takes, out.picked)
        self.report.scene(
            scene, out.state, detail=", ".join(sorted({t.how for t in out.takes.values()}))
        )
        self._picked[scene].set_result(out.takes[out.picked].digest)

    async def _scene(self, scene: str) -> None:
        req = self.requests[scene]
        out = SceneOutcome(scene, state=DONE)
        self.result.scenes[scene] = out
        fut = self._picked[scene]
        try:
            upstream: dict[str, str] = {}
            for up in req.upstream:
                if up not in self._picked:
                    raise _Stop(BLOCKED, f"uses scene {up!r}, which has no request")
                if not self._picked[up].done():
                    self.report.scene(scene, "waiting", detail=f"for {up}")
                digest = await self._picked[up]
                if digest is None:
                    dep = self.result.scenes.get(up)
                    out.cause = (dep.cause or dep.state) if dep else None
                    raise _Stop(BLOCKED, f"scene {up!r} it uses did not render")
                upstream[up] = digest
            takes = await asyncio.gather(
                *(self._take(scene, req, t, upstream) for t in range(1, max(1, req.takes) + 1)),
                return_exceptions=True,
            )
            errors = [t for t in takes if isinstance(t, BaseException)]
            for t in takes:
                if isinstance(t, TakeOutcome):
                    out.takes[t.take] = t
            if errors:
                raise errors[0]
            out.state = REUSED if all(t.how == "reused" for t in out.takes.values()) else DONE
            self._complete(out, req, upstream)
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

    # -- one take -----------------------------------------------------------------------
    async def _take(
        self, scene: str, req: Request, take: int, upstream: dict[str, str]
    ) -> TakeOutcome:
        key = self.io.key(req, take, upstream)
        outcome = TakeOutcome(take, key)
        label = scene if req.takes <= 1 else f"{scene}#{take}"

        known = self.io.lookup(key)
        if known is not None:
            outcome.digest, outcome.how = known, "reused"
            self._fill_from_lock(scene, take, key, outcome)
            self.result.reused += 1
            return outcome

        if self.team is not None:  # -- the team store has it: pulled, not paid
            if not self.team.team.asked(key):
                await self.team.lookup([key])
            if self.team.has(key):
                rec = await self.team.pull(key, label)
                if rec is not None:
                    fin = Finished(rec.output, rec.task_id, None, rec.cost_decimal, rec.duration)
                    return self._finish(Job(scene, take, key, req), outcome, fin, how="pulled")

        url = self.io.locked_url(scene, take, key)
        if url is not None:
            self.report.scene(label, "fetching", detail="from the recorded URL")
            digest = await self.backend.refetch(url)
            if digest is not None:
                self.io.remember(key, digest, job=Job(scene, take, key, req))
                outcome.digest, outcome.how = digest, "refetched"
                self._fill_from_lock(scene, take, key, outcome)
                return outcome
            self.report.note(f"{label}: the recorded output URL can no longer be fetched")

        job = Job(scene, take, key, req, {})
        if self.backend.paid:
            attached = await self._reattach(label, job, outcome)
            if attached is not None:
                await self._push(label, job, attached)
                if self.team is not None:
                    await self.team.clear_stale(key, attached.task_id)
                return attached

        failures = 0
        while True:
            try:
                return await self._claim_and_submit(label, job, outcome, upstream)
            except TaskFailed as exc:
                failures += 1
                if exc.stop_all:
                    self._halt_submissions = str(exc)
                if not exc.retryable or failures > self.options.retries or exc.stop_all:
                    raise
                self.report.scene(label, "retrying", detail=f"{exc} (attempt {failures + 1})")

    async def _claim_and_submit(
        self, label: str, job: Job, outcome: TakeOutcome, upstream: dict[str, str]
    ) -> TakeOutcome:
        """`_submit`, under a claim in the team store when there is one (storyc.build.team)."""
        if self.team is None or not self.backend.paid:
            return await self._submit(label, job, outcome, upstream)
        try:
            got = await self.team.acquire(
                job,
                label,
                lambda task_id: self._follow(label, job, task_id),
                self._stop.is_set,
            )
        except TeamUnknown as exc:
            raise _Stop(UNKNOWN, str(exc)) from None
        except TeamStopped as exc:
            raise _Stop(STOPPED, str(exc)) from None
        claimed = got.claimed
        try:
            if got.finished is not None:  # pulled, followed or adopted: nothing sent
                fin = got.finished
                if fin.billed is None:  # what its payer was charged, as the lock says there
                    fin = dataclasses.replace(fin, billed=self._estimate(job).amount)
                done = self._finish(job, outcome, fin, how=got.how)
            else:
                done = await self._submit(label, job, outcome, upstream, claimed)
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

    def _fill_from_lock(self, scene: str, take: int, key: str, outcome: TakeOutcome) -> None:
        entry = self.io.locked_take(scene, take, key)
        if entry is not None:
            outcome.task_id, outcome.url = entry.task_id, entry.url
            outcome.duration, outcome.cost = entry.duration, entry.cost
        if outcome.duration is None and outcome.digest:
            outcome.duration = self.io.video_duration(outcome.digest)

    async def _reattach(self, label: str, job: Job, outcome: TakeOutcome) -> TakeOutcome | None:
        """Follow an attempt already sent for this key; refuse to guess about unknown ones."""
        for att in self.io.journal_attempts(job.key):
            if att["state"] == "completed" and att["output"]:
                # paid and finished, but the key index never heard of it (the process
                # died in between): use that output, fetch it again if need be
                digest = att["output"] if self.io.store.has(att["output"]) else None
                if digest is None and att["url"]:
                    self.report.scene(label, "fetching", detail="a finished task's output")
                    digest = await self.backend.refetch(att["url"])
                if digest is not None and digest == att["output"]:
                    fin = Finished(
                        digest,
                        att["task_id"],
                        att["url"],
                        att["billed"] if att["billed"] is not None else att["estimate"],
                    )
                    return self._finish(job, outcome, fin, how="recovered")
            if att["state"] == "submitted" and att["task_id"]:
                self.report.scene(label, "re-attaching", detail=f"task {att['task_id']}")
                try:
                    fin = await self._follow(label, job, att["task_id"], att["id"])
                except TaskFailed as exc:
                    # known to have failed: sending it again is allowed (and counted)
                    self.report.scene(label, "retrying", detail=str(exc))
                    break
                if fin.billed is None:
                    fin = dataclasses.replace(fin, billed=att["estimate"])
                self.io.journal_completed(att["id"], fin)
                return self._finish(job, outcome, fin, how="reattached")
        unknown = [a for a in self.io.journal_attempts(job.key) if a["state"] == "unknown"]
        if unknown:
            if not self.options.resubmit_unknown:
                raise _Stop(
                    UNKNOWN,
                    "an earlier submission of this request may have reached "
                    "the provider (its fate is unknown); check the provider's dashboard, "
                    "then re-run with --resubmit-unknown to send it again",
                )
            for a in unknown:
                self.io.journal_resolve_unknown(a["id"])
        return None

    def _estimate(self, job: Job) -> pricing.Estimate:
        base = None
        marker = job.request.base_video
        if marker is not None:
            base = self.io.base_duration(marker, self._durations)
        return pricing.estimate(job.request, backend=self.backend.name, takes=1, base_duration=base)

    def _check_budget(self, estimate: pricing.Estimate) -> None:
        if self._halt_submissions:
            raise _Stop(FAILED, f"not submitted: {self._halt_submissions}")
        if self._stop.is_set():
            raise _Stop(STOPPED, "not started: the build was interrupted")
        cap = self.options.max_cost
        if cap is None or not self.backend.paid:
            return
        if estimate.amount is None:
            raise _Stop(OVER_BUDGET, f"cost unknown ({estimate.reason}); a budget needs a price")
        if self.result.committed + estimate.amount > cap:
            raise _Stop(
                OVER_BUDGET,
                f"not submitted: ${self.result.committed + estimate.amount:.2f} "
                f"would exceed --max-cost ${cap:.2f}",
            )

    async def _submit(
        self,
        label: str,
        job: Job,
        outcome: TakeOutcome,
        upstream: dict[str, str],
        claimed: Any = None,
    ) -> TakeOutcome:
        estimate = self._estimate(job)
        self._check_budget(estimate)
        if self._sem.locked():
            self.report.scene(label, "pending", detail="waiting for a free slot")
        async with self._sem:
            # checked again: the budget and the stop flag may have changed while queued
            self._check_budget(estimate)
            inputs = await resolve_inputs(self.io, job.request, self._picked_digests(job.request))
            job = Job(job.scene, job.take, job.key, job.request, inputs)
            amount = estimate.amount or Decimal(0)
            self.result.committed += amount  # counted from before the send: in flight is spent
            attempt = None
            if self.backend.paid:
                attempt = self.io.journal_begin(job, estimate.amount)
            try:
                # uploads happen here, while the attempt is only `planned`: dying during
                # them leaves nothing of unknown fate
                prepared = await self.backend.prepare(job)
                if self.team is not None:
                    await self.team.submitting(claimed)
                if attempt is not None:
                    self.io.journal_submitting(attempt)
                self.report.scene(label, "submitting" if self.backend.paid else "rendering")
                task_id = await self.backend.submit(job, prepared)
            except NotSent as exc:
                if claimed is not None:
                    claimed.not_sent = True
                self.result.committed -= amount
                if attempt is not None:
                    self.io.journal_failed(attempt, str(exc), not_sent=True)
                raise TaskFailed(str(exc), retryable=True) from None
            except MaybeSent as exc:
                if attempt is not None:
                    self.io.journal_unknown(attempt, str(exc))
                raise _Stop(
                    UNKNOWN,
                    f"{exc}; the provider may have received it, so it is not "
                    "sent again without --resubmit-unknown",
                ) from None
            except TaskFailed as exc:
                # Raised by submit only when the provider answered with a refusal (400,
                # 402, another 4xx): it created no task, so this attempt certainly cost
                # nothing and must not be left as "fate unknown".
                self.result.committed -= amount
                if attempt is not None:
                    self.io.journal_failed(attempt, str(exc), not_sent=True)
                raise
            except SetupError as exc:
                self.result.committed -= amount
                if attempt is not None:
                    self.io.journal_failed(attempt, str(exc), not_sent=True)
                self._halt_submissions = self.result.setup_error = str(exc)
                raise
            except BaseException:
                if attempt is not None:
                    self.io.journal_unknown(attempt, "interrupted while sending")
                raise
            self.result.submitted += 1
            if attempt is not None:
                self.io.journal_submitted(attempt, task_id)
            if self.team is not None:
                await self.team.submitted(claimed, task_id)
        fin = await self._follow(label, job, task_id, attempt)
        if fin.billed is None and self.backend.paid:
            fin = dataclasses.replace(fin, billed=estimate.amount)  # the provider sends no bill
        if attempt is not None:
            self.io.journal_completed(attempt, fin)
        return self._finish(job, outcome, fin, how="rendered")

    def _picked_digests(self, req: Request) -> dict[str, str]:
        out: dict[str, str] = {}
        for up in req.upstream:
            fut = self._picked.get(up)
            if fut is not None and fut.done() and not fut.cancelled() and fut.result():
                out[up] = fut.result()  # type: ignore[assignment]
        return out

    async def _follow(self, label: str, job: Job, task_id: str, attempt: Any = None) -> Finished:
        if self.backend.paid:
            self.report.scene(label, "submitted", detail=f"task {task_id}")
        follow = asyncio.create_task(
            self.backend.follow(job, task_id, lambda st: self.report.scene(label, f"task:{st}"))
        )
        stop = asyncio.create_task(self._stop.wait())
        try:
            done, _ = await asyncio.wait({follow, stop}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stop.cancel()
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
        except TaskFailed as exc:
            if attempt is not None:
                self.io.journal_failed(attempt, str(exc))
            raise

    def _finish(self, job: Job, outcome: TakeOutcome, fin: Finished, *, how: str) -> TakeOutcome:
        self.io.remember(job.key, fin.digest, job, fin)
        outcome.digest, outcome.how = fin.digest, how
        outcome.task_id, outcome.url, outcome.cost = fin.task_id, fin.url, fin.billed
        outcome.duration = fin.duration
        if outcome.duration is None:
            outcome.duration = self.io.video_duration(fin.digest)
        return outcome


__all__ = [
    "BLOCKED",
    "DONE",
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
]
