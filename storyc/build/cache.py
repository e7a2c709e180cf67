"""What a build may skip: recompiling, re-parsing the lock file, recomputing keys, looking
up renders it already knows.

Stage: execute (around the compiler and the executor). In: the project directory, the
compiled state (`storyc.compiler.state`), `storyc.lock`. Out: a `BuildInput` (the
compilation, recompiled only where the story changed), the parsed `LockFile` when the
file is the one last seen, render keys by request fingerprint, the key → output map of
finished renders. I/O: reads and writes `.storyc/build-cache.json` (atomically); reads
`storyc.lock`'s stat signature.

Plain JSON, checked as it is read (a lock file read back goes through the same checks as
one read from TOML); a damaged or foreign file is a miss, never an error, and nothing in
it can run code. Keys are remembered by the request's fingerprint (`Request.fingerprint`),
so they stay valid across compilations: an edit that changes one scene's request
recomputes that scene's keys only.

Keys and renders decide which video a scene links to, so the file carries a checksum of
its body on its first line: a damaged or hand-edited file (one flipped hex digit in a key
or an output) is a miss as a whole, never a link to another scene's video.
"""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc import __version__
from storyc.base import warm
from storyc.base.diagnostics import Diagnostic, Severity, SourceMap
from storyc.base.fsio import atomic_write, stat_sig
from storyc.base.hashing import DigestCache, is_digest
from storyc.build import fastpath as build_fastpath
from storyc.film.spec import CutSpec, specs_of
from storyc.targets.request import FILE_MARKER, Request, iter_markers

CACHE_NAME = "build-cache.json"
FORMAT = 3  # 3: JSON (2 was a pickle, which a planted file could use to run code)
_MAX_RENDERS = 200_000  # renders remembered beyond the current keys, newest first

KeyMemo = tuple[str, int, str, tuple[tuple[str, str], ...]]  # scene, take, backend, upstream


@dataclass
class BuildInput:
    """What a build needs from a `Compilation`."""

    found: bool
    ok: bool  # a project was resolved
    requests: dict[str, Request]
    order: list[str]
    scenes: tuple[str, ...]  # every scene of the story (for --scene)
    settings: dict[str, Any]  # project settings: backend, base_url, max_cost, jobs
    sources: SourceMap
    files: tuple[str, ...] = ()  # absolute paths of the story files
    assets: tuple[str, ...] = ()  # absolute paths of local media files
    rendered: str = ""  # errors and warnings as text (notes are for `storyc check`)
    errors: int = 0
    comp: Any = field(default=None, repr=False)
    cuts: dict[str, CutSpec] = field(default_factory=dict)  # what `build` assembles after
    broken: dict[str, str] = field(default_factory=dict)  # scene -> why it has no request

    @property
    def has_errors(self) -> bool:
        return self.errors > 0

    @property
    def diagnostics(self) -> list[Diagnostic]:
        """Errors and warnings (read from the compilation only when asked for)."""
        if self.comp is None:
            return []
        return [d for d in self.comp.diagnostics if d.severity is not Severity.NOTE]

    def changed_since(self, earlier: Any) -> set[str] | None:
        """`Compilation.changed_since` of the compilations these two were made of (their
        requests are those compilations' own)."""
        theirs = getattr(earlier, "comp", earlier)
        if self.comp is None or theirs is None:
            return None
        return self.comp.changed_since(theirs)  # type: ignore[no-any-return]

    @classmethod
    def of(cls, comp: Any) -> BuildInput:
        summary = comp.summary
        errors = comp.counts()[0]
        if summary is None:
            return cls(
                comp.found,
                False,
                {},
                [],
                (),
                {},
                comp.sources,
                rendered=comp.rendered(),
                errors=errors,
                comp=comp,
            )
        root = Path(summary.root)
        return cls(
            comp.found,
            True,
            dict(comp.requests),
            list(comp.order),
            tuple(summary.scenes),
            dict(summary.settings),
            comp.sources,
            tuple(str(root / f) for f in summary.files),
            tuple(summary.local_files),
            comp.rendered(),
            errors,
            comp,
            # errors inside a cut's declaration keep it from being assembled
            specs_of(comp.cut_facts(), comp.diagnostics if errors else ()),
            {**{n: f"blocked by {u}" for n, u in comp.blocked.items()}, **comp.broken},
        )


