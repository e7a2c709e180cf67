"""The async client for inference.sh: submit, follow, fetch, cancel (transfers in `transfer`).

Stage: execute (the provider edge). In: app name and input JSON (files already URIs,
see `transfer.upload`), task ids. Out: `Task` values and exceptions from
`storyc.provider.errors`. I/O: HTTP over httpx; clock, sleep, randomness and the
transport are injected, so retry and deadline tests take no real time.

Retry policy (the executor decides everything beyond it):
- reads (task, status, stream, cancel, file registration, downloads): bounded
  retries on transport errors, 429, 5xx; `Retry-After` honoured, otherwise
  exponential backoff with full jitter.
- `POST /apps/run` (paid, no idempotency key): retried only when the provider
  certainly did not accept it — connect error, or an answer of 429/503. Anything
  else that loses the answer raises `SubmitOutcomeUnknown`.
The API key lives in a `_Secret` and goes into a header per request, never into a
log line, exception, repr or file; httpx exceptions are translated without chaining.
"""

from __future__ import annotations

import asyncio
import email.utils
import importlib.util
import json
import logging
import os
import random
import re
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import httpx

if importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every request; without it each failed import
    # scans sys.path (about a third of the client's CPU per task). Recording the
    # absence once keeps the same outcome (ImportError) at no cost.
    sys.modules["sniffio"] = None  # type: ignore[assignment]

from storyc.plan.address import resolve_base_url
from storyc.provider import errors as E
from storyc.provider.api import Retry
from storyc.provider.follow import follow_task
from storyc.provider.task import TERMINAL, Status, Task, parse_status
from storyc.provider.transfer import download, upload
from storyc.provider.uploads import UploadRegistry

log = logging.getLogger("storyc.provider")

KEY_ENV = "INFERENCE_API_KEY"
DEFAULT_DEADLINE = 1800.0

# Raised before any byte of the request left the machine: nothing can have been received.
_NOT_SENT = (
    httpx.ConnectError,
    httpx.ConnectTimeout,
    httpx.PoolTimeout,
    httpx.UnsupportedProtocol,
    httpx.LocalProtocolError,  # e.g. a header value h11 refuses to write
    httpx.InvalidURL,  # a base URL httpx cannot take apart (`http://[::1`): never sent
)


