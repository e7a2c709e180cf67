"""Moving bytes: uploading local inputs once, downloading outputs completely.

Stage: execute (provider edge). In: local paths with their content digests; output
URLs. Out: provider file URIs, the input with its files replaced by them, the submitted
task; bytes written to a file object. I/O: reads local files
and streams them (never whole in memory), HTTP through the client's httpx pool.

Upload protocol: `POST /files` registers the file and returns `upload_url` and
`uri`; the bytes go with a `PUT` to `upload_url` carrying only `Content-Type` and
`Content-Length` (no Authorization header: the upload URL is a signed storage URL,
not the API); the `uri` goes into the task input. Each digest is uploaded once per
build (concurrent requests for the same digest share one upload) and once across
builds through the client's `UploadRegistry`.

This is the one upload-and-submit path: `upload_inputs` (the input with every file
slot replaced by its URI) then `submit_prepared` (POST, and if the provider refuses a
remembered URI as expired, forget it, upload again and submit once more: a 400 created
no task, so this cannot pay twice). The inference backend runs the two steps apart
(the journal records the intent between them); `submit_with_files` runs them together
for callers whose files are `{"$file": path, "digest": d}` markers.

Downloads resume with `Range` after a truncated body when the server answers 206,
and restart from zero otherwise. The API key is sent only to the API's own origin.
"""

from __future__ import annotations

import asyncio
import copy
import hashlib
import mimetypes
import os
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO
from urllib.parse import urlsplit

import httpx

from storyc.provider import errors as E
from storyc.provider.task import Task
from storyc.targets.request import FILE_MARKER, iter_markers

if TYPE_CHECKING:
    from storyc.provider.api import ProviderAPI

CHUNK = 1 << 20


async def _file_chunks(path: Path, seen: Any = None) -> AsyncIterator[bytes]:
    """The file's bytes; `seen` (a hashlib object) is fed every block sent."""
    with open(path, "rb") as f:
        while True:
            block = f.read(CHUNK)
            if not block:
                return
            if seen is not None:
                seen.update(block)
            yield block


def _sha256_of(digest: str) -> str | None:
    """The hex of a full `sha256:` digest (what the bytes sent are checked against)."""
    hexpart = digest[7:] if digest.startswith("sha256:") else ""
    return hexpart if len(hexpart) == 64 and all(c in "0123456789abcdef" for c in hexpart) else None


async def upload(
    client: ProviderAPI,
    path: str | os.PathLike[str],
    *,
    digest: str,
    content_type: str | None = None,
) -> str:
    """The provider URI for this file's content, uploading it only if needed."""
    known = client.uploads.get(client.base_url, digest)
    if known is not None:
        return known
    pending = client.inflight_uploads.get(digest)
    if pending is not None:
        return await asyncio.shield(pending)
    future: asyncio.Future[str] = asyncio.get_running_loop().create_future()
    client.inflight_uploads[digest] = future
    try:
        uri = await _upload_once(client, Path(path), digest, content_type)
    except BaseException as exc:
        future.set_exception(exc)
        future.exception()  # mark retrieved: waiters re-raise it themselves
        raise
    finally:
        client.inflight_uploads.pop(digest, None)
    future.set_result(uri)
    return uri


async def _upload_once(
    client: ProviderAPI, path: Path, digest: str, content_type: str | None
) -> str:
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise E.UploadError(f"cannot read {path.name}: {exc.strerror}") from None
    ctype = content_type or mimetypes.guess_type(path.name)[0] or "application/octet-stream"
    spec = {"uri": "", "filename": path.name, "content_type": ctype, "size": size}
    data = await client.call(
        "POST", "/files", what=f"registering upload of {path.name}", body={"files": [spec]}
    )
    entry = data[0] if isinstance(data, list) and data else None
    if not isinstance(entry, dict) or not entry.get("upload_url") or not entry.get("uri"):
        raise E.UploadError(f"the provider gave no upload URL for {path.name}")
    upload_url, uri = str(entry["upload_url"]), str(entry["uri"])
    headers = {"Content-Type": ctype, "Content-Length": str(size)}
    attempt = 0
    while True:
        seen = hashlib.sha256()
        try:
            resp = await client.http.put(
                upload_url, content=_file_chunks(path, seen), headers=headers
            )
            if resp.status_code < 300:
                expected = _sha256_of(digest)
                if expected is not None and seen.hexdigest() != expected:
                    # the file changed since it was hashed: the provider holds other bytes
                    # than the key says; never remembered, never sent under this digest
                    raise E.UploadError(
                        f"{path.name} changed while it was being uploaded; "
                        "nothing was sent: run storyc build again"
                    )
                break
            err: E.ProviderError = E.UploadError(
                f"uploading {path.name} failed (HTTP {resp.status_code})",
                http_status=resp.status_code,
            )
            transient = resp.status_code in (408, 429) or resp.status_code >= 500
        except OSError as exc:
            raise E.UploadError(f"cannot read {path.name}: {exc.strerror}") from None
        except httpx.HTTPError as exc:
            err = E.UploadError(
                E.translate_transport(exc, what=f"uploading {path.name}", url=upload_url).message
            )
            transient = True
        if not transient or attempt >= client.max_read_retries:
            raise client.redact(err) from None
        await client.pause(client.backoff(attempt), None, f"uploading {path.name}")
        attempt += 1
    client.uploads.remember(client.base_url, digest, uri, size)
    return uri


