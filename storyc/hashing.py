"""Content digests of files, cached by stat so unchanged files are never re-read.

Stage: used by the resolver (digests of local assets go into payloads and keys) and
the store. In: absolute paths. Out: "sha256:<hex>" strings. I/O: stat and read
files; the persistent cache file is written atomically by `save`.

Cache key: (path, size, mtime_ns, inode). A hit costs one `stat`.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

DIGEST_PREFIX = "sha256:"
_CHUNK = 1 << 20


def digest_bytes(data: bytes) -> str:
    return DIGEST_PREFIX + hashlib.sha256(data).hexdigest()


def digest_file(path: str | os.PathLike[str]) -> tuple[str, int]:
    """Hash a whole file. Returns (digest, bytes read)."""
    h = hashlib.sha256()
    n = 0
    with open(path, "rb", buffering=0) as f:
        buf = bytearray(_CHUNK)
        view = memoryview(buf)
        while True:
            k = f.readinto(buf)
            if not k:
                break
            h.update(view[:k])
            n += k
    return DIGEST_PREFIX + h.hexdigest(), n


class DigestCache:
    """Stat-keyed digest cache; persistent when given a file path."""

    VERSION = 1

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        self.path = Path(path) if path is not None else None
        self._entries: dict[str, tuple[int, int, int, str]] = {}
        self._dirty = False
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
            for p, (size, mtime, ino, dig) in raw["entries"].items():
                self._entries[p] = (int(size), int(mtime), int(ino), str(dig))
        except (OSError, ValueError, KeyError, TypeError):
            self._entries = {}  # a corrupt cache is a miss, never an error

    def digest(self, abs_path: str, st: os.stat_result | None = None) -> str:
        if st is None:
            st = os.stat(abs_path)
        hit = self._entries.get(abs_path)
        if hit is not None and hit[:3] == (st.st_size, st.st_mtime_ns, st.st_ino):
            return hit[3]
        dig, n = digest_file(abs_path)
        self.bytes_read += n
        self.files_hashed += 1
        self._entries[abs_path] = (st.st_size, st.st_mtime_ns, st.st_ino, dig)
        self._dirty = True
        return dig

    def save(self) -> None:
        if self.path is None or not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        data = {"version": self.VERSION, "entries": {k: list(v) for k, v in sorted(self._entries.items())}}
        tmp.write_text(json.dumps(data, separators=(",", ":")), "utf-8")
        os.replace(tmp, self.path)
        self._dirty = False
