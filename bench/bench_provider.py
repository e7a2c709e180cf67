"""Benchmark: the provider client against the loopback provider, and against the official SDK.

Stage: a script, not a test (timings vary with the machine; nothing here asserts a
speed). In: the options below. Out: figures on stdout. I/O: starts loopback providers
(`storyc provider serve`) as subprocesses on 127.0.0.1, so the client's CPU time is
measured apart from the server's.

(a) latency 0, `--tasks` tasks (500) at concurrency 16: tasks per second and client
    CPU per task (submit + follow by polling + full fetch), after one warm-up task
    that renders the shared output (`--fast-outputs`).
(b) latency 1 s, 64 tasks at concurrency 8, followed by the NDJSON stream: wall time
    against the ideal ceil(64/8) x 1 s (target <= 1.15x).
(c) the same 64 tasks through the official SDK's `client.run`, one after another, as
    a user's script would do it; then the ratio (c)/(b).

Usage: python bench/bench_provider.py [--tasks 500] [--slow-tasks 64] [--no-sdk]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from storyc.provider.client import ProviderClient

APP = "klingai/video-o1"
INPUT = {"prompt": "a lighthouse at dusk, waves", "duration": 5, "aspect_ratio": "16:9"}


@contextmanager
def provider(latency: float) -> Iterator[tuple[str, str]]:
    """A loopback provider in a subprocess; yields (base URL, key)."""
    cmd = [
        sys.executable,
        "-m",
        "storyc",
        "provider",
        "serve",
        "--latency",
        str(latency),
        "--fast-outputs",
    ]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, text=True)
    try:
        url = key = ""
        assert proc.stdout is not None
        for line in proc.stdout:
            if line.startswith("export INFERENCE_BASE_URL="):
                url = line.split("=", 1)[1].strip()
            elif line.startswith("export INFERENCE_API_KEY="):
                key = line.split("=", 1)[1].strip()
                break
        if not url or not key:
            raise SystemExit("the loopback provider did not start")
        yield url, key
    finally:
        proc.terminate()
        proc.wait(timeout=30)


async def run_tasks(
    url: str, key: str, n: int, concurrency: int, *, stream: bool, poll: float
) -> list[float]:
    gate = asyncio.Semaphore(concurrency)
    async with ProviderClient(api_key=key, base_url=url, max_connections=concurrency * 2) as c:

        async def one() -> float:
            async with gate:
                start = time.perf_counter()
                task = await c.submit(APP, dict(INPUT))
                await c.follow(task.id, stream=stream, poll_interval=poll)
                return time.perf_counter() - start

        return list(await asyncio.gather(*(one() for _ in range(n))))


def bench_throughput(n: int) -> None:
    with provider(0.0) as (url, key):
        asyncio.run(run_tasks(url, key, 1, 1, stream=False, poll=0.01))  # warm-up render
        cpu0, wall0 = time.process_time(), time.perf_counter()
        asyncio.run(run_tasks(url, key, n, 16, stream=False, poll=0.01))
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(
        f"(a) latency 0, {n} tasks, concurrency 16: {n / wall:8.1f} tasks/s, "
        f"wall {wall:.2f} s, client CPU {cpu * 1000 / n:.2f} ms/task"
    )


def bench_latency(n: int) -> float:
    ideal = math.ceil(n / 8) * 1.0
    with provider(1.0) as (url, key):
        asyncio.run(run_tasks(url, key, 1, 1, stream=True, poll=0.1))  # warm-up render
        wall0 = time.perf_counter()
        per_task = asyncio.run(run_tasks(url, key, n, 8, stream=True, poll=2.0))
        wall = time.perf_counter() - wall0
    print(
        f"(b) latency 1 s, {n} tasks, concurrency 8, streamed: wall {wall:.2f} s, "
        f"ideal {ideal:.0f} s, ratio {wall / ideal:.3f} (target <= 1.15); "
        f"per task {min(per_task):.2f}-{max(per_task):.2f} s"
    )
    return wall


def bench_sdk(n: int) -> float:
    import inferencesh  # the official SDK: a test dependency, not one of storyc's

    with provider(1.0) as (url, key):
        client = inferencesh.Inference(api_key=key, base_url=url)
        client.run({"app": APP, "input": dict(INPUT)})  # warm-up render
        wall0 = time.perf_counter()
        for _ in range(n):
            client.run({"app": APP, "input": dict(INPUT)})
        wall = time.perf_counter() - wall0
    print(
        f"(c) latency 1 s, {n} tasks through the official SDK's client.run, one after "
        f"another: wall {wall:.2f} s"
    )
    return wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", type=int, default=500)
    parser.add_argument("--slow-tasks", type=int, default=64)
    parser.add_argument("--no-sdk", action="store_true")
    args = parser.parse_args()
    print(f"cores: {os.cpu_count()}; python {sys.version.split()[0]}")
    bench_throughput(args.tasks)
    ours = bench_latency(args.slow_tasks)
    if not args.no_sdk:
        sdk = bench_sdk(args.slow_tasks)
        print(
            f"(b)/(c): storyc takes {ours / sdk:.3f} of the SDK's time ({sdk / ours:.1f}x faster)"
        )


if __name__ == "__main__":
    main()
