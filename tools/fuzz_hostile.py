"""The long hostile-input fuzz run: many thousands of mutated and generated stories, on
several processes, each input under a hard time limit, failures grouped by defect.

Usage:
    python tools/fuzz_hostile.py --inputs 100000 [--workers 2] [--seconds 20]
                                 [--seed 1] [--out fuzz-failures]

The inputs and the properties are those of the CI test (tests/hostile_fuzz.py, run by
tests/test_hostile_fuzz.py at a few thousand inputs). Input number N of seed S is always the
same story, so `--replay N` (with the same --seed) runs one input again and shows it. Each
worker is a separate process: an input that hangs in C code, or takes the process down, is
killed after `--seconds` plus a grace period, counted as a failure, and the worker is
replaced. One reproducer per distinct failure is written to `--out` (a folder per input,
with the story files and PROBLEMS.txt), so `storyc check fuzz-failures/0001234` shows it.

Prints: inputs run, failures, distinct defects (with a count and an example each), and the
rate. Exit status 1 when anything failed.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import queue
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

import hostile_fuzz as hf  # noqa: E402


def _worker(
    todo: mp.Queue,  # type: ignore[type-arg]
    done: mp.Queue,  # type: ignore[type-arg]
    base: str,
    seed: int,
    seconds: float,
) -> None:
    from storyc.base.hashing import DigestCache

    corpus = hf.seeds()
    ws = hf.Workspace(Path(base) / f"w{os.getpid()}", corpus)
    digests = DigestCache()
    while True:
        index = todo.get()
        if index is None:
            return
        done.put(("start", index, os.getpid()))
        inp, res = hf.run_one(index, seed, corpus, ws, seconds=seconds, digests=digests)
        done.put(("done", index, (inp.seed, inp.files, res.problems)))


def run(args: argparse.Namespace) -> int:
    started = time.time()
    base = tempfile.mkdtemp(prefix="storyc-fuzz-")
    out = Path(args.out)
    todo: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    done: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    for i in range(args.first, args.first + args.inputs):
        todo.put(i)

    def spawn() -> mp.Process:
        p = mp.Process(target=_worker, args=(todo, done, base, args.seed, args.seconds))
        p.start()
        return p

    workers = {p.pid: p for p in (spawn() for _ in range(args.workers))}
    running: dict[int, tuple[int, float]] = {}  # pid -> (input, since)
    finished = 0
    failures: Counter[str] = Counter()
    examples: dict[str, tuple[int, list[str]]] = {}
    grace = args.seconds + 30  # past the in-process alarm: the worker is stuck in C code

    def fail(index: int, inp: hf.Input, problems: list[str]) -> None:
        res = hf.Result(problems)
        sig = res.signature()
        failures[sig] += 1
        if sig not in examples:
            examples[sig] = (index, problems)
            hf.save_reproducer(out, index, inp, res)

    last_report = time.time()
    while finished < args.inputs:
        try:
            kind, index, payload = done.get(timeout=1.0)
        except queue.Empty:
            kind = ""
        if kind == "start":
            running[payload] = (index, time.time())
        elif kind == "done":
            finished += 1
            running = {pid: v for pid, v in running.items() if v[0] != index}
            seed_name, files, problems = payload
            if problems:
                fail(index, hf.Input(seed_name, files), problems)
        now = time.time()
        for pid, (index, since) in list(running.items()):
            proc = workers[pid]
            if proc.is_alive() and now - since < grace:
                continue
            # stuck past the alarm, or dead: the input is a failure, the worker replaced
            why = "hang: killed after" if proc.is_alive() else "crash: the worker process died on"
            proc.kill()
            proc.join()
            del running[pid], workers[pid]
            finished += 1
            corpus = hf.seeds()
            inp = hf.make_input(random.Random(args.seed * 1_000_003 + index), corpus)
            fail(index, inp, [f"{why} {now - since:.0f} s"])
            p = spawn()
            workers[p.pid] = p
        if now - last_report > 60:
            last_report = now
            rate = finished / (now - started)
            print(
                f"  {finished:,} inputs, {sum(failures.values())} failing, {rate:.1f}/s",
                flush=True,
            )
    for _ in workers:
        todo.put(None)
    for p in workers.values():
        p.join(10)
        if p.is_alive():
            p.kill()
    elapsed = time.time() - started
    total = sum(failures.values())
    print(f"inputs: {finished:,} in {elapsed / 60:.1f} min ({finished / elapsed:.1f}/s)")
    print(
        f"failures: {total} ({100 * total / max(1, finished):.3f} %), distinct defects: {len(failures)}"
    )
    for sig, count in failures.most_common():
        index, problems = examples[sig]
        print(f"  {count:6} × {sig}\n         e.g. input {index}: {problems[0][:200]}")
    if failures:
        print(f"reproducers: {out}/")
    return 1 if failures else 0


def replay(args: argparse.Namespace) -> int:
    from storyc.base.hashing import DigestCache

    corpus = hf.seeds()
    ws = hf.Workspace(Path(tempfile.mkdtemp(prefix="storyc-fuzz-")), corpus)
    rng = random.Random(args.seed * 1_000_003 + args.replay)
    inp = hf.make_input(rng, corpus)
    folder = ws.write(inp)
    res = hf.check(folder, inp, seconds=args.seconds, twice=True, digests=DigestCache())
    print(f"input {args.replay} (from {inp.seed}) in {folder}")
    for name, text in inp.files.items():
        print(f"--- {name}\n{text}")
    print("ok" if res.ok else "\n".join(res.problems))
    return 0 if res.ok else 1


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--inputs", type=int, default=100_000)
    ap.add_argument("--first", type=int, default=0, help="number of the first input")
    ap.add_argument("--workers", type=int, default=max(1, (os.cpu_count() or 2) - 1))
    ap.add_argument("--seconds", type=float, default=20.0, help="time limit per input")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--out", default="fuzz-failures")
    ap.add_argument("--replay", type=int, default=None, help="run input N once and show it")
    args = ap.parse_args()
    return replay(args) if args.replay is not None else run(args)


if __name__ == "__main__":
    sys.exit(main())
