"""What the follow and transfer helpers need of a client: the provider client as a protocol.

Stage: execute (the provider edge). In/out: nothing; a `typing.Protocol` that
`storyc.provider.client.ProviderClient` satisfies, so `follow` and `transfer` are written
against it and never import the client that imports them. No I/O.
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Literal, Protocol

from storyc.provider import errors as E
from storyc.provider.task import Status, Task
from storyc.provider.uploads import UploadRegistry

if TYPE_CHECKING:
    import httpx

Retry = Literal["read", "submit"]


class ProviderAPI(Protocol):
    base_url: str
    http: httpx.AsyncClient
    uploads: UploadRegistry
    inflight_uploads: dict[str, asyncio.Future[str]]
    max_read_retries: int
    stream_idle_timeout: float
    legacy_status: bool
    clock: Callable[[], float]
    sleep: Callable[[float], Awaitable[Any]]

    def auth_headers(self) -> dict[str, str]: ...

    def redact(self, err: E.ProviderError) -> E.ProviderError: ...

    def backoff(self, attempt: int, retry_after: float | None = None) -> float: ...

    async def pause(self, delay: float, deadline_at: float | None, what: str) -> None: ...

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
    ) -> Any: ...

    async def submit(
        self,
        app: str,
        input: dict[str, Any],
        *,
        scene: str | None = None,
        webhook: str | None = None,
        may_send: Callable[[], bool] | None = None,
    ) -> Task: ...

    async def get_task(self, task_id: str, *, deadline_at: float | None = None) -> Task: ...

    async def get_status(self, task_id: str, *, deadline_at: float | None = None) -> Status: ...

    async def upload(
        self, path: str | os.PathLike[str], *, digest: str, content_type: str | None = None
    ) -> str: ...
