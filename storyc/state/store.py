"""The content-addressed store under `.storyc/`: outputs, frames, render records.

Stage: execute (and plan, which asks what is already there). In: bytes, files and
download streams; render keys. Out: object paths by digest, records. I/O: the whole
of `.storyc/objects`, `.storyc/renders`, `.storyc/derived`, `.storyc/unfetchable`
and `.storyc/verified.json`. (Which inputs were uploaded to the provider is the
provider client's business: `storyc.provider.uploads`.)

Layout: an object with digest `sha256:abcd…` lives at `objects/ab/cd…` (`object_name`;
callers that need many paths use `object_file`, a string, not pathlib). Every write
goes to a temp file in the object's own directory, is fsynced, then `os.replace`d
into place, so an interrupted write never leaves a partial object under a real name.

Reads are verified: the first time a process uses an object it is hashed, unless
`verified.json` remembers that this very file (size, mtime, inode, ctime) already hashed
correctly. A corrupt object is deleted and reported as a miss — it is fetched or
rendered again, never served as a wrong video.

Records are one small file each, written atomically, so a crash loses at most the
record being written and never corrupts the others:
- `renders/ab/cd…` (by render key): the output digest of a finished render, kept
  so that reverting an edit reuses the old output instead of paying again;
- `derived/ab/cd…` (by digest of (object, what)): e.g. a video's last frame;
- `unfetchable/ab/cd…` (by render key): the recorded output URLs that no longer give the
  recorded bytes (expired, or other bytes), each with why, so the planner stops offering
  to fetch from them.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from storyc.base.fsio import atomic_write, fsync_dir, sig_of, stat_sig
from storyc.base.hashing import DIGEST_PREFIX, canonical_json, digest_bytes, digest_file, is_digest

STORE_DIR = ".storyc"


class StoreError(Exception):
    """A write that could not be completed (e.g. the digest did not match)."""


def _hex(digest: str) -> str:
    if not is_digest(digest):
        raise ValueError(f"not a sha256 digest: {digest!r}")
    return digest[len(DIGEST_PREFIX) :]


def object_name(digest: str) -> str:
    """Where the object `digest` lives relative to `objects/`: "ab/cd…" (the layout)."""
    h = _hex(digest)
    return f"{h[:2]}/{h[2:]}"


@dataclass(frozen=True, slots=True)
class RenderRecord:
    key: str
    output: str  # digest of the output video
    scene: str
    take: int
    backend: str
    task_id: str | None
    url: str | None
    duration: float | None
    created: float  # unix time


def _record_sum(raw: dict[str, Any]) -> str:
    """The checksum a record carries over its other fields (see `_sound`)."""
    return digest_bytes(canonical_json({k: v for k, v in raw.items() if k != "sum"}))


def _sound(raw: dict[str, Any]) -> bool:
    """Whether a record is as storyc wrote it: its checksum matches its fields. A damaged
    or hand-edited record is a miss, never a link to another video. Records written before
    records had a checksum have none; they are still read (they are what keeps paid
    renders from being paid for again), with every field checked by type."""
    if "sum" not in raw:
        return True
    try:
        return bool(raw["sum"] == _record_sum(raw))
    except (TypeError, ValueError, RecursionError):
        return False


def _dead_urls(raw: dict[str, Any] | None, key: str) -> dict[str, str]:
    """The dead URLs an unfetchable record holds for `key`, each with why: {url: reason}.
    Reads the one-URL form of earlier versions too (`url`, `reason`)."""
    if raw is None or raw.get("key") != key:
        return {}
    found = raw.get("urls")
    pairs = list(found.items()) if isinstance(found, dict) else []
    if isinstance(raw.get("url"), str):
        pairs.append((raw["url"], raw.get("reason")))
    return {
        u: r if isinstance(r, str) else "it could not be fetched"
        for u, r in pairs
        if isinstance(u, str)
    }


def _render_record(raw: dict[str, Any] | None) -> RenderRecord | None:
    """A render record from its JSON, or None when damaged (a damaged record is a miss)."""
    if raw is None or not is_digest(raw.get("output")) or not is_digest(raw.get("key")):
        return None
    if not _sound(raw):
        return None
    scene, take, backend = raw.get("scene"), raw.get("take"), raw.get("backend")
    task_id, url, duration, created = (
        raw.get(k) for k in ("task_id", "url", "duration", "created")
    )
    number = (int, float)
    if (
        not isinstance(scene, str)
        or not isinstance(backend, str)
        or isinstance(take, bool)
        or not isinstance(take, int)
        or not (task_id is None or isinstance(task_id, str))
        or not (url is None or isinstance(url, str))
        or not (duration is None or (isinstance(duration, number) and duration >= 0))
        or isinstance(created, bool)
        or not isinstance(created, number)
    ):
        return None
    return RenderRecord(
        raw["key"], raw["output"], scene, take, backend, task_id, url, duration, float(created)
    )


class ObjectWriter:
    """Streams bytes into a temp file while hashing them; see `Store.writer`."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self._h = hashlib.sha256()
        self.size = 0
        self.digest: str | None = None  # set when the object is published

    def write(self, chunk: bytes) -> int:
        self._fh.write(chunk)
        self._h.update(chunk)
        self.size += len(chunk)
        return len(chunk)

    def _finish(self) -> str:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        return DIGEST_PREFIX + self._h.hexdigest()


