"""Tasks of the loopback provider: submission, life cycle, status, stream, cancel, faults.

Stage: tooling (the offline provider). In: parsed requests routed by
`storyc.provider.loopback.server`. Out: `Response` values in the provider's envelope.
I/O: none directly (rendering goes through `MediaShelf`).

Life cycle of a task (latency L): queued (0.2 L) → running (0.6 L, the output is
rendered) → uploading (0.2 L) → completed. A `fail` fault ends it failed (11), a
`reject` fault rejected (13, never ran), an end frame without a first frame fails as
the real app does. Every status change is pushed to open streams at once.

Webhooks: a submission with `"webhook": URL` gets one POST to that URL when its task
ends (completed, failed, cancelled or rejected), as the real provider does, with the task
as `GET /tasks/{id}` shows it as the body. The `webhook` faults make it late, duplicated,
lost or accompanied by forged calls; every call made is recorded (`webhook_calls`).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, Protocol

from storyc.provider.loopback.faults import Fault, FaultPlan
from storyc.provider.loopback.http import Drop, Request, Response
from storyc.provider.loopback.schema import APP
from storyc.provider.task import TERMINAL, Status

if TYPE_CHECKING:
    from storyc.provider.loopback.media import MediaShelf

DEFAULT_KEY = "inf_loopback_key"


@dataclass
class Options:
    schema: str = "v2"
    latency: float = 0.0  # seconds from submission to completion
    api_key: str = DEFAULT_KEY
    status_form: str = "int"  # "int" (current numbering), "string", or "legacy" ints
    video_form: str = "url"  # output `video` as a URL string, or an {"uri": ...} "object"
    fast_outputs: bool = False  # cache outputs by duration and aspect only
    # tasks stay running, their output made, until the test says so (`release`): what a
    # test sees while tasks run is then decided by events, not by the clock
    hold: bool = False
    heartbeat: float = 0.5  # seconds between stream heartbeats
    faults: FaultPlan = field(default_factory=FaultPlan)
    # pinned app versions this provider hosts: `klingai/video-o1@<id>` -> input schema.
    # Unpinned (and `@latest`) is the live app, speaking `schema`; other ids are 404.
    versions: dict[str, str] = field(default_factory=dict)


class Host(Protocol):
    """What the task book needs of the provider that owns it (`server.LoopbackProvider`)."""

    base_url: str
    options: Options
    shelf: MediaShelf

    def validate(self, data: Any, schema: str | None = None) -> tuple[Any, str | None]: ...


_LEGACY = {
    Status.RUNNING: 7,
    Status.UPLOADING: 8,
    Status.COMPLETED: 9,
    Status.FAILED: 10,
    Status.CANCELLED: 11,
}


def problem(
    status: int, code: str, title: str, detail: str, headers: dict[str, str] | None = None
) -> Response:
    body = {
        "type": f"https://inference.sh/errors/{code}",
        "title": title,
        "status": status,
        "detail": detail,
    }
    return Response.json(body, status, "application/problem+json", headers)


def envelope(data: Any) -> Response:
    return Response.json({"data": data, "messages": []})


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TaskBook:
    def __init__(self, provider: Host) -> None:
        self.p = provider
        self.tasks: dict[str, dict[str, Any]] = {}
        self.state: dict[str, Status] = {}
        self.submissions: list[dict[str, Any]] = []
        self._records: dict[str, dict[str, Any]] = {}  # task id -> its entry in submissions
        self._watchers: dict[str, list[asyncio.Queue[dict[str, Any]]]] = {}
        self._runners: dict[str, asyncio.Task[None]] = {}
        # What a test measures about money: tasks submitted and not yet finished (what
        # `--jobs` bounds), and when each POST /apps/run arrived (even a refused one).
        self.in_flight = 0
        self.peak_in_flight = 0
        self.arrivals: list[float] = []  # time.monotonic() of every POST /apps/run read
        self.received: list[float] = []  # ... and once its body was read whole
        self._hooks: dict[str, str] = {}  # task id -> the webhook URL it was sent with
        self._hook_faults: dict[str, str | None] = {}  # task id -> its webhook's fault
        self._hook_late: dict[str, float] = {}
        # every webhook call made: {"task_id", "url", "kind": real|duplicate|forged, "status"}
        self.webhook_calls: list[dict[str, Any]] = []
        self._deliveries: set[asyncio.Task[None]] = set()
        self._http: Any = None  # an httpx.AsyncClient, made at the first call
        self._released: asyncio.Event | None = None  # with `hold`: set by `release`

    def release(self) -> None:
        """Let held tasks (and every later one) finish (`Options.hold`)."""
        self._gate().set()

    def hold(self) -> None:
        """Hold the tasks that reach their end from now on, until `release` (`Options.hold`)."""
        if self._gate().is_set():
            self._released = asyncio.Event()

    def _gate(self) -> asyncio.Event:
        if self._released is None:
            self._released = asyncio.Event()
        return self._released

    def form(self, status: Status) -> int | str:
        how = self.p.options.status_form
        if how == "string":
            return status.name.lower()
        if how == "legacy":
            return _LEGACY.get(status, int(status))
        return int(status)

    def view(self, task_id: str) -> dict[str, Any]:
        return {**self.tasks[task_id], "status": self.form(self.state[task_id])}

    def set(self, task_id: str, status: Status, **changes: Any) -> None:
        self.state[task_id] = status
        task = self.tasks[task_id]
        task.update(changes, updated_at=_now())
        fields = ["status", "updated_at", *changes]
        view = self.view(task_id)
        partial = {"id": task_id, **{k: view[k] for k in fields}}
        for queue in self._watchers.get(task_id, []):
            queue.put_nowait({"data": partial, "fields": fields})
        if status in TERMINAL and self._records[task_id]["outcome"] is None:
            self._records[task_id]["outcome"] = status.name.lower()
            self.in_flight -= 1
            if task_id in self._hooks:
                self._spawn(self._deliver(task_id))

    async def fault_or(
        self, endpoint: str, req: Request, make: Callable[[Fault | None], Awaitable[Response]]
    ) -> Response:
        fault = self.p.options.faults.pick(endpoint)
        kind = fault.kind if fault is not None else None
        if fault is not None and kind in ("429", "503"):
            headers = (
                {"Retry-After": f"{fault.retry_after:g}"} if fault.retry_after is not None else {}
            )
            code = "rate_limited" if kind == "429" else "app_maintenance"
            return problem(int(kind), code, "Try again later", f"injected {kind}", headers)
        if kind == "500":
            return problem(500, "internal_error", "Internal Server Error", "injected failure")
        if kind == "402":
            return problem(
                402, "payment_required", "Payment Required", "insufficient balance for this run"
            )
        if kind == "401":
            return problem(401, "unauthorized", "Unauthorized", "invalid API key")
        if kind == "drop_early" or (kind == "drop" and endpoint != "submit"):
            raise Drop
        if kind == "delay" and fault is not None:
            await asyncio.sleep(fault.seconds)
        return await make(fault)

    async def submit(self, req: Request, fault: Fault | None) -> Response:
        try:
            body = await req.json()
        except ValueError:
            return problem(400, "invalid_request", "Bad Request", "body is not JSON")
        app = body.get("app") if isinstance(body, dict) else None
        if not isinstance(app, str) or app.split("@", 1)[0] != APP:
            return problem(404, "not_found", "Not Found", f"app {app!r} not found")
        version = app.split("@", 1)[1] if "@" in app else "latest"
        schema = (
            self.p.options.schema if version == "latest" else self.p.options.versions.get(version)
        )
        if schema is None:
            return problem(404, "not_found", "Not Found", f"app version {app!r} not found")
        model, detail = self.p.validate(body.get("input"), schema)
        if model is None:
            return problem(400, "validation_error", "Validation Error", detail or "invalid input")
        task_id = uuid.uuid4().hex[:20]
        stamp = _now()
        self.tasks[task_id] = {
            "id": task_id,
            "app": app,
            "input": body["input"],
            "output": None,
            "error": None,
            "created_at": stamp,
            "updated_at": stamp,
            "session_id": None,
            "logs": [],
            "events": [],
        }
        self.state[task_id] = Status.QUEUED
        record = {
            "task_id": task_id,
            "app": app,
            "input": body["input"],
            "outcome": None,
            "at": time.monotonic(),
        }
        self.submissions.append(record)
        self._records[task_id] = record
        hook = body.get("webhook")
        if isinstance(hook, str) and hook:
            self._hooks[task_id] = hook
            # the webhook's fault is drawn per task, in the order tasks arrive
            hook_fault = self.p.options.faults.pick("webhook")
            self._hook_faults[task_id] = hook_fault.kind if hook_fault is not None else None
            self._hook_late[task_id] = hook_fault.seconds if hook_fault is not None else 0.0
            if self._hook_faults[task_id] == "forged":
                self._spawn(self._forge(task_id))
        self.in_flight += 1
        self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        outcome = fault.kind if fault is not None and fault.kind in ("fail", "reject") else None
        self._runners[task_id] = asyncio.create_task(self._run(task_id, model, outcome))
        if fault is not None and fault.kind == "drop":
            raise Drop  # accepted, but the answer is lost
        return envelope(self.view(task_id))

    async def _run(self, task_id: str, model: Any, outcome: str | None) -> None:
        lat = self.p.options.latency
        if outcome == "reject":
            self.set(task_id, Status.REJECTED, error="insufficient balance")
            return
        # before the first await: looks follow the order the tasks arrived in
        look = self.p.shelf.look(self.p.shelf.render_args(model, self.p.base_url))
        try:
            await asyncio.sleep(0.2 * lat)
            self.set(task_id, Status.RUNNING)
            if model.end_image is not None and model.image is None:
                self.set(task_id, Status.FAILED, error="end_image requires image")
                return
            started = asyncio.get_running_loop().time()
            name = await self.p.shelf.render(look)
            elapsed = asyncio.get_running_loop().time() - started
            await asyncio.sleep(max(0.0, 0.6 * lat - elapsed))
            if self.p.options.hold:
                await self._gate().wait()
            if outcome == "fail":
                self.set(task_id, Status.FAILED, error="injected failure: generation failed")
                return
            self.set(task_id, Status.UPLOADING)
            await asyncio.sleep(0.2 * lat)
            url = f"{self.p.base_url}/outputs/{name}"
            video: Any = url if self.p.options.video_form == "url" else {"uri": url}
            meta = {
                "outputs": [
                    {
                        "type": "video",
                        # a base edit is as long as its video, like upstream (not `duration`)
                        "seconds": float(look["duration"]),
                        "fps": 24,
                        "resolution": getattr(model, "resolution", "1080p"),
                    }
                ]
            }
            self.set(task_id, Status.COMPLETED, output={"video": video, "output_meta": meta})
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # a render failure is the task's failure, not the server's
            self.set(task_id, Status.FAILED, error=f"generation failed: {exc}")

    async def get(self, task_id: str) -> Response:
        if task_id not in self.tasks:
            return problem(404, "not_found", "Not Found", f"task {task_id} not found")
        return envelope(self.view(task_id))

    async def status(self, task_id: str) -> Response:
        if task_id not in self.tasks:
            return problem(404, "not_found", "Not Found", f"task {task_id} not found")
        view = self.view(task_id)
        return envelope({"id": task_id, "status": view["status"], "updated_at": view["updated_at"]})

    async def cancel(self, task_id: str) -> Response:
        if task_id not in self.tasks:
            return problem(404, "not_found", "Not Found", f"task {task_id} not found")
        if self.state[task_id] in TERMINAL:
            return problem(
                409, "invalid_transition", "Conflict", f"task {task_id} already finished"
            )
        runner = self._runners.get(task_id)
        if runner is not None:
            runner.cancel()
        self.set(task_id, Status.CANCELLING)
        self.set(task_id, Status.CANCELLED)
        return Response(204)

    async def stream(self, req: Request, task_id: str) -> Response:
        if task_id not in self.tasks:
            return problem(404, "not_found", "Not Found", f"task {task_id} not found")
        sse = "text/event-stream" in req.headers.get("accept", "")
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue()
        self._watchers.setdefault(task_id, []).append(queue)
        first = {"data": self.view(task_id), "fields": list(self.tasks[task_id]) + ["status"]}
        ctype = "text/event-stream" if sse else "application/x-ndjson"
        return Response(
            200,
            headers={"Content-Type": ctype, "Cache-Control": "no-cache"},
            stream=self._events(task_id, queue, first, sse),
        )

    async def _events(
        self, task_id: str, queue: asyncio.Queue[dict[str, Any]], first: dict[str, Any], sse: bool
    ) -> AsyncIterator[bytes]:
        def line(event: dict[str, Any]) -> bytes:
            text = json.dumps(event, separators=(",", ":"))
            return f"data: {text}\n\n".encode() if sse else (text + "\n").encode()

        try:
            yield line(first)
            while self.state[task_id] not in TERMINAL:
                try:
                    event = await asyncio.wait_for(queue.get(), self.p.options.heartbeat)
                except TimeoutError:
                    yield b": heartbeat\n\n" if sse else line({"type": "heartbeat"})
                    continue
                yield line(event)
            while not queue.empty():
                yield line(queue.get_nowait())
        finally:
            self._watchers[task_id].remove(queue)

    # -- webhooks -------------------------------------------------------------------------
    def _spawn(self, work: Any) -> None:
        job = asyncio.get_running_loop().create_task(work)
        self._deliveries.add(job)
        job.add_done_callback(self._deliveries.discard)

    async def _deliver(self, task_id: str) -> None:
        """The call made when the task ends (or not made, or late, or twice)."""
        url, kind = self._hooks[task_id], self._hook_faults.get(task_id)
        if kind == "lost":
            self.webhook_calls.append({"task_id": task_id, "url": url, "kind": "lost"})
            return
        if kind == "late":
            await asyncio.sleep(self._hook_late.get(task_id, 1.0))
        await self._call(url, task_id, self.view(task_id), "real")
        if kind == "duplicate":
            await self._call(url, task_id, self.view(task_id), "duplicate")

    async def _forge(self, task_id: str) -> None:
        """Forged calls, made while the task runs (half-way through its latency, when
        its sender knows its id): it "completed" (with a made-up output), and a task id
        this provider never created completed too."""
        await asyncio.sleep(0.5 * self.p.options.latency)
        url = self._hooks[task_id]
        lie = {**self.view(task_id), "status": self.form(Status.COMPLETED)}
        await self._call(url, task_id, {**lie, "output": _FAKE_OUTPUT}, "forged")
        fake = uuid.uuid4().hex[:20]
        forged = {"id": fake, "status": self.form(Status.COMPLETED), "output": _FAKE_OUTPUT}
        await self._call(url, fake, forged, "forged")

    async def _call(self, url: str, task_id: str, body: dict[str, Any], kind: str) -> None:
        import httpx  # the loopback's own client, for its outgoing calls

        if self._http is None:
            self._http = httpx.AsyncClient(timeout=30.0)
        entry: dict[str, Any] = {"task_id": task_id, "url": url, "kind": kind}
        try:
            resp = await self._http.post(url, json=body)
            entry["status"] = resp.status_code
        except httpx.HTTPError as exc:  # nobody listening: the call is lost, as upstream
            entry["status"] = None
            entry["error"] = type(exc).__name__
        self.webhook_calls.append(entry)

    async def shutdown(self) -> None:
        for runner in self._runners.values():
            runner.cancel()
        await asyncio.gather(*self._runners.values(), return_exceptions=True)
        for job in list(self._deliveries):
            job.cancel()
        await asyncio.gather(*self._deliveries, return_exceptions=True)
        if self._http is not None:
            with contextlib.suppress(Exception):
                await self._http.aclose()


_FAKE_OUTPUT = {"video": "https://attacker.invalid/not-your-video.mp4"}
