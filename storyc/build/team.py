"""The executor's link to the team store: pull before paying, one payer per request, push after.

Stage: execute. In: the executor's takes (key, scene, take, request), a `TeamStore`
(`storyc.remote.team`), a way to follow a provider task. Out: a pulled or followed
output instead of a submission, or a held claim under which this machine submits; pushes
after a paid render. I/O: the team store, in worker threads (boto3 is synchronous), so
the event loop keeps following other tasks meanwhile.

For a paid take whose output is neither local nor in the team store, the executor asks
`acquire` before it submits:

- the claim is created (create-if-absent): this machine pays; the claim follows the
  attempt (`submitting` just before the request leaves, `submitted` with the task id)
  and is refreshed while the task runs; after the render the output and its record are
  pushed and the claim removed (`settle` removes it too when nothing was sent or the task
  failed, and marks it `unknown` when the answer to the submission was lost);
- another machine holds a live claim: its task is followed (no submission) once its task
  id is there, else this machine waits, polling, for the task id or the pushed render;
- the holder died: with a task id, the task is adopted (followed, then pushed); still
  `claimed`, it was never sent and is taken over; `submitting` or `unknown`, it may have
  reached the provider, so the take stops like an attempt of unknown fate (W344) unless
  the user said `--resubmit-unknown`.

A team store that stops answering is reported once (W340) and the build goes on locally:
no claim is then taken, as without a remote. A render the team store has but that cannot
be downloaded is not paid for again: the take fails with the reason, and the next build
tries again.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass

from storyc.backends import BackendError, Finished, Job, NotSent, SetupError, TaskFailed
from storyc.remote.claims import Found, Held, LostClaim
from storyc.remote.client import Denied, RemoteError
from storyc.remote.layout import Record
from storyc.remote.team import Damaged, Miss, TeamStore

Follow = Callable[[str], Awaitable[Finished]]
Note = Callable[[str, str, str], None]  # (label, state, detail)


class TeamUnknown(BackendError):
    """Another machine's claim may have reached the provider: the user decides."""


class TeamStopped(BackendError):
    """The build was interrupted while this take waited for another machine."""


class TeamPullFailed(BackendError):
    """The team store has this render but it could not be downloaded (not paid for again)."""


@dataclass
class Claimed:
    """A claim this build holds, with its heartbeat."""

    held: Held
    lock: asyncio.Lock
    beat: asyncio.Task[None] | None = None
    lost: bool = False
    not_sent: bool = False  # the executor knows the request never left (NotSent)

    @property
    def state(self) -> str:
        return self.held.claim.state


@dataclass
class Acquired:
    claimed: Claimed | None = None  # submit under this claim (None: no claim possible)
    finished: Finished | None = None  # obtained without submitting
    how: str = ""  # "pulled", "followed", "adopted"
    record: Record | None = None


