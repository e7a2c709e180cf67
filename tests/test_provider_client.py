"""The provider client against the loopback provider, over real sockets on 127.0.0.1.

Happy paths (poll and stream, every status and video form), error mapping, and the
submit rule: a lost answer is never retried, and the exception says whether the
provider may have accepted (and billed) the task.
"""

from __future__ import annotations

import asyncio
import io
import socket
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from storyc.provider import errors as E
from storyc.provider import loopback
from storyc.provider.client import ProviderClient
from storyc.provider.task import Status

APP = "klingai/video-o1"
T2V = {"prompt": "a lighthouse at dusk", "duration": 5, "aspect_ratio": "16:9"}


def run(coro: Awaitable[Any]) -> Any:
    return asyncio.run(coro)  # type: ignore[arg-type]


def client(
    server: loopback.LoopbackServer, sleeps: list[float] | None = None, **kw: Any
) -> ProviderClient:
    """A client whose retry sleeps are recorded and skipped (the sockets stay real)."""

    async def fast_sleep(delay: float) -> None:
        if sleeps is not None:
            sleeps.append(delay)
        await asyncio.sleep(0)

    return ProviderClient(api_key=server.api_key, base_url=server.url, sleep=fast_sleep, **kw)


async def full_task(c: ProviderClient, **follow: Any) -> Any:
    task = await c.submit(APP, dict(T2V), scene="intro")
    return await c.follow(task.id, poll_interval=0.01, **follow)


@pytest.mark.parametrize("stream", [False, True], ids=["poll", "stream"])
@pytest.mark.parametrize("status_form", ["int", "string", "legacy"])
def test_happy_path_every_status_form(stream: bool, status_form: str) -> None:
    with loopback.serve(latency=0.15, status_form=status_form) as srv:
        seen: list[Status] = []

        async def go() -> tuple[Any, bytes]:
            async with client(srv, legacy_status=status_form == "legacy") as c:
                task = await full_task(c, stream=stream, on_status=lambda t: seen.append(t.status))
                buf = io.BytesIO()
                n = await c.download(task.video_url, buf)
                assert n == len(buf.getvalue())
                return task, buf.getvalue()

        task, data = run(go())
    assert task.status == Status.COMPLETED
    assert seen[-1] == Status.COMPLETED
    assert Status.RUNNING in seen or Status.QUEUED in seen
    assert data[4:8] == b"ftyp"  # a real MP4
    assert len(srv.submissions) == 1 and srv.submissions[0]["outcome"] == "completed"


def test_uploading_status_9_is_not_terminal() -> None:
    with loopback.serve(latency=0.3) as srv:
        seen: list[int] = []

        async def go() -> Any:
            async with client(srv) as c:
                return await full_task(c, stream=True, on_status=lambda t: seen.append(t.status))

        task = run(go())
    assert Status.UPLOADING in seen and seen.index(Status.UPLOADING) < seen.index(Status.COMPLETED)
    assert task.status == Status.COMPLETED and task.video_url


def test_video_as_object_with_uri() -> None:
    with loopback.serve(video_form="object") as srv:
        task = run(_with(srv, lambda c: full_task(c)))
    assert task.raw["output"]["video"]["uri"] == task.video_url
    assert task.video_url.endswith(".mp4")


async def _with(
    srv: loopback.LoopbackServer,
    fn: Callable[[ProviderClient], Awaitable[Any]],
    sleeps: list[float] | None = None,
    **kw: Any,
) -> Any:
    async with client(srv, sleeps, **kw) as c:
        return await fn(c)


def test_400_gives_provider_words_scene_and_field_without_retry() -> None:
    with loopback.serve(schema="v2") as srv:
        sleeps: list[float] = []
        bad = {**T2V, "duration": 42}
        with pytest.raises(E.InvalidRequest) as info:
            run(_with(srv, lambda c: c.submit(APP, bad, scene="intro"), sleeps))
    err = info.value
    assert err.scene == "intro" and err.field == "duration" and err.http_status == 400
    assert "duration" in str(err) and "intro" in str(err) and "less than or equal to 10" in str(err)
    assert sleeps == [] and srv.faults.counts["submit"] == 1 and srv.submissions == []


