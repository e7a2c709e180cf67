"""The team store: look renders up in batches, pull them verified, push them after a render.

Stage: remote. In: render keys, the project's local store, the facts of finished renders.
Out: which keys the team already has (and with which output), objects and render
records pulled into `.storyc/`, objects and records pushed. I/O: the remote (through
`storyc.remote.client`) and the local store (`storyc.state.store`).

- **Look-up** (`lookup_many`) is batched: sorted keys are answered by listings of
  `renders/`, a thousand names a request, starting just before the first key not yet
  answered, so N keys against a store of R records cost at most min(N, R/1000 + 1)
  requests, and no record is read.
- **Pull** (`pull`) downloads the object into a temp file in the store while hashing it;
  a connection cut mid-way resumes from the bytes already there (a `Range` request), in
  this run or a later one; the object is published only when its size and digest match
  the record's name. A wrong or damaged object is a miss, reported (W341), never a clip.
- **Push** (`push`) uploads the object (unless the store already has it: objects are
  content-addressed and created only if absent) and then its record, in that order, so a
  record always names an object that is there.
- A remote that does not answer is reported once (W340) and then left alone for the
  rest of the run: the build goes on locally. Credentials that may read but not write
  make a read-only team store (W342): pulls work, nothing is pushed or claimed.
"""

from __future__ import annotations

import bisect
import hashlib
import os
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from storyc.remote import client as c
from storyc.remote.claims import ClaimBook
from storyc.remote.config import RemoteConfig, RemoteConfigError, choose
from storyc.remote.layout import (
    RENDERS,
    Record,
    hex_of,
    object_name,
    parse_record,
    parse_record_name,
    record_name,
)
from storyc.state.store import RenderRecord, Store

RESUMES = 4  # attempts to finish one download (each resumes where the last stopped)


class Miss(Exception):
    """The team store cannot give this render (absent, damaged, or unreachable)."""


class Damaged(Miss):
    """The team store's object or record is wrong: reported, then treated as absent."""


@dataclass
class Stats:
    requests: int = 0
    pulled: int = 0
    pushed: int = 0
    bytes_down: int = 0
    bytes_up: int = 0


Warn = Callable[[str], None]