@dataclass(frozen=True)
class FileSpec:
    """A local file that goes into one slot of a task's input."""

    path: str
    digest: str
    content_type: str | None = None


def set_path(tree: Any, path: str, value: Any) -> Any:
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


async def upload_inputs(
    client: ProviderAPI, input: dict[str, Any], files: Mapping[str, FileSpec]
) -> dict[str, Any]:
    """A copy of `input` with the slot at each JSON path of `files` replaced by the URI of
    that file (each digest uploaded once, ever; see `upload`)."""
    body = copy.deepcopy(input)
    paths = list(files)
    uris = await asyncio.gather(
        *(
            client.upload(files[p].path, digest=files[p].digest, content_type=files[p].content_type)
            for p in paths
        )
    )
    for p, uri in zip(paths, uris, strict=True):
        set_path(body, p, uri)
    return body


async def submit_prepared(
    client: ProviderAPI,
    app: str,
    input: dict[str, Any],
    *,
    files: Mapping[str, FileSpec],
    prepared: dict[str, Any] | None = None,
    scene: str | None = None,
    may_send: Callable[[], bool] | None = None,
    on_send: Callable[[dict[str, Any]], None] | None = None,
    webhook: str | None = None,
) -> Task:
    """Submit `prepared` (the output of `upload_inputs`, made now when None). When the
    provider refuses a URI it once gave for an upload (expired), forget it, upload again
    and submit once more. `on_send(body)` is told the exact input before each POST (the
    journal keeps it, to recognise the task later). `webhook`: the URL the provider calls
    when the task ends (a nudge: whoever receives it reads the task again)."""
    ready = prepared if prepared is not None else await upload_inputs(client, input, files)
    _about_to_send(ready, scene, may_send, on_send)
    try:
        return await client.submit(app, ready, scene=scene, may_send=may_send, webhook=webhook)
    except E.InvalidRequest as exc:
        if not exc.stale_uris:
            raise
        for uri in exc.stale_uris:
            client.uploads.forget_uri(client.base_url, uri)
    ready = await upload_inputs(client, input, files)
    _about_to_send(ready, scene, may_send, on_send)
    return await client.submit(app, ready, scene=scene, may_send=may_send, webhook=webhook)


def _about_to_send(
    ready: dict[str, Any],
    scene: str | None,
    may_send: Callable[[], bool] | None,
    on_send: Callable[[dict[str, Any]], None] | None,
) -> None:
    """Asked and told right before the POST, with nothing awaited until it starts: a stop
    already requested sends nothing, and `on_send` hears only of requests that leave."""
    if may_send is not None and not may_send():
        raise E.SubmitNotReceived("not sent (the build was stopped before it left)", scene=scene)
    if on_send is not None:
        on_send(ready)


async def submit_with_files(
    client: ProviderAPI, app: str, input: dict[str, Any], *, root: Path, scene: str | None = None
) -> Task:
    """Upload the `{"$file": path, "digest": d}` markers of `input` (paths relative to
    `root`), submit, and re-upload once if the provider rejects a remembered URI."""
    files: dict[str, FileSpec] = {}
    for path, marker in iter_markers(input):
        if FILE_MARKER in marker:
            rel = Path(str(marker[FILE_MARKER]))
            full = rel if rel.is_absolute() else root / rel
            files[path] = FileSpec(str(full), str(marker["digest"]))
    return await submit_prepared(client, app, input, files=files, scene=scene)


def _same_origin(a: str, b: str) -> bool:
    pa, pb = urlsplit(a), urlsplit(b)
    return (pa.scheme, pa.netloc) == (pb.scheme, pb.netloc)


async def download(client: ProviderAPI, url: str, dest: BinaryIO) -> int:
    """Stream `url` into `dest` (seekable). Returns the byte count; resumes after truncation."""
    headers = client.auth_headers() if _same_origin(url, client.base_url) else {}
    start = dest.tell()
    written = 0
    attempt = 0
    what = f"downloading {E.safe_url(url)}"
    while True:
        req_headers = dict(headers)
        if written:
            req_headers["Range"] = f"bytes={written}-"
        total: int | None = None
        try:
            async with client.http.stream("GET", url, headers=req_headers) as resp:
                if resp.status_code == 206 and written:
                    pass  # resuming: append after what we have
                elif resp.status_code == 200:
                    dest.seek(start)
                    dest.truncate()
                    written = 0
                elif resp.status_code in (429,) or resp.status_code >= 500:
                    raise _Transient(resp.status_code)
                else:
                    raise client.redact(
                        E.DownloadError(
                            f"{what} failed (HTTP {resp.status_code})", http_status=resp.status_code
                        )
                    )
                length = resp.headers.get("content-length")
                total = written + int(length) if length and length.isdigit() else None
                async for block in resp.aiter_raw(CHUNK):
                    dest.write(block)
                    written += len(block)
            if total is None or written == total:
                return written
        except (_Transient, httpx.HTTPError):
            pass
        if attempt >= client.max_read_retries:
            raise client.redact(
                E.DownloadError(
                    f"{what} stayed incomplete after {attempt + 1} attempts ({written} bytes)"
                )
            )
        await client.pause(client.backoff(attempt), None, what)
        attempt += 1


class _Transient(Exception):
    pass