class TeamLink:
    def __init__(
        self,
        team: TeamStore,
        *,
        note: Note,
        poll: float = 2.0,
        resubmit_unknown: bool = False,
        push: bool = True,
    ) -> None:
        self.team = team
        self.note = note
        self.poll = max(0.05, poll)
        self.resubmit_unknown = resubmit_unknown
        self.push_enabled = push
        self.pulled = 0
        self.pushed = 0
        self.followed = 0

    async def _io(self, fn: Callable[..., object], *args: object) -> object:
        return await asyncio.to_thread(fn, *args)

    # -- look-up and pull -----------------------------------------------------------
    async def lookup(self, keys: Iterable[str]) -> None:
        """Ask the team store about `keys` in one batch (a no-op once it is down)."""
        if not self.team.usable:
            return
        try:
            await asyncio.to_thread(self.team.lookup_many, list(keys))
        except RemoteError as exc:
            self.team.mark_down(exc)

    async def lookup_new(self, keys: Iterable[str]) -> bool:
        """Ask about the keys the team store was not asked about yet; whether there were
        any (then a decision made without their answer should be made again)."""
        new = [k for k in keys if not self.team.asked(k)]
        if new and self.team.usable:
            await self.lookup(new)
            return True
        return False

    def has(self, key: str) -> bool:
        return self.team.usable and self.team.known(key) is not None

    async def pull(self, key: str, label: str) -> Record | None:
        """The team's render of `key` in the local store; None when it turned out to be a
        miss (damaged: reported). Raises `TeamPullFailed` when it cannot be downloaded."""
        self.note(label, "pulling", "from the team store")
        try:
            rec = await asyncio.to_thread(self.team.pull, key)
        except Damaged:
            return None
        except Miss as exc:
            if self.team.known(key) is None:
                return None
            raise TeamPullFailed(f"the team store's render could not be read: {exc}") from None
        except RemoteError as exc:
            raise TeamPullFailed(
                f"the team store has this render but it could not be downloaded ({exc}); "
                "it is not paid for again: build again to retry"
            ) from None
        self.pulled += 1
        return rec

    async def _fresh(self, key: str) -> Record | None:
        """Whether the render was pushed meanwhile: asked again, not from memory."""
        self.team.unask(key)
        await self.lookup([key])
        if self.team.known(key) is None:
            return None
        return await self.pull(key, key[7:19])

    # -- claims ---------------------------------------------------------------------
    @property
    def claims_possible(self) -> bool:
        return self.team.usable and not self.team.read_only

    async def acquire(
        self, job: Job, label: str, follow: Follow, stopped: Callable[[], bool]
    ) -> Acquired:
        """Claim `job.key` before paying for it, or obtain its output another way.
        `stopped()` says the build was interrupted: waiting ends (`TeamStopped`)."""
        unfollowable: set[str] = set()  # tasks that failed, or this key cannot see
        waiting_said = False
        while True:
            if stopped():
                raise TeamStopped("not started: the build was interrupted")
            if not self.claims_possible:
                return Acquired()
            try:
                got = await asyncio.to_thread(self.team.claims.claim, job.key, job.scene, job.take)
            except Denied as exc:
                self.team.mark_read_only(exc)
                return Acquired()
            except RemoteError as exc:
                self.team.mark_down(exc)
                return Acquired()
            if isinstance(got, Held):
                return Acquired(claimed=self._start(got))
            found: Found = got
            rec = await self._fresh_or_none(job.key)
            if rec is not None:
                return self._from_record(rec)
            task_id = found.task_id
            if found.alive and found.state != "unknown":
                if task_id and task_id not in unfollowable:
                    self.note(label, "following", f"task {task_id}, sent by another machine")
                    try:
                        fin = await follow(task_id)
                    except BackendError:
                        # failed (its holder releases the claim, or retries under it), or
                        # not visible with this key (another account): wait for the push
                        unfollowable.add(task_id)
                        continue
                    self.followed += 1
                    return Acquired(finished=fin, how="followed")
                if not waiting_said:
                    self.note(label, "waiting", "for another machine that is sending it")
                    waiting_said = True
                await asyncio.sleep(self.poll)
                continue
            # the holder died
            if task_id:
                held = await self._take_over(found, job, state="submitted", task_id=task_id)
                if held is None:
                    continue
                self.note(label, "adopting", f"task {task_id}, sent by a machine that stopped")
                try:
                    fin = await follow(task_id)
                except BaseException as exc:
                    await self.settle(held, exc)
                    raise
                self.followed += 1
                return Acquired(claimed=held, finished=fin, how="adopted")
            if found.state == "claimed" or self.resubmit_unknown:
                held = await self._take_over(found, job, state="claimed", task_id=None)
                if held is not None:
                    return Acquired(claimed=held)
                continue
            raise TeamUnknown(
                "warning[W344]: another machine claimed this request and stopped while "
                "sending it, so it may have reached the provider (its fate is unknown); "
                "check the provider's dashboard, then build with --resubmit-unknown to "
                "send it again"
            )

    async def _fresh_or_none(self, key: str) -> Record | None:
        try:
            return await self._fresh(key)
        except TeamPullFailed:
            return None

    def _from_record(self, rec: Record) -> Acquired:
        fin = Finished(rec.output, rec.task_id, None, rec.cost_decimal, rec.duration)
        return Acquired(finished=fin, how="pulled", record=rec)

    async def _take_over(
        self, found: Found, job: Job, *, state: str, task_id: str | None
    ) -> Claimed | None:
        try:
            held = await asyncio.to_thread(
                lambda: self.team.claims.take_over(
                    found, job.scene, job.take, state=state, task_id=task_id
                )
            )
        except RemoteError as exc:
            self.team.mark_down(exc)
            return None
        return self._start(held) if held is not None else None

    def _start(self, held: Held) -> Claimed:
        claimed = Claimed(held, asyncio.Lock())
        claimed.beat = asyncio.create_task(self._heartbeat(claimed), name="claim-heartbeat")
        return claimed

    async def _heartbeat(self, claimed: Claimed) -> None:
        interval = self.team.claims.heartbeat
        while not claimed.lost and self.team.usable:
            await asyncio.sleep(interval)
            await self._update(claimed)

    async def _update(self, claimed: Claimed, **changes: object) -> None:
        async with claimed.lock:
            if claimed.lost:
                return
            try:
                claimed.held = await asyncio.to_thread(
                    lambda: self.team.claims.update(claimed.held, **changes)
                )
            except LostClaim:
                claimed.lost = True
            except RemoteError as exc:
                self.team.mark_down(exc)

    async def submitting(self, claimed: Claimed | None) -> None:
        """Right before the request leaves: a holder dying now leaves an unknown fate."""
        if claimed is not None:
            await self._update(claimed, state="submitting")

    async def submitted(self, claimed: Claimed | None, task_id: str) -> None:
        if claimed is not None:
            await self._update(claimed, state="submitted", task_id=task_id)

    async def settle(self, claimed: Claimed | None, exc: BaseException | None) -> None:
        """After the take (`exc` None: rendered and pushed), by how far the claim got:

        - `claimed` (nothing was sent): removed;
        - `submitting`: removed if the provider refused it or it certainly did not leave
          (`TaskFailed`, `NotSent`, `SetupError`), else marked `unknown` (the answer was
          lost: it may have reached the provider);
        - `submitted`: removed when the render is done or the task failed; otherwise
          (interrupted while it runs) left with its task id, to be adopted or followed.
        """
        if claimed is None:
            return
        if claimed.beat is not None:
            claimed.beat.cancel()
            await asyncio.gather(claimed.beat, return_exceptions=True)
        state = claimed.state
        refused = isinstance(exc, TaskFailed | NotSent | SetupError) or claimed.not_sent
        if exc is None or state == "claimed" or refused:
            await self._release(claimed)
        elif state == "submitting":
            await self._update(claimed, state="unknown")
        claimed.lost = True

    async def clear_stale(self, key: str, task_id: str | None) -> None:
        """After re-attaching to a task this machine sent before it died: its old claim
        (same task, a holder that is gone) is removed once the render is pushed."""
        if not task_id or not self.claims_possible:
            return
        try:
            found = await asyncio.to_thread(self.team.claims.read, key)
            if found is not None and not found.alive and found.task_id == task_id:
                await asyncio.to_thread(self.team.claims.forget, found)
        except RemoteError as exc:
            self.team.mark_down(exc)

    async def _release(self, claimed: Claimed) -> None:
        try:
            await asyncio.to_thread(self.team.claims.release, claimed.held)
        except RemoteError as exc:
            self.team.mark_down(exc)

    # -- push -----------------------------------------------------------------------
    def record(self, job: Job, backend: str, fin: Finished, size: int) -> Record:
        return Record(
            key=job.key,
            output=fin.digest,
            size=size,
            scene=job.scene,
            take=job.take,
            backend=backend,
            target=job.request.target,
            task_id=fin.task_id,
            duration=fin.duration,
            cost=None if fin.billed is None else str(fin.billed),
            created=time.time(),
        )

    async def push(self, rec: Record, label: str) -> None:
        """Share a finished render; a failure is a warning (W343), never a failed take."""
        if not self.push_enabled or not self.claims_possible:
            return
        self.note(label, "pushing", "to the team store")
        t = time.monotonic()
        try:
            ok = await asyncio.to_thread(self.team.push, rec)
        except (RemoteError, Miss) as exc:
            self.team.warn(
                f"warning[W343]: {label}: not pushed to the team store ({exc}); "
                "`storyc push` shares it later"
            )
            return
        if ok:
            self.pushed += 1
            self.note(label, "pushed", f"{rec.size:,} bytes in {time.monotonic() - t:.1f} s")
