"""The incremental compiler: cost proportional to the edit, for watch, the editor and the CLI.

Stage: compiler. In: a project path, optionally unsaved editor buffers and a target
override. Out: a `Compilation` identical to `storyc.compiler.compile_project`'s for the
same files (same diagnostics, payloads and order; the property tests in
tests/test_incremental.py hold it to that), computed from what changed since the last
one. I/O: reads story files (or the buffers given), stats and hashes assets, as the
compiler does; `storyc.compiler.state` keeps an engine's memory on disk between runs.

Use it (the language server holds one engine per project)::

    engine = Engine("films/night-market")          # or an entry .story file
    comp = engine.update()                          # first compile: everything
    comp = engine.update({"/abs/scenes.story": buffer_text})   # unsaved buffer
    comp = engine.update({"/abs/scenes.story": None})          # buffer closed: disk again
    by_file(comp)        # label -> diagnostics, for every story file (empty lists too)
    engine.path_of(label)  # absolute path of a story file's label
    engine.stats         # what the last update did (parses, scenes resolved, ...)

`update` never raises for a bad story and returns a fresh `Compilation` each time (the
previous ones stay valid). An engine is not thread-safe: one update at a time.

How it works. A story is cut into declarations (`storyc.compiler.decls`); a declaration
whose text did not change is not parsed again, wherever it moved. Everything but scenes
(project block, `let`s, defaults, assets, elements, styles, cuts: the shared part) is
resolved together by the real resolver (`Resolver.prepare`), again only when one of
those declarations or a file they read changed. Each scene is a unit: resolved
(`Resolver.scene`), checked and lowered on its own, and kept with exactly what it
consulted, recorded while it ran: each name it looked up (kind, and for an asset,
element or style what it resolved to), the project and defaults layers, each `let` its
prompt template names, each file it names, the declarations its diagnostics point into.
A unit is computed again when its own text changed or one of those did; units that
stay keep their diagnostics relative to their declarations, so they follow when text
above them grows. Then the whole-project parts (order, cycles, cuts, unused names,
media limits, which scenes errors block) are assembled from the units, as
`compile_project` assembles them from the model.

Stories the engine does not take apart (a syntax error, a name declared twice) are
compiled whole, exactly as `compile_project` does.
"""

from __future__ import annotations

import gc
import os
import re
import stat
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from storyc import targets
from storyc.base.diagnostics import Diagnostic, Diagnostics, SourceMap, Span
from storyc.base.fsio import Sig, settled_sig, sig_of, stat_sig, where_value
from storyc.base.hashing import DigestCache
from storyc.base.reading import read_regular_stat
from storyc.check import graph as graph_mod
from storyc.check import rules
from storyc.check.taint import DeclInfo
from storyc.compiler import Compilation, _lower, known_targets
from storyc.compiler.assembly import Assembler
from storyc.compiler.decls import NAMED, Anchor, FileDecls, read_file
from storyc.compiler.units import (
    ABSENT,
    Encoder,
    Unit,
    digest,
    plain,
)
from storyc.lang import ast
from storyc.lang.discovery import ENTRY_NAME, MAX_STORY_BYTES
from storyc.lang.loader import Loaded, LoadedFile, ParseCache, is_inside, load
from storyc.lang.parser import ParseResult
from storyc.resolve.context import Layer, Named, Names
from storyc.resolve.files import FileResolver
from storyc.resolve.model import LocalFile, Project, RemoteFile
from storyc.resolve.resolver import Resolver
from storyc.resolve.templating import has_template_syntax

# A tag ends at the first `}}`/`%}` outside a quoted string: `{{ "}}" ~ city }}` names `city`.
_QUOTED = r"\"(?:[^\"\\]|\\.)*\"|'(?:[^'\\]|\\.)*'"
_TAG = re.compile(
    rf"\{{\{{(?:{_QUOTED}|[^\"'])*?\}}\}}|\{{%(?:{_QUOTED}|[^\"'])*?%\}}",
    re.S,
)
_TAG_PLAIN = re.compile(r"\{\{.*?\}\}|\{%.*?%\}", re.S)
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def registry_signature() -> str:
    """The targets a story may name and how each lowers (name, schema, class)."""
    try:
        found = [(n, targets.get(n)) for n in targets.names()]
    except Exception:  # a broken target module: compile_project then accepts any name
        return "unavailable"
    return digest(
        *(f"{n}|{t.schema}|{type(t).__module__}.{type(t).__qualname__}" for n, t in found)
    )


@dataclass
class Stats:
    """What one `update` did: the cost of an edit, for tests and benchmarks."""

    files_read: int = 0
    regions_parsed: int = 0
    shell_runs: int = 0
    resolved: list[str] = field(default_factory=list)  # scenes resolved again
    lowered: list[str] = field(default_factory=list)  # scenes lowered again
    whole: bool = False  # compiled whole (a story the engine does not take apart)
    reloaded: bool = False  # the story files were not all read again (see `Engine._reload`)


# -- what the real resolver is given ----------------------------------------------------------


def _find_anchor(
    index: Index, files: Mapping[str, FileDecls], ident: str
) -> tuple[FileDecls, int] | None:
    """The declaration an anchor names: `n:NAME`, or `k:LABEL:KIND:K` (the K-th
    declaration of KIND in the file LABEL)."""
    if ident.startswith("n:"):
        loc = index.named.get(ident[2:])
        return (files[loc[0]], loc[1]) if loc is not None else None
    label, kind, k = ident[2:].rsplit(":", 2)
    path = index.label_path.get(label)
    fd = files.get(path) if path is not None else None
    if fd is None or fd.decls is None:
        return None
    n = int(k)
    for i, d in enumerate(fd.decls):
        if d.kind == kind:
            if n == 0:
                return fd, i
            n -= 1
    return None


