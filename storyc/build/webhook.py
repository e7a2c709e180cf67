"""`storyc webhook serve`: the provider says a task ended; the project collects it.

Stage: execute (beside the build). In: HTTP calls from the provider (the body and its
signing are undocumented, so a call only names a task id), the project's journal, the
provider (`GET /tasks/{id}`). Out: finished tasks collected into the project exactly as
`storyc build` collects them; one log line per call on stderr; the exit code. I/O: a
listening socket (127.0.0.1 by default), the journal, reads from the provider, and a
collecting build under the project's build lock.

A call is a nudge, never the truth:

1. its task id must be one the journal knows (an attempt storyc sent); any other call is
   refused (404, W401) and costs nothing, not even a read;
2. an attempt already collected answers 200 and changes nothing (duplicated calls);
3. otherwise the call is answered at once (202) and the task is read again from the
   provider, paced with every other read; if it has not ended, nothing happens (W402: a
   forged or early call);
4. if it has ended, a collecting build runs for its scene: the one planner and executor
   of `storyc build`, with `collect_only` (storyc.build.outcome.BuildOptions): the
   planner's `follow` downloads the output into the store, the journal, the key index,
   `storyc.lock` and `renders/` learn it, under the project's build lock, so it never
   races a build. A collecting build never sends: a scene that needs a submission (its
   task failed, or what it uses just finished) is left to the next `storyc build`.

Calls arriving together are collected in one pass. A lost call is caught by `storyc
status`, the next `storyc build`, or this receiver's own sweep (`--sweep`, a paced status
read of everything in flight, also made once at start).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import signal
import sys
import time
from pathlib import Path
from typing import Any

from storyc.base.exits import ExitCode
from storyc.provider.loopback.http import HttpServer, Request, Response
from storyc.state.journal import Journal
from storyc.state.projectlock import ProjectLock

KEY_ENV = "INFERENCE_API_KEY"
MAX_BODY = 64 * 1024
LOCK_WAIT = 5.0  # seconds a collecting pass waits for a build that holds the project
RETRY = 2.0  # seconds before trying again when a build held the project
_TASK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def task_id_of(body: Any) -> str | None:
    """The task a webhook call names: `task_id` or `id`, at the top or under `data` or
    `task` (the provider does not document its body; a task object is the likely one)."""
    if not isinstance(body, dict):
        return None
    for name in ("task_id", "id"):
        value = body.get(name)
        if isinstance(value, str) and _TASK_ID.fullmatch(value):
            return value
    for name in ("data", "task"):
        inner = body.get(name)
        if isinstance(inner, dict):
            found = task_id_of({k: v for k, v in inner.items() if k in ("task_id", "id")})
            if found is not None:
                return found
    return None


def _log(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


class Receiver:
    """The calls, the queue of tasks to read again, and the collecting passes."""

    def __init__(
        self,
        root: Path,
        client: Any,
        *,
        base_url: str | None,
        until_settled: bool,
        sweep: float,
    ) -> None:
        from storyc.provider.status import Pacer

        self.root = root
        self.client = client
        self.pacer = Pacer(client)
        self.base_url = base_url
        # an attempt sent to another provider (the project's `base_url`, a rehearsal's
        # loopback) is read from where it was sent, as `storyc status` reads it: without
        # `--base-url`, `client` is only the environment's provider, or the default one
        self.make_client: Any = None  # base URL -> an open client (set by `_serve`)
        self.elsewhere: dict[str, tuple[Any, Any]] = {}  # base URL -> (client, pacer)
        self.until_settled = until_settled
        self.sweep_every = sweep
        self.journal = Journal(root / ".storyc" / "journal.sqlite")
        self.queue: asyncio.Queue[str] = asyncio.Queue()
        self.queued: set[str] = set()
        self.done = asyncio.Event()
        self.calls = {"accepted": 0, "refused": 0, "duplicate": 0, "bad": 0}
        self.collected = 0
        self.seen_work = False

    # -- the calls ------------------------------------------------------------------
    async def handle(self, req: Request) -> Response:
        if req.method != "POST":
            return _answer(405, "POST the provider's call here")
        size = 0
        chunks = []
        async for block in req.iter_body():
            size += len(block)
            if size > MAX_BODY:
                self.calls["bad"] += 1
                return _answer(413, "body too large")
            chunks.append(block)
        try:
            body = json.loads(b"".join(chunks) or b"null")
        except ValueError:
            body = None
        task_id = task_id_of(body)
        if task_id is None:
            self.calls["bad"] += 1
            _log("a call without a task id: ignored")
            return _answer(400, "no task id in the body")
        att = self.journal.by_task(task_id)
        if att is None:
            self.calls["refused"] += 1
            _log(
                f"warning[W401]: a call for task {task_id}, which this project's journal "
                "does not know: refused, nothing read"
            )
            return _answer(404, "unknown task")
        if att.state != "submitted":  # collected already, or failed and recorded
            self.calls["duplicate"] += 1
            return _answer(200, f"already {att.state}")
        self.calls["accepted"] += 1
        self._enqueue(task_id)
        return _answer(202, "queued")

    def _enqueue(self, task_id: str) -> None:
        if task_id not in self.queued:
            self.queued.add(task_id)
            self.queue.put_nowait(task_id)

    # -- reading again and collecting -----------------------------------------------
    async def worker(self) -> None:
        while True:
            first = await self.queue.get()
            batch = [first]
            while not self.queue.empty():  # calls that arrived together: one pass
                batch.append(self.queue.get_nowait())
            ended = [t for t in await asyncio.gather(*(self._ended(t) for t in batch)) if t]
            for t in batch:
                self.queued.discard(t)
            if ended:
                await self._collect(ended)
            self._check_settled()

    async def _ended(self, task_id: str) -> str | None:
        from storyc.provider import errors as E
        from storyc.provider.status import read_task

        try:
            client, pacer = await self._where(task_id)
            task = await read_task(client, pacer, task_id)
        except E.ProviderError as exc:
            _log(f"task {task_id}: could not be read again ({exc}); `storyc build` collects it")
            return None
        except Exception as exc:  # one provider never stops the receiver for the others
            _log(
                f"task {task_id}: could not be read again ({type(exc).__name__}); "
                "`storyc build` collects it"
            )
            return None
        if not task.terminal:
            _log(
                f"warning[W402]: task {task_id} is {task.status_name} on the provider: "
                "nothing collected (a call before the end is not trusted)"
            )
            return None
        return task_id

    def _sent_to(self, att: Any) -> str | None:
        """Where an attempt is read and collected: `--base-url` when given, else the base
        URL the attempt records (None: an old journal's, the default client's)."""
        return self.base_url or (att.base_url if att is not None else None) or None

    async def _where(self, task_id: str) -> tuple[Any, Any]:
        """The client (and its pacer) of the provider `task_id` was sent to."""
        url = self._sent_to(self.journal.by_task(task_id))
        if (
            not url
            or self.base_url is not None
            or self.make_client is None
            or url == getattr(self.client, "base_url", None)
        ):
            return self.client, self.pacer
        hit = self.elsewhere.get(url)
        if hit is None:
            from storyc.provider.status import Pacer

            other = await self.make_client(url)
            hit = self.elsewhere[url] = (other, Pacer(other))
        return hit

    async def close(self) -> None:
        for client, _ in self.elsewhere.values():
            with contextlib.suppress(Exception):
                await client.aclose()
        self.elsewhere.clear()

    async def _collect(self, task_ids: list[str]) -> None:
        atts = [a for a in (self.journal.by_task(t) for t in task_ids) if a is not None]
        atts = [a for a in atts if a.state == "submitted"]
        if not atts:
            return
        _log(f"collecting {len(atts)} task(s): {', '.join(sorted({a.scene for a in atts}))}")
        # each collected by a pass for the provider it was sent to (as it was read): a
        # pass for another provider plans other keys and would never follow it
        where: dict[str | None, list[str]] = {}
        for a in atts:
            url = self._sent_to(a)
            if a.scene not in where.setdefault(url, []):
                where[url].append(a.scene)
        said = False
        codes: dict[str | None, int] = {}  # each provider's pass: its own exit
        for url, scenes in where.items():
            while True:
                if ProjectLock(self.root).held_by_another():  # wait quietly for that build
                    if not said:
                        _log("a build holds the project: collecting when it is done")
                        said = True
                    await asyncio.sleep(RETRY)
                    if self.done.is_set():
                        return
                    continue
                code = await asyncio.to_thread(collect_pass, self.root, sorted(scenes), url)
                if code == ExitCode.ENVIRONMENT and ProjectLock(self.root).held_by_another():
                    continue  # a build took the project just before this pass did
                codes[url] = code
                break
        for a in atts:
            code = codes.get(self._sent_to(a), ExitCode.OK)
            now = self.journal.get(a.id)
            label = a.scene if a.take == 1 else f"{a.scene}#{a.take}"
            if now.state == "completed":
                self.collected += 1
                _log(f"collected {label} (task {a.task_id})")
            elif now.state == "submitted":
                _log(
                    f"warning[W403]: {label} (task {a.task_id}) was not collected "
                    f"(the collecting build exited {code}); `storyc build` collects it"
                )
            else:
                _log(f"{label} (task {a.task_id}): {now.state}; the next `storyc build` sees to it")

    # -- lost calls, and the end ------------------------------------------------------
    def in_flight(self) -> list[str]:
        return [a.task_id for a in self.journal.in_flight() if a.task_id]

    async def sweeper(self) -> None:
        """Every task in flight asked about (paced): those that ended are collected even
        if their call was lost. Once at start, then every `sweep` seconds (if any)."""
        from storyc.provider import errors as E
        from storyc.provider.status import read_statuses
        from storyc.provider.task import TERMINAL

        while True:
            groups: dict[int, tuple[Any, Any, list[str]]] = {}
            for task_id in self.in_flight():  # each asked of the provider it was sent to
                try:
                    client, pacer = await self._where(task_id)
                except Exception as exc:
                    _log(f"task {task_id}: could not be asked about ({type(exc).__name__})")
                    continue
                groups.setdefault(id(client), (client, pacer, []))[2].append(task_id)
            for client, pacer, ids in groups.values():
                try:
                    answers = await read_statuses(client, ids, pacer=pacer)
                except Exception as exc:  # the other providers are asked all the same
                    _log(f"{len(ids)} task(s) could not be asked about ({type(exc).__name__})")
                    continue
                for task_id, got in answers.items():
                    if not isinstance(got, E.ProviderError) and got in TERMINAL:
                        self._enqueue(task_id)
            self._check_settled()
            if self.sweep_every <= 0:
                return
            await asyncio.sleep(self.sweep_every)

    def _check_settled(self) -> None:
        """With `--until-settled`: done once tasks were in flight and none is left (a
        receiver started before the build waits for its first task)."""
        if not self.until_settled:
            return
        if self.queued or self.in_flight():
            self.seen_work = True
        elif self.seen_work or self.collected:
            _log("settled: nothing of this project is in flight")
            self.done.set()


def _answer(status: int, text: str) -> Response:
    return Response.json({"ok": status < 300, "message": text}, status)


def collect_pass(root: Path, scenes: list[str], base_url: str | None) -> int:
    """One collecting build of `scenes` (the planner's follow, asked once; never a send),
    under the project's build lock. Runs in a worker thread: `BuildSession` has its own
    event loop, and sets no signal handlers off the main thread."""
    import argparse

    from storyc.build.progress import Reporter
    from storyc.build.session import BuildSession

    args = argparse.Namespace(
        path=str(root),
        target=None,
        scenes=scenes,
        cuts=None,
        backend="inference",
        jobs=None,
        max_cost=None,
        yes=True,
        json=False,
        remote=None,
        no_remote=False,
        resubmit_unknown=False,
        base_url=base_url,
        wait=LOCK_WAIT,  # for a build holding the project; collecting waits for nothing
        retries=0,
        poll_interval=2.0,
        detach=False,
        webhook=None,
        collect_only=True,
    )
    return BuildSession(args, reporter=Reporter(sys.stderr)).run()


def serve_webhooks(
    root: Path,
    *,
    host: str,
    port: int,
    base_url: str | None,
    until_settled: bool,
    sweep: float,
) -> int:
    from storyc.provider import errors as E

    key = os.environ.get(KEY_ENV, "")
    problem = f"{KEY_ENV} is not set" if not key else E.key_problem(key, KEY_ENV)
    if problem is not None:
        print(
            f"error: storyc webhook serve reads each task from the provider: {problem}",
            file=sys.stderr,
        )
        return ExitCode.ENVIRONMENT
    return asyncio.run(_serve(root, key, host, port, base_url, until_settled, sweep))


async def _serve(
    root: Path,
    key: str,
    host: str,
    port: int,
    base_url: str | None,
    until_settled: bool,
    sweep: float,
) -> int:
    from storyc.provider.client import ProviderClient

    async with ProviderClient(api_key=key, base_url=base_url) as client:
        rx = Receiver(root, client, base_url=base_url, until_settled=until_settled, sweep=sweep)

        async def make_client(url: str) -> ProviderClient:
            return await ProviderClient(api_key=key, base_url=url).__aenter__()

        rx.make_client = make_client
        server = HttpServer(rx.handle, port, host=host)
        try:
            bound = await server.start()
        except OSError as exc:
            print(
                f"error[E402]: cannot listen on {host}:{port}: {exc.strerror or exc}",
                file=sys.stderr,
            )
            rx.journal.close()
            return ExitCode.ENVIRONMENT
        shown = f"[{host}]" if ":" in host else host
        print(f"listening on http://{shown}:{bound}/", flush=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, rx.done.set)
        tasks = [asyncio.create_task(rx.worker()), asyncio.create_task(rx.sweeper())]
        try:
            await rx.done.wait()
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            await server.stop()
            for t in tasks:
                t.cancel()
            for t in tasks:  # a collecting pass in its thread finishes first
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await t
            await rx.close()
            rx.journal.close()
        c = rx.calls
        _log(
            f"stopped: {rx.collected} task(s) collected; calls: {c['accepted']} accepted, "
            f"{c['duplicate']} for tasks already collected, {c['refused']} refused, "
            f"{c['bad']} unreadable"
        )
    return ExitCode.OK
