"""Content digests of files, cached by stat so unchanged files are never re-read.

Stage: used by the resolver (digests of local assets go into payloads and keys) and
the store. In: absolute paths. Out: "sha256:<hex>" strings. I/O: stat and read
files; the persistent cache file is written atomically by `save`.

Cache key: (path, size, mtime_ns, inode). A hit costs one `stat`.

Two hazards are handled here rather than left to callers:

- A file modified again within the filesystem's timestamp granularity keeps the same
  (size, mtime) — git calls this "racy clean". A digest taken while the file's mtime
  is that recent is used once but not remembered, so the next call hashes again.
- A file that changes while it is being hashed gives a digest of neither version; the
  stat is taken again after hashing and the read is repeated when they differ.

`digest_many` hashes cache misses on several threads: hashlib releases the GIL for
large buffers, so first-time hashing of many assets uses every core.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from storyc.base.fsio import atomic_write, sig_of
from storyc.base.reading import open_regular

DIGEST_PREFIX = "sha256:"
_CHUNK = 1 << 20
# Linux file timestamps come from a coarse clock (one jiffy, at most 10 ms); anything
# modified less than this long before we hashed it may change again unseen.
RACY_NS = 50_000_000


# json.dumps with these options makes this very encoder on every call; made once, it spells
# exactly the same (render keys are digests of this spelling: it must never change)
_CANONICAL = json.JSONEncoder(
    sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
)


def canonical_json(value: Any) -> bytes:
    """The one JSON spelling that digests are taken of: sorted keys, no spaces, UTF-8,
    no NaN or infinity (they are not JSON)."""
    return _CANONICAL.encode(value).encode("utf-8")


def digest_bytes(data: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


_DIGEST_RE = re.compile(r"sha256:[0-9a-f]{64}")


def is_digest(value: object) -> bool:
    """True for a well-formed "sha256:<64 lowercase hex>" string."""
    if not isinstance(value, str) or not value.startswith(DIGEST_PREFIX):
        return False
    return _DIGEST_RE.fullmatch(value) is not None


def digest_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Hash a whole regular file (a FIFO or a device is refused: `NotRegularFile`).
    Returns (digest, bytes read)."""
    h = hashlib.sha256()
    n = 0
    fd, _ = open_regular(path)
    with open(fd, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while True:
            k = f.readinto(buf)
            if not k:
                break
            h.update(view[:k])
            n += k
    return DIGEST_PREFIX + h.hexdigest(), n


def _entries_sum(entries: Any) -> str:
    """The checksum of a digest cache's entries (as stored: lists, sorted by path)."""
    return digest_bytes(canonical_json(entries))


class DigestCache:
    """Stat-keyed digest cache; persistent when given a file path. Thread-safe.

    The file carries a checksum of its entries: a digest in it that changed by one flipped
    hex digit would otherwise be trusted, change a scene's key (a paid render again) and
    go into `storyc.lock` as the asset's digest. A file whose checksum does not match is
    a miss as a whole (everything is hashed again, which costs time, never money)."""

    VERSION = 3  # 2: entries carry ctime too (storyc.base.fsio.sig_of); 3: a checksum

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, tuple[int, int, int, int, str]] = {}
        self._dirty = False
        self._lock = threading.Lock()
        self.bytes_read = 0
        self.files_hashed = 0
        if self.path is not None:
            self._load()

    def _load(self) -> None:
        assert self.path is not None
        try:
            raw = json.loads(self.path.read_text("utf-8"))
            if raw.get("version") != self.VERSION:
                return
            entries = raw["entries"]
            if raw.get("sum") != _entries_sum(entries):
                return
            for p, (size, mtime, ino, ctime, dig) in entries.items():
                if is_digest(dig):
                    self._entries[p] = (int(size), int(mtime), int(ino), int(ctime), str(dig))
        except (OSError, ValueError, KeyError, TypeError, AttributeError, RecursionError):
            self._entries = {}  # a corrupt cache is a miss, never an error

    def cached(self, abs_path: str, st: os.stat_result) -> str | None:
        """The remembered digest if the file's stat still matches, else None."""
        hit = self._entries.get(abs_path)
        if hit is not None and hit[:4] == sig_of(st):
            return hit[4]
        return None

    def digest(self, abs_path: str, st: os.stat_result | None = None) -> str:
        if st is None:
            st = os.stat(abs_path)
        hit = self.cached(abs_path, st)
        if hit is not None:
            return hit
        return self._hash(abs_path, st)

    def _hash(self, abs_path: str, st: os.stat_result) -> str:
        stable = False
        for _ in range(3):
            dig, n = digest_file(abs_path)
            after = os.stat(abs_path)
            with self._lock:
                self.bytes_read += n
                self.files_hashed += 1
            if sig_of(after) == sig_of(st):
                stable = True
                break
            st = after  # changed while we read it: read the new version
        # A file still changing is hashed as it was read, and not remembered.
        if stable and time.time_ns() - st.st_mtime_ns >= RACY_NS:
            with self._lock:
                self._entries[abs_path] = (*sig_of(st), dig)
                self._dirty = True
        return dig

    def digest_many(
        self, abs_paths: Iterable[str], *, workers: int | None = None
    ) -> dict[str, str]:
        """Digests of many files; cache misses are hashed on `workers` threads."""
        out: dict[str, str] = {}
        misses: list[tuple[str, os.stat_result]] = []
        for p in abs_paths:
            st = os.stat(p)
            hit = self.cached(p, st)
            if hit is not None:
                out[p] = hit
            else:
                misses.append((p, st))
        if not misses:
            return out
        from concurrent.futures import ThreadPoolExecutor  # only here: it costs start-up

        n = workers if workers is not None else min(8, os.cpu_count() or 1)
        if n <= 1 or len(misses) == 1:
            for p, st in misses:
                out[p] = self._hash(p, st)
            return out
        with ThreadPoolExecutor(max_workers=n) as pool:
            for p, dig in zip(
                [p for p, _ in misses],
                pool.map(lambda ps: self._hash(ps[0], ps[1]), misses),
                strict=True,
            ):
                out[p] = dig
        return out

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        with self._lock:
            entries = {k: list(v) for k, v in sorted(self._entries.items())}
            data = {"version": self.VERSION, "sum": _entries_sum(entries), "entries": entries}
            self._dirty = False
        # only a speed-up: no fsync (a lost cache costs a re-hash, never a wrong digest)
        atomic_write(self.path, json.dumps(data, separators=(",", ":")).encode(), durable=False)
