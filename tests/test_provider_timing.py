"""Backoff, Retry-After and deadlines, with an injected clock: these tests take no real time.

httpx.MockTransport stands in for the network only here, where the subject is time;
every other provider test runs over real sockets.
"""

from __future__ import annotations

import asyncio
import email.utils
import json
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from storyc.provider import errors as E
from storyc.provider.client import ProviderClient, parse_retry_after
from storyc.provider.task import Status

Handler = Callable[[httpx.Request], httpx.Response]


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, delay: float) -> None:
        self.sleeps.append(delay)
        self.now += delay


def make(handler: Handler, t: FakeTime, rng: float = 0.5, **kw: Any) -> ProviderClient:
    return ProviderClient(
        api_key="inf_timing",
        base_url="http://provider.test",
        transport=httpx.MockTransport(handler),
        clock=t.clock,
        sleep=t.sleep,
        rng=lambda: rng,
        **kw,
    )


def ok_task(status: Any = 10, **extra: Any) -> httpx.Response:
    return httpx.Response(
        200, json={"data": {"id": "t1", "status": status, **extra}, "messages": []}
    )


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_retry_after_is_honoured_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    t, calls = FakeTime(), []
    real_sleeps: list[float] = []
    real_sleep = asyncio.sleep

    async def watched_sleep(delay: float, *args: Any) -> Any:
        real_sleeps.append(delay)
        return await real_sleep(0, *args)

    # every wait goes through the client's injected sleep, none through the event loop's
    monkeypatch.setattr(asyncio, "sleep", watched_sleep)

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        if len(calls) <= 3:
            return httpx.Response(
                503,
                headers={"Retry-After": "12"},
                json={"type": "x/app_maintenance", "detail": "maintenance"},
            )
        return ok_task()

    async def go() -> Any:
        async with make(handler, t) as c:
            return await c.get_task("t1")

    task = run(go())
    assert task.status == Status.COMPLETED and t.sleeps == [12.0, 12.0, 12.0]
    assert not [d for d in real_sleeps if d > 0]  # no real sleeping happened


@pytest.mark.parametrize("rng,expected", [(0.0, [0.25, 0.5, 1.0, 2.0]), (1.0, [0.5, 1, 2, 4])])
def test_exponential_backoff_with_jitter(rng: float, expected: list[float]) -> None:
    t, calls = FakeTime(), []

    def handler(req: httpx.Request) -> httpx.Response:
        calls.append(req)
        return httpx.Response(500, json={"detail": "boom"}) if len(calls) <= 4 else ok_task()

    async def go() -> Any:
        async with make(handler, t, rng=rng) as c:
            return await c.get_task("t1")

    run(go())
    assert t.sleeps == expected


def test_backoff_is_capped() -> None:
    t = FakeTime()

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(502, text="bad gateway")

    async def go() -> Any:
        async with make(handler, t, rng=1.0, max_read_retries=8, backoff_cap=3.0) as c:
            return await c.get_status("t1")

    with pytest.raises(E.ServiceUnavailable, match="bad gateway"):
        run(go())
    assert max(t.sleeps) == 3.0 and len(t.sleeps) == 8


def test_connect_errors_on_reads_are_retried_then_translated() -> None:
    t = FakeTime()

    def handler(req: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=req)

    async def go() -> Any:
        async with make(handler, t, max_read_retries=2) as c:
            return await c.get_task("t1")

    with pytest.raises(E.TransportError) as info:
        run(go())
    assert len(t.sleeps) == 2 and info.value.__cause__ is None
    assert "ConnectError" in str(info.value) and "provider.test" in str(info.value)


def test_deadline_while_running() -> None:
    t, polls = FakeTime(), []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/status"):
            polls.append(t.now)
            return httpx.Response(200, json={"data": {"id": "t1", "status": "running"}})
        return ok_task(7)

    async def go() -> Any:
        async with make(handler, t) as c:
            return await c.follow("t1", deadline=60, poll_interval=2)

    with pytest.raises(E.DeadlineExceeded, match="still running after 60 s"):
        run(go())
    assert len(polls) == 30 and t.now == pytest.approx(1060.0)