class AnchorView:
    """`Engine.anchors_now` as of one update (see `Engine.anchor_view`)."""

    def __init__(
        self,
        index: Index,
        files: dict[str, FileDecls],
        found: dict[str, tuple[FileDecls, int] | None],
    ) -> None:
        self.index, self.files, self.found = index, files, found

    def found_one(self, ident: str) -> tuple[FileDecls, int] | None:
        try:
            return self.found[ident]
        except KeyError:
            hit = self.found[ident] = _find_anchor(self.index, self.files, ident)
            return hit

    def anchors(self, unit: Unit) -> list[tuple[str, Anchor] | None]:
        out: list[tuple[str, Anchor] | None] = []
        for ident in unit.anchors:
            hit = self.found_one(ident)
            out.append((hit[0].label, hit[0].anchor(hit[1])) if hit else None)
        return out

    def labels(self, unit: Unit) -> frozenset[str]:
        """The files `unit`'s anchors are in: with the same index, the same (which
        declarations each file holds, and in which order, is part of the index)."""
        kept = unit.labels_at
        if kept is not None and kept[0] is self.index and kept[1] == len(unit.anchors):
            return kept[2]  # type: ignore[no-any-return]
        labels = frozenset(
            hit[0].label for ident in unit.anchors if (hit := self.found_one(ident)) is not None
        )
        unit.labels_at = (self.index, len(unit.anchors), labels)
        return labels


def _includes(tree: ast.File) -> list[tuple[int, str]]:
    """Where a file's includes are and what they name."""
    return [(i, d.path.value) for i, d in enumerate(tree.items) if isinstance(d, ast.Include)]


def _entry_at_once(path: Path, loaded: Loaded) -> bool:
    """Whether `path` names the entry file of `loaded` itself, or the folder holding it
    as `main.story`: then the entry stays the same while that file is there (a folder
    searched further can find another one when a file appears)."""
    if not loaded.files:
        return False
    entry = loaded.files[0].abs_path
    try:
        if path.is_dir():
            return entry == os.path.join(os.path.realpath(path), ENTRY_NAME)
        return entry == os.path.realpath(path)
    except OSError:
        return False


class _Parses(ParseCache):
    """The loader's parse cache: files become `FileDecls`; the trees the loader and the
    resolver see hold every declaration but scenes (`full`: every declaration)."""

    def __init__(self, engine: Engine, *, full: bool = False) -> None:
        super().__init__()
        self.engine = engine
        self.full = full

    def parse(self, abs_path: str, label: str, text: str) -> ParseResult:
        fd = self.engine._read(abs_path, label, text)
        if fd.decls is None:
            assert fd.whole is not None
            return fd.whole
        if self.full:
            return ParseResult(ast.File(label, fd.items()))
        return ParseResult(ast.File(label, self.engine._shared_items(abs_path, fd)[0]))


class _Names(Names):
    """The resolver's name table: shared declarations it collects itself, scenes from the
    engine's index; every lookup is recorded while `trace` is set."""

    def __init__(self, engine: Engine) -> None:
        super().__init__()
        self.engine = engine
        self.trace: set[str] | None = None
        self.pooled = False

    def get(self, key: str, default: Any = None) -> Any:
        if self.trace is not None:
            self.trace.add(key)
        hit = dict.get(self, key)
        if hit is None:
            hit = self.engine._scene_named(key)
        return default if hit is None else hit

    def __getitem__(self, key: str) -> Named:
        hit = self.get(key)
        if hit is None:
            raise KeyError(key)
        return hit  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self.get(key) is not None

    def pool(self, kinds: tuple[str, ...]) -> list[str]:
        self.pooled = True
        return self.engine._pool(kinds)


class _SceneNames:
    """`name in scenes` for `graph.scene_edges`, recorded like any lookup."""

    def __init__(self, names: _Names) -> None:
        self.names = names

    def __contains__(self, name: object) -> bool:
        hit = self.names.get(name) if isinstance(name, str) else None
        return hit is not None and hit.kind == "scene"


class _Files(FileResolver):
    def __init__(
        self, root: Path, digests: DigestCache, allowed: tuple[str, ...] | None = None
    ) -> None:
        super().__init__(root, digests, allowed)
        self.trace: set[str] | None = None

    def source(
        self, written: str, base_dir: Path, kind: Any, span: Span, diags: Diagnostics
    ) -> LocalFile | RemoteFile | None:
        text = written.strip()
        if self.trace is not None and text:
            self.trace.add(os.path.normpath(os.path.join(base_dir, text)))
        return super().source(written, base_dir, kind, span, diags)


