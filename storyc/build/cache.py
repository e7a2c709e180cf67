"""What a no-op build may skip: the compilation, the parsed lock file, known renders.

Stage: execute (around the compiler and the executor). In: the project directory, the
story files and assets a previous compilation used, `storyc.lock`. Out: the previous
`Compilation` when nothing it was made from changed, the parsed `LockFile` when the
file is the one we wrote, and the key → output map of finished renders. I/O: stats
files; reads and writes `.storyc/build-cache.pickle` (atomically; a damaged or foreign
cache is a miss, never an error).

Validity is decided by `stat` alone, like the digest cache: (size, mtime_ns, inode, ctime) of
every story file, every local file the requests use, the project directory (a new
entry file could appear) and storyc's own modules (a new storyc compiles differently).
A file modified less than `RACY_S` before the cache was written could still change
within the same timestamp, so such a compilation is not cached.
"""

from __future__ import annotations

import pickle
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc import __version__
from storyc.base.diagnostics import Diagnostic, Severity, SourceMap
from storyc.base.fsio import atomic_write
from storyc.base.hashing import is_digest
from storyc.build import fastpath as build_fastpath
from storyc.film.spec import CutSpec, cut_specs
from storyc.targets.request import FILE_MARKER, Request, iter_markers

CACHE_NAME = "build-cache.pickle"
FORMAT = 3
RACY_S = 1.0

Sig = tuple[tuple[str, int, int, int, int], ...]


@dataclass
class BuildInput:
    """What a build needs from a `Compilation`, small enough to load fast from the cache
    (a whole `Project` with every span costs ~200 µs per scene to unpickle)."""

    found: bool
    ok: bool  # a project was resolved
    requests: dict[str, Request]
    order: list[str]
    scenes: tuple[str, ...]  # every scene of the story (for --scene)
    settings: dict[str, Any]  # project settings: backend, base_url, max_cost, jobs
    diagnostics: list[Diagnostic]  # errors and warnings (notes are for `storyc check`)
    sources: SourceMap  # texts of the files those diagnostics point into
    files: tuple[str, ...] = ()  # absolute paths of the story files
    assets: tuple[str, ...] = ()  # absolute paths of local assets
    cuts: dict[str, CutSpec] = field(default_factory=dict)  # what `build` assembles after
    broken: dict[str, str] = field(default_factory=dict)  # scene -> why it has no request

    @property
    def has_errors(self) -> bool:
        return any(d.is_error for d in self.diagnostics)

    @classmethod
    def of(cls, comp: Any) -> BuildInput:
        project = comp.project
        shown = [d for d in comp.diagnostics if d.severity is not Severity.NOTE]
        used = {d.span.file for d in shown if d.span is not None}
        sources = SourceMap({f: t for f, t in comp.sources.texts.items() if f in used})
        if project is None:
            return cls(comp.found, False, {}, [], (), {}, shown, sources)
        settings = {k: getattr(v, "value", v) for k, v in (project.settings or {}).items()}
        assets = tuple(
            a.source.abs_path
            for a in project.assets.values()
            if getattr(a.source, "abs_path", None)
        )
        return cls(
            comp.found,
            True,
            dict(comp.requests),
            list(comp.order),
            tuple(project.scenes),
            settings,
            shown,
            sources,
            tuple(str(Path(project.root) / f) for f in project.files),
            assets,
            cut_specs(project, comp.diagnostics),
            {
                **{n: f"blocked by {u}" for n, u in getattr(comp, "blocked", {}).items()},
                **getattr(comp, "broken", {}),
            },
        )


# What the cache file may hold besides plain containers, strings and numbers. Unpickling
# anything else is refused: a planted pickle could otherwise run code (`os.system` in a
# `__reduce__`). None of these runs code when made (dataclasses, an enum, Decimal).
# Interim: the incremental compiler's plain-JSON state replaces this file (issue 12).
_ALLOWED = frozenset(
    {
        ("decimal", "Decimal"),
        ("storyc.base.diagnostics", "Diagnostic"),
        ("storyc.base.diagnostics", "Severity"),
        ("storyc.base.diagnostics", "SourceMap"),
        ("storyc.base.diagnostics", "Span"),
        ("storyc.build.cache", "BuildInput"),
        ("storyc.state.lockfile", "LockFile"),
        ("storyc.state.lockfile", "SceneEntry"),
        ("storyc.state.lockfile", "TakeEntry"),
        ("storyc.targets.request", "Request"),
    }
)


