"""A real S3 endpoint on loopback for the team-store tests: moto's server app, served by
werkzeug on 127.0.0.1 in a thread, behind a small WSGI layer that can inject faults
(errors, stalls, cut downloads, wrong bytes, refused writes). (No tests in this file.)

One thing is added to moto rather than faked: its conditional write checks whether the
object exists and then writes it as two steps, which threads can interleave; S3, R2 and
MinIO do it atomically. Writes are therefore served one at a time (reads stay
concurrent), which is what the real services guarantee.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from werkzeug.serving import make_server

ACCESS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing-secret"}


@dataclass
class Rule:
    method: str  # "GET", "PUT", ... or "*"
    path: str  # substring of the request path
    kind: str  # error | deny | stall | truncate | corrupt
    times: int = 1  # how many matching requests it hits (-1: all)
    seconds: float = 0.0
    status: int = 500
    skip: int = 0  # let this many matching requests through first
    hits: int = 0


@dataclass
class Faults:
    rules: list[Rule] = field(default_factory=list)
    log: list[tuple[str, str, str]] = field(default_factory=list)  # method, path?query, range
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, method: str, path: str, kind: str, **kw: Any) -> Rule:
        rule = Rule(method, path, kind, **kw)
        with self.lock:
            self.rules.append(rule)
        return rule

    def clear(self) -> None:
        with self.lock:
            self.rules.clear()

    def take(self, method: str, path: str) -> Rule | None:
        with self.lock:
            for r in self.rules:
                if r.method in ("*", method) and r.path in path and r.times != 0:
                    if r.skip > 0:
                        r.skip -= 1
                        continue
                    r.times -= 1 if r.times > 0 else 0
                    r.hits += 1
                    return r
        return None

    def count(self, method: str, path: str) -> int:
        return sum(1 for m, p, _ in list(self.log) if m == method and path in p)


def _xml(code: str, message: str) -> bytes:
    return (
        f'<?xml version="1.0" encoding="UTF-8"?><Error><Code>{code}</Code>'
        f"<Message>{message}</Message></Error>"
    ).encode()


class FaultyS3:
    """WSGI: moto's app with faults and atomic writes."""

    def __init__(self, app: Callable[..., Iterable[bytes]], faults: Faults) -> None:
        self.app = app
        self.faults = faults
        self.write_lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        method = environ["REQUEST_METHOD"]
        # matched against the path and the query (a listing names its prefix there)
        path = environ.get("PATH_INFO", "") + "?" + unquote(environ.get("QUERY_STRING", ""))
        self.faults.log.append((method, path, environ.get("HTTP_RANGE", "")))
        rule = self.faults.take(method, path)
        if rule is not None and rule.kind in ("error", "deny"):
            environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
            status = 403 if rule.kind == "deny" else rule.status
            code = "AccessDenied" if rule.kind == "deny" else "InternalError"
            body = _xml(code, "injected by the test")
            start_response(
                f"{status} X",
                [("Content-Type", "application/xml"), ("Content-Length", str(len(body)))],
            )
            return [body]
        if rule is not None and rule.kind == "stall":
            time.sleep(rule.seconds)
        if method in ("PUT", "POST", "DELETE"):
            with self.write_lock:
                return self._collect(environ, start_response, rule)
        return self._collect(environ, start_response, rule)

    def _collect(
        self, environ: dict[str, Any], start_response: Callable[..., Any], rule: Rule | None
    ) -> Any:
        box: dict[str, Any] = {}

        def capture(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
            box["status"], box["headers"] = status, headers
            return lambda _data: None

        result = self.app(environ, capture)
        try:
            body = b"".join(result)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()
        if rule is not None and rule.kind == "corrupt" and body:
            body = bytes([body[0] ^ 0xFF]) + body[1:]
        start_response(box["status"], box["headers"])
        if rule is not None and rule.kind == "truncate" and len(body) > 1:
            return _cut(body[: len(body) // 2])
        return [body]


def _cut(part: bytes) -> Iterator[bytes]:
    yield part
    raise ConnectionAbortedError("cut by the test")  # werkzeug drops the connection


class S3Server:
    def __init__(self) -> None:
        from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

        logging.getLogger("werkzeug").setLevel(logging.CRITICAL)
        self.faults = Faults()
        app = FaultyS3(DomainDispatcherApplication(create_backend_app), self.faults)
        self._srv = make_server("127.0.0.1", 0, app, threaded=True)
        self.port = int(self._srv.server_address[1])
        self.endpoint = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self._srv.serve_forever, daemon=True, name="moto")
        self._thread.start()
        self._names = itertools.count(1)
        self._client: Any = None

    def stop(self) -> None:
        self._srv.shutdown()
        self._srv.server_close()

    def client(self) -> Any:
        """A plain boto3 client of the test's own, made once (making one costs ~50 ms)."""
        if self._client is None:
            self._client = self._make_client()
        return self._client

    def _make_client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            region_name="us-east-1",
            aws_access_key_id=ACCESS["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=ACCESS["AWS_SECRET_ACCESS_KEY"],
            config=Config(
                request_checksum_calculation="when_required",
                response_checksum_validation="when_required",
                retries={"max_attempts": 1},
                s3={"addressing_style": "path"},
            ),
        )

    def new_bucket(self) -> Bucket:
        name = f"team-{next(self._names)}-{uuid.uuid4().hex[:8]}"
        self.client().create_bucket(Bucket=name)
        return Bucket(self, name)


@dataclass
class Bucket:
    server: S3Server
    name: str
    prefix: str = "films"

    @property
    def url(self) -> str:
        return f"s3://{self.name}/{self.prefix}?endpoint={self.server.endpoint}"

    @property
    def env(self) -> dict[str, str]:
        return {**ACCESS, "AWS_DEFAULT_REGION": "us-east-1", "STORYC_REMOTE": self.url}

    def keys(self, folder: str = "") -> list[str]:
        cl = self.server.client()
        out: list[str] = []
        for page in cl.get_paginator("list_objects_v2").paginate(
            Bucket=self.name, Prefix=f"{self.prefix}/{folder}"
        ):
            out += [o["Key"][len(self.prefix) + 1 :] for o in page.get("Contents", ())]
        return out

    def get(self, name: str) -> bytes:
        r = self.server.client().get_object(Bucket=self.name, Key=f"{self.prefix}/{name}")
        return bytes(r["Body"].read())

    def put(self, name: str, data: bytes) -> None:
        self.server.client().put_object(Bucket=self.name, Key=f"{self.prefix}/{name}", Body=data)

    def put_many(self, names: Iterable[str], data: bytes = b"") -> None:
        """Many objects at once, straight into moto's in-process state (set-up only:
        thousands of PUTs over HTTP would take most of a minute)."""
        from moto.core import DEFAULT_ACCOUNT_ID
        from moto.s3.models import s3_backends

        backend = s3_backends[DEFAULT_ACCOUNT_ID]["global"]
        for name in names:
            backend.put_object(self.name, f"{self.prefix}/{name}", data)

    def delete(self, name: str) -> None:
        self.server.client().delete_object(Bucket=self.name, Key=f"{self.prefix}/{name}")
