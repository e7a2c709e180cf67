"""Following a task to its end: cheap status polls, or the NDJSON stream.

Stage: execute (provider edge). In: a client (`storyc.provider.api.ProviderAPI`) and a task id. Out: the task
in a terminal state (completed, failed, cancelled, rejected), or `DeadlineExceeded`.
I/O: HTTP through the client; time through the client's injected clock and sleep.

Polling asks `GET /tasks/{id}/status` (small) every `poll_interval` and fetches the
full task only when the status changed. Streaming reads `GET /tasks/{id}/stream`
(`application/x-ndjson`): heartbeats are skipped, `{"data", "fields"}` partial updates
are merged, status may be an int or a string. A stream that ends, stalls or breaks is
reconciled with a full `GET` and reopened; after repeated breakage the rest of the
wait is done by polling. A terminal status seen on the stream is confirmed with a
full `GET` before it is trusted. Status 9 (uploading) is not terminal.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import httpx

from storyc.provider import errors as E
from storyc.provider.task import Task

if TYPE_CHECKING:
    from storyc.provider.api import ProviderAPI

_MAX_STREAM_BREAKS = 5


async def follow_task(
    client: ProviderAPI,
    task_id: str,
    *,
    deadline: float,
    poll_interval: float,
    stream: bool,
    on_status: Callable[[Task], Any] | None,
) -> Task:
    deadline_at = client.clock() + deadline
    task = await client.get_task(task_id, deadline_at=deadline_at)
    if on_status is not None:
        on_status(task)
    if stream and not task.terminal:
        task = await _follow_stream(client, task, deadline, deadline_at, on_status)
    while not task.terminal:
        remaining = deadline_at - client.clock()
        if remaining <= 0:
            raise _deadline(task, deadline)
        await client.sleep(min(poll_interval, remaining))
        status = await client.get_status(task_id, deadline_at=deadline_at)
        if status != task.status:
            task = await client.get_task(task_id, deadline_at=deadline_at)
            if on_status is not None:
                on_status(task)
    return task


def _deadline(task: Task, deadline: float) -> E.DeadlineExceeded:
    return E.DeadlineExceeded(
        f"task {task.id} was still {task.status_name} after {deadline:g} s; it may still "
        "finish on the provider (follow it again, or cancel it)",
        task_id=task.id,
    )


async def _follow_stream(
    client: ProviderAPI,
    task: Task,
    deadline: float,
    deadline_at: float,
    on_status: Callable[[Task], Any] | None,
) -> Task:
    """Stream until terminal; returns early (non-terminal) to let polling take over."""
    url = f"{client.base_url}/tasks/{task.id}/stream"
    headers = {
        **client.auth_headers(),
        "Accept": "application/x-ndjson",
        "Cache-Control": "no-cache",
    }
    timeout = httpx.Timeout(client.stream_idle_timeout, connect=10.0)
    breaks = 0
    while not task.terminal and breaks <= _MAX_STREAM_BREAKS:
        if client.clock() >= deadline_at:
            raise _deadline(task, deadline)
        broke = False
        try:
            async with client.http.stream("GET", url, headers=headers, timeout=timeout) as resp:
                if resp.status_code != 200:
                    broke = True
                else:
                    async for line in resp.aiter_lines():
                        changed = _apply_line(client, task, line)
                        if changed:
                            if task.terminal:
                                # A stream event is a nudge; the task record is the truth.
                                task = await client.get_task(task.id, deadline_at=deadline_at)
                            if on_status is not None:
                                on_status(task)
                        if task.terminal:
                            return task
                        if client.clock() >= deadline_at:
                            raise _deadline(task, deadline)
        except httpx.HTTPError:
            broke = True
        if broke:
            breaks += 1
            await client.pause(client.backoff(breaks - 1), deadline_at, f"following {task.id}")
        fresh = await client.get_task(task.id, deadline_at=deadline_at)
        if fresh.status != task.status and on_status is not None:
            on_status(fresh)
        task = fresh
    return task


def _apply_line(client: ProviderAPI, task: Task, line: str) -> bool:
    line = line.strip()
    if not line or line.startswith(":"):
        return False
    if line.startswith("data:"):  # tolerate the SSE form if a proxy rewrote the stream
        line = line[5:].strip()
    try:
        event = json.loads(line)
    except ValueError:
        return False
    if not isinstance(event, dict) or event.get("type") == "heartbeat":
        return False
    if isinstance(event.get("data"), dict):
        fields = event.get("fields")
        return task.merge(
            event["data"], fields if isinstance(fields, list) else None, legacy=client.legacy_status
        )
    return task.merge(event, legacy=client.legacy_status)