def test_v1_fields_refused_by_v2_and_accepted_by_v1() -> None:
    v1 = {**T2V, "mode": "std", "keep_original_sound": False}
    with loopback.serve(schema="v2") as srv, pytest.raises(E.InvalidRequest, match="mode"):
        run(_with(srv, lambda c: c.submit(APP, v1)))
    with loopback.serve(schema="v1") as srv:
        task = run(_with(srv, lambda c: c.submit(APP, v1)))
    assert task.status == Status.QUEUED


def test_wrong_key_says_check_the_key() -> None:
    with loopback.serve() as srv:

        async def go() -> Any:
            async with ProviderClient(api_key="inf_wrong", base_url=srv.url) as c:
                return await c.submit(APP, T2V)

        with pytest.raises(E.AuthError, match="INFERENCE_API_KEY"):
            run(go())
    assert srv.submissions == []


def test_missing_key() -> None:
    with pytest.raises(E.MissingKey, match="INFERENCE_API_KEY"):
        ProviderClient(api_key="", base_url="http://127.0.0.1:9")


def test_402_on_submit_is_balance_and_not_retried() -> None:
    with (
        loopback.serve(faults=["submit:402"]) as srv,
        pytest.raises(E.BalanceError, match="balance or plan"),
    ):
        run(_with(srv, lambda c: c.submit(APP, T2V)))
    assert srv.faults.counts["submit"] == 1 and srv.submissions == []


def test_rejected_task_status_13_is_balance() -> None:
    with (
        loopback.serve(faults=["submit:reject"]) as srv,
        pytest.raises(E.TaskRejected, match="balance or plan") as info,
    ):
        run(_with(srv, lambda c: full_task(c)))
    assert isinstance(info.value, E.BalanceError) and info.value.task.status == Status.REJECTED


def test_failed_task_carries_the_error_and_check_false_returns_it() -> None:
    with loopback.serve(faults=["submit:fail"]) as srv:
        with pytest.raises(E.TaskFailed, match="generation failed"):
            run(_with(srv, lambda c: full_task(c)))
        task = run(_with(srv, lambda c: full_task(c, check=False)))
    assert task.status == Status.FAILED and "generation failed" in (task.error or "")


def test_cancel_then_409_when_finished() -> None:
    with loopback.serve(latency=30) as srv:

        async def go() -> tuple[bool, Any, bool]:
            async with client(srv) as c:
                task = await c.submit(APP, T2V)
                ok = await c.cancel(task.id)
                done = await c.follow(task.id, check=False)
                again = await c.cancel(task.id)
                return ok, done, again

        ok, done, again = run(go())
    assert ok is True and done.status == Status.CANCELLED and again is False


@pytest.mark.parametrize("endpoint", ["status", "task"])
@pytest.mark.parametrize("kind", ["429", "500", "503", "drop"])
def test_reads_retry_transient_faults(endpoint: str, kind: str) -> None:
    spec = f"{endpoint}:{kind}:nth=2+3" + (":retry_after=7" if kind in ("429", "503") else "")
    with loopback.serve(latency=0.05, faults=[spec]) as srv:
        sleeps: list[float] = []
        task = run(_with(srv, lambda c: full_task(c), sleeps))
    assert task.status == Status.COMPLETED
    assert len(srv.faults.fired) == 2 and len(srv.submissions) == 1
    retry_sleeps = [s for s in sleeps if s != 0.01]
    if kind in ("429", "503"):
        assert retry_sleeps == [7.0, 7.0]  # Retry-After honoured exactly
    else:
        assert len(retry_sleeps) == 2 and retry_sleeps[1] > retry_sleeps[0] * 0.5


def test_reads_give_up_after_bounded_retries() -> None:
    with (
        loopback.serve(faults=["task:500"]) as srv,
        pytest.raises(E.ServiceUnavailable, match="HTTP 500"),
    ):
        run(_with(srv, lambda c: full_task(c), [], max_read_retries=3))
    assert srv.faults.counts["task"] == 4


@pytest.mark.parametrize("kind", ["429", "503"])
def test_submit_retried_only_when_not_accepted(kind: str) -> None:
    with loopback.serve(faults=[f"submit:{kind}:nth=1+2:retry_after=1"]) as srv:
        sleeps: list[float] = []
        task = run(_with(srv, lambda c: full_task(c), sleeps))
    assert task.status == Status.COMPLETED and sleeps[:2] == [1.0, 1.0]
    assert srv.faults.counts["submit"] == 3 and len(srv.submissions) == 1