class Store:
    """A project's `.storyc` directory. Call `save()` (or use `with`) to keep verifications."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)
        self.objects = self.root / "objects"
        # Object and record paths are built as strings: `get`/`has` run for every scene
        # of every build, and pathlib joins cost more than the stat they lead to.
        self._root_s = os.fspath(self.root)
        self._objects_s = os.fspath(self.objects)
        self._verified: dict[str, tuple[int, ...]] = {}
        self._verified_dirty = False
        # hashed by this process but not durable yet: trusted here, verified again by the
        # next process (see `adopt`)
        self._fresh: dict[str, tuple[int, ...]] = {}
        self.bytes_verified = 0
        self._load_verified()

    @classmethod
    def for_project(cls, project_root: str | os.PathLike[str]) -> Store:
        return cls(Path(project_root) / STORE_DIR)

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.save()

    # -- objects ---------------------------------------------------------------

    def object_path(self, digest: str) -> Path:
        return Path(self.object_file(digest))

    def object_file(self, digest: str) -> str:
        """`object_path` as a plain string: for loops over thousands of objects."""
        return f"{self._objects_s}/{object_name(digest)}"

    def _load_verified(self) -> None:
        try:
            with open(f"{self._root_s}/verified.json", "rb") as f:
                raw = json.loads(f.read())
            # Keys are only ever looked up by a checked digest, so a junk key is inert:
            # no regex per entry (every build opens the store; thousands of entries).
            self._verified = {d: tuple(map(int, sig)) for d, sig in raw.items()}
        except (OSError, ValueError, TypeError, IndexError, AttributeError):
            self._verified = {}  # a lost index only costs re-hashing

    def _remember(self, digest: str, st: os.stat_result) -> None:
        self._verified[digest] = sig_of(st)
        self._verified_dirty = True

    def save(self) -> None:
        if not self._verified_dirty:
            return
        data = {d: list(s) for d, s in sorted(self._verified.items())}
        atomic_write(self.root / "verified.json", json.dumps(data).encode())
        self._verified_dirty = False

    def get(self, digest: str) -> Path | None:
        """The path of a verified object, or None (absent, or corrupt and now removed)."""
        path = self._verify(digest)
        return None if path is None else Path(path)

    def has(self, digest: str) -> bool:
        return self._verify(digest) is not None

    def _verify(self, digest: str) -> str | None:
        path = self.object_file(digest)
        try:
            st = os.stat(path)
        except OSError:
            return None
        if self._verified.get(digest) == sig_of(st) or self._fresh.get(digest) == sig_of(st):
            return path
        try:
            actual, n = digest_file(path)
        except OSError:
            return None
        self.bytes_verified += n
        if actual != digest:
            with suppress(FileNotFoundError):
                os.unlink(path)
            self._verified.pop(digest, None)
            self._fresh.pop(digest, None)
            self._verified_dirty = True
            return None
        self._remember(digest, st)
        return path

    def _publish(self, tmp: Path, digest: str, *, durable: bool = True) -> Path:
        final = self.object_path(digest)
        final.parent.mkdir(parents=True, exist_ok=True)
        os.chmod(tmp, 0o444)  # objects are immutable; discourage edits in place
        os.replace(tmp, final)
        if durable:
            fsync_dir(final.parent)
            self._remember(digest, final.stat())
        else:
            self._fresh[digest] = sig_of(final.stat())
        return final

    @contextmanager
    def writer(self, expected: str | None = None) -> Iterator[ObjectWriter]:
        """`with store.writer() as w: w.write(chunk)…` — published only on success.

        On an exception inside the block, or when `expected` is given and the bytes
        hash to something else, the temp file is removed and no object appears.
        """
        incoming = self.objects / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=incoming, prefix=".tmp-")
        tmp = Path(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                w = ObjectWriter(fh)
                yield w
                digest = w._finish()
            if expected is not None and digest != expected:
                raise StoreError(f"downloaded bytes hash to {digest}, expected {expected}")
            # Same filesystem, so the final rename is atomic; the shard dir is fsynced.
            w.digest = digest
            self._publish(tmp, digest)
        finally:
            tmp.unlink(missing_ok=True)

    def incoming(self, name: str) -> Path:
        """A temp path for a download that is kept between attempts (resumed later): in
        the store's own directory, so `adopt` is a rename; `.tmp-` so gc removes it once
        it is old."""
        incoming = self.objects / "incoming"
        incoming.mkdir(parents=True, exist_ok=True)
        return incoming / f".tmp-{name}"

    def adopt(self, tmp: Path, digest: str, *, durable: bool = True) -> Path:
        """Publish a file written elsewhere whose bytes the caller has hashed to `digest`
        (e.g. a resumed download): fsynced, then renamed into place.

        `durable=False` for an object that is cheap to fetch again (pulled from the team
        store): no fsync, and it is trusted by this process only. The next process hashes
        it on first use, as any object not known to be verified, so bytes a crash lost are
        found then (a miss, pulled again), never served."""
        if durable:
            with open(tmp, "rb+") as fh:
                os.fsync(fh.fileno())
        return self._publish(tmp, digest, durable=durable)

    def put_bytes(self, data: bytes) -> str:
        with self.writer() as w:
            w.write(data)
        assert w.digest is not None
        return w.digest

    def put_file(self, src: str | os.PathLike[str], *, expected: str | None = None) -> str:
        """Copy a file into the store; with `expected`, only if its bytes hash to it
        (`StoreError` otherwise, and nothing is stored)."""
        with self.writer(expected) as w, open(src, "rb") as f:
            while chunk := f.read(1 << 20):
                w.write(chunk)
        assert w.digest is not None
        return w.digest

    def iter_objects(self) -> Iterator[tuple[str, Path]]:
        if not self.objects.is_dir():
            return
        for shard in sorted(self.objects.iterdir()):
            if len(shard.name) != 2 or not shard.is_dir():
                continue
            for p in sorted(shard.iterdir()):
                d = DIGEST_PREFIX + shard.name + p.name
                if is_digest(d):
                    yield d, p

    def stale_temps(self, older_than: float = 3600.0) -> list[Path]:
        """Temp files left by killed processes (never a finished object)."""
        out: list[Path] = []
        now = time.time()
        for base in (self.objects, self.root / "renders", self.root / "derived"):
            if base.is_dir():
                for p in base.rglob(".tmp-*"):
                    try:
                        if now - p.stat().st_mtime > older_than:
                            out.append(p)
                    except OSError:
                        pass
        return out

    def remove(self, digest: str) -> None:
        self.object_path(digest).unlink(missing_ok=True)
        self._fresh.pop(digest, None)
        if self._verified.pop(digest, None) is not None:
            self._verified_dirty = True

    # -- records ---------------------------------------------------------------

    def shape(self) -> list[Any]:
        """The stat signatures of the folders objects and records live in: any object or
        record added, removed or replaced changes one of them (a long-lived planner's
        test that the store is the one it planned against; storyc.plan.memo)."""
        out: list[Any] = []
        for kind in ("objects", "renders", "unfetchable"):
            top = f"{self._root_s}/{kind}"
            out.append((kind, stat_sig(top)))
            try:
                with os.scandir(top) as it:
                    names = sorted(e.name for e in it)
            except OSError:
                continue
            out += [(kind, n, stat_sig(f"{top}/{n}")) for n in names]
        return out

    def _record_path(self, kind: str, digest: str) -> str:
        return f"{self._root_s}/{kind}/{object_name(digest)}"

    def _read_record(self, path: str | Path) -> dict[str, Any] | None:
        try:
            with open(path, "rb") as f:
                raw = json.loads(f.read())
        except (OSError, ValueError):
            return None  # a damaged record is a miss
        return raw if isinstance(raw, dict) else None

    def record_render(self, rec: RenderRecord, *, durable: bool = True) -> None:
        """`durable=False` for records that are cheap to make again (a render pulled from
        the team store: its object is durable, and a lost record only means looking it up
        again), saving two fsyncs each."""
        data: dict[str, Any] = {k: getattr(rec, k) for k in RenderRecord.__slots__}
        data["sum"] = _record_sum(data)
        atomic_write(
            Path(self._record_path("renders", rec.key)), canonical_json(data), durable=durable
        )

    def lookup_render(self, key: str) -> RenderRecord | None:
        """The finished render for `key`, whether or not its object is still present."""
        rec = _render_record(self._read_record(self._record_path("renders", key)))
        return rec if rec is not None and rec.key == key else None

    def iter_renders(self) -> Iterator[tuple[Path, RenderRecord | None]]:
        base = self.root / "renders"
        if not base.is_dir():
            return
        for p in sorted(base.glob("??/*")):
            if p.name.startswith(".tmp-"):
                continue
            yield p, _render_record(self._read_record(p))

    @staticmethod
    def _derived_id(source: str, what: str) -> str:
        return digest_bytes(canonical_json([source, what]))

    def record_derived(self, source: str, what: str, result: str) -> None:
        """Remember that `what` of object `source` (e.g. "last_frame", "frame@2.5") is `result`."""
        data = {"source": source, "what": what, "result": result}
        data["sum"] = _record_sum(data)
        atomic_write(
            Path(self._record_path("derived", self._derived_id(source, what))), canonical_json(data)
        )

    def lookup_derived(self, source: str, what: str) -> str | None:
        """The derived object's digest, only if that object is present and sound."""
        raw = self._read_record(self._record_path("derived", self._derived_id(source, what)))
        if raw is None or raw.get("source") != source or raw.get("what") != what:
            return None
        if not _sound(raw):
            return None
        result = raw.get("result")
        if not isinstance(result, str) or not is_digest(result) or not self.has(result):
            return None
        return result

    def iter_derived(self) -> Iterator[tuple[Path, dict[str, Any] | None]]:
        base = self.root / "derived"
        if base.is_dir():
            for p in sorted(base.glob("??/*")):
                if not p.name.startswith(".tmp-"):
                    yield p, self._read_record(p)

    # -- URLs that no longer give their output -----------------------------------

    def mark_unfetchable(self, key: str, url: str, reason: str) -> None:
        """The recorded `url` of `key`'s output can no longer be fetched (or gives other
        bytes): the next plan renders it instead of fetching it again. One output may have
        several recorded URLs (the lock file's, the render record's, the journal's): each
        dead one is remembered, so that marking one never revives another."""
        path = self._record_path("unfetchable", key)
        dead = _dead_urls(self._read_record(path), key)
        dead[url] = reason
        data = {"key": key, "urls": dict(sorted(dead.items())), "at": time.time()}
        atomic_write(Path(path), canonical_json(data))

    def unfetchable(self, key: str, url: str) -> str | None:
        """Why `url` cannot give `key`'s output any more, or None (worth a try)."""
        return _dead_urls(self._read_record(self._record_path("unfetchable", key)), key).get(url)
