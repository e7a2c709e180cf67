"""The loopback provider: inference.sh's task protocol on 127.0.0.1, for tests and rehearsals.

Stage: tooling (the offline provider). In: HTTP requests as the real service takes
them (see provider-facts §1). Out: the real envelope `{"data", "messages"}`,
problem+json errors, tasks advancing queued → running → uploading → completed, an
NDJSON stream with heartbeats (SSE on request), file uploads, and real MP4 outputs.
I/O: a socket on 127.0.0.1, a scratch directory, ffmpeg through `storyc.media.ffmpeg`.

`serve(...)` runs it in a background thread and yields a `LoopbackServer` handle
(`url`, `api_key`, `submissions`, `upload_puts`, `faults`). Every accepted submission
is recorded, so a test can count exactly what a build would have paid for.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import shutil
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyc.provider.loopback.faults import Fault, FaultPlan
from storyc.provider.loopback.http import HttpServer, Request, Response
from storyc.provider.loopback.media import MediaShelf
from storyc.provider.loopback.schema import APP, validate_input
from storyc.provider.loopback.tasks import DEFAULT_KEY, Options, TaskBook, problem

_TASK = re.compile(r"^/tasks/([\w-]+)(/status|/stream|/cancel)?$")


class LoopbackProvider:
    """The request handler; state lives here, sockets in `HttpServer`."""

    def __init__(self, options: Options, scratch: Path) -> None:
        self.options = options
        self.base_url = ""  # set once the port is known
        self.shelf = MediaShelf(scratch, fast_outputs=options.fast_outputs)
        self.book = TaskBook(self)
        self.upload_puts: list[dict[str, Any]] = []

    @property
    def submissions(self) -> list[dict[str, Any]]:
        return self.book.submissions

    async def handle(self, req: Request) -> Response:
        path = req.path.rstrip("/") or "/"
        if req.method == "PUT" and path.startswith("/uploads/"):
            return await self.book.fault_or("upload", req, lambda f: self.put_file(req, path, f))
        if req.method == "GET" and (path.startswith("/files/") or path.startswith("/outputs/")):
            return await self.book.fault_or("download", req, lambda f: self.get_file(req, path, f))
        if req.headers.get("authorization") != f"Bearer {self.options.api_key}":
            return problem(
                401,
                "unauthorized",
                "Unauthorized",
                "missing or invalid API key (Authorization: Bearer <key>)",
            )
        if req.method == "POST" and path == "/apps/run":
            self.book.arrivals.append(time.monotonic())
            # the request whole before any fault: what a provider has in hand once a client
            # has sent it, whatever happens to that client next
            await req.body()
            self.book.received.append(time.monotonic())
            return await self.book.fault_or("submit", req, lambda f: self.book.submit(req, f))
        if req.method == "POST" and path == "/files":
            return await self.book.fault_or("files", req, lambda f: self.register_files(req))
        m = _TASK.match(path)
        if m is not None:
            task_id, tail = m.group(1), m.group(2) or ""
            if req.method == "GET" and tail == "":
                return await self.book.fault_or("task", req, lambda f: self.book.get(task_id))
            if req.method == "GET" and tail == "/status":
                return await self.book.fault_or("status", req, lambda f: self.book.status(task_id))
            if req.method == "GET" and tail == "/stream":
                return await self.book.fault_or(
                    "stream", req, lambda f: self.book.stream(req, task_id)
                )
            if req.method == "POST" and tail == "/cancel":
                return await self.book.fault_or("cancel", req, lambda f: self.book.cancel(task_id))
        return problem(404, "not_found", "Not Found", f"no route for {req.method} {path}")

    def validate(self, data: Any, schema: str | None = None) -> tuple[Any, str | None]:
        """(model, detail): schema validation (the live schema unless another is given)
        plus this server's own file URIs."""
        model, detail = validate_input(schema or self.options.schema, data)
        if model is None:
            return None, detail
        for name, uri in model.files().items():
            if uri.startswith(f"{self.base_url}/files/"):
                if self.shelf.local_path(uri, self.base_url) is None:
                    return None, f"{name}: file not found or expired: {uri}"
            elif not uri.startswith(("https://", "http://")):
                return None, f"{name}: expected a file URL, got {uri[:60]!r}"
        return model, None

    async def register_files(self, req: Request) -> Response:
        body = await req.json()
        files = body.get("files") if isinstance(body, dict) else None
        if not isinstance(files, list) or not files:
            return problem(400, "invalid_request", "Bad Request", "files: expected a list")
        out = []
        for spec in files:
            if not isinstance(spec, dict):
                return problem(400, "invalid_request", "Bad Request", "files[]: expected objects")
            fid = uuid.uuid4().hex
            name = str(spec.get("filename") or "file")
            ctype = str(spec.get("content_type") or "application/octet-stream")
            entry = self.shelf.new_file(fid, name, ctype, int(spec.get("size") or 0))
            out.append(
                {
                    "id": fid,
                    "uri": f"{self.base_url}/files/{fid}/{entry.filename}",
                    "upload_url": f"{self.base_url}/uploads/{fid}?signature={uuid.uuid4().hex}",
                    "filename": entry.filename,
                    "content_type": ctype,
                    "size": entry.declared_size,
                }
            )
        return Response.json({"data": out, "messages": []})

    async def put_file(self, req: Request, path: str, fault: Fault | None) -> Response:
        entry = self.shelf.files.get(path.split("/")[2])
        if entry is None:
            return problem(404, "not_found", "Not Found", "unknown upload URL")
        size = 0
        with open(entry.path, "wb") as f:
            async for block in req.iter_body():
                f.write(block)
                size += len(block)
        entry.complete = True
        self.upload_puts.append(
            {
                "file_id": entry.id,
                "size": size,
                "auth_header": "authorization" in req.headers,
                "content_type": req.headers.get("content-type"),
            }
        )
        return Response(200)

    async def get_file(self, req: Request, path: str, fault: Fault | None) -> Response:
        parts = path.split("/")
        local = (
            self.shelf.local_path(f"{self.base_url}{path}", self.base_url)
            if parts[1] == "files"
            else self.shelf.output_path(parts[-1])
        )
        if local is None:
            return problem(404, "not_found", "Not Found", "no such file (expired?)")
        data = await asyncio.to_thread(local.read_bytes)
        headers = {
            "Content-Type": "video/mp4" if local.suffix == ".mp4" else "application/octet-stream",
            "Accept-Ranges": "bytes",
        }
        status = 200
        m = re.fullmatch(r"bytes=(\d+)-", req.headers.get("range", ""))
        if m and int(m.group(1)) < len(data):
            start = int(m.group(1))
            headers["Content-Range"] = f"bytes {start}-{len(data) - 1}/{len(data)}"
            data, status = data[start:], 206
        resp = Response(status, data, headers)
        if fault is not None and fault.kind == "truncate":
            resp.truncate_at = len(data) // 2
        elif fault is not None and fault.kind == "slow":
            resp.chunk_delay = fault.seconds
        return resp