def test_submit_still_rate_limited_is_not_received() -> None:
    with loopback.serve(faults=["submit:429"]) as srv, pytest.raises(E.SubmitNotReceived) as info:
        run(_with(srv, lambda c: c.submit(APP, T2V), [], max_submit_retries=2))
    assert info.value.safe_to_retry and srv.submissions == []


@pytest.mark.parametrize("kind,paid", [("drop", 1), ("drop_early", 0), ("500", 0)])
def test_lost_submit_answer_is_never_retried(kind: str, paid: int) -> None:
    with loopback.serve(faults=[f"submit:{kind}:nth=1"]) as srv:
        sleeps: list[float] = []
        with pytest.raises(E.SubmitOutcomeUnknown) as info:
            run(_with(srv, lambda c: c.submit(APP, T2V, scene="intro"), sleeps))
    assert not info.value.safe_to_retry and "pay twice" in str(info.value)
    assert srv.faults.counts["submit"] == 1 and sleeps == []
    assert len(srv.submissions) == paid  # with "drop" the provider did create (bill) the task


def test_submit_to_closed_port_is_certainly_not_received() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed when the block ends: nothing listens there
    sleeps: list[float] = []

    async def go() -> Any:
        async def fast(d: float) -> None:
            sleeps.append(d)

        async with ProviderClient(
            api_key="inf_x", base_url=f"http://127.0.0.1:{port}", sleep=fast, max_submit_retries=2
        ) as c:
            return await c.submit(APP, T2V)

    with pytest.raises(E.SubmitNotReceived) as info:
        run(go())
    assert info.value.safe_to_retry and len(sleeps) == 2


def test_sixteen_concurrent_tasks_on_keepalive_connections() -> None:
    with loopback.serve(latency=0.2, fast_outputs=True) as srv:

        async def go() -> list[Any]:
            async with client(srv) as c:
                return await asyncio.gather(*(full_task(c, stream=i % 2 == 0) for i in range(24)))

        tasks = run(go())
    assert all(t.status == Status.COMPLETED for t in tasks)
    assert len({t.id for t in tasks}) == 24 == len(srv.submissions)
    assert srv.provider.shelf.render_count == 1  # one render for 24 same-shaped tasks


@pytest.mark.parametrize(
    "fault", ["stream:500:nth=1", "stream:drop:nth=1+2", "stream:429:nth=1:retry_after=0"]
)
def test_broken_stream_is_reconciled_and_reopened(fault: str) -> None:
    with loopback.serve(latency=0.3, faults=[fault]) as srv:
        seen: list[Status] = []
        task = run(
            _with(
                srv, lambda c: full_task(c, stream=True, on_status=lambda t: seen.append(t.status))
            )
        )
    assert task.status == Status.COMPLETED and seen[-1] == Status.COMPLETED
    assert srv.faults.fired and srv.faults.counts["stream"] > len(srv.faults.fired)


def test_stream_that_always_breaks_falls_back_to_polling() -> None:
    with loopback.serve(latency=0.8, faults=["stream:503"]) as srv:
        task = run(_with(srv, lambda c: full_task(c, stream=True)))
    assert task.status == Status.COMPLETED and srv.faults.counts.get("status", 0) >= 1


def test_submit_read_timeout_may_have_been_accepted() -> None:
    with loopback.serve(faults=["submit:delay:nth=1:seconds=1.0"]) as srv:
        with pytest.raises(E.SubmitOutcomeUnknown, match="may have accepted"):
            run(_with(srv, lambda c: c.submit(APP, T2V), timeout=0.3))
        for _ in range(300):  # the provider goes on and creates the task: it would be billed
            if srv.submissions:
                break
            run(asyncio.sleep(0.01))
    assert len(srv.submissions) == 1


def test_401_on_a_read_is_not_retried() -> None:
    with loopback.serve(faults=["task:401"]) as srv:
        sleeps: list[float] = []
        with pytest.raises(E.AuthError, match="check INFERENCE_API_KEY"):
            run(_with(srv, lambda c: full_task(c), sleeps))
    assert srv.faults.counts["task"] == 1 and sleeps == []