class _Templates:
    """Records which prompt templates a scene rendered (their names are its `let`s)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.trace: list[str] | None = None

    def render(self, source: str, variables: Mapping[str, object]) -> Any:
        if self.trace is not None:
            self.trace.append(source)
        return self.inner.render(source, variables)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)


@dataclass(eq=False)
class Index:
    """Where every declaration of the loaded story is, in declaration order."""

    key: Any
    scenes: list[str]  # declaration order (first declarations)
    pos: dict[str, int]  # scene -> its place in `scenes`
    named: dict[str, tuple[str, int]]  # name -> (abs path, decl index), first declaration
    kinds: dict[str, str]  # name -> kind, declaration order
    lets: list[tuple[str, int]]  # every `let`, declaration order
    layers: list[tuple[str, int]]  # project and defaults blocks, declaration order
    files: list[str]  # abs paths in loading order
    label_path: dict[str, str]  # label -> abs path
    by_label: dict[str, list[str]]  # label -> its scenes, declaration order
    twice: bool  # a name is declared twice
    pools: dict[tuple[str, ...], list[str]] = field(default_factory=dict)


@dataclass(eq=False)
class Shell:
    """The shared part, resolved: the prepared resolver scenes are resolved against."""

    key: Any
    deps: dict[str, str]
    resolver: Resolver
    diags: list[Diagnostic]
    used: set[str]
    facts: dict[str, str]  # dep id -> value, for shared names, "base", "let:*", "lets"
    project: Project  # what rules and lowering see of the project (no scenes)
    generation: int


class Engine:
    """Compiles one project again and again; see the module docstring."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        target: str | None = None,
        digests: DigestCache | None = None,
    ) -> None:
        self.path = Path(path)
        self.target = target
        self.digests = digests if digests is not None else DigestCache()
        self.overlays: dict[str, str] = {}
        self.files: dict[str, FileDecls] = {}  # abs path -> declarations
        self.units: dict[str, Unit] = {}
        self.shell: Shell | None = None
        self.index: Index | None = None
        self.stats = Stats()
        self.generation = 0
        self.registry = registry_signature()
        self.values: dict[str, str] = {}  # every unit's dependency -> its value last time
        self.edges_version = 0  # bumped when a scene's edges change
        self.media_version = 0  # bumped when the local files a scene names change
        self.foreign: dict[str, set[str]] = {}  # label -> scenes elsewhere with diagnostics there
        self.assembler = Assembler()
        self._dependents: dict[str, set[str]] | None = None
        self._used: Counter[str] = Counter()
        self._named: dict[str, tuple[Any, Named]] = {}
        self._shared: dict[str, tuple[FileDecls, list[ast.Decl], list[int]]] = {}
        self._shapes: dict[str, tuple[FileDecls, Any]] = {}
        self._seen: dict[str, FileDecls] = {}  # files as the last update saw them
        self._last_index: Index | None = None
        self._loaded: Loaded | None = None
        self._lf: dict[str, LoadedFile] = {}
        self._anchors: dict[str, tuple[FileDecls, int] | None] = {}  # this update's
        self.reads: dict[str, bool] = {}  # story files the last update tried to read
        # story file -> its signature when the text the engine holds was read, once that
        # signature is settled (see `_reload`)
        self._disk: dict[str, Sig] = {}
        self._reloadable = False  # the last load can be brought up to date file by file
        self.saved: dict[str, Any] = {}  # what storyc.compiler.state last wrote, per file
        self.parses = 0  # declarations (or whole files) parsed in this engine's life
        # freeze what each update makes (storyc.base.memory): for a process that settles
        # after each command or save anyway (watch, the daemon, the language server)
        self.settle = False
        # whole-file parses made already (by `compile_project`, for a state builder): a
        # file read with exactly that text is taken apart from it, not parsed again
        self.parsed: ParseCache | None = None
        self._file_values: dict[str, str] = {}  # this update's (see `_file_value`)
        self._folders: dict[str, str] = {}
        # for the assembly, kept as units come and go (not a pass over every unit):
        self.label_versions: Counter[str] = Counter()  # label -> changes to its units
        self.res_errors: set[str] = set()  # scenes whose unit has front-end errors
        self._version = 0

    # -- the API ---------------------------------------------------------------------------

    def update(
        self,
        overlays: Mapping[str, str | None] | None = None,
        *,
        scenes: list[str] | None = None,
        replace: bool = False,
    ) -> Compilation:
        """Compile with the files as they are now, `overlays` (path -> text, or None to drop
        an earlier one) read instead of the files they name; with `replace`, `overlays`
        are all the buffers there are (a language server's open documents). `scenes`
        restricts checking and lowering as `compile_project(scenes=...)` does."""
        if replace:
            self.overlays = {}
        for path, text in (overlays or {}).items():
            key = os.path.normpath(os.path.abspath(path))
            if text is None:
                self.overlays.pop(key, None)
            else:
                self.overlays[key] = text
        was_enabled = gc.isenabled()
        gc.disable()  # as in compile_project: many small acyclic objects
        try:
            return self._update(scenes)
        finally:
            if self.settle:
                # A long-lived process: what this update made joins the settled objects
                # before the collector can run (see storyc.base.memory). The first
                # collection after an update otherwise walks its new lists and maps of
                # every scene, whose members are cold by then: 2-7 ms a save at 10,000.
                gc.freeze()
            if was_enabled:
                gc.enable()

    def path_of(self, label: str) -> str | None:
        """The absolute path of the story file shown as `label` in spans."""
        return self.index.label_path.get(label) if self.index is not None else None

    # -- reading ---------------------------------------------------------------------------

    def _read_bytes(self, abs_path: str) -> bytes:
        try:
            # never a FIFO, never 3 GB
            data, st = read_regular_stat(abs_path, MAX_STORY_BYTES)
        except OSError:
            self.reads[abs_path] = False  # a story file that may appear later
            self._disk.pop(abs_path, None)
            raise
        self.reads[abs_path] = True
        sig = sig_of(st)  # taken before the read: a write after it changes the signature
        if settled_sig(sig, time.time_ns()):
            self._disk[abs_path] = sig
        else:
            self._disk.pop(abs_path, None)  # read again next time
        return data

    def _reload(self) -> Loaded | None:
        """The last load brought up to date without reading every story file again: each
        file's signature is compared with the one it was read under, and only the files
        that changed are read and parsed. For a clean last load (no overlays, no
        diagnostics, the entry found at once) when only included files changed, each
        parsing cleanly and keeping its includes as they were; None otherwise (a whole
        load then decides and reports). A file whose signature was not settled when it
        was read counts as changed."""
        last = self._loaded
        if last is None or not self._reloadable or self.overlays or last.root is None:
            return None
        files: list[LoadedFile] = []
        cache = _Parses(self)
        for k, lf in enumerate(last.files):
            sig = stat_sig(lf.abs_path)
            if sig is not None and self._disk.get(lf.abs_path) == sig:
                files.append(lf)
                self.reads[lf.abs_path] = True
                continue
            if k == 0 or not is_inside(os.path.realpath(lf.abs_path), last.allowed):
                return None  # the entry (its project block, its includes) or a way out
            try:
                text = self._read_bytes(lf.abs_path).decode("utf-8").removeprefix("\ufeff")
            except (OSError, UnicodeDecodeError):
                return None
            result = cache.parse(lf.abs_path, lf.label, text)
            if result.diagnostics or _includes(result.file) != _includes(lf.tree):
                return None
            files.append(LoadedFile(lf.label, lf.abs_path, text, result.file, dict(lf.includes)))
        self.stats.reloaded = True
        sources = SourceMap({f.label: f.text for f in files})
        return Loaded(last.root, last.entry, files, sources, Diagnostics(), last.allowed)

    def _read(self, abs_path: str, label: str, text: str) -> FileDecls:
        old = self.files.get(abs_path)
        given = self.parsed.known(abs_path, label, text) if self.parsed is not None else None
        fd = read_file(label, text, old, given)
        if fd is not old:
            self.stats.regions_parsed += fd.parses
            self.parses += fd.parses
            self.files[abs_path] = fd
        self.stats.files_read += 1
        return fd

    def _shared_items(self, abs_path: str, fd: FileDecls) -> tuple[list[ast.Decl], list[int]]:
        hit = self._shared.get(abs_path)
        if hit is not None and hit[0] is fd:
            return hit[1], hit[2]
        assert fd.decls is not None
        idx = [i for i, d in enumerate(fd.decls) if d.kind != "scene"]
        items = fd.nodes(idx)
        self._shared[abs_path] = (fd, items, idx)
        return items, idx

    def _shape(self, abs_path: str, fd: FileDecls) -> Any:
        hit = self._shapes.get(abs_path)
        if hit is not None and hit[0] is fd:
            return hit[1]
        shape = tuple((d.kind, d.name) for d in fd.decls or ())
        self._shapes[abs_path] = (fd, shape)
        return shape

    # -- one update -----------------------------------------------------------------------

    def _update(self, scenes: list[str] | None) -> Compilation:
        self.generation += 1
        self._file_values = {}
        self._folders = {}  # this update's real folders (see `where_value`)
        self.stats = Stats()
        self._anchors = {}  # a new one: an AnchorView of the last update keeps its own
        self.reads = {}
        loaded = self._reload()
        if loaded is None:
            loaded = load(
                self.path,
                cache=_Parses(self),
                overlays=self.overlays or None,
                read=self._read_bytes,
            )
            self._reloadable = (
                not self.overlays
                and loaded.complete
                and not loaded.diagnostics
                and _entry_at_once(self.path, loaded)
            )
        self._loaded = loaded
        self._lf = {lf.abs_path: lf for lf in loaded.files}
        base = Diagnostics()
        base.extend(loaded.diagnostics)
        if loaded.entry is None:
            return Compilation(None, {}, [], base.sorted(), loaded.sources, found=False)
        if not loaded.complete:
            return Compilation(None, {}, [], base.sorted(), loaded.sources)
        index = self._index_of(loaded)
        if index.twice or any(not self.files[p].ok for p in index.files):
            return self._whole(scenes)
        shell, rerun = self._shell_for(loaded, index)
        changed = set(self._dirty(index, shell, rerun))
        if changed:
            self._resolve(sorted(changed, key=index.pos.__getitem__), loaded, index, shell)
        self._seen = {p: self.files[p] for p in index.files}
        return self.assembler.run(self, loaded, shell, scenes, list(base), changed)

    def _whole(self, scenes: list[str] | None) -> Compilation:
        """The story as `compile_project` compiles it, from the engine's trees."""
        from storyc.compiler import _compile

        self.stats.whole = True
        self.shell = None
        self.index = None
        self._last_index = None
        for name in list(self.units):
            self._drop(name)
        self.values.clear()
        self._dependents = None
        self.assembler = Assembler()
        return _compile(
            self.path,
            target=self.target,
            scenes=scenes,
            parse_cache=_Parses(self, full=True),
            digests=self.digests,
            overlays=self.overlays or None,
            read=self._read_bytes,
        )

    # -- the index --------------------------------------------------------------------------

    def index_key(self) -> int:
        return id(self.index)

    def _index_of(self, loaded: Loaded) -> Index:
        files = [lf.abs_path for lf in loaded.files]
        key = (
            loaded.entry,
            tuple(
                (lf.label, lf.abs_path, tuple(sorted(lf.includes.items()))) for lf in loaded.files
            ),
            tuple(self._shape(p, self.files[p]) for p in files),
        )
        if self.index is not None and self.index.key == key:
            return self.index
        by_label = {lf.label: lf for lf in loaded.files}
        scenes: list[str] = []
        named: dict[str, tuple[str, int]] = {}
        kinds: dict[str, str] = {}
        lets: list[tuple[str, int]] = []
        layers: list[tuple[str, int]] = []
        scenes_of: dict[str, list[str]] = {lf.label: [] for lf in loaded.files}
        twice = False
        seen: set[str] = set()

        def walk(lf: LoadedFile) -> None:
            nonlocal twice
            seen.add(lf.label)
            fd = self.files[lf.abs_path]
            if fd.decls is None:
                return
            _, idx = self._shared_items(lf.abs_path, fd)
            includes = {idx[k]: label for k, label in lf.includes.items()}
            for i, d in enumerate(fd.decls):
                if d.kind == "include":
                    target = by_label.get(includes.get(i, ""))
                    if target is not None and target.label not in seen:
                        walk(target)
                elif d.kind in NAMED:
                    if d.name in named:
                        twice = True
                        continue
                    named[d.name] = (lf.abs_path, i)
                    kinds[d.name] = d.kind
                    if d.kind == "scene":
                        scenes.append(d.name)
                        scenes_of[lf.label].append(d.name)
                elif d.kind == "let":
                    lets.append((lf.abs_path, i))
                elif d.kind in ("project", "defaults"):
                    layers.append((lf.abs_path, i))

        if loaded.files:
            walk(loaded.files[0])
        self.index = Index(
            key,
            scenes,
            {n: i for i, n in enumerate(scenes)},
            named,
            kinds,
            lets,
            layers,
            files,
            {lf.label: lf.abs_path for lf in loaded.files},
            scenes_of,
            twice,
        )
        self._named.clear()
        return self.index

    def _scene_named(self, name: str) -> Named | None:
        index = self.index
        loc = index.named.get(name) if index is not None else None
        if loc is None or index is None or index.kinds.get(name) != "scene":
            return None
        fd = self.files[loc[0]]
        assert fd.decls is not None
        where = (id(fd), fd.anchor(loc[1]))
        hit = self._named.get(name)
        if hit is not None and hit[0] == where:
            return hit[1]
        span = fd.name_span(loc[1])
        assert span is not None
        d = fd.decls[loc[1]]
        node = d.node if d.node is not None and d.node_at == where[1] else None
        decl = node if node is not None else ast.SceneDecl(name, span, None, [])
        named = Named("scene", decl, self._lf[loc[0]], span)
        self._named[name] = (where, named)
        return named

    def _pool(self, kinds: tuple[str, ...]) -> list[str]:
        index = self.index
        assert index is not None
        hit = index.pools.get(kinds)
        if hit is None:
            hit = index.pools[kinds] = [n for n, k in index.kinds.items() if k in kinds]
        return hit

    def scene_span(self, name: str) -> Span:
        assert self.index is not None
        abs_path, i = self.index.named[name]
        span = self.files[abs_path].name_span(i)
        assert span is not None
        return span

    def file_decls(self, path: str) -> FileDecls:
        return self.files[path]

    def file_identity(self, label: str) -> int:
        path = self.index.label_path.get(label) if self.index is not None else None
        return id(self.files.get(path)) if path is not None else 0

    def regions(self) -> dict[str, list[DeclInfo]]:
        """Each file's declarations for `storyc.check.taint`, files in loading order."""
        assert self.index is not None
        out: dict[str, list[DeclInfo]] = {}
        for p in self.index.files:
            fd = self.files[p]
            infos = [fd.taint(i) for i in range(len(fd.decls or ()))]
            out[fd.label] = sorted(infos, key=lambda x: x.start)
        return out

    def scene_length(self, name: str, _seen: frozenset[str] = frozenset()) -> float | None:
        """`storyc.check.graph.scene_length`, from the units' length facts."""
        unit = self.units.get(name)
        if unit is None or name in _seen:
            return None
        fact = (unit.length[0], unit.length[1])
        return graph_mod.length_from(fact, lambda up: self.scene_length(up, _seen | {name}))

    def used_names(self) -> set[str]:
        return {n for n, c in self._used.items() if c > 0}

    # -- the shared part ---------------------------------------------------------------------

    def shell_generation(self, foreign: bool) -> int:
        """For keys of what points into shared declarations (those move with the shell)."""
        return self.shell.generation if foreign and self.shell is not None else 0

    def _shell_for(self, loaded: Loaded, index: Index) -> tuple[Shell, bool]:
        parts = []
        for p in index.files:
            fd = self.files[p]
            assert fd.decls is not None
            _, shared = self._shared_items(p, fd)
            parts.append(tuple((fd.decls[i].fp, fd.anchor(i)) for i in shared))
        key = (index.key, tuple(parts), self.registry, str(loaded.root), loaded.allowed)
        shell = self.shell
        if (
            shell is not None
            and shell.key == key
            and all(self._value(d) == v for d, v in shell.deps.items())
        ):
            shell.resolver.loaded = loaded
            return shell, False
        self.shell = shell = self._run_shell(loaded, index, key)
        return shell, True

    def _run_shell(self, loaded: Loaded, index: Index, key: Any) -> Shell:
        self.stats.shell_runs += 1
        assert loaded.root is not None
        names = _Names(self)
        files = _Files(loaded.root, self.digests, loaded.allowed or None)
        diags = Diagnostics()
        resolver = Resolver(loaded, diags, self.digests, known_targets(), names=names, files=files)
        trace: set[str] = set()
        paths: set[str] = set()
        names.trace, files.trace = trace, paths
        resolver.prepare()
        names.trace = files.trace = None
        sr = resolver.sr
        assert sr is not None
        sr.templates = _Templates(sr.templates)  # type: ignore[assignment]
        collected = dict.keys(names)
        deps = {f"k:{n}": index.kinds.get(n, ABSENT) for n in trace if n not in collected}
        deps.update({f"f:{p}": self._file_value(p) for p in paths})
        if names.pooled:
            deps["pool"] = self._pool_value()
        facts = self._facts(resolver, index)
        project = resolver.project({}, {})
        return Shell(
            key, deps, resolver, list(diags), set(resolver.used), facts, project, self.generation
        )

    def _facts(self, resolver: Resolver, index: Index) -> dict[str, str]:
        """What a scene receives from each shared declaration, without positions."""
        sr = resolver.sr
        assert sr is not None
        saved = (resolver.diags, sr.diags)
        resolver.diags = sr.diags = Diagnostics()  # checked by prepare(): nothing is new

        def layer_sig(layer: Layer) -> Any:
            return {k: plain(sr.resolved(s, layer.file)) for k, s in layer.settings.items()}

        # digest of a style chain up to a layer, by the layer (see chain_sig), and the
        # chain's length there
        prefix: dict[int, tuple[int, str]] = {}

        def chain_sig(layers: list[Layer]) -> str:
            """The digest of the settings of `layers`, in order. The resolver makes a
            style's chain as its parent's with the style's own layer after it (the very
            objects: storyc.resolve.scene `_style_chain`), so a layer is always preceded by
            the same layers, and each chain's digest continues its parent's: a chain
            thousands deep costs its length once, not its length per style."""
            k = len(layers)
            while k and (hit := prefix.get(id(layers[k - 1]))) is None:
                k -= 1
            d = ""
            if k and hit is not None and hit[0] == k:
                d = hit[1]
            else:  # not as the resolver makes chains: digest this one whole
                k = 0
            for i in range(k, len(layers)):
                d = digest(d, layer_sig(layers[i]))
                prefix[id(layers[i])] = (i + 1, d)
            return d

        def fp_of(loc: tuple[str, int]) -> str:
            decls = self.files[loc[0]].decls
            assert decls is not None
            return decls[loc[1]].fp

        facts: dict[str, str] = {}
        chains = self._style_chains(index)
        try:
            for name, kind in index.kinds.items():
                if kind in ("scene", "cut"):
                    continue
                fp = fp_of(index.named[name])
                if kind in ("image", "video"):
                    asset = resolver.assets.get(name)
                    facts[f"n:{name}"] = digest(kind, fp, repr(asset.source) if asset else ABSENT)
                elif kind == "element":
                    el = resolver.elements.get(name)
                    sig = plain([el.frontal, *el.refs, el.description]) if el else ABSENT
                    facts[f"n:{name}"] = digest(kind, fp, sig)
                elif kind == "style":
                    layers = sr.style_layers(name)
                    sigs = chain_sig(layers) if layers is not None else ABSENT
                    facts[f"n:{name}"] = digest(kind, chains[name], sigs)
            facts["base"] = digest(
                [fp_of(loc) for loc in index.layers], [layer_sig(x) for x in sr.base]
            )
            lets: dict[str, str] = {}
            for loc in index.lets:
                decls = self.files[loc[0]].decls
                assert decls is not None
                lets.setdefault(decls[loc[1]].name, decls[loc[1]].fp)
            facts.update({f"let:{n}": fp for n, fp in lets.items()})
            facts["lets"] = digest(sorted(lets))
        finally:
            resolver.diags, sr.diags = saved
        return facts

    def _style_chains(self, index: Index) -> dict[str, str]:
        """For each style, a digest of `name:kind[:fingerprint]` of the style and of every
        name its chain may reach (parents and `use`): what a scene using it depends on.

        All styles at once, in time linear in their number: each style's reach listed on
        its own was quadratic (40 s for a hostile chain of 3,000 styles, where a compile
        from scratch takes 0.3 s). A style's digest is that of its strongly connected
        component (`storyc.check.graph._scc`, the graph's own iterative Tarjan): the component's
        members and the digests of the components it reaches. Equal reaches give equal
        digests and different ones different digests, because what a style reaches is
        named in its own text, which its fingerprint covers."""
        entry: dict[str, str] = {}
        succ: dict[str, list[str]] = {}
        styles = [n for n, k in index.kinds.items() if k == "style"]
        todo = list(styles)
        while todo:  # every name a style may reach, with what it names in turn
            n = todo.pop()
            if n in entry:
                continue
            kind = index.kinds.get(n, ABSENT)
            loc = index.named.get(n)
            if kind != "style" or loc is None:
                entry[n], succ[n] = f"{n}:{kind}", []
                continue
            fd = self.files[loc[0]]
            assert fd.decls is not None
            node = fd.node(loc[1])
            assert isinstance(node, ast.StyleDecl)
            entry[n] = f"{n}:style:{fd.decls[loc[1]].fp}"
            succ[n] = [node.parent.name] if node.parent is not None else []
            succ[n] += [
                s.value.name
                for s in node.settings
                if s.name == "use" and isinstance(s.value, ast.Ref)
            ]
            todo.extend(succ[n])
        out: dict[str, str] = {}
        # Tarjan's components come out with every component they reach before them
        for members in graph_mod._scc(styles, succ):
            inside = set(members)
            below = sorted({out[x] for m in members for x in succ[m] if x not in inside})
            d = digest(sorted(entry[m] for m in members), below)
            for m in members:
                out[m] = d
        return out

    # -- dependencies ------------------------------------------------------------------------------

    def _file_value(self, path: str) -> str:
        """What a file a scene or the shared part names is now: stat-keyed, and asked for
        once per update (the shared part and the units both depend on every asset)."""
        hit = self._file_values.get(path)
        if hit is None:
            hit = self._file_values[path] = self._file_value_now(path)
        return hit

    def _file_value_now(self, path: str) -> str:
        try:
            st = os.stat(path)
        except OSError:
            return ABSENT
        if not stat.S_ISREG(st.st_mode):
            return "not-a-file"
        try:
            return f"{st.st_size}:{self.digests.digest(path, st)}{where_value(path, self._folders)}"
        except OSError:
            return "unreadable"

    def _pool_value(self) -> str:
        assert self.index is not None
        return digest(list(self.index.kinds.items()))

    def _anchor_of(self, ident: str) -> tuple[FileDecls, int] | None:
        """The declaration an anchor names (see `_find_anchor`), found once an update."""
        assert self.index is not None
        return AnchorView(self.index, self.files, self._anchors).found_one(ident)

    def anchor_view(self) -> AnchorView:
        """Where the declarations are at this update, for spans decoded later, when the
        engine may have moved on (each update has its own cache of found anchors; files
        are immutable versions)."""
        assert self.index is not None
        return AnchorView(self.index, dict(self.files), self._anchors)

    def _identity(self, fd: FileDecls, i: int) -> str:
        assert fd.decls is not None and self.index is not None
        d = fd.decls[i]
        if d.kind in NAMED and self.index.named.get(d.name) == (self.index.label_path[fd.label], i):
            return f"n:{d.name}"
        k = sum(1 for x in fd.decls[:i] if x.kind == d.kind)
        return f"k:{fd.label}:{d.kind}:{k}"

    def _locate(self, span: Span) -> tuple[str, Anchor] | None:
        assert self.index is not None
        path = self.index.label_path.get(span.file)
        fd = self.files.get(path) if path is not None else None
        if fd is None or not fd.decls:
            return None
        i = fd.index_at(span.start)
        if i < 0:
            return None
        return self._identity(fd, i), fd.anchor(i)

    def anchor_files(self, unit: Unit) -> list[FileDecls | None]:
        out: list[FileDecls | None] = []
        for ident in unit.anchors:
            found = self._anchor_of(ident)
            out.append(found[0] if found is not None else None)
        return out

    def anchors_now(self, unit: Unit) -> list[tuple[str, Anchor] | None]:
        assert self.index is not None
        # the same placing as a kept view, over the live files and this update's cache
        return AnchorView(self.index, self.files, self._anchors).anchors(unit)

    def _value(self, dep: str) -> str:
        """What `dep` is now (spelt as a unit records it)."""
        kind, _, arg = dep.partition(":")
        index = self.index
        assert index is not None
        if kind == "k":
            return index.kinds.get(arg, ABSENT)
        if kind == "n":
            k = index.kinds.get(arg)
            if k is None:
                return ABSENT
            if k in ("scene", "cut"):
                return k
            return self.shell.facts.get(dep, ABSENT) if self.shell is not None else ABSENT
        if kind == "f":
            return self._file_value(arg)
        if kind == "at":
            found = self._anchor_of(arg)
            if found is None:
                return ABSENT
            fd, i = found
            assert fd.decls is not None
            return f"{fd.label}:{fd.decls[i].fp}"
        if kind == "text":
            path = index.label_path.get(arg)
            text_of = self.files.get(path) if path is not None else None
            return digest(text_of.text) if text_of is not None else ABSENT
        if dep == "pool":
            return self._pool_value()
        return self.shell.facts.get(dep, ABSENT) if self.shell is not None else ABSENT

    def _dirty(self, index: Index, shell: Shell, rerun: bool) -> list[str]:
        """Scenes to resolve again: new, edited, or something they consulted changed."""
        dirty: set[str] = set()
        structure = index is not self._last_index
        self._last_index = index
        changed_files = [p for p in index.files if self._seen.get(p) is not self.files[p]]
        if structure:
            present = set(index.scenes)
            for name in [n for n in self.units if n not in present]:
                self._drop(name)
            candidates: list[str] = index.scenes
        else:
            candidates = [n for p in changed_files for n in index.by_label[self.files[p].label]]
        for name in candidates:
            unit = self.units.get(name)
            abs_path, i = index.named[name]
            fd = self.files[abs_path]
            assert fd.decls is not None
            if unit is None or unit.fp != fd.decls[i].fp or unit.label != fd.label:
                dirty.add(name)
        moved = bool(changed_files) or structure
        # With the same index, a declaration (`at:`) or a file's text (`text:`) can only
        # have changed in a file that changed: the others are the very same versions.
        moved_paths = set(changed_files)
        moved_labels = {self.files[p].label for p in changed_files}

        def in_moved(d: str) -> bool:
            if structure:
                return True
            if d.startswith("text:"):
                return d[5:] in moved_labels
            ident = d[3:]
            if ident.startswith("n:"):
                loc = index.named.get(ident[2:])
                return loc is None or loc[0] in moved_paths
            return ident[2:].rsplit(":", 2)[0] in moved_labels

        changed_deps = [
            d
            for d, v in self.values.items()
            if (
                d.startswith("f:")
                or ((rerun or structure) and not d.startswith(("f:", "at:", "text:")))
                or (moved and d.startswith(("at:", "text:")) and in_moved(d))
            )
            and self._value(d) != v
        ]
        if changed_deps:
            dependents = self._dependents_index()
            for d in changed_deps:
                dirty.update(n for n in dependents.get(d, ()) if n in index.named)
        return sorted(dirty, key=index.pos.__getitem__)

    def _dependents_index(self) -> dict[str, set[str]]:
        if self._dependents is None:
            dep: dict[str, set[str]] = {}
            for name, unit in self.units.items():
                for d in unit.deps:
                    dep.setdefault(d, set()).add(name)
            self._dependents = dep
        return self._dependents

    def _home(self, unit: Unit, *, remove: bool = False) -> None:
        """Keep `foreign` (label -> scenes of other files with diagnostics there)."""
        for label in unit.homes:
            if label == unit.label:
                continue
            if remove:
                self.foreign.get(label, set()).discard(unit.scene)
            else:
                self.foreign.setdefault(label, set()).add(unit.scene)

    def _drop(self, name: str, *, replaced: bool = False) -> None:
        unit = self.units.pop(name, None)
        if unit is None:
            return
        self.label_versions[unit.label] += 1
        self.res_errors.discard(name)
        self._home(unit, remove=True)
        self._used.subtract(unit.used)
        if not replaced:
            self.edges_version += 1
            self.media_version += 1
        if self._dependents is not None:
            for d in unit.deps:
                users = self._dependents.get(d)
                if users is not None:
                    users.discard(name)

    def keep(self, unit: Unit) -> None:
        """Make `unit` its scene's current unit."""
        old = self.units.get(unit.scene)
        if old is None or old.pairs() != unit.pairs():
            self.edges_version += 1
        if old is None or [m[0] for m in old.media] != [m[0] for m in unit.media]:
            self.media_version += 1
        self._drop(unit.scene, replaced=True)
        self._version += 1
        unit.version = self._version
        self.units[unit.scene] = unit
        self.label_versions[unit.label] += 1
        if unit.res_error:
            self.res_errors.add(unit.scene)
        self._used.update(unit.used)
        self._home(unit)
        self._record(unit)

    def _record(self, unit: Unit) -> None:
        for d, v in unit.deps.items():
            self.values[d] = v
            if self._dependents is not None:
                self._dependents.setdefault(d, set()).add(unit.scene)

    # -- units -------------------------------------------------------------------------------------

    def _resolve(self, dirty: list[str], loaded: Loaded, index: Index, shell: Shell) -> None:
        sr = shell.resolver.sr
        assert sr is not None
        sr.isolate()
        shell.resolver.files.forget()
        for name in dirty:
            self.keep(self._unit(name, index, shell))

    def _unit(self, name: str, index: Index, shell: Shell) -> Unit:
        """Resolve scene `name` against the shared part, recording what it consults."""
        self.stats.resolved.append(name)
        resolver = shell.resolver
        sr = resolver.sr
        names, files = resolver.names, resolver.files
        templates = sr.templates if sr is not None else None
        assert isinstance(names, _Names) and isinstance(files, _Files)
        assert isinstance(templates, _Templates)
        abs_path, i = index.named[name]
        fd = self.files[abs_path]
        assert fd.decls is not None
        node = fd.node(i)
        assert isinstance(node, ast.SceneDecl)
        trace: set[str] = set()
        paths: set[str] = set()
        sources: list[str] = []
        names.trace, files.trace, templates.trace = trace, paths, sources
        names.pooled = False
        res = Diagnostics()
        used: set[str] = set()
        edges_diags = Diagnostics()
        try:
            scene = resolver.scene(node, self._lf[abs_path], diags=res, used=used)
            edges, leaves = graph_mod.scene_edges(
                scene, resolver.elements, _SceneNames(names), edges_diags
            )
        finally:
            names.trace = files.trace = templates.trace = None
        media = []
        for f, span in rules.scene_files(scene):
            md = Diagnostics()
            rules.check_file(f, span, md)
            media.append((f.path, list(md)))
        enc = Encoder(f"n:{name}", fd.label, fd.anchor(i), fd.end(i), self._locate)
        deps: dict[str, str] = {"base": self._value("base")}
        deps.update({f"n:{n}": self._value(f"n:{n}") for n in trace})
        deps.update({f"f:{p}": self._file_value(p) for p in paths})
        for src in sources:
            if has_template_syntax(src):
                # quote-aware tags, and the plain ones too (an unterminated quote): a
                # name missed here is a `let` whose edit would leave this unit stale
                tags = _TAG.findall(src)
                tags += _TAG_PLAIN.findall(src)
                for tag in tags:
                    for ident in _IDENT.findall(tag):
                        deps[f"let:{ident}"] = self._value(f"let:{ident}")
        if names.pooled:
            deps["pool"] = self._pool_value()
        if any(d.code == "E121" for d in res):
            deps["lets"] = self._value("lets")
        unit = Unit(
            name,
            fd.label,
            fd.decls[i].fp,
            deps,
            enc.anchors,
            [enc.diag(d) for d in res],
            sorted(used),
            [[e.src, e.part, e.role, enc.span(e.span)] for e in edges],
            [list(x) for x in leaves],
            [enc.diag(d) for d in edges_diags],
            [[p, [enc.diag(d) for d in ds]] for p, ds in media],
            res_error=res.has_errors,
        )
        unit.homes = sorted(enc.homes)
        unit.length = list(graph_mod.length_fact(scene))
        unit.aspect = scene.aspect.value if scene.aspect is not None else None
        self._pointing(enc, deps)
        unit.model = scene
        unit.model_at = self._model_key(unit, shell)
        unit.model_gen = self.generation
        return unit

    def _pointing(self, enc: Encoder, deps: dict[str, str]) -> None:
        """A unit depends on the declarations its spans point into (and on the text of a
        file it points into outside every declaration)."""
        for ident in enc.anchors[1:]:
            deps[f"at:{ident}"] = self._value(f"at:{ident}")
        for label in enc.outside:
            deps[f"text:{label}"] = self._value(f"text:{label}")

    def _model_key(self, unit: Unit, shell: Shell) -> Any:
        return (shell.generation, tuple(self.anchors_now(unit)))

    def lower(self, unit: Unit, full: bool = True) -> None:
        """The model rules and lowering, for a scene that gets built or that a built one
        uses (resolved first, if this process has only its record). Not `full`: the rules
        only, for a scene whose front-end errors leave its model incomplete (it is never
        lowered; see `compile_project`)."""
        shell, index = self.shell, self.index
        assert shell is not None and index is not None
        # a model made in this very update is current (nothing has moved since)
        if unit.model is None or (
            unit.model_gen != self.generation and unit.model_at != self._model_key(unit, shell)
        ):
            fresh = self._unit(unit.scene, index, shell)
            unit.model, unit.model_at, unit.model_gen = fresh.model, fresh.model_at, fresh.model_gen
        self.stats.lowered.append(unit.scene)
        scene = unit.model
        assert scene is not None
        local = Diagnostics()
        rules.check_scene(scene, shell.project, local)
        n_rules = len(local)
        request = _lower(scene, shell.project, self.target, local) if full else None
        abs_path, i = index.named[unit.scene]
        fd = self.files[abs_path]
        enc = Encoder(
            f"n:{unit.scene}", fd.label, fd.anchor(i), fd.end(i), self._locate, unit.anchors
        )
        unit.low = [enc.diag(d) for d in local]
        unit.low_rules, unit.low_full = n_rules, full
        unit.anchors = enc.anchors
        self._home(unit, remove=True)
        unit.homes = sorted(set(unit.homes) | enc.homes)
        self._home(unit)
        self._pointing(enc, unit.deps)
        self._record(unit)
        unit._req = request
        unit.ok = full and request is not None and not local.has_errors
        self._version += 1
        unit.version = self._version
        self.label_versions[unit.label] += 1

    # -- the model, when asked for ---------------------------------------------------------------

    def model_maker(self, loaded: Loaded) -> Callable[[], Project | None]:
        """The project model of exactly the texts of this update, built on demand: from
        the units' models while the engine has not moved on (a scene whose model is
        stale is resolved again, alone), else by a compile of those texts."""
        texts = {lf.abs_path: lf.text for lf in loaded.files}
        path, digests, generation = self.path, self.digests, self.generation

        def make() -> Project | None:
            if self.generation == generation and self.shell is not None:
                return self._project()
            from storyc.compiler import frontend

            project, _, _ = frontend(path, digests=digests, overlays=texts)
            return project

        return make

    def _project(self) -> Project:
        shell, index = self.shell, self.index
        assert shell is not None and index is not None
        resolver = shell.resolver
        sr = resolver.sr
        assert sr is not None
        sr.isolate()
        scenes = {}
        for name in index.scenes:
            unit = self.units[name]
            key = self._model_key(unit, shell)
            if unit.model is None or unit.model_at != key:
                abs_path, i = index.named[name]
                node = self.files[abs_path].node(i)
                assert isinstance(node, ast.SceneDecl)
                unit.model = resolver.scene(
                    node, self._lf[abs_path], diags=Diagnostics(), used=set()
                )
                unit.model_at = key
            scenes[name] = unit.model
        saved = resolver.diags
        resolver.diags = Diagnostics()  # reported when this update assembled them
        try:
            cuts = resolver.cuts()
        finally:
            resolver.diags = saved
        return resolver.project(scenes, cuts)


def by_file(comp: Compilation) -> dict[str, list[Diagnostic]]:
    """Diagnostics by the label of the file they point into, for every story file of the
    compilation (a file without problems maps to an empty list, so an editor can clear
    it); diagnostics without a location are under ""."""
    out: dict[str, list[Diagnostic]] = {label: [] for label in comp.sources.texts}
    for d in comp.diagnostics:
        out.setdefault(d.span.file if d.span else "", []).append(d)
    return out