@dataclass
class LoopbackServer:
    """A running loopback provider (see `serve`)."""

    url: str
    api_key: str
    provider: LoopbackProvider
    loop: asyncio.AbstractEventLoop
    http: HttpServer

    @property
    def submissions(self) -> list[dict[str, Any]]:
        return self.provider.submissions

    @property
    def upload_puts(self) -> list[dict[str, Any]]:
        return self.provider.upload_puts

    @property
    def peak_in_flight(self) -> int:
        """The most tasks submitted and not yet finished at any moment."""
        return self.provider.book.peak_in_flight

    @property
    def arrivals(self) -> list[float]:
        """`time.monotonic()` at which each POST /apps/run arrived (accepted or not)."""
        return self.provider.book.arrivals

    @property
    def received(self) -> list[float]:
        """`time.monotonic()` at which each POST /apps/run had been read whole (its body
        too): from then on the provider has the request, whatever the client does."""
        return self.provider.book.received

    @property
    def webhook_calls(self) -> list[dict[str, Any]]:
        """Every call made to a webhook URL: task id, URL, kind (real, duplicate, forged,
        lost) and the HTTP status the receiver answered (None: nobody answered)."""
        return self.provider.book.webhook_calls

    @property
    def faults(self) -> FaultPlan:
        return self.provider.options.faults

    def add_fault(self, fault: Fault | str) -> None:
        self.faults.add(fault)  # one list append: atomic, safe from the test's thread

    def release(self) -> None:
        """Let the tasks held running (`serve(hold=True)`) finish, from the test's thread."""
        self._in_loop(self.provider.book.release)

    def hold(self) -> None:
        """Hold tasks again, from those that reach their end from now on (`release` ends it)."""
        self._in_loop(self.provider.book.hold)

    def _in_loop(self, fn: Callable[[], None]) -> None:
        async def call() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(call(), self.loop).result(10)

    @property
    def env(self) -> dict[str, str]:
        return {"INFERENCE_BASE_URL": self.url, "INFERENCE_API_KEY": self.api_key}


async def start(
    options: Options, scratch: Path, port: int = 0
) -> tuple[HttpServer, LoopbackProvider]:
    provider = LoopbackProvider(options, scratch)
    server = HttpServer(provider.handle, port)
    bound = await server.start()
    provider.base_url = f"http://127.0.0.1:{bound}"
    return server, provider


@contextlib.contextmanager
def serve(
    *, port: int = 0, faults: list[Fault | str] | None = None, seed: int = 0, **opts: Any
) -> Iterator[LoopbackServer]:
    """Run a loopback provider in a background thread for the duration of the block."""
    plan = FaultPlan(seed=seed)
    for f in faults or []:
        plan.add(f)
    options = Options(faults=plan, **opts)
    scratch = Path(tempfile.mkdtemp(prefix="storyc-loopback-"))
    loop = asyncio.new_event_loop()
    ready = threading.Event()
    box: dict[str, Any] = {}

    async def main() -> None:
        try:
            box["server"], box["provider"] = await start(options, scratch, port)
        except BaseException as exc:
            box["error"] = exc
            ready.set()
            return
        box["stop"] = asyncio.Event()
        ready.set()
        await box["stop"].wait()
        await box["provider"].book.shutdown()
        await box["server"].stop()

    thread = threading.Thread(
        target=loop.run_until_complete, args=(main(),), name="storyc-loopback", daemon=True
    )
    thread.start()
    ready.wait()
    try:
        if "error" in box:
            raise box["error"]
        provider: LoopbackProvider = box["provider"]
        yield LoopbackServer(provider.base_url, options.api_key, provider, loop, box["server"])
    finally:
        if "stop" in box:
            loop.call_soon_threadsafe(box["stop"].set)
        thread.join(timeout=30)
        loop.close()
        shutil.rmtree(scratch, ignore_errors=True)


__all__ = ["APP", "DEFAULT_KEY", "LoopbackProvider", "LoopbackServer", "Options", "serve", "start"]
