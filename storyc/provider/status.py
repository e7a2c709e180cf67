"""Many tasks' statuses at once, cheaply: batched over one connection pool, rate-limited.

Stage: execute (the provider edge). In: a client (`storyc.provider.api.ProviderAPI`) and
task ids. Out: per task its `Status`, or the `ProviderError` that kept it from being read.
I/O: `GET /tasks/{id}/status` through the client (its retries, its key); time through the
client's injected clock and sleep.

The provider has no endpoint that answers for several tasks, so "batched" means many
small reads in flight together over the client's keep-alive pool (`concurrency` at a
time), and never more than the provider allows: a `Pacer` (a token bucket) holds the
reads to `rate` per second after a first `burst`. The documented limit is 1000 task
reads a minute (about 16 a second); the default keeps well under it, so `storyc status
--watch`, a build collecting forty tasks and the webhook receiver can run together.
A 429 that still comes back is retried by the client after its `Retry-After`.

Nothing here can send a paid request: it reads statuses and tasks, nothing else.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import TYPE_CHECKING

from storyc.provider import errors as E
from storyc.provider.task import Status, Task

if TYPE_CHECKING:
    from storyc.provider.api import ProviderAPI

RATE = 10.0  # task reads per second, sustained
BURST = 40  # reads allowed at once before the rate applies
CONCURRENCY = 16  # reads in flight together


class Pacer:
    """A token bucket: `take()` returns once a read may leave."""

    def __init__(self, client: ProviderAPI, *, rate: float = RATE, burst: int = BURST) -> None:
        self.client = client
        self.rate = max(0.001, rate)
        self.burst = max(1, burst)
        self._tokens = float(self.burst)
        self._at = client.clock()
        self._lock = asyncio.Lock()
        self.waited = 0.0  # seconds spent held back, for the benchmark

    async def take(self) -> None:
        async with self._lock:  # one waiter at a time: first come, first served
            now = self.client.clock()
            self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
            self._at = now
            if self._tokens < 1.0:
                delay = (1.0 - self._tokens) / self.rate
                self.waited += delay
                await self.client.sleep(delay)
                now = self.client.clock()
                self._tokens = min(self.burst, self._tokens + (now - self._at) * self.rate)
                self._at = now
            self._tokens -= 1.0


async def read_status(client: ProviderAPI, pacer: Pacer, task_id: str) -> Status:
    await pacer.take()
    return await client.get_status(task_id)


async def read_task(client: ProviderAPI, pacer: Pacer, task_id: str) -> Task:
    await pacer.take()
    return await client.get_task(task_id)


async def read_statuses(
    client: ProviderAPI,
    task_ids: Iterable[str],
    *,
    pacer: Pacer | None = None,
    concurrency: int = CONCURRENCY,
) -> dict[str, Status | E.ProviderError]:
    """The status of each task (the cheap endpoint), or why it could not be read."""
    pacer = pacer or Pacer(client)
    gate = asyncio.Semaphore(max(1, concurrency))
    ids = list(dict.fromkeys(task_ids))

    async def one(task_id: str) -> Status | E.ProviderError:
        async with gate:
            try:
                return await read_status(client, pacer, task_id)
            except E.ProviderError as exc:
                return exc

    answers = await asyncio.gather(*(one(t) for t in ids))
    return dict(zip(ids, answers, strict=True))
