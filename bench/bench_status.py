"""Measure `storyc status` and the collecting build over many tasks in flight.

Stage: a script, not a test (it asserts nothing; it prints figures). In: `--scenes N`
(tasks in flight, default 40; repeatable). Out: one line per measurement. I/O: a project
under a temporary directory, a loopback provider whose tasks run for ten minutes (so
they stay in flight), `storyc` subprocesses.

For each N:

  detach    `storyc build --detach`: wall time to submit N tasks, POSTs that arrived
  status    `storyc status --json`, 5 runs: wall time (process start included), status
            reads at the provider per run, POSTs sent (must be 0)
  gather    the same in-process (`storyc.build.status.gather`): time without start-up,
            and how long the pacer held reads back (above its burst of 40 it paces them
            at 10 a second, under the provider's documented 1000 reads a minute)
  collect   a plain `storyc build` after the detached one, nothing finished yet: wall time
            to ask about every task once and leave them running, POSTs sent (must be 0)

Usage: python bench/bench_status.py [--scenes 40 --scenes 120]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from storyc.provider import loopback

HERE = Path(__file__).resolve().parent.parent


def storyc(*args: str, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t = time.perf_counter()
    p = subprocess.run(
        [sys.executable, "-m", "storyc", *args],
        env={**os.environ, **env, "PYTHONPATH": str(HERE)},
        capture_output=True,
        text=True,
        timeout=600,
    )
    return time.perf_counter() - t, p


def project(root: Path, n: int) -> Path:
    root.mkdir(parents=True)
    (root / "main.story").write_text(
        'project "Bench" { quality = "std"  aspect = "16:9" }\n'
        + "".join(
            f'scene s{i} {{ prompt = "Shot {i} of the pier"  duration = 5 }}\n' for i in range(n)
        ),
        "utf-8",
    )
    return root


def measure(n: int, tmp: Path) -> None:
    root = project(tmp / f"p{n}", n)
    with loopback.serve(latency=600.0, fast_outputs=True) as server:
        env = server.env
        took, p = storyc("build", str(root), "--backend", "inference", "--yes", "--detach", env=env)
        assert p.returncode == 0, p.stderr
        print(f"N={n:<4} detach   {took:6.2f} s to submit; {len(server.arrivals)} POSTs arrived")

        times, reads = [], []
        posts = len(server.arrivals)
        for _ in range(5):
            before = server.faults.counts.get("status", 0)
            took, p = storyc("status", str(root), "--json", env=env)
            doc = json.loads(p.stdout)
            assert p.returncode == 0 and doc["total"]["running"] == n, p.stderr
            times.append(took)
            reads.append(server.faults.counts.get("status", 0) - before)
        print(
            f"N={n:<4} status   median {statistics.median(times):6.2f} s, min {min(times):.2f} s "
            f"(process included); {reads[0]} status reads per run; "
            f"{len(server.arrivals) - posts} POSTs sent"
        )

        from storyc.build import status as st
        from storyc.provider import status as paced

        async def once() -> tuple[float, float]:
            held = []
            real = paced.read_statuses

            async def spy(client, ids, *, pacer=None, concurrency=paced.CONCURRENCY):  # type: ignore[no-untyped-def]
                pacer = pacer or paced.Pacer(client)
                try:
                    return await real(client, ids, pacer=pacer, concurrency=concurrency)
                finally:
                    held.append(pacer.waited)

            paced.read_statuses = spy  # type: ignore[assignment]
            try:
                t = time.perf_counter()
                got = await st.gather(root, api_key=server.api_key)
                took = time.perf_counter() - t
            finally:
                paced.read_statuses = real  # type: ignore[assignment]
            assert len(got.rows) == n
            return took, sum(held)

        took, held = asyncio.run(once())
        print(
            f"N={n:<4} gather   {took:6.2f} s in-process ({n / took:.0f} reads/s); "
            f"the pacer held reads back {held:.2f} s"
        )

        took, p = storyc("build", str(root), "--backend", "inference", "--yes", "--json", env=env)
        summary = [json.loads(x) for x in p.stdout.splitlines() if '"summary"' in x][-1]
        print(
            f"N={n:<4} collect  {took:6.2f} s for a plain build to ask about {n} tasks and "
            f"leave {len(summary['running'])} running; {len(server.arrivals) - posts} POSTs sent"
        )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scenes", type=int, action="append")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="storyc-bench-status-"))
    try:
        for n in args.scenes or [40]:
            measure(n, tmp)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
