"""The backend protocol and the data that crosses it: `Job` in, `Finished` out, and the
errors a backend may raise (see the package docstring for the three steps).

Stage: execute. In/out: dataclasses, exceptions and the `Backend` protocol. No I/O.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from storyc.targets.request import Request

if TYPE_CHECKING:
    from storyc.state.store import Store


@dataclass(frozen=True)
class LocalInput:
    """A marker of the request resolved to a file on disk (an asset or a store object)."""

    path: str  # absolute; for reading only, never written to any output
    digest: str
    kind: str  # "image" | "video"


@dataclass(frozen=True)
class Job:
    scene: str
    take: int
    key: str
    request: Request
    # path of each marker in request.input (e.g. "image", "reference_images[0]") -> the file it stands for
    inputs: dict[str, LocalInput] = field(default_factory=dict)


@dataclass(frozen=True)
class Finished:
    digest: str  # the output video, already in the store
    task_id: str | None = None
    url: str | None = None
    billed: Decimal | None = None
    duration: float | None = None


class BackendError(Exception):
    """A failure the user can act on; the message names what went wrong, never a secret."""


class NotSent(BackendError):
    """The submission created nothing: nothing was paid. `answered`: it reached the
    provider, which turned it away (429, 503) without creating a task; otherwise no
    byte of it left the machine (connection refused, a stop asked for before sending)."""

    def __init__(self, message: str, *, answered: bool = False) -> None:
        super().__init__(message)
        self.answered = answered


class MaybeSent(BackendError):
    """The submission may have reached the provider: its fate is unknown."""


class TaskFailed(BackendError):
    """The provider accepted the work and reported a failure (or refused it outright).

    `retryable` is False for errors that would fail the same way again (a payload the
    provider rejects, balance or plan limits)."""

    def __init__(self, message: str, *, retryable: bool = True, stop_all: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.stop_all = stop_all  # e.g. no balance: submitting anything else is pointless


class StillRunning(BackendError):
    """Asked once without waiting (`follow(..., wait=False)`): the task has not ended.
    `status`: what the provider says it is doing (queued, running, ...)."""

    def __init__(self, message: str, *, status: str) -> None:
        super().__init__(message)
        self.status = status


class SetupError(BackendError):
    """The backend cannot start (missing or bad key, provider unreachable): exit 3."""


class FetchFailed(BackendError):
    """A recorded output URL did not give the recorded output. `permanent`: it never
    will (expired: 403/404/410, or it gives other bytes); otherwise the network failed
    and a later build may try again."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


StatusCallback = Callable[[str], None]
SendGuard = Callable[[], bool]  # asked right before a request leaves: False = do not send
RequestCallback = Callable[[dict[str, Any]], None]  # told the exact input about to be sent


@runtime_checkable
class Backend(Protocol):
    name: str  # goes into every key: a preview never stands in for a paid render
    paid: bool  # paid backends need consent, a budget and the journal

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def prepare(self, job: Job) -> Any: ...

    async def submit(
        self,
        job: Job,
        prepared: Any = None,
        *,
        may_send: SendGuard | None = None,
        on_send: RequestCallback | None = None,
    ) -> str: ...

    async def follow(
        self, job: Job, task_id: str, on_status: StatusCallback, *, wait: bool = True
    ) -> Finished:
        """The finished task's output in the store. `wait=False` asks once (cheaply) and
        raises `StillRunning` when the task has not ended: a detached build collects what
        finished and leaves the rest running."""
        ...

    async def refetch(self, url: str, expected: str) -> str:
        """Download a recorded output URL into the store, keeping it only if its bytes
        hash to `expected`; raises `FetchFailed` otherwise."""
        ...


@dataclass
class BackendOptions:
    root: Path  # the project directory
    store: Store
    base_url: str | None = None
    api_key: str | None = None
    poll_interval: float = 2.0
    deadline: float = 1800.0
    webhook: str | None = None  # passed with every submission: the provider calls it at the end
