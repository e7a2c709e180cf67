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
                raw = pickle.load(f)
            if isinstance(raw, dict) and raw.get("format") == (FORMAT, __version__):
                self.data = raw
                self._keys_loaded = len(raw.get("keys", {}))
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
