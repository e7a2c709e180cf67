"""Upload registry: which content digest already became which provider file URI.

Stage: execute (provider edge). In: (base URL, digest) pairs and the URIs the
provider returned. Out: remembered URIs, so a file is uploaded once within a build
and across builds. I/O: reads and writes one small JSON file (atomically, through
`storyc.base.fsio.atomic_write`) at a path the caller chooses, e.g. `.storyc/uploads.json`.

Entries are per base URL: a URI from the loopback provider means nothing to the real
service. An entry older than `max_age` seconds counts as expired (the provider cleans
hosted files up), and a URI the provider rejects is forgotten by the client, so the
next use uploads again. A corrupt or unreadable registry is treated as empty: it is a
cache, never a reason to fail a build.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from storyc.base.fsio import atomic_write

DEFAULT_MAX_AGE = 7 * 24 * 3600.0  # hosted inputs outlive a week of builds; cheap to redo


@dataclass(frozen=True)
class UploadEntry:
    uri: str
    size: int
    uploaded_at: float  # seconds since the epoch


class UploadRegistry:
    """Digest → URI memory, persistent when `path` is given. Not thread-safe (one loop)."""

    VERSION = 1

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        max_age: float = DEFAULT_MAX_AGE,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self.path = Path(path) if path is not None else None
        self.max_age = max_age
        self._now = wall_clock
        self._entries: dict[str, dict[str, UploadEntry]] = {}
        if self.path is not None:
            self._load()

    def __repr__(self) -> str:
        return f"UploadRegistry(path={str(self.path)!r}, entries={len(self)})"

    def __len__(self) -> int:
        return sum(len(v) for v in self._entries.values())

    def _load(self) -> None:
        assert self.path is not None
        try:
            data = json.loads(self.path.read_text("utf-8"))
        except (OSError, ValueError):
            return
        if not isinstance(data, dict) or data.get("version") != self.VERSION:
            return
        hosts = data.get("hosts")
        if not isinstance(hosts, dict):
            return
        for base, entries in hosts.items():
            if not isinstance(entries, dict):
                continue
            for digest, e in entries.items():
                try:
                    entry = UploadEntry(str(e["uri"]), int(e["size"]), float(e["uploaded_at"]))
                except (KeyError, TypeError, ValueError):
                    continue
                self._entries.setdefault(str(base), {})[str(digest)] = entry

    def get(self, base_url: str, digest: str) -> str | None:
        """The remembered URI, or None when unknown or expired."""
        entry = self._entries.get(base_url.rstrip("/"), {}).get(digest)
        if entry is None:
            return None
        if self._now() - entry.uploaded_at > self.max_age:
            return None
        return entry.uri

    def remember(self, base_url: str, digest: str, uri: str, size: int) -> None:
        self._entries.setdefault(base_url.rstrip("/"), {})[digest] = UploadEntry(
            uri, size, self._now()
        )
        self.save()

    def forget_uri(self, base_url: str, uri: str) -> bool:
        """Drop every entry pointing at `uri` (the provider rejected it). True if any."""
        entries = self._entries.get(base_url.rstrip("/"), {})
        stale = [d for d, e in entries.items() if e.uri == uri]
        for d in stale:
            del entries[d]
        if stale:
            self.save()
        return bool(stale)

    def known_uris(self, base_url: str) -> set[str]:
        return {e.uri for e in self._entries.get(base_url.rstrip("/"), {}).values()}

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "version": self.VERSION,
            "hosts": {
                base: {
                    d: {"uri": e.uri, "size": e.size, "uploaded_at": e.uploaded_at}
                    for d, e in sorted(entries.items())
                }
                for base, entries in sorted(self._entries.items())
            },
        }
        text = json.dumps(data, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, text.encode("utf-8"))
