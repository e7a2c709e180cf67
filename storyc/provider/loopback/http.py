"""A small HTTP/1.1 server on asyncio streams, for the loopback provider.

Stage: tooling (the offline provider; `storyc webhook serve` listens with it too). In:
TCP connections (on 127.0.0.1 unless told otherwise). Out: calls
to an async handler `handler(Request) -> Response` and the bytes of its answer.
I/O: sockets only.

Enough HTTP/1.1 for the provider protocol: keep-alive, `Content-Length` and chunked
request bodies (read lazily, so a large upload can be streamed to disk), fixed-length
and streamed (chunked) responses, and two ways to misbehave on purpose: `Drop`
(close the connection without an answer) and `Response.truncate_at` (promise a
length, send fewer bytes, close). Not a general web server: no TLS, no pipelining
guarantees beyond sequential requests on one connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

MAX_HEADER_BYTES = 64 * 1024


class Drop(Exception):
    """Raised by a handler: close the connection without answering."""


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]  # lower-case names
    reader: asyncio.StreamReader
    _remaining: int | None = 0  # None: chunked
    _done: bool = False
    _kept: bytes | None = None  # the body, once `body()` has read it

    async def iter_body(self, size: int = 1 << 16) -> AsyncIterator[bytes]:
        if self._kept is not None:
            yield self._kept
            return
        if self._done:
            return
        if self._remaining is None:
            while True:
                line = await self.reader.readline()
                n = int(line.split(b";")[0].strip() or b"0", 16)
                if n == 0:
                    while (await self.reader.readline()) not in (b"\r\n", b"\n", b""):
                        pass
                    break
                yield await self.reader.readexactly(n)
                await self.reader.readexactly(2)
        else:
            while self._remaining > 0:
                block = await self.reader.read(min(size, self._remaining))
                if not block:
                    raise ConnectionError("client closed during the body")
                self._remaining -= len(block)
                yield block
        self._done = True

    async def body(self) -> bytes:
        """The whole body (read once; asked again, the same bytes)."""
        if self._kept is None:
            self._kept = b"".join([b async for b in self.iter_body()])
        return self._kept

    async def json(self) -> Any:
        return json.loads(await self.body() or b"null")


@dataclass
class Response:
    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    stream: AsyncIterator[bytes] | None = None  # sent chunked when set
    truncate_at: int | None = None  # send only this many body bytes, then close
    chunk_delay: float = 0.0  # seconds between 64 KiB blocks of `body` (slow downloads)
    close: bool = False

    @staticmethod
    def json(
        data: Any,
        status: int = 200,
        content_type: str = "application/json",
        headers: dict[str, str] | None = None,
    ) -> Response:
        body = json.dumps(data, separators=(",", ":")).encode()
        return Response(status, body, {"Content-Type": content_type, **(headers or {})})


Handler = Callable[[Request], Awaitable[Response]]


async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    except asyncio.LimitOverrunError:
        return None
    return head


async def serve_connection(
    handler: Handler, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await _read_head(reader)
            if not head:
                return
            lines = head.decode("latin-1").split("\r\n")
            try:
                method, target, version = lines[0].split(" ", 2)
            except ValueError:
                return
            headers: dict[str, str] = {}
            for line in lines[1:]:
                if ":" in line:
                    name, value = line.split(":", 1)
                    headers[name.strip().lower()] = value.strip()
            chunked = "chunked" in headers.get("transfer-encoding", "").lower()
            length = None if chunked else int(headers.get("content-length", "0") or 0)
            parts = urlsplit(target)
            req = Request(
                method.upper(), unquote(parts.path), parse_qs(parts.query), headers, reader, length
            )
            try:
                resp = await handler(req)
            except Drop:
                async for _ in req.iter_body():
                    pass
                return
            except (ConnectionError, asyncio.IncompleteReadError):
                raise
            except Exception as exc:  # a bug in a handler answers 500, it does not hang up
                resp = Response.json(
                    {
                        "type": "about:blank",
                        "title": "Internal Server Error",
                        "status": 500,
                        "detail": type(exc).__name__,
                    },
                    500,
                    "application/problem+json",
                )
            async for _ in req.iter_body():  # drain what the handler did not read
                pass
            keep = (
                version == "HTTP/1.1"
                and headers.get("connection", "").lower() != "close"
                and not resp.close
                and resp.truncate_at is None
            )
            await _write_response(writer, resp, keep)
            if not keep:
                return
    except (ConnectionError, asyncio.IncompleteReadError, ValueError):
        return
    finally:
        with contextlib.suppress(Exception):
            writer.close()
            await writer.wait_closed()


async def _write_response(writer: asyncio.StreamWriter, resp: Response, keep: bool) -> None:
    reason = HTTPStatus(resp.status).phrase if resp.status in HTTPStatus._value2member_map_ else ""
    head = [f"HTTP/1.1 {resp.status} {reason}"]
    headers = dict(resp.headers)
    if resp.stream is not None:
        headers["Transfer-Encoding"] = "chunked"
    else:
        headers["Content-Length"] = str(len(resp.body))
    headers["Connection"] = "keep-alive" if keep else "close"
    head += [f"{k}: {v}" for k, v in headers.items()]
    writer.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
    if resp.stream is not None:
        async for block in resp.stream:
            if block:
                writer.write(b"%x\r\n%s\r\n" % (len(block), block))
                await writer.drain()
        writer.write(b"0\r\n\r\n")
    else:
        body = resp.body if resp.truncate_at is None else resp.body[: resp.truncate_at]
        if resp.chunk_delay > 0:
            for i in range(0, len(body), 1 << 16):
                writer.write(body[i : i + (1 << 16)])
                await writer.drain()
                await asyncio.sleep(resp.chunk_delay)
        else:
            writer.write(body)
    await writer.drain()


class HttpServer:
    """Listens on `host`:`port` (127.0.0.1 and a free port by default) in the running
    event loop."""

    def __init__(self, handler: Handler, port: int = 0, host: str = "127.0.0.1") -> None:
        self.handler = handler
        self.port = port
        self.host = host
        self._server: asyncio.Server | None = None
        self._conns: set[asyncio.Task[None]] = set()
        self.connections = 0  # accepted so far: tests use it to see keep-alive at work

    async def start(self) -> int:
        async def on_conn(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            task = asyncio.current_task()
            assert task is not None
            self._conns.add(task)
            self.connections += 1
            try:
                await serve_connection(self.handler, r, w)
            except asyncio.CancelledError:
                pass  # stopped: the connection is closed, nothing to report
            finally:
                self._conns.discard(task)

        self._server = await asyncio.start_server(
            on_conn, self.host, self.port, limit=MAX_HEADER_BYTES, backlog=256
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
        for task in list(self._conns):
            task.cancel()
        if self._conns:
            await asyncio.gather(*self._conns, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()
