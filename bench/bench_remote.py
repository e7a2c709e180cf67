"""Benchmark: the team store over loopback — pulling a project, and looking keys up in a plan.

Stage: a script, not a test (timings vary with the machine; nothing here asserts a
speed). In: the options below. Out: figures on stdout. I/O: starts moto's S3 server
(`moto.server`, from the test extra) as a subprocess on 127.0.0.1, so that the client's
work is measured apart from the server's; writes a project under a temp directory.

(a) A project of `--scenes` scenes (200), each take's output (`--size` bytes, 512 KiB)
    in the team store. `storyc pull` into an empty `.storyc/` (compile, plan with batched
    look-ups, download with digest verification into the store, render records), against
    the same objects downloaded with boto3 alone (`get_object` to files, the same number
    of threads). Target: pull / client alone <= 1.2x.
(b) `storyc plan`'s look-up cost: the plan with the team store (a fresh look-up every
    time) minus the plan without it, per scene, with `--extra` (2,000) unrelated records
    in the store too. Target: <= 1 ms per scene (batched).

Usage: python bench/bench_remote.py [--scenes 200] [--size 524288] [--extra 2000] [--repeat 3]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ACCESS = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench-secret"}


@contextlib.contextmanager
def moto_server() -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(200):
            with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
                break
            time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def boto(endpoint: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(
            request_checksum_calculation="when_required",
            response_checksum_validation="when_required",
            max_pool_connections=16,
            s3={"addressing_style": "path"},
        ),
    )


def make_project(root: Path, scenes: int, bucket: str, endpoint: str) -> None:
    root.mkdir(parents=True)
    lines = [
        f'project "Bench" {{ aspect = "16:9"  remote = "s3://{bucket}/film?endpoint={endpoint}" }}'
    ]
    lines += [
        f'scene s{i:04d} {{ prompt = "shot number {i}, rain"  duration = 5 }}'
        for i in range(scenes)
    ]
    (root / "main.story").write_text("\n".join(lines) + "\n")


def seed(root: Path, args: argparse.Namespace) -> list[str]:
    """Push one output per scene (random bytes of --size) and --extra unrelated records."""
    from storyc.compiler import compile_project
    from storyc.plan.planner import make_plan
    from storyc.remote.config import parse_remote
    from storyc.remote.layout import Record
    from storyc.remote.team import TeamStore
    from storyc.state.lockfile import LockFile
    from storyc.state.store import Store

    comp = compile_project(root / "main.story")
    scratch = Store(root.parent / "seed-store")
    plan = make_plan(comp, lock=LockFile(), store=scratch, backend="inference")
    remote = comp.project.settings["remote"].value  # type: ignore[union-attr]
    team = TeamStore(parse_remote(remote), scratch)
    keys = []

    def push(name: str) -> None:
        key = plan.scenes[name].keys[1]
        data = os.urandom(args.size)
        out = scratch.put_bytes(data)
        team.push(
            Record(key, out, len(data), name, 1, "inference", task_id=f"t-{name}", cost="0.42")
        )
        keys.append(out)

    with ThreadPoolExecutor(8) as pool:
        list(pool.map(push, plan.order))
    shutil.rmtree(root.parent / "seed-store")
    return keys


def add_unrelated(root: Path, n: int) -> None:
    from storyc.base.hashing import digest_bytes
    from storyc.remote.client import ObjectClient
    from storyc.remote.config import parse_remote
    from storyc.remote.layout import record_name

    text = (root / "main.story").read_text()
    url = text.split('remote = "', 1)[1].split('"', 1)[0]
    cl = ObjectClient(parse_remote(url))
    other = digest_bytes(b"other")
    with ThreadPoolExecutor(8) as pool:
        list(
            pool.map(
                lambda i: cl.put_bytes(record_name(digest_bytes(f"x{i}".encode()), other), b"{}"),
                range(n),
            )
        )


def listing_alone(endpoint: str, bucket: str) -> float:
    """The server's own time to list every record once, with boto3 alone."""
    cl = boto(endpoint)
    t = time.perf_counter()
    for _ in cl.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="film/renders/"):
        pass
    return time.perf_counter() - t


CPU: dict[str, list[float]] = {"alone": [], "pull": []}


def client_alone(endpoint: str, bucket: str, outputs: list[str], dest: Path, jobs: int) -> float:
    """boto3 alone: make a client (as any command must), download every object to a file."""
    dest.mkdir()
    t, c = time.perf_counter(), time.process_time()
    cl = boto(endpoint)

    def one(digest: str) -> None:
        h = digest[7:]
        r = cl.get_object(Bucket=bucket, Key=f"film/objects/{h[:2]}/{h[2:]}")
        with open(dest / h, "wb") as f:
            for chunk in r["Body"].iter_chunks(1 << 20):
                f.write(chunk)

    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(one, outputs))
    CPU["alone"].append(time.process_time() - c)
    return time.perf_counter() - t


def storyc_pull(root: Path, jobs: int) -> float:
    from storyc.cli import main

    shutil.rmtree(root / ".storyc", ignore_errors=True)
    t, c = time.perf_counter(), time.process_time()
    with contextlib.redirect_stdout(io.StringIO()):
        code = main(["pull", str(root), "--backend", "inference", "--json", "--jobs", str(jobs)])
    elapsed = time.perf_counter() - t
    CPU["pull"].append(time.process_time() - c)
    assert code == 0, code
    return elapsed


