"""Benchmark: asset hashing, first time and the no-op re-check.

Stage: a script, not a test (timings vary with the machine; nothing here asserts a
speed). In: `--files` and `--mib` (defaults: 1,000 files totalling 1 GiB). Out:
figures on stdout. I/O: writes the files once under a temporary directory, hashes
them, deletes them.

1. First-time hashing of every file with `DigestCache.digest_many` on one thread and
   on all cores (hashlib releases the GIL for large buffers), in GB/s. The files were
   just written, so they are read from the page cache: this measures hashing, not the
   disk.
2. The no-op re-check, as a build after a restart does it: a new `DigestCache` loaded
   from its saved file looks up every file again. It must read 0 bytes; the figure is
   the cost per file (one `stat` and a dictionary lookup).

Usage: python bench/bench_hashing.py [--files 1000] [--mib 1024] [--threads N]
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from pathlib import Path

from storyc.base.hashing import RACY_NS, DigestCache


def make_files(root: Path, n: int, total: int) -> list[str]:
    size = total // n
    block = os.urandom(size + n)  # distinct contents: each file starts at another offset
    paths = []
    for i in range(n):
        p = root / f"asset{i:05d}.bin"
        with open(p, "wb") as f:
            f.write(block[i : i + size])
        paths.append(str(p))
    return paths


def first_pass(paths: list[str], workers: int, cache_file: Path | None) -> tuple[float, int]:
    cache = DigestCache(cache_file)
    t = time.perf_counter()
    cache.digest_many(paths, workers=workers)
    dt = time.perf_counter() - t
    cache.save()
    return dt, cache.bytes_read


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--files", type=int, default=1000)
    ap.add_argument("--mib", type=int, default=1024, help="total size in MiB")
    ap.add_argument("--threads", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    total = args.mib << 20
    root = Path(tempfile.mkdtemp(prefix="storyc-bench-"))
    try:
        t = time.perf_counter()
        paths = make_files(root, args.files, total)
        print(f"wrote {args.files} files, {total / 1e9:.2f} GB in {time.perf_counter() - t:.1f} s")
        time.sleep(RACY_NS / 1e9 * 2)  # let the newest file age past the racy window

        dt1, n1 = first_pass(paths, 1, None)
        print(
            f"first-time hashing, 1 thread : {n1 / 1e9:.2f} GB in {dt1:.2f} s = "
            f"{n1 / dt1 / 1e9:.2f} GB/s"
        )
        cache_file = root / "digests.json"
        dtn, nn = first_pass(paths, args.threads, cache_file)
        print(
            f"first-time hashing, {args.threads} threads: {nn / 1e9:.2f} GB in {dtn:.2f} s = "
            f"{nn / dtn / 1e9:.2f} GB/s"
        )

        t = time.perf_counter()
        again = DigestCache(cache_file)
        load = time.perf_counter() - t
        t = time.perf_counter()
        for p in paths:
            again.digest(p)
        dt2 = time.perf_counter() - t
        print(
            f"no-op re-check of {len(paths)} files: bytes_read = {again.bytes_read}, "
            f"{dt2 * 1e6 / len(paths):.2f} µs per file "
            f"(+ {load * 1e3:.1f} ms to load the cache file)"
        )
        t = time.perf_counter()
        got = again.digest_many(paths)
        dtm = time.perf_counter() - t
        print(
            f"no-op digest_many of {len(got)} files: bytes_read = {again.bytes_read}, "
            f"{dtm * 1e6 / len(paths):.2f} µs per file"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