class TeamStore:
    def __init__(
        self,
        config: RemoteConfig,
        store: Store,
        *,
        warn: Warn | None = None,
        client: c.ObjectClient | None = None,
    ) -> None:
        self.config = config
        self.store = store
        self.client = client or c.ObjectClient(config)
        self._warn = warn or (lambda _msg: None)
        self._index: dict[str, str | None] = {}  # key -> output, None = not there
        self._lock = threading.Lock()
        self._digest_locks: dict[str, threading.Lock] = {}
        self.down: str | None = None  # why the remote is not used any more in this run
        self.read_only = False
        self.stats = Stats()
        self.claims = ClaimBook(self.client)

    # -- reporting ----------------------------------------------------------------
    def warn(self, text: str) -> None:
        self._warn(text)

    def mark_down(self, exc: c.RemoteError) -> None:
        """The remote stopped answering: say so once and build locally from now on."""
        if self.down is None:
            self.down = str(exc)
            self.warn(
                f"warning[W340]: the team store {self.config.describe()} cannot be used "
                f"({exc}); building locally"
            )

    def mark_read_only(self, exc: c.RemoteError) -> None:
        if not self.read_only:
            self.read_only = True
            self.warn(
                f"warning[W342]: the team store {self.config.url} is read-only for these "
                f"credentials ({exc}): renders are pulled, not pushed or claimed"
            )

    @property
    def usable(self) -> bool:
        return self.down is None

    # -- look-up ------------------------------------------------------------------
    def known(self, key: str) -> str | None:
        """The output the team has for `key`, from what `lookup_many` learnt (no I/O)."""
        return self._index.get(key)

    def asked(self, key: str) -> bool:
        return key in self._index

    def lookup_many(self, keys: Iterable[str]) -> dict[str, str]:
        """Which of `keys` the team store has: key → output digest. Batched listings;
        keys asked before are answered from memory. Raises `RemoteError`."""
        keys = list(keys)
        need = sorted({hex_of(k) for k in keys if k not in self._index})
        if need:
            found = self._scan(need)
            with self._lock:
                for h in need:
                    self._index.setdefault(f"sha256:{h}", found.get(h))
        return {k: out for k in keys if (out := self._index.get(k)) is not None}

    def _scan(self, need: list[str]) -> dict[str, str]:
        found: dict[str, str] = {}
        i = 0
        while i < len(need):
            # names of key h are "renders/h/…", all after "renders/h" itself
            page, more = self.client.list(RENDERS, start_after=f"{RENDERS}{need[i]}")
            self.stats.requests += 1
            last = ""
            for item in page:
                parsed = parse_record_name(item.name)
                if parsed is None:
                    continue
                kh, oh = hex_of(parsed[0]), hex_of(parsed[1])
                last = max(last, kh)
                j = bisect.bisect_left(need, kh)
                if j < len(need) and need[j] == kh:
                    found.setdefault(kh, f"sha256:{oh}")
            if not more or not page:
                break
            # every key up to the last one listed is answered (the last one's further
            # records may be on the next page, but one output is enough)
            i = max(i + 1, bisect.bisect_right(need, last))
        return found

    def unask(self, key: str) -> None:
        """Forget the answer about `key`, so that the next look-up asks the store again."""
        with self._lock:
            self._index.pop(key, None)

    def forget(self, key: str) -> None:
        with self._lock:
            self._index[key] = None

    # -- records ------------------------------------------------------------------
    def read_record(self, key: str, output: str) -> Record:
        try:
            data, _ = self.client.get_bytes(record_name(key, output), limit=64 << 10)
        except c.NotFound:
            raise Miss("the record is gone from the team store") from None
        rec = parse_record(data, key, output)
        if rec is None:
            self.forget(key)
            raise self._damaged(key, "its record is damaged")
        return rec

    def _damaged(self, key: str, what: str) -> Damaged:
        self.warn(
            f"warning[W341]: the team store's render {key[7:19]} is not usable ({what}); "
            "it is treated as absent"
        )
        return Damaged(what)

    # -- pull ---------------------------------------------------------------------
    def pull(self, key: str, *, scene: str = "", take: int = 1, backend: str = "") -> Record:
        """Bring the team's render of `key` into the local store (object verified, render
        record written). Raises `Miss` (absent or damaged) or `RemoteError`.

        With `scene` given (the caller knows what the key is for, as `storyc pull` does)
        the record is not read: one request per take instead of two, and the record's
        facts (task id, cost) are not needed there."""
        output = self._index.get(key)
        if output is None and key not in self._index:
            output = self.lookup_many([key]).get(key)
        if output is None:
            raise Miss("the team store does not have it")
        if scene:
            rec = Record(key, output, -1, scene, take, backend)
        else:
            rec = self.read_record(key, output)
        self.download(output, rec.size, key=key)
        self.store.record_render(
            RenderRecord(
                key=key,
                output=output,
                scene=rec.scene,
                take=rec.take,
                backend=rec.backend,
                task_id=rec.task_id,
                url=None,
                duration=rec.duration,
                created=time.time(),
            ),
            durable=False,  # the object is durable; the record is made again from the remote
        )
        self.stats.pulled += 1
        return rec

    def _digest_lock(self, digest: str) -> threading.Lock:
        with self._lock:
            return self._digest_locks.setdefault(digest, threading.Lock())

    def download(self, digest: str, size: int, *, key: str = "") -> Path:
        """The object `digest` in the local store, downloaded if need be: streamed into a
        kept temp file, resumed after a cut, published only when it hashes right."""
        with self._digest_lock(digest):
            have = self.store.get(digest)
            if have is not None:
                return have
            part = self.store.incoming(f"part-{hex_of(digest)}")
            last: c.RemoteError | None = None
            fresh_retry = True
            for _ in range(RESUMES):
                try:
                    done = self._download_into(part, digest, size)
                except (c.Truncated, c.Unreachable) as exc:
                    last = exc  # the bytes so far stay: the next attempt resumes
                    continue
                if done is not None:
                    return done
                part.unlink(missing_ok=True)
                if not fresh_retry:
                    break
                fresh_retry = False  # once more from the start: the kept bytes may be bad
            else:
                raise last or c.Unreachable("the download did not complete")
            if key:
                self.forget(key)
            raise self._damaged(key or digest, "its bytes do not match their digest")

    def _download_into(self, part: Path, digest: str, size: int) -> Path | None:
        """One attempt; None when the object turned out wrong (and must not be resumed)."""
        h = hashlib.sha256()
        have = 0
        if part.exists():
            if 0 <= size < part.stat().st_size:
                part.unlink()
            else:
                with open(part, "rb") as f:
                    while chunk := f.read(c.CHUNK):
                        h.update(chunk)
                        have += len(chunk)
        if have < size or size < 0:
            try:
                with (
                    self.client.open_stream(object_name(digest), start=have) as (chunks, _),
                    open(part, "ab") as out,
                ):
                    for chunk in chunks:
                        if 0 <= size < have + len(chunk):
                            return None  # longer than the record says: not this object
                        out.write(chunk)
                        h.update(chunk)
                        have += len(chunk)
                        self.stats.bytes_down += len(chunk)
            except c.BeyondEnd:
                pass  # the kept bytes were the whole object already: the digest decides
        if (size >= 0 and have != size) or f"sha256:{h.hexdigest()}" != digest:
            return None
        # not fsynced: verified again by the next process, pulled again if a crash lost it
        return self.store.adopt(part, digest, durable=False)

    # -- push ---------------------------------------------------------------------
    def push(self, rec: Record) -> bool:
        """Upload `rec`'s object (unless there) and then the record. False when this
        store cannot be written (read-only); raises `RemoteError` otherwise."""
        if self.read_only:
            return False
        path = self.store.get(rec.output)
        if path is None:
            raise Miss(f"the output of {rec.scene} is not in the local store")
        try:
            self._push_object(rec.output, path)
            try:
                self.client.put_bytes(
                    record_name(rec.key, rec.output), rec.dumps(), create_only=True
                )
                self.stats.requests += 1
            except c.Conflict:
                pass  # the same record, written by someone else (or an earlier push)
        except c.Denied as exc:
            self.mark_read_only(exc)
            return False
        with self._lock:
            self._index[rec.key] = rec.output
        self.stats.pushed += 1
        return True

    def _push_object(self, digest: str, path: Path) -> None:
        name = object_name(digest)
        size = os.path.getsize(path)
        try:
            head = self.client.head(name)
            self.stats.requests += 1
            if head.size == size:
                return  # content-addressed: the same name with the same length is it
            create_only = False  # a damaged object on the remote: replace it
        except c.NotFound:
            create_only = True
        with open(path, "rb") as fh:
            try:
                self.client.put_file(name, fh, size, create_only=create_only)
            except c.Conflict:
                return
        self.stats.requests += 1
        self.stats.bytes_up += size


def open_team(
    setting: str | None,
    store: Store,
    *,
    flag: str | None = None,
    disabled: bool = False,
    env: Mapping[str, str] | None = None,
    warn: Warn | None = None,
) -> TeamStore | None:
    """The project's team store for this run, or None when none is configured.

    Raises `RemoteConfigError` for a remote that cannot be used at all (a bad URL from
    the flag or the environment, an unknown AWS profile)."""
    config = choose(setting, os.environ if env is None else env, flag=flag, disabled=disabled)
    if config is None:
        return None
    try:
        return TeamStore(config, store, warn=warn)
    except c.RemoteError as exc:
        raise RemoteConfigError(str(exc)) from None