class _Secret:
    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "<secret>"

    __str__ = __repr__


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """Seconds from a `Retry-After` header (delta seconds or HTTP date)."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class ProviderClient:
    """Async client; use as `async with ProviderClient(...) as client:`."""

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        rng: Callable[[], float] = random.random,
        uploads: UploadRegistry | None = None,
        max_read_retries: int = 5,
        max_submit_retries: int = 5,
        backoff_base: float = 0.5,
        backoff_cap: float = 30.0,
        max_retry_after: float = 300.0,
        timeout: float = 60.0,
        connect_timeout: float = 10.0,
        stream_idle_timeout: float = 90.0,
        max_connections: int = 32,
        legacy_status: bool = False,
    ) -> None:
        key = api_key if api_key is not None else os.environ.get(KEY_ENV, "")
        if not key:
            raise E.MissingKey(f"no API key: set {KEY_ENV} (keys start with inf_)")
        problem = E.key_problem(key, KEY_ENV)
        if problem is not None:
            raise E.BadKey(f"the API key cannot be used: {problem}")
        self._key = _Secret(key)
        self.base_url = resolve_base_url(base_url)
        self.clock, self.sleep, self.rng = clock, sleep, rng
        self.uploads = uploads if uploads is not None else UploadRegistry()
        self.max_read_retries = max_read_retries
        self.max_submit_retries = max_submit_retries
        self.backoff_base, self.backoff_cap = backoff_base, backoff_cap
        self.max_retry_after = max_retry_after  # a longer wait is the caller's decision
        self.stream_idle_timeout = stream_idle_timeout
        self.legacy_status = legacy_status
        self.inflight_uploads: dict[str, asyncio.Future[str]] = {}
        self.http = httpx.AsyncClient(
            transport=transport,
            timeout=httpx.Timeout(timeout, connect=connect_timeout),
            limits=httpx.Limits(
                max_connections=max_connections, max_keepalive_connections=max_connections
            ),
            follow_redirects=False,
        )

    def __repr__(self) -> str:
        return f"ProviderClient(base_url={self.base_url!r}, api_key=<secret>)"

    async def __aenter__(self) -> ProviderClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    # ---- plumbing -------------------------------------------------------------------

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self._key.reveal()}"}

    def redact(self, err: E.ProviderError) -> E.ProviderError:
        err.message = E.redact(err.message, self._key.reveal())
        if err.detail:
            err.detail = E.redact(err.detail, self._key.reveal())
        err.args = (err.message,)
        return err

    def backoff(self, attempt: int, retry_after: float | None = None) -> float:
        if retry_after is not None:
            return retry_after
        ceiling = min(self.backoff_cap, self.backoff_base * (2**attempt))
        return float(ceiling * (0.5 + 0.5 * self.rng()))  # jitter: spread retries of many tasks

    async def pause(self, delay: float, deadline_at: float | None, what: str) -> None:
        if deadline_at is not None and self.clock() + delay > deadline_at:
            raise E.DeadlineExceeded(f"{what}: the task deadline passed while waiting to retry")
        await self.sleep(delay)

    async def send(
        self, method: str, url: str, body: Any, what: str
    ) -> tuple[httpx.Response | None, E.ProviderError | None, bool]:
        """(response, None, True) or (None, translated error, whether it may have been sent).

        The error is returned, not raised, so that nothing raised later is chained to
        the httpx exception (which holds the request and its Authorization header).
        """
        try:
            resp = await self.http.request(method, url, json=body, headers=self.auth_headers())
        except _NOT_SENT as exc:
            return None, E.translate_transport(exc, what=what, url=url), False
        except httpx.HTTPError as exc:
            return None, E.translate_transport(exc, what=what, url=url), True
        except UnicodeError as exc:  # a header or URL that cannot be encoded: never sent
            return None, E.translate_transport(exc, what=what, url=url), False
        return resp, None, True

    async def call(
        self,
        method: str,
        path: str,
        *,
        what: str,
        retry: Retry = "read",
        body: Any = None,
        scene: str | None = None,
        deadline_at: float | None = None,
        may_send: Callable[[], bool] | None = None,
    ) -> Any:
        """One API call with the retry policy; returns the unwrapped `data` (None for 204).

        `may_send` is asked right before each attempt leaves (the first one and every
        retry): False raises `SubmitNotReceived` without sending, so that a stop asked
        for while waiting to retry never turns into a new paid request."""
        url = f"{self.base_url}{path}"
        limit = self.max_submit_retries if retry == "submit" else self.max_read_retries
        attempt = 0
        while True:
            if may_send is not None and not may_send():
                raise E.SubmitNotReceived(
                    f"{what}: not sent (the build was stopped before it left)", scene=scene
                )
            try:
                return await self.attempt(
                    method,
                    url,
                    body,
                    what=what,
                    retry=retry,
                    scene=scene,
                    attempt=attempt,
                    last=attempt >= limit,
                )
            except _Again as again:
                why, delay = again.why, again.delay
            # Outside the handler: an error raised while pausing has no httpx context.
            log.info("%s: %s, retry %d", what, why, attempt + 1)
            await self.pause(delay, deadline_at, what)
            attempt += 1

    async def attempt(
        self,
        method: str,
        url: str,
        body: Any,
        *,
        what: str,
        retry: Retry,
        scene: str | None,
        attempt: int,
        last: bool,
    ) -> Any:
        """One request: the unwrapped answer, a translated error, or `_Again` to retry."""
        resp, err, sent = await self.send(method, url, body, what)
        if err is not None:
            if retry == "submit" and sent:
                raise self.redact(
                    E.SubmitOutcomeUnknown(
                        f"{err.message} after the request was sent: the provider may have "
                        "accepted it, and submitting again could pay twice",
                        scene=scene,
                    )
                )
            if not last:
                raise _Again(err.message, self.backoff(attempt))
            if retry == "submit":
                raise self.redact(
                    E.SubmitNotReceived(
                        f"{err.message}; the request was not sent, so it is safe to submit again",
                        scene=scene,
                    )
                )
            raise self.redact(err)
        assert resp is not None
        status = resp.status_code
        text = resp.text
        try:
            payload = json.loads(text) if text else None
        except ValueError:
            payload = None
        log.debug("%s %s -> %d", method, E.safe_url(url), status)
        if 200 <= status < 300:
            if status == 204:
                return None
            if isinstance(payload, dict) and "data" in payload:
                return payload["data"]
            if payload is not None:
                return payload
            if retry == "submit":
                raise self.redact(
                    E.SubmitOutcomeUnknown(
                        f"{what}: the provider answered {status} without a readable task; it "
                        "may have accepted the request",
                        http_status=status,
                        scene=scene,
                    )
                )
            if not last:
                raise _Again(f"HTTP {status} with an unreadable answer", self.backoff(attempt))
            raise self.redact(
                E.ServiceUnavailable(f"{what}: unreadable answer", http_status=status)
            )
        retry_after = parse_retry_after(resp.headers.get("retry-after"))
        transient = status in (429, 503) or (status >= 500 and retry == "read")
        patient = retry_after is None or retry_after <= self.max_retry_after
        if transient and patient and not last:
            raise _Again(f"HTTP {status}", self.backoff(attempt, retry_after))
        if retry == "submit" and status in (429, 503):
            base = E.from_http(
                status, payload, text, what=what, scene=scene, retry_after=retry_after
            )
            raise self.redact(
                E.SubmitNotReceived(
                    f"{base.message} (not accepted; safe to submit again later)",
                    http_status=status,
                    detail=base.detail,
                    scene=scene,
                )
            )
        if retry == "submit" and status >= 500:
            base = E.from_http(status, payload, text, what=what, scene=scene)
            raise self.redact(
                E.SubmitOutcomeUnknown(
                    f"{base.message}; the provider may have created the task anyway, and "
                    "submitting again could pay twice",
                    http_status=status,
                    detail=base.detail,
                    scene=scene,
                )
            )
        raise self.redact(
            self.http_error(
                status, payload, text, what=what, scene=scene, retry_after=retry_after, body=body
            )
        )

    def http_error(
        self,
        status: int,
        payload: Any,
        text: str,
        *,
        what: str,
        scene: str | None,
        retry_after: float | None,
        body: Any,
    ) -> E.ProviderError:
        _, detail = E.problem_detail(payload, text)
        field = None
        stale: tuple[str, ...] = ()
        if status in (400, 422) and detail and isinstance(body, dict):
            inp = body.get("input")
            if isinstance(inp, dict):
                for name in inp:
                    if re.search(rf"(?<![\w]){re.escape(name)}(?![\w])", detail):
                        field = name
                        break
            known = self.uploads.known_uris(self.base_url)
            stale = tuple(sorted(u for u in known if u in detail))
        return E.from_http(
            status,
            payload,
            text,
            what=what,
            scene=scene,
            retry_after=retry_after,
            field=field,
            stale_uris=stale,
        )

    # ---- tasks ----------------------------------------------------------------------

    def task(self, data: Any) -> Task:
        if not isinstance(data, dict) or "id" not in data:
            raise E.ProviderError("the provider answered without a task")
        return Task.from_json(data, legacy=self.legacy_status)

    async def submit(
        self,
        app: str,
        input: dict[str, Any],
        *,
        scene: str | None = None,
        webhook: str | None = None,
        may_send: Callable[[], bool] | None = None,
    ) -> Task:
        """POST /apps/run. Raises `SubmitNotReceived` / `SubmitOutcomeUnknown` on lost
        answers; `may_send` is asked before every attempt leaves (see `call`)."""
        body: dict[str, Any] = {"app": app, "input": input}
        if webhook:
            body["webhook"] = webhook
        what = f"submitting scene {scene!r}" if scene else "submitting the task"
        data = await self.call(
            "POST",
            "/apps/run",
            what=what,
            retry="submit",
            body=body,
            scene=scene,
            may_send=may_send,
        )
        try:
            return self.task(data)
        except E.ProviderError:
            raise E.SubmitOutcomeUnknown(
                f"{what}: the answer had no task id; the provider may have accepted it", scene=scene
            ) from None

    async def get_task(self, task_id: str, *, deadline_at: float | None = None) -> Task:
        data = await self.call(
            "GET", f"/tasks/{task_id}", what=f"reading task {task_id}", deadline_at=deadline_at
        )
        return self.task(data)

    async def get_status(self, task_id: str, *, deadline_at: float | None = None) -> Status:
        data = await self.call(
            "GET",
            f"/tasks/{task_id}/status",
            what=f"polling task {task_id}",
            deadline_at=deadline_at,
        )
        value = data.get("status") if isinstance(data, dict) else None
        return parse_status(value, legacy=self.legacy_status)

    async def cancel(self, task_id: str) -> bool:
        """Ask the provider to cancel. False when the task had already finished (409)."""
        try:
            await self.call("POST", f"/tasks/{task_id}/cancel", what=f"cancelling task {task_id}")
        except E.Conflict:
            return False
        return True

    async def follow(
        self,
        task_id: str,
        *,
        deadline: float = DEFAULT_DEADLINE,
        poll_interval: float = 2.0,
        stream: bool = False,
        on_status: Callable[[Task], Any] | None = None,
        check: bool = True,
    ) -> Task:
        """Wait until the task is terminal; return it (raising for failure when `check`)."""
        task = await follow_task(
            self,
            task_id,
            deadline=deadline,
            poll_interval=poll_interval,
            stream=stream,
            on_status=on_status,
        )
        if check:
            raise_for_task(task)
        return task

    # ---- files (see storyc.provider.transfer) ---------------------------------------

    async def upload(
        self, path: str | os.PathLike[str], *, digest: str, content_type: str | None = None
    ) -> str:
        return await upload(self, path, digest=digest, content_type=content_type)

    async def download(self, url: str, dest: Any) -> int:
        return await download(self, url, dest)


class _Again(Exception):
    """One attempt asks for another, after `delay` seconds (see `ProviderClient.call`)."""

    def __init__(self, why: str, delay: float) -> None:
        super().__init__(why)
        self.why, self.delay = why, delay


def raise_for_task(task: Task) -> None:
    """Raise the error a non-completed terminal task stands for."""
    if task.status not in TERMINAL or task.status == Status.COMPLETED:
        return
    why = f": {task.error}" if task.error else ""
    if task.status == Status.FAILED:
        raise E.TaskFailed(
            f"task {task.id} failed on the provider{why}",
            task=task,
            detail=task.error,
            task_id=task.id,
        )
    if task.status == Status.CANCELLED:
        raise E.TaskCancelled(f"task {task.id} was cancelled", task=task, task_id=task.id)
    raise E.TaskRejected(
        f"task {task.id} was rejected before running (balance or plan "
        f"limit){why}; stop submitting, top up or change plan",
        task=task,
        detail=task.error,
        task_id=task.id,
    )