class _DataOnly(pickle.Unpickler):
    """An unpickler that makes only the types in `_ALLOWED`, never calls anything else."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"{module}.{name} is not build-cache data")
        return super().find_class(module, name)


def _checked(raw: dict[str, Any]) -> dict[str, Any]:
    """The parts of a loaded cache that have the shape this module writes; the rest is
    dropped (a miss). Finished renders are never taken from this file: a planted entry
    would link another scene's video; the store's render records (checked) answer instead."""
    out: dict[str, Any] = {"format": raw["format"]}
    entry = raw.get("compile")
    if (
        isinstance(entry, dict)
        and isinstance(entry.get("arg"), tuple)
        and isinstance(entry.get("paths"), list)
        and all(isinstance(p, str) for p in entry["paths"])
        and isinstance(entry.get("sig"), tuple)
        and _sound_input(entry.get("input"))
    ):
        out["compile"] = entry
        keys = raw.get("keys")
        if isinstance(keys, dict) and all(is_digest(v) for v in keys.values()):
            out["keys"] = keys
    lock = raw.get("lock")
    if isinstance(lock, dict) and isinstance(lock.get("sig"), tuple) and "lock" in lock:
        from storyc.state.lockfile import LockFile

        if isinstance(lock["lock"], LockFile):
            out["lock"] = lock
    return out


def _sound_input(bi: Any) -> bool:
    return (
        isinstance(bi, BuildInput)
        and isinstance(bi.requests, dict)
        and all(isinstance(k, str) and isinstance(v, Request) for k, v in bi.requests.items())
        and isinstance(bi.order, list)
        and all(isinstance(n, str) for n in bi.order)
        and isinstance(bi.scenes, tuple)
        and isinstance(bi.settings, dict)
        and isinstance(bi.diagnostics, list)
        and all(isinstance(d, Diagnostic) for d in bi.diagnostics)
        and isinstance(bi.sources, SourceMap)
        and isinstance(bi.sources.texts, dict)
        and all(isinstance(f, str) for f in (*bi.files, *bi.assets))
    )


def _stat_sig(paths: list[str]) -> Sig | None:
    out = []
    for p in paths:
        s = build_fastpath.stat_of(p)
        if s is None:
            return None
        out.append(s)
    return tuple(out)


class BuildCache:
    def __init__(self, root: Path) -> None:
        self.path = root / ".storyc" / CACHE_NAME
        self.root = root
        self.data: dict[str, Any] = {}
        self.dirty = False
        self._keys_loaded = 0
        try:
            with open(self.path, "rb") as f:
                raw = _DataOnly(f).load()
            if isinstance(raw, dict) and raw.get("format") == (FORMAT, __version__):
                self.data = _checked(raw)
                self._keys_loaded = len(self.data.get("keys", {}))
        except Exception:  # noqa: BLE001 - any unreadable cache is simply a miss
            self.data = {}

    # -- the compilation ----------------------------------------------------------------
    def _inputs(self, bi: BuildInput) -> list[str]:
        files = list(bi.files) + list(bi.assets)
        for req in bi.requests.values():
            for _, marker in iter_markers(req.input):
                if FILE_MARKER in marker:
                    files.append(str(self.root / str(marker[FILE_MARKER])))
        return sorted(set(files))

    def _discovery(self, arg: str) -> tuple[str, ...]:
        """What project discovery looked at: the top-level story files of a directory."""
        p = Path(arg)
        return tuple(sorted(x.name for x in p.glob("*.story"))) if p.is_dir() else ()

    def compilation(self, arg: str, target: str | None) -> BuildInput | None:
        entry = self.data.get("compile")
        if not entry or entry["arg"] != (arg, target, self._discovery(arg)):
            return None
        if _stat_sig(entry["paths"]) != entry["sig"]:
            return None
        found: BuildInput = entry["input"]
        return found

    def store_compilation(self, arg: str, target: str | None, bi: BuildInput) -> None:
        if not bi.ok or bi.has_errors:
            return
        # discovery reads every top-level story file of a directory (for a `project` block)
        found = [str(Path(arg) / n) for n in self._discovery(arg)]
        paths = build_fastpath.code_paths() + sorted(set(self._inputs(bi) + found))
        sig = _stat_sig(paths)
        if sig is None:
            return
        newest = max(s[2] for s in sig) / 1e9
        if time.time() - newest < RACY_S:
            return  # could still change unseen within the same timestamp
        self.data["compile"] = {
            "arg": (arg, target, self._discovery(arg)),
            "paths": paths,
            "sig": sig,
            "input": bi,
        }
        self.data["keys"] = {}  # keys belong to one compilation
        self.dirty = True

    def holds(self, bi: BuildInput) -> bool:
        """Whether `bi` is the compilation this cache keeps (keys may then be kept too)."""
        entry = self.data.get("compile")
        return entry is not None and entry["input"] is bi

    @property
    def keys(self) -> dict[Any, str]:
        """(scene, take, backend, upstream) -> key, for the cached compilation's requests."""
        known: dict[Any, str] = self.data.setdefault("keys", {})
        return known

    # -- the lock file ------------------------------------------------------------------
    def lockfile(self, path: Path) -> Any | None:
        entry = self.data.get("lock")
        if not entry:
            return None
        sig = _stat_sig([str(path)])
        return entry["lock"] if sig is not None and sig == entry["sig"] else None

    def store_lockfile(self, path: Path, lock: Any) -> None:
        sig = _stat_sig([str(path)])
        if sig is None:
            self.data.pop("lock", None)
        else:
            self.data["lock"] = {"sig": sig, "lock": lock}
        self.dirty = True

    # -- finished renders ---------------------------------------------------------------
    @property
    def renders(self) -> dict[str, str]:
        renders: dict[str, str] = self.data.setdefault("renders", {})
        return renders

    def remember_render(self, key: str, digest: str) -> None:
        if self.renders.get(key) != digest:
            self.renders[key] = digest
            self.dirty = True

    def save(self, *, keys_seen: int = 0) -> None:
        if keys_seen != self._keys_loaded:
            self.dirty = True  # new keys were computed: keep them for the next no-op
        if not self.dirty:
            return
        self.data["format"] = (FORMAT, __version__)
        try:
            blob = pickle.dumps(self.data, protocol=pickle.HIGHEST_PROTOCOL)
            atomic_write(self.path, blob, durable=False)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            pass  # a cache we cannot write is only slower
        self.dirty = False