def transfers_only(root: Path, jobs: int) -> float:
    """storyc's download path alone (`TeamStore.pull` per take, verified into a fresh
    store), its look-up done beforehand and not timed: what the pull adds per byte."""
    from storyc.compiler import compile_project
    from storyc.plan.planner import make_plan
    from storyc.remote.config import parse_remote
    from storyc.remote.team import TeamStore
    from storyc.state.lockfile import LockFile
    from storyc.state.store import Store

    comp = compile_project(root / "main.story")
    dest = root / ".storyc-transfers"
    shutil.rmtree(dest, ignore_errors=True)
    store = Store(dest)
    plan = make_plan(comp, lock=LockFile(), store=store, backend="inference")
    team = TeamStore(parse_remote(comp.project.settings["remote"].value), store)  # type: ignore[union-attr]
    keys = [(n, plan.scenes[n].keys[1]) for n in plan.order]
    team.lookup_many(k for _, k in keys)
    t = time.perf_counter()
    with ThreadPoolExecutor(jobs) as pool:
        list(pool.map(lambda nk: team.pull(nk[1], scene=nk[0], backend="inference"), keys))
    elapsed = time.perf_counter() - t
    shutil.rmtree(dest, ignore_errors=True)
    return elapsed


def plan_lookup(root: Path, repeat: int) -> tuple[float, float, float, int]:
    """(plan without the team store, plan with it, its CPU time in this process, listing
    requests), best of `repeat`."""
    from storyc.compiler import compile_project
    from storyc.plan.planner import make_plan
    from storyc.remote.config import parse_remote
    from storyc.remote.planning import plan_with_remote
    from storyc.remote.team import TeamStore
    from storyc.state.lockfile import LockFile
    from storyc.state.store import Store

    comp = compile_project(root / "main.story")
    store = Store(root / ".storyc-empty")
    lock = LockFile()
    cfg = parse_remote(comp.project.settings["remote"].value)  # type: ignore[union-attr]
    team = TeamStore(cfg, store)  # the client (and boto3's import) made once, as in a run

    def make(remote: Any) -> Any:
        return make_plan(comp, lock=lock, store=store, backend="inference", remote=remote)

    local, remote, cpu = [], [], []
    requests = 0
    for _ in range(repeat):
        t = time.perf_counter()
        make(None)
        local.append(time.perf_counter() - t)
        team._index.clear()
        before = team.stats.requests
        t, c = time.perf_counter(), time.process_time()
        plan = plan_with_remote(make, team)
        remote.append(time.perf_counter() - t)
        cpu.append(time.process_time() - c)
        requests = team.stats.requests - before
        assert sum(len(s.pull) for s in plan.scenes.values()) == len(plan.order)
    return min(local), min(remote), min(cpu), requests


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--size", type=int, default=512 * 1024)
    ap.add_argument("--extra", type=int, default=2000)
    ap.add_argument("--jobs", type=int, default=8)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    os.environ.update(ACCESS)
    os.environ.pop("STORYC_REMOTE", None)
    tmp = Path(tempfile.mkdtemp(prefix="storyc-bench-remote-"))
    try:
        with moto_server() as endpoint:
            bucket = "bench-team"
            boto(endpoint).create_bucket(Bucket=bucket)
            root = tmp / "film"
            make_project(root, args.scenes, bucket, endpoint)
            t = time.perf_counter()
            outputs = seed(root, args)
            total = len(outputs) * args.size
            print(
                f"seeded {len(outputs)} outputs ({total / 1e6:.1f} MB) and {args.extra} other "
                f"records in {time.perf_counter() - t:.1f} s"
            )
            alone, pulls, moves = [], [], []
            for i in range(args.repeat):
                alone.append(client_alone(endpoint, bucket, outputs, tmp / f"alone{i}", args.jobs))
                pulls.append(storyc_pull(root, args.jobs))
                moves.append(transfers_only(root, args.jobs))
                shutil.rmtree(tmp / f"alone{i}")
            for how, pick in (("median", statistics.median), ("best", min)):
                a, p, m = pick(alone), pick(pulls), pick(moves)
                print(
                    f"(a) {args.scenes} scenes pulled into an empty .storyc/ ({how} of "
                    f"{args.repeat}, interleaved): storyc pull {p:.2f} s ({total / p / 1e6:.0f} "
                    f"MB/s), boto3 alone {a:.2f} s ({total / a / 1e6:.0f} MB/s); ratio "
                    f"{p / a:.2f}x (target <= 1.2x); storyc's transfers alone (look-up, "
                    f"compile and plan excluded) {m:.2f} s, {m / a:.2f}x"
                )
            print(
                f"    CPU time in this process (median): storyc pull "
                f"{statistics.median(CPU['pull']):.2f} s, boto3 alone "
                f"{statistics.median(CPU['alone']):.2f} s (load average "
                f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores)"
            )
            for extra in (0, args.extra):
                if extra:
                    add_unrelated(root, extra)
                local, remote, cpu, requests = plan_lookup(root, args.repeat)
                server = listing_alone(endpoint, bucket)
                per = (remote - local) / args.scenes * 1000
                print(
                    f"(b) storyc plan, {args.scenes} scenes, {args.scenes + extra} records in the "
                    f"store: {local * 1000:.1f} ms without the team store, {remote * 1000:.1f} ms "
                    f"with it ({requests} listing requests): {per:.2f} ms per scene (target <= 1 "
                    f"ms); storyc's own CPU {(cpu - local) / args.scenes * 1000:.3f} ms per scene; "
                    f"the server alone lists those records in {server * 1000:.0f} ms"
                )
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
