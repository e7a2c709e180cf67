"""The inference backend: the real provider (or the loopback one) through `ProviderClient`.

Stage: execute. In: a `Job` whose markers are resolved to local files. Out: the
provider's task id (`submit`), then the finished video downloaded into the store
(`follow`). I/O: HTTP through `storyc.provider`; downloads go to a temp file under
`.storyc/tmp` and enter the store only when complete and hashed, so an interrupted
download never leaves a partial object.

Uploads go through the client's digest-deduplicated `upload` (the registry is
`.storyc/uploads.json`), so an upstream frame or an asset is sent once, ever.
Provider errors are translated here into the executor's vocabulary: `NotSent`,
`MaybeSent`, `TaskFailed` (with `retryable`/`stop_all`) and `SetupError`.
"""

from __future__ import annotations

import mimetypes
import os
import tempfile
from pathlib import Path
from typing import Any

from storyc.backends.protocol import (
    BackendError,
    BackendOptions,
    Finished,
    Job,
    LocalInput,
    MaybeSent,
    NotSent,
    SetupError,
    StatusCallback,
    TaskFailed,
)
from storyc.provider import errors as E
from storyc.provider.client import ProviderClient
from storyc.provider.task import Task, video_url
from storyc.provider.uploads import UploadRegistry
from storyc.targets.request import iter_markers


def _content_type(inp: LocalInput) -> str:
    if inp.kind == "video":
        return "video/mp4"
    guessed = mimetypes.guess_type(inp.path)[0]
    if guessed:
        return guessed
    try:  # store objects have no suffix: look at the magic bytes
        with open(inp.path, "rb") as f:
            head = f.read(12)
    except OSError:
        head = b""
    if head.startswith(b"\xff\xd8"):
        return "image/jpeg"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "image/webp"
    if head.startswith(b"GIF8"):
        return "image/gif"
    return "image/png"


def _set(tree: Any, path: str, value: Any) -> Any:
    """Replace the element at an `iter_markers` path ("a.b[2]") inside a JSON tree."""
    parts: list[str | int] = []
    for piece in path.split("."):
        name, _, rest = piece.partition("[")
        if name:
            parts.append(name)
        while rest:
            idx, _, rest = rest.partition("]")
            parts.append(int(idx))
            rest = rest.lstrip("[")
    node = tree
    for p in parts[:-1]:
        node = node[p]
    node[parts[-1]] = value
    return tree


class InferenceBackend:
    name = "inference"
    paid = True

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.store = options.store
        self.tmp_dir = options.root / ".storyc" / "tmp"
        self.client: ProviderClient | None = None

    async def open(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)
        try:
            self.client = ProviderClient(
                api_key=self.options.api_key,
                base_url=self.options.base_url,
                uploads=UploadRegistry(self.options.root / ".storyc" / "uploads.json"),
            )
        except E.ProviderError as exc:
            raise SetupError(str(exc)) from None

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def _c(self) -> ProviderClient:
        if self.client is None:
            raise BackendError("the inference backend is not open")
        return self.client

    async def _input(self, job: Job) -> dict[str, Any]:
        import copy

        body = copy.deepcopy(job.request.input)
        for path, _marker in list(iter_markers(job.request.input)):
            inp = job.inputs.get(path)
            if inp is None:
                raise BackendError(f"scene {job.scene!r}: input {path} was not resolved")
            try:
                uri = await self._c().upload(
                    inp.path, digest=inp.digest, content_type=_content_type(inp)
                )
            except (E.MissingKey, E.AuthError) as exc:
                raise SetupError(str(exc)) from None
            except E.ProviderError as exc:
                raise NotSent(f"uploading {path}: {exc}") from None
            _set(body, path, uri)
        return body

    async def prepare(self, job: Job) -> dict[str, Any]:
        """Upload every input (deduplicated by digest) and return the input to send."""
        return await self._input(job)

    async def submit(self, job: Job, prepared: Any = None) -> str:
        client = self._c()
        body = prepared if prepared is not None else await self._input(job)
        for attempt in range(2):
            try:
                task = await client.submit(job.request.app, body, scene=job.scene)
                return task.id
            except E.InvalidRequest as exc:
                if exc.stale_uris and attempt == 0:
                    # a 400 created no task; re-upload what it named and send again
                    for uri in exc.stale_uris:
                        client.uploads.forget_uri(client.base_url, uri)
                    body = await self._input(job)
                    continue
                where = f" (field {exc.field})" if exc.field else ""
                words = exc.detail or str(exc)  # the provider's own words, once
                raise TaskFailed(
                    f"the provider rejected the request{where}: {words}", retryable=False
                ) from None
            except (E.MissingKey, E.AuthError) as exc:
                raise SetupError(str(exc)) from None
            except E.BalanceError as exc:
                raise TaskFailed(str(exc), retryable=False, stop_all=True) from None
            except (E.SubmitNotReceived, E.RateLimited, E.ServiceUnavailable) as exc:
                raise NotSent(str(exc)) from None
            except E.ProviderError as exc:
                if exc.http_status is not None and 400 <= exc.http_status < 500:
                    raise TaskFailed(str(exc), retryable=False) from None
                raise MaybeSent(str(exc)) from None
        raise MaybeSent("submission did not complete")  # unreachable: the loop returns

    async def follow(self, job: Job, task_id: str, on_status: StatusCallback) -> Finished:
        client = self._c()

        def status(task: Task) -> None:
            on_status(task.status_name)

        try:
            task = await client.follow(
                task_id,
                deadline=self.options.deadline,
                poll_interval=self.options.poll_interval,
                on_status=status,
            )
        except E.TaskRejected as exc:
            raise TaskFailed(str(exc), retryable=False, stop_all=True) from None
        except (E.TaskFailed, E.TaskCancelled) as exc:
            raise TaskFailed(str(exc), retryable=True) from None
        except (E.MissingKey, E.AuthError) as exc:
            raise SetupError(str(exc)) from None
        except E.ProviderError as exc:
            # still running or unreachable: the attempt stays `submitted`, re-attached later
            raise BackendError(f"{exc} (task {task_id} is re-attached by the next build)") from None
        url = video_url(task.output)
        if url is None:
            raise TaskFailed(f"task {task_id} completed without an output video", retryable=True)
        on_status("downloading")
        digest = await self._download(url)
        if digest is None:
            raise BackendError(
                f"could not download the output of task {task_id}; the next build fetches it again"
            )
        seconds = _seconds(task.output)
        return Finished(digest=digest, task_id=task_id, url=url, billed=None, duration=seconds)

    async def _download(self, url: str) -> str | None:
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "w+b") as fh:
                await self._c().download(url, fh)
            return self.store.put_file(tmp)
        except E.ProviderError:
            return None
        finally:
            Path(tmp).unlink(missing_ok=True)

    async def refetch(self, url: str) -> str | None:
        return await self._download(url)


def _seconds(output: dict[str, Any] | None) -> float | None:
    try:
        meta = (output or {})["output_meta"]["outputs"][0]
        return float(meta["seconds"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