def test_retry_after_beyond_the_deadline_stops_at_once() -> None:
    t = FakeTime()

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/status"):
            return httpx.Response(429, headers={"Retry-After": "200"}, json={"detail": "slow"})
        return ok_task(2)

    async def go() -> Any:
        async with make(handler, t) as c:
            return await c.follow("t1", deadline=120, poll_interval=2)

    with pytest.raises(E.DeadlineExceeded):
        run(go())
    assert 200.0 not in t.sleeps


def test_full_fetch_only_when_status_changes() -> None:
    t, seq, full = FakeTime(), iter([2, 2, 2, 7, 7, 9, 9, 10]), []

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/status"):
            return httpx.Response(200, json={"data": {"id": "t1", "status": next(seq)}})
        full.append(1)
        return ok_task(
            10 if len(full) == 4 else [2, 7, 9][len(full) - 1],
            output={"video": {"url": "https://cdn.test/v.mp4"}},
        )

    async def go() -> Any:
        async with make(handler, t) as c:
            return await c.follow("t1", poll_interval=2)

    task = run(go())
    assert task.video_url == "https://cdn.test/v.mp4" and len(full) == 4


def test_stream_merges_partials_skips_heartbeats_and_confirms_terminal() -> None:
    t, gets = FakeTime(), []
    lines = [
        {
            "data": {"id": "t1", "status": "queued", "input": {"prompt": "x"}},
            "fields": ["status", "input"],
        },
        {"type": "heartbeat"},
        {"data": {"id": "t1", "status": 7, "logs": ["a"]}, "fields": ["status"]},
        {"type": "heartbeat"},
        {"data": {"id": "t1", "status": 9}, "fields": ["status"]},
        {"data": {"id": "t1", "status": "COMPLETED"}, "fields": ["status"]},
    ]

    def handler(req: httpx.Request) -> httpx.Response:
        if req.url.path.endswith("/stream"):
            assert req.headers["accept"] == "application/x-ndjson"
            body = "\n".join(json.dumps(x) for x in lines) + "\n"
            return httpx.Response(200, content=body.encode())
        gets.append(1)
        status = 2 if len(gets) == 1 else 10
        return ok_task(status, output={"video": "https://cdn.test/out.mp4"})

    seen: list[Status] = []

    async def go() -> Any:
        async with make(handler, t) as c:
            return await c.follow("t1", stream=True, on_status=lambda x: seen.append(x.status))

    task = run(go())
    assert seen == [Status.QUEUED, Status.RUNNING, Status.UPLOADING, Status.COMPLETED]
    assert task.video_url == "https://cdn.test/out.mp4" and len(gets) == 2
    assert "logs" not in task.raw  # only the listed fields are merged


def test_parse_retry_after_forms() -> None:
    now = time.time()
    date = email.utils.formatdate(now + 30, usegmt=True)
    assert parse_retry_after("5") == 5.0
    assert parse_retry_after(date, now=now) == pytest.approx(30, abs=1.5)
    assert parse_retry_after("soon") is None and parse_retry_after(None) is None


def test_retry_after_longer_than_the_cap_is_left_to_the_caller() -> None:
    t = FakeTime()

    def handler(req: httpx.Request) -> httpx.Response:
        return httpx.Response(429, headers={"Retry-After": "3600"}, json={"detail": "quota"})

    async def go() -> Any:
        async with make(handler, t, max_retry_after=300) as c:
            return await c.submit("klingai/video-o1", {"prompt": "x"})

    with pytest.raises(E.SubmitNotReceived, match="quota") as info:
        run(go())
    assert t.sleeps == [] and info.value.safe_to_retry


def test_base_url_precedence_flag_env_setting_default() -> None:
    from storyc.plan.address import DEFAULT_BASE_URL, resolve_base_url

    env = {"INFERENCE_BASE_URL": "http://127.0.0.1:9000/"}
    assert resolve_base_url("http://127.0.0.1:1", "https://s.test", env) == "http://127.0.0.1:1"
    assert resolve_base_url(None, "https://s.test", env) == "http://127.0.0.1:9000"
    assert resolve_base_url(None, "https://s.test", {}) == "https://s.test"
    assert resolve_base_url(None, None, {}) == DEFAULT_BASE_URL


def test_repr_and_errors_hide_the_key() -> None:
    key = "inf_secret_in_repr"
    c = ProviderClient(api_key=key, base_url="http://provider.test")
    assert key not in repr(c) and key not in str(vars(c))
    asyncio.run(c.aclose())
