"""The canary key: a fake API key that must never appear anywhere storyc can put it.

Runs the client through the happy path and every failure it translates, with all
logging captured at DEBUG (httpx and httpcore included), stdout/stderr captured, every
file written under a temporary directory read back, and str()/repr() of every raised
exception, its whole cause/context chain, and the client itself inspected.
"""

from __future__ import annotations

import asyncio
import io
import logging
import socket
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from storyc.media import ffmpeg as media
from storyc.provider import errors as E
from storyc.provider import loopback
from storyc.provider.client import ProviderClient
from storyc.provider.transfer import submit_with_files
from storyc.provider.uploads import UploadRegistry

CANARY = "inf_CANARY_7f3a9c21d4e5b6a8"
APP = "klingai/video-o1"
T2V = {"prompt": "a canary sings", "duration": 5}


class Capture(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))
        self.lines.append(repr(record.args))


def _chain(exc: BaseException | None) -> list[BaseException]:
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or exc.__context__
    return seen


@pytest.fixture
def capture() -> Any:
    handler = Capture()
    handler.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
    root = logging.getLogger()
    old = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield handler
    root.removeHandler(handler)
    root.setLevel(old)


def test_canary_key_never_leaks(
    capture: Capture, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raised: list[BaseException] = []
    frame = tmp_path / "frame.png"
    media.make_test_image(frame, 320, 180)
    registry = UploadRegistry(tmp_path / ".storyc" / "uploads.json")

    async def fast(_: float) -> None:
        await asyncio.sleep(0)

    async def attempt(c: ProviderClient, fn: Callable[[], Awaitable[Any]]) -> None:
        try:
            await fn()
        except E.ProviderError as exc:
            raised.append(exc)

    faults = [
        "task:500:nth=1",
        "status:drop:nth=2",
        "submit:drop:nth=2",
        "submit:500:nth=3",
        "submit:429:nth=4+5+6",
        "download:truncate:nth=1",
        "files:503:nth=1",
        "submit:fail:nth=7",
        "submit:reject:nth=8",
        "submit:402:nth=9",
    ]
    with loopback.serve(api_key=CANARY, latency=0.05, faults=faults) as srv:

        async def scenario() -> None:
            async with ProviderClient(
                api_key=CANARY,
                base_url=srv.url,
                sleep=fast,
                uploads=registry,
                max_submit_retries=2,
                max_read_retries=2,
            ) as c:
                assert CANARY not in repr(c) and CANARY not in str(c.__dict__)
                task = await submit_with_files(
                    c,
                    APP,
                    {**T2V, "image": {"$file": "frame.png", "digest": "sha256:f"}},
                    root=tmp_path,
                )
                done = await c.follow(task.id, poll_interval=0.01)
                with open(tmp_path / "out.mp4", "wb") as out:
                    await c.download(done.video_url, out)
                await attempt(c, lambda: c.submit(APP, T2V))  # 2nd: dropped after accepting
                await attempt(c, lambda: c.submit(APP, T2V))  # 3rd: 500
                await attempt(c, lambda: c.submit(APP, T2V))  # 4-6th: 429 until given up
                for _ in range(3):  # 7th fails, 8th is rejected, 9th answers 402
                    await attempt(c, lambda: _run(c))
                await attempt(c, lambda: c.submit(APP, {**T2V, "duration": 99}, scene="s"))
                await attempt(c, lambda: c.get_task("missing"))
                await attempt(c, lambda: c.follow("missing"))
                await attempt(c, lambda: c.download(srv.url + "/outputs/nope.mp4", io.BytesIO()))
                await attempt(c, lambda: _deadline(c))
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                dead = f"http://127.0.0.1:{s.getsockname()[1]}"
            async with ProviderClient(
                api_key=CANARY, base_url=dead, sleep=fast, max_read_retries=1, max_submit_retries=1
            ) as c:
                await attempt(c, lambda: c.submit(APP, T2V))
                await attempt(c, lambda: c.get_task("x"))
            async with ProviderClient(
                api_key=CANARY,
                base_url="http://127.0.0.1:1",
                transport=httpx.MockTransport(_explode),
                sleep=fast,
                max_read_retries=0,
            ) as c:
                await attempt(c, lambda: c.get_task("x"))
                await attempt(c, lambda: c.submit(APP, T2V))

        asyncio.run(scenario())

    kinds = {type(e).__name__ for e in raised}
    assert {
        "SubmitOutcomeUnknown",
        "SubmitNotReceived",
        "TaskFailed",
        "TaskRejected",
        "BalanceError",
        "InvalidRequest",
        "NotFound",
        "DownloadError",
        "DeadlineExceeded",
        "TransportError",
    } <= kinds
    for exc in raised:
        for link in _chain(exc):
            assert CANARY not in str(link) and CANARY not in repr(link)
            assert CANARY not in repr(vars(link))
            assert not hasattr(link, "request"), f"{type(link).__name__} carries a request"
    out, err = capfd.readouterr()
    assert CANARY not in out and CANARY not in err
    assert capture.lines and all(CANARY not in line for line in capture.lines)
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert CANARY.encode() not in path.read_bytes(), path
    assert (tmp_path / ".storyc" / "uploads.json").exists()


async def _run(c: ProviderClient) -> Any:
    task = await c.submit(APP, T2V)
    return await c.follow(task.id, poll_interval=0.01)


async def _deadline(c: ProviderClient) -> Any:
    task = await c.submit(APP, {**T2V, "prompt": "slow"})
    return await c.follow(task.id, deadline=0.0, poll_interval=0.01)


def _explode(request: httpx.Request) -> httpx.Response:
    # An httpx error whose message mentions the header value, as a hostile proxy might.
    raise httpx.ReadError(
        f"reset while sending {request.headers['authorization']}", request=request
    )
