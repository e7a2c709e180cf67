"""The inference backend: the real provider (or the loopback one) through `ProviderClient`.

Stage: execute. In: a `Job` whose markers are resolved to local files. Out: the
provider's task id (`submit`), then the finished video downloaded into the store
(`follow`). I/O: HTTP through `storyc.provider`; downloads go to a temp file under
`.storyc/tmp` and enter the store only when complete and hashed, so an interrupted
download never leaves a partial object; a re-fetched output enters it only when its
bytes are exactly the recorded digest.

Uploads and the submission go through the provider's one upload-and-submit path
(`storyc.provider.transfer.upload_inputs` / `submit_prepared`): each input is uploaded
once, ever (deduplicated by digest in `.storyc/uploads.json`), and a remembered upload
the provider no longer knows is uploaded again before a second POST. Provider errors
are translated here into the executor's vocabulary: `NotSent`, `MaybeSent`,
`TaskFailed` (with `retryable`/`stop_all`), `SetupError` and `FetchFailed`.
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
    FetchFailed,
    Finished,
    Job,
    LocalInput,
    MaybeSent,
    NotSent,
    RequestCallback,
    SendGuard,
    SetupError,
    StatusCallback,
    StillRunning,
    TaskFailed,
)
from storyc.provider import errors as E
from storyc.provider.client import ProviderClient, raise_for_task
from storyc.provider.status import Pacer, read_status, read_task
from storyc.provider.task import TERMINAL, Task, video_url
from storyc.provider.transfer import FileSpec, submit_prepared, upload_inputs
from storyc.provider.uploads import UploadRegistry
from storyc.state.store import StoreError
from storyc.targets.request import iter_markers

EXPIRED = (401, 403, 404, 410)  # what a storage URL answers once it is gone


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


def _files(job: Job) -> dict[str, FileSpec]:
    files: dict[str, FileSpec] = {}
    for path, _marker in iter_markers(job.request.input):
        inp = job.inputs.get(path)
        if inp is None:
            raise BackendError(f"scene {job.scene!r}: input {path} was not resolved")
        files[path] = FileSpec(inp.path, inp.digest, _content_type(inp))
    return files


class InferenceBackend:
    name = "inference"
    paid = True

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.store = options.store
        self.tmp_dir = options.root / ".storyc" / "tmp"
        self.client: ProviderClient | None = None
        self.pacer: Pacer | None = None  # paces the one-off reads of a collecting build

    @property
    def base_url(self) -> str | None:
        return self.client.base_url if self.client is not None else None

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
        self.pacer = Pacer(self.client)

    async def close(self) -> None:
        if self.client is not None:
            await self.client.aclose()
            self.client = None

    def _c(self) -> ProviderClient:
        if self.client is None:
            raise BackendError("the inference backend is not open")
        return self.client

    async def prepare(self, job: Job) -> dict[str, Any]:
        """Upload every input (deduplicated by digest) and return the input to send."""
        try:
            return await upload_inputs(self._c(), job.request.input, _files(job))
        except (E.MissingKey, E.AuthError) as exc:
            raise SetupError(str(exc)) from None
        except E.ProviderError as exc:
            raise NotSent(f"uploading the inputs: {exc}") from None

    async def submit(
        self,
        job: Job,
        prepared: Any = None,
        *,
        may_send: SendGuard | None = None,
        on_send: RequestCallback | None = None,
    ) -> str:
        try:
            task = await submit_prepared(
                self._c(),
                job.request.app,
                job.request.input,
                files=_files(job),
                prepared=prepared,
                scene=job.scene,
                may_send=may_send,
                on_send=on_send,
                webhook=self.options.webhook,
            )
            return task.id
        except E.InvalidRequest as exc:
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
            raise NotSent(str(exc), answered=exc.http_status is not None) from None
        except E.UploadError as exc:  # the re-upload of an expired input: nothing sent
            raise NotSent(f"uploading the inputs: {exc}") from None
        except E.ProviderError as exc:
            if exc.http_status is not None and 400 <= exc.http_status < 500:
                raise TaskFailed(str(exc), retryable=False) from None
            raise MaybeSent(str(exc)) from None

    async def follow(
        self, job: Job, task_id: str, on_status: StatusCallback, *, wait: bool = True
    ) -> Finished:
        client = self._c()

        def status(task: Task) -> None:
            on_status(task.status_name)

        try:
            if wait:
                task = await client.follow(
                    task_id,
                    deadline=self.options.deadline,
                    poll_interval=self.options.poll_interval,
                    on_status=status,
                    check=False,
                )
            else:
                task = await self._peek(task_id)
                status(task)
            raise_for_task(task)
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
        try:
            digest = await self._download(url, None)
        except FetchFailed:
            raise BackendError(
                f"could not download the output of task {task_id}; the next build fetches it again"
            ) from None
        seconds = _seconds(task.output)
        return Finished(digest=digest, task_id=task_id, url=url, billed=None, duration=seconds)

    async def _peek(self, task_id: str) -> Task:
        """The task if it has ended (read in full), else `StillRunning`: one cheap status
        read, paced with every other read of this build."""
        client, pacer = self._c(), self.pacer
        assert pacer is not None
        state = await read_status(client, pacer, task_id)
        if state not in TERMINAL:
            raise StillRunning(f"task {task_id} is {state.name.lower()}", status=state.name.lower())
        return await read_task(client, pacer, task_id)

    async def get_task(self, task_id: str) -> Task:
        """The task as the provider has it now (for `storyc adopt`)."""
        return await self._c().get_task(task_id)

    async def _download(self, url: str, expected: str | None) -> str:
        fd, tmp = tempfile.mkstemp(prefix=".download-", dir=self.tmp_dir)
        try:
            with os.fdopen(fd, "w+b") as fh:
                await self._c().download(url, fh)
            return self.store.put_file(tmp, expected=expected)
        except E.DownloadError as exc:
            if exc.http_status in EXPIRED:
                raise FetchFailed(
                    f"the recorded URL has expired (HTTP {exc.http_status})", permanent=True
                ) from None
            raise FetchFailed(str(exc), permanent=False) from None
        except E.ProviderError as exc:
            raise FetchFailed(str(exc), permanent=False) from None
        except StoreError:
            raise FetchFailed(
                "the recorded URL now gives other bytes than the recorded output "
                f"(expected {str(expected)[:19]}…); they were not kept",
                permanent=True,
            ) from None
        finally:
            Path(tmp).unlink(missing_ok=True)

    async def refetch(self, url: str, expected: str) -> str:
        return await self._download(url, expected)


def _seconds(output: dict[str, Any] | None) -> float | None:
    try:
        meta = (output or {})["output_meta"]["outputs"][0]
        return float(meta["seconds"])
    except (KeyError, IndexError, TypeError, ValueError):
        return None