def _lock_sig(path: Path) -> list[Any] | None:
    s = build_fastpath.stat_of(str(path))
    return list(s) if s is not None else None


# A long-lived process that compiled the project to decide whether to run a build
# (storyc.cli.daemon) hands that compilation to the build: (real path, target, BuildInput)
HANDED_OVER = ("build-input",)


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.path = root / ".storyc" / CACHE_NAME
        self.root = root
        self.cached = False  # the last `compile` was answered without compiling
        self._keys: dict[tuple[str, int, str, tuple[tuple[str, str], ...]], str] = {}
        self._scene_keys: dict[KeyMemo, str] = {}
        self._renders: dict[str, str] = {}
        self._lock: tuple[list[Any], Any] | None = None  # (stat signature, LockFile)
        self._lock_data: Any = None  # as read, until asked for
        self._current: BuildInput | None = None
        self.dirty = False
        self._sig = stat_sig(self.path)  # the file as this cache last read or wrote it
        self._by_fp: tuple[dict[Any, str], dict[str, list[Any]]] | None = None
        self._load()

    @classmethod
    def open(cls, root: Path) -> BuildCache:
        """The project's build cache: read from its file, or, in a long-lived process
        (storyc.base.warm), the one the last command used while no other process has
        written the file since."""
        return warm.held(
            ("build-cache", str(root)), lambda: cls(root), lambda c: stat_sig(c.path) == c._sig
        )

    def _load(self) -> None:
        try:
            data = self.path.read_bytes()
            head, _, body = data.partition(b"\n")
            if head != hashlib.sha256(body).hexdigest().encode("ascii"):
                return  # damaged, or not written by storyc: a miss
            raw = json.loads(body)
        except (OSError, ValueError, RecursionError):
            return
        if not isinstance(raw, dict) or raw.get("format") != [FORMAT, __version__]:
            return
        keys = raw.get("keys")
        if isinstance(keys, list):
            for e in keys:
                if (
                    isinstance(e, list)
                    and len(e) == 5
                    and is_digest(e[0])
                    and type(e[1]) is int
                    and isinstance(e[2], str)
                    and isinstance(e[3], list)
                    and all(
                        isinstance(u, list) and len(u) == 2 and all(isinstance(x, str) for x in u)
                        for u in e[3]
                    )
                    and is_digest(e[4])
                ):
                    self._keys[(e[0], e[1], e[2], tuple((u[0], u[1]) for u in e[3]))] = e[4]
        renders = raw.get("renders")
        if isinstance(renders, dict):
            self._renders = {k: v for k, v in renders.items() if is_digest(k) and is_digest(v)}
        lock = raw.get("lock")
        if isinstance(lock, dict) and isinstance(lock.get("sig"), list):
            self._lock_data = lock

    # -- the compilation ----------------------------------------------------------------

    def compile(
        self, path: str | os.PathLike[str], target: str | None, digests: DigestCache
    ) -> BuildInput:
        """The project compiled through its compiled state (`cached`: nothing recompiled)."""
        from storyc.compiler.state import StoredCompilation, compile_with_state

        comp = compile_with_state(path, target=target, digests=digests)
        self.cached = isinstance(comp, StoredCompilation)
        bi = self._current = BuildInput.of(comp)
        self._scene_keys = {}
        by_fp = self._index()
        for scene, req in bi.requests.items():
            for take, backend, upstream, key in by_fp[1].get(req.fingerprint, ()):
                self._scene_keys[(scene, take, backend, upstream)] = key
        return bi

    def _index(self) -> tuple[Any, dict[str, list[tuple[int, str, Any, str]]]]:
        """fingerprint -> its keys, made once per set of keys."""
        by_fp = self._by_fp
        if by_fp is None or by_fp[0] is not self._keys:
            index: dict[str, list[tuple[int, str, tuple[tuple[str, str], ...], str]]] = {}
            for (fp, take, backend, upstream), key in self._keys.items():
                index.setdefault(fp, []).append((take, backend, upstream, key))
            by_fp = self._by_fp = (self._keys, index)
        return by_fp

    def handed_over(self, path: str | os.PathLike[str], target: str | None) -> BuildInput | None:
        """The compilation a long-lived process made of `path` for this very build, just
        before it (`HANDED_OVER`), if it is this cache's current one; else None."""
        from storyc.base import warm

        got = warm.take(HANDED_OVER)
        if got is None:
            return None
        p, t, bi = got
        if p != os.path.realpath(path) or t != target or not self.holds(bi):
            return None
        return bi  # type: ignore[no-any-return]

    def holds(self, bi: BuildInput) -> bool:
        """Whether `keys` are for `bi`'s requests."""
        return bi is self._current

    @property
    def keys(self) -> dict[Any, str]:
        """(scene, take, backend, upstream) -> key, for the current compilation's requests
        (`storyc.build.effects.ProjectIO.use_known_keys` adds what it computes)."""
        return self._scene_keys

    def input_paths(self, bi: BuildInput) -> list[str]:
        """Every file the compilation read: story files, local media, and the story files
        project discovery looks at (`storyc.build.fastpath` records their signatures)."""
        files = list(bi.files) + list(bi.assets)
        for req in bi.requests.values():
            for _, marker in iter_markers(req.input):
                if FILE_MARKER in marker:
                    files.append(str(self.root / str(marker[FILE_MARKER])))
        return sorted(set(files))

    # -- the lock file ------------------------------------------------------------------

    def lockfile(self, path: Path) -> Any | None:
        """The parsed lock file, when `path` is the file last seen (same stat signature)."""
        sig = _lock_sig(path)
        if sig is None:
            return None
        if self._lock is not None:
            return self._lock[1] if self._lock[0] == sig else None
        data = self._lock_data
        if data is None or data.get("sig") != sig:
            return None
        from storyc.state.lockfile import LockFile, LockFileError

        try:
            lock = LockFile.from_data(data.get("data"))
        except (LockFileError, TypeError, ValueError, AttributeError, KeyError):
            return None  # a damaged entry: the file is parsed again
        self._lock = (sig, lock)
        return lock

    def store_lockfile(self, path: Path, lock: Any) -> None:
        sig = _lock_sig(path)
        self._lock = (sig, lock) if sig is not None else None
        self._lock_data = None
        self.dirty = True

    # -- finished renders ---------------------------------------------------------------

    @property
    def renders(self) -> dict[str, str]:
        return self._renders

    def remember_render(self, key: str, digest: str) -> None:
        if self._renders.get(key) != digest:
            self._renders[key] = digest
            self.dirty = True

    # -- writing ------------------------------------------------------------------------

    def save(self, *, keys_seen: int = 0) -> None:
        """Keep keys (by fingerprint), renders and the lock file for the next build. Only
        a speed-up: a cache that cannot be written is ignored."""
        bi = self._current
        keys = dict(self._keys)
        if bi is not None:
            for (scene, take, backend, upstream), key in self._scene_keys.items():
                req = bi.requests.get(scene)
                if req is not None:
                    keys[(req.fingerprint, take, backend, upstream)] = key
            live = {r.fingerprint for r in bi.requests.values()}
            keys = {k: v for k, v in keys.items() if k[0] in live}  # only current requests
        if keys != self._keys:
            self.dirty = True
        if not self.dirty:
            return
        renders = self._renders
        if len(renders) > _MAX_RENDERS:
            wanted = set(keys.values())
            renders = {k: v for k, v in renders.items() if k in wanted}
        doc: dict[str, Any] = {
            "format": [FORMAT, __version__],
            "keys": [
                [fp, take, backend, [list(u) for u in up], key]
                for (fp, take, backend, up), key in keys.items()
            ],
            "renders": renders,
        }
        if self._lock_data is not None:  # read and not replaced: kept as it was read
            doc["lock"] = self._lock_data
        elif self._lock is not None:
            doc["lock"] = {"sig": self._lock[0], "data": self._lock[1].to_data()}
        try:
            body = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
            head = hashlib.sha256(body).hexdigest().encode("ascii")
            atomic_write(self.path, head + b"\n" + body, durable=False)
            self._sig = stat_sig(self.path)
        except (OSError, TypeError, ValueError):
            pass  # a cache we cannot write is only slower
        if keys != self._keys:  # the same set keeps its index
            self._keys = keys
            from storyc.base import warm

            if warm.enabled():  # a long-lived process saves once the answer is out:
                self._index()  # the next command finds the index made
        self.dirty = False
