"""The one place that talks to object storage: a thin wrapper over boto3's S3 client.

Stage: remote. In: object names relative to the remote's prefix, bytes and files. Out:
bytes, object metadata, listings, and a small family of exceptions (`RemoteError` and
its kinds) that the rest of storyc handles without knowing boto3. I/O: HTTPS (or
loopback HTTP) to the S3-compatible endpoint, through boto3, which does all request
signing; credentials come from boto3's standard chain (the `AWS_*` environment
variables, `AWS_PROFILE` and the shared config and credential files, SSO, instance
roles). With no credentials at all, requests go unsigned: a public read-only bucket
still works for pulling (CI on pull requests from forks has no secrets).

boto3 is imported here only, and only when a remote is used: it costs a few hundred
milliseconds, which a build without a remote never pays.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from typing import Any, BinaryIO

from storyc.remote.config import RemoteConfig

CHUNK = 1 << 20
ENV_TIMEOUT = "STORYC_REMOTE_TIMEOUT"  # seconds to connect and between reads (default 20)


class RemoteError(Exception):
    """Any failure talking to the remote. The message never holds a credential."""


class Unreachable(RemoteError):
    """No answer: connection refused, DNS, timeouts, 5xx after retries."""


class Denied(RemoteError):
    """The credentials (or their absence) do not allow this operation."""


class NotFound(RemoteError):
    """No such object."""


class Conflict(RemoteError):
    """A conditional write whose condition failed (412): someone else wrote first."""


class Truncated(RemoteError):
    """A download that ended before its length: resume it."""


class BeyondEnd(RemoteError):
    """A ranged read that starts at or after the end of the object (416)."""


class NoBucket(RemoteError):
    """The bucket does not exist."""


@dataclass(frozen=True)
class Head:
    size: int
    etag: str
    modified: float  # the server's clock, unix time
    server_now: float | None  # the server's clock when it answered (Date header)


@dataclass(frozen=True)
class Listed:
    name: str  # relative to the remote's prefix
    size: int
    etag: str


def _timeout() -> float:
    try:
        return max(0.1, float(os.environ.get(ENV_TIMEOUT, "20")))
    except ValueError:
        return 20.0


class ObjectClient:
    """Operations on one bucket under one prefix. Thread-safe (boto3 clients are)."""

    def __init__(self, config: RemoteConfig) -> None:
        import boto3
        import botocore.exceptions as bexc
        from botocore import UNSIGNED
        from botocore.config import Config

        self.config = config
        self._exc = bexc
        timeout = _timeout()
        try:
            session = boto3.session.Session(profile_name=config.profile)
            signed = session.get_credentials() is not None
        except bexc.BotoCoreError as exc:  # an unknown profile, a broken config file
            raise RemoteError(f"AWS configuration: {exc}") from None
        self.anonymous = not signed
        self._client: Any = session.client(
            "s3",
            endpoint_url=config.endpoint,
            region_name=config.region or session.region_name or "us-east-1",
            config=Config(
                signature_version=None if signed else UNSIGNED,
                connect_timeout=timeout,
                read_timeout=timeout,
                retries={"max_attempts": 3, "mode": "standard"},
                max_pool_connections=16,
                # S3-compatible services differ on the newer default checksums
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                s3={"addressing_style": "path"} if config.endpoint else None,
            ),
        )

    # -- errors -------------------------------------------------------------------
    def _map(self, exc: Exception, what: str) -> RemoteError:
        b = self._exc
        where = f"{what} on {self.config.url}"
        if isinstance(exc, b.ClientError):
            err = exc.response.get("Error", {})
            code = str(err.get("Code", ""))
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if status == 416 or code == "InvalidRange":
                return BeyondEnd(f"{where}: nothing after that byte")
            if status == 412 or code == "PreconditionFailed":
                return Conflict(f"{where}: written by someone else first")
            if status == 404 or code in ("NoSuchKey", "404", "NotFound"):
                if code == "NoSuchBucket":
                    return NoBucket(f"{where}: the bucket {self.config.bucket!r} does not exist")
                return NotFound(f"{where}: not found")
            if status in (401, 403) or code in ("AccessDenied", "InvalidAccessKeyId"):
                why = "no credentials were found" if self.anonymous else "access denied"
                return Denied(f"{where}: {why} ({code or status})")
            if isinstance(status, int) and status >= 500:
                return Unreachable(f"{where}: the service answered {status} {code}".rstrip())
            return RemoteError(f"{where}: {code or status}")
        if isinstance(exc, b.NoCredentialsError | b.PartialCredentialsError):
            return Denied(f"{where}: incomplete AWS credentials")
        if isinstance(exc, b.ResponseStreamingError | b.IncompleteReadError):
            return Truncated(f"{where}: the download was cut short")
        if isinstance(exc, b.BotoCoreError | OSError):
            return Unreachable(f"{where}: {type(exc).__name__}")
        return RemoteError(f"{where}: {type(exc).__name__}")

    def _call(self, what: str, op: str, **kwargs: Any) -> Any:
        try:
            return getattr(self._client, op)(Bucket=self.config.bucket, **kwargs)
        except Exception as exc:  # boto3's error family is wide; all of it maps here
            raise self._map(exc, what) from None

    def _key(self, name: str) -> str:
        return self.config.prefix + name

    # -- operations ---------------------------------------------------------------
    def head(self, name: str) -> Head:
        r = self._call(f"looking up {name}", "head_object", Key=self._key(name))
        return _head(r)

    def get_bytes(self, name: str, limit: int = 1 << 20) -> tuple[bytes, Head]:
        """A small object whole (records, claims); larger than `limit` is an error."""
        r = self._call(f"reading {name}", "get_object", Key=self._key(name))
        head = _head(r)
        if head.size > limit:
            r["Body"].close()
            raise RemoteError(f"{name} on {self.config.url} is too large ({head.size} bytes)")
        try:
            return r["Body"].read(), head
        except Exception as exc:
            raise self._map(exc, f"reading {name}") from None

    @contextlib.contextmanager
    def open_stream(self, name: str, start: int = 0) -> Iterator[tuple[Iterator[bytes], Head]]:
        """`with client.open_stream(name, start) as (chunks, head)`: the object from byte
        `start` on. A connection cut mid-way raises `Truncated` from the iterator."""
        extra = {"Range": f"bytes={start}-"} if start else {}
        r = self._call(f"downloading {name}", "get_object", Key=self._key(name), **extra)
        body = r["Body"]

        def chunks() -> Iterator[bytes]:
            try:
                yield from body.iter_chunks(CHUNK)
            except Exception as exc:
                raise self._map(exc, f"downloading {name}") from None

        try:
            yield chunks(), _head(r)
        finally:
            body.close()

    def put_bytes(
        self, name: str, data: bytes, *, create_only: bool = False, if_match: str | None = None
    ) -> str:
        """Write a small object; `create_only` is the atomic create-if-absent write
        (`If-None-Match: *`), `if_match` replaces only that version. Returns the ETag;
        `Conflict` when the condition fails."""
        cond: dict[str, str] = {}
        if create_only:
            cond["IfNoneMatch"] = "*"
        if if_match is not None:
            cond["IfMatch"] = if_match
        r = self._call(
            f"writing {name}",
            "put_object",
            Key=self._key(name),
            Body=data,
            ContentType="application/json",
            **cond,
        )
        return str(r.get("ETag", ""))

    def put_file(self, name: str, fh: BinaryIO, size: int, *, create_only: bool = True) -> None:
        """Upload an open file (outputs are immutable: created only if absent)."""
        cond = {"IfNoneMatch": "*"} if create_only else {}
        self._call(
            f"uploading {name}",
            "put_object",
            Key=self._key(name),
            Body=fh,
            ContentLength=size,
            ContentType="video/mp4",
            **cond,
        )

    def delete(self, name: str, *, if_match: str | None = None) -> None:
        cond = {"IfMatch": if_match} if if_match is not None else {}
        with contextlib.suppress(NotFound):
            self._call(f"deleting {name}", "delete_object", Key=self._key(name), **cond)

    def list(self, folder: str, *, start_after: str | None = None) -> tuple[list[Listed], bool]:
        """One page (up to 1000 names) under `folder`, after `start_after` (a relative
        name), and whether more follow."""
        extra = {"StartAfter": self._key(start_after)} if start_after else {}
        r = self._call(
            f"listing {folder}", "list_objects_v2", Prefix=self._key(folder), MaxKeys=1000, **extra
        )
        cut = len(self.config.prefix)
        out = [
            Listed(str(o["Key"])[cut:], int(o.get("Size", 0)), str(o.get("ETag", "")))
            for o in r.get("Contents", ())
        ]
        return out, bool(r.get("IsTruncated"))

    def list_all(self, folder: str) -> Iterator[Listed]:
        after: str | None = None
        while True:
            page, more = self.list(folder, start_after=after)
            yield from page
            if not more or not page:
                return
            after = page[-1].name


def _head(r: dict[str, Any]) -> Head:
    modified = r.get("LastModified")
    date = r.get("ResponseMetadata", {}).get("HTTPHeaders", {}).get("date")
    server_now = None
    if date:
        with contextlib.suppress(TypeError, ValueError):
            server_now = parsedate_to_datetime(date).timestamp()
    return Head(
        size=int(r.get("ContentLength", 0)),
        etag=str(r.get("ETag", "")),
        modified=modified.timestamp() if modified is not None else 0.0,
        server_now=server_now,
    )
