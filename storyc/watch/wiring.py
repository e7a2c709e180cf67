"""Watch mode's connection to the pipeline: compile, plan and build, behind `Wiring`.

Stage: adapter between watch (storyc.watch.session) and the compiler, planner and
executor. In: the entry path and the session's options. Out: a `Wiring` whose
functions return watch's own small types (`Compiled`, `PlanView`, `BuildReport`).
I/O: through the pipeline (story files, asset headers, the store, rendering).

Kept apart so the session logic reads without the pipeline's details, and so the
one place that knows the other stages' types is short.

Which files a project depends on: every story file loaded, every local file the
resolved model uses, and — so that fixing a missing include or asset is noticed —
every quoted path in the story text that names a story or media file, resolved both
against the file that wrote it and against the project root.

Builds go through the same executor, store, journal and lock file as `storyc build`,
holding the project lock only while they run (a `storyc build` elsewhere is refused
politely, not waited for). Plans are incremental (storyc.watch.replan).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import re
import signal
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyc import backends
from storyc.backends import BackendOptions, SetupError
from storyc.base.diagnostics import to_json
from storyc.base.fsio import stat_sig
from storyc.base.hashing import DigestCache
from storyc.build.effects import ProjectIO
from storyc.build.executor import DONE, REUSED, STOPPED, BuildOptions, Executor
from storyc.build.outcome import upstream_closure
from storyc.build.progress import Reporter
from storyc.build.session import KEY_ENV, execute
from storyc.compiler import Compilation, background
from storyc.compiler.state import CompiledState
from storyc.plan import pricing
from storyc.plan.address import key_provider, resolve_base_url
from storyc.plan.planner import Plan, Planner, make_plan
from storyc.state.journal import Journal, JournalError
from storyc.state.lockfile import LockFile, LockFileError
from storyc.state.projectlock import ProjectLock, ProjectLocked
from storyc.state.store import Store
from storyc.watch.replan import IncrementalPlanner
from storyc.watch.session import BuildReport, Compiled, NotBuilt, PlanView, Wiring
from storyc.watch.watcher import StatSig

_QUOTED_PATH = re.compile(r'"([^"\n{}]+\.(?:story|png|jpe?g|webp|gif|mp4|mov))"', re.I)


def _mentioned(root: Path, label: str, text: str) -> set[Path]:
    """The story file itself and every path it quotes, resolved both ways."""
    story = Path(os.path.normpath(root / label))
    out = {story}
    for m in _QUOTED_PATH.finditer(text):
        rel = m.group(1)
        if "://" not in rel:
            out.add(Path(os.path.normpath(story.parent / rel)))
            out.add(Path(os.path.normpath(root / rel)))
    return out


class Mentions:
    """What `dependencies` remembers between refreshes: each story file's quoted paths
    (by its text) and the local files of the last summary (a path object per asset made
    once, not on every save: 1,000 assets cost 13 ms a refresh)."""

    def __init__(self) -> None:
        self.by_label: dict[str, tuple[str, set[Path]]] = {}
        self.local: tuple[tuple[str, ...], set[Path]] = ((), set())

    def clear(self) -> None:
        self.by_label.clear()
        self.local = ((), set())


def dependencies(comp: Compilation, root: Path, memo: Mentions | None = None) -> set[Path]:
    """Absolute paths of every file the compilation read or may read once it exists.
    `memo` spares re-scanning files whose text is unchanged."""
    memo = memo if memo is not None else Mentions()
    files: set[Path] = set()
    for label, text in comp.sources.texts.items():
        hit = memo.by_label.get(label)
        if hit is None or hit[0] != text:
            hit = memo.by_label[label] = (text, _mentioned(root, label, text))
        files |= hit[1]
    summary = comp.summary
    if summary is not None:
        local = tuple(summary.local_files)
        if local != memo.local[0]:
            memo.local = (local, {Path(p) for p in local})
        files |= memo.local[1]
    return files


class Compiler:
    """Compiles the same project again and again: an incremental engine
    (storyc.compiler.incremental) that recompiles only what a save changed, started from
    and kept in the project's compiled state."""

    def __init__(
        self, path: Path, *, target: str | None = None, digests: DigestCache | None = None
    ) -> None:
        self.path = Path(path).resolve()
        self.root = self.path if self.path.is_dir() else self.path.parent
        self.target = target
        self._mentions = Mentions()
        self.digests = (
            digests if digests is not None else DigestCache(self.root / ".storyc" / "digests.json")
        )
        self.state = CompiledState(self.root, self.path, target, self.digests)
        background.wait(self.state.dir)  # a state a command is making: start from it
        self.engine = self.state.engine()
        self.engine.settle = True  # the session settles after each refresh
        self.last: Compilation | None = None

    @property
    def parses(self) -> int:
        """Declarations (or whole files) parsed since the session started."""
        return self.engine.parses

    def compile(self) -> Compilation:
        comp = self.last = self.engine.update()
        return comp

    def save(self) -> None:
        """Keep the compiled state for the next command (best effort)."""
        if self.last is not None:
            self.state.save(self.engine, self.last)
        with contextlib.suppress(OSError):
            self.digests.save()

    def __call__(self) -> Compiled:
        comp = self.compile()
        summary = comp.summary
        if summary is not None and Path(summary.root) != self.root:
            self.root = Path(summary.root)
            self._mentions.clear()  # labels are relative to the root
        with contextlib.suppress(OSError):
            # The cache is an optimisation; a read-only .storyc must not stop watching.
            self.digests.save()
        files = dependencies(comp, self.root, self._mentions)
        if not comp.found:
            files.add(self.root / "main.story")  # `storyc init` or a first save starts it
        # Notes (where a setting came from) are for `storyc check`; a screen redrawn on
        # every save shows only what needs attention.
        shown = comp.shown()
        # counted from what is shown: the notes' count (which `counts()` also makes, by
        # decoding them) is never on this screen
        errors = sum(1 for d in shown if d.is_error)
        warnings = len(shown) - errors
        return Compiled(
            comp=comp,
            ok=comp.summary is not None and errors == 0,
            diagnostics=[to_json(d) for d in shown],
            text=comp.rendered(notes=False),
            errors=errors,
            warnings=warnings,
            files=files,
        )


class SetupFailed(Exception):
    """Watch cannot start: no project, an unknown backend, a paid backend without a key."""


def _setting(comp: Compilation, name: str) -> Any:
    summary = comp.summary
    return summary.settings.get(name) if summary is not None else None


class _Events(Reporter):
    """The executor's per-scene progress, as watch events."""

    def __init__(self, emit: Callable[[str, dict[str, Any]], None]) -> None:
        super().__init__(stream=None)
        self.emit = emit

    def _scene(self, scene: str, state: str, detail: str) -> None:
        self.emit("progress", {"scene": scene, "state": state, "detail": detail})

    def note(self, text: str) -> None:
        self.emit("note", {"text": text})


class Pipeline:
    """Plan and build for one project and backend; the store and lock file are re-read
    only when they change on disk."""

    def __init__(
        self,
        compiler: Compiler,
        backend: str,
        *,
        jobs: int,
        api_key: str | None,
        base_url: str | None,
    ) -> None:
        self.compiler = compiler
        self.backend = backend
        self.paid = backend not in pricing.FREE_BACKENDS
        self.jobs = jobs
        self._api_key = api_key
        self.flag = base_url  # `--base-url`; with the environment and the story's `base_url`
        self.emit: Callable[[str, dict[str, Any]], None] = lambda kind, data: None
        self.budget_left: Callable[[], Decimal | None] = lambda: None
        self._lock: tuple[StatSig, LockFile] | None = None
        self._store: Store | None = None
        self._generation = 0  # bumped whenever the lock file or the store may have changed
        self._lock_sig: StatSig = None
        self._planner = IncrementalPlanner(self._full_plan, self.paid)

    @property
    def root(self) -> Path:
        return self.compiler.root

    def _lockfile(self) -> LockFile:
        path = LockFile.path_for(self.root)
        sig = stat_sig(path)
        if self._lock is None or self._lock[0] != sig:
            self._lock = (sig, LockFile.load(path))
            self._lock_sig = sig
            self._generation += 1
        return self._lock[1]

    def where(self, comp: Compilation) -> tuple[str, str | None]:
        """The provider's address for this compilation, and what keys name of it: the
        story's `base_url` is read on every save, so an edit of it is planned and built
        for the provider it now names (never sent on to the one it named before)."""
        setting = _setting(comp, "base_url")
        setting = setting if isinstance(setting, str) else None
        return (
            resolve_base_url(self.flag, setting),
            key_provider(self.backend, self.flag, setting),
        )

    def _full_plan(self, comp: Compilation) -> Plan:
        store = self._store  # a build on the other thread may drop it meanwhile
        if store is None:
            store = self._store = Store.for_project(self.root)
        provider = self.where(comp)[1]
        return make_plan(
            comp, lock=self._lockfile(), store=store, backend=self.backend, provider=provider
        )

    def plan(self, comp: Compilation) -> PlanView:
        if self._store is None:
            self._store = Store.for_project(self.root)
            self._generation += 1
        self._lockfile()
        # another provider: everything is planned again
        provider = self.where(comp)[1]
        state = (self._generation, self._lock_sig, provider)
        return self._planner.plan(comp, state, (self._lock_sig, provider))

    def build(self, comp: Compilation, scenes: list[str]) -> BuildReport:
        root = self.root
        guard = ProjectLock(root, wait=0)
        try:
            guard.acquire()
        except ProjectLocked as exc:
            raise BuildRefused(str(exc)) from None
        journal: Journal | None = None
        base_url, provider = self.where(comp)
        try:
            lock = LockFile.load(LockFile.path_for(root))
            store = Store.for_project(root)
            if self.paid:
                journal = Journal(root / ".storyc" / "journal.sqlite")
                journal.recover()  # we hold the build lock: other builds' sends are over
            # Its own digest cache: the watcher thread's compile uses the other one.
            io = ProjectIO(
                root,
                store,
                journal,
                lock,
                DigestCache(root / ".storyc" / "digests.json"),
                backend=self.backend,
                provider=provider,
            )
            options = BuildOptions(
                backend=self.backend,
                jobs=self.jobs,
                max_cost=self.budget_left(),
                scenes=tuple(scenes),
            )
            bopts = BackendOptions(root=root, store=store, base_url=base_url, api_key=self._api_key)
            # the same planner as `storyc build`: the scenes asked for and what they use
            planner = Planner(comp.requests, comp.order, io.sources())
            plan = planner.plan(upstream_closure(comp.requests, scenes))
            # Ctrl-C stops new submissions, as in `storyc build`; what was sent stays in
            # the journal.
            result = asyncio.run(
                execute(
                    plan,
                    planner,
                    io,
                    options,
                    bopts,
                    _Events(self.emit),
                    Executor.stop,
                    signals=(signal.SIGINT,),
                )
            )
            if not result.interrupted:
                self._assemble_cuts(comp, store, lock, result, provider)
            store.save()
        except (LockFileError, JournalError, SetupError) as exc:
            # Nothing was submitted (a damaged storyc.lock or journal, a refused key): the
            # scenes stay eligible, so the next save after the fix builds them.
            raise BuildRefused(str(exc)) from None
        finally:
            self._store = None  # new records: the planner's store reads them again
            if journal is not None:
                journal.close()
            guard.release()
        done = [n for n, s in result.scenes.items() if s.state == DONE]
        bad = [n for n, s in result.scenes.items() if s.state not in (DONE, REUSED, STOPPED)]
        return BuildReport(
            done, bad, result.committed if self.paid else Decimal(0), interrupted=result.interrupted
        )

    def _assemble_cuts(
        self, comp: Compilation, store: Store, lock: LockFile, result: Any, provider: str | None
    ) -> None:
        """As `storyc build` does after the scenes: every cut whose clips changed (the
        film stage; its lines are watch notes)."""
        facts = comp.cut_facts()  # from the units: no model is built for this
        if not facts:
            return
        from storyc.film.cuts import build_cuts
        from storyc.film.spec import specs_of

        build_cuts(
            self.root,
            store,
            lock,
            cuts=specs_of(facts, comp.diagnostics if comp.has_errors else ()),
            requests=comp.requests,
            order=comp.order,
            outcomes=result.scenes,
            backend=self.backend,
            provider=provider,
            broken={**{n: f"blocked by {u}" for n, u in comp.blocked.items()}, **comp.broken},
            jobs=min(self.jobs, os.cpu_count() or 1),
            say=lambda text: self.emit("note", {"text": text}),
        )


class BuildRefused(NotBuilt):
    """Nothing was started: another build holds the project, or it cannot be set up."""


def make_wiring(
    path: Path,
    *,
    backend: str | None,
    target: str | None,
    jobs: int,
    max_cost: Decimal | None,
    yes: bool,
    base_url: str | None = None,
    board: bool = False,
) -> Wiring:
    """Set up watch for the project at `path`. Raises SetupFailed (exit 3) or ValueError."""
    compiler = Compiler(Path(path), target=target)
    first = compiler.compile()  # the session's first refresh finds it compiled
    if not first.found:
        raise SetupFailed(f"no storyc project at {path} (run `storyc init` to start one)")
    name = backend or _setting(first, "backend") or "preview"
    if name not in backends.names():
        raise SetupFailed(f"unknown backend {name!r} ({' or '.join(backends.names())})")
    api_key = None
    if name not in pricing.FREE_BACKENDS and (yes or max_cost is not None):
        api_key = os.environ.get(KEY_ENV, "")
        if not api_key:
            raise SetupFailed(
                f"the {name} backend needs an API key to render: set {KEY_ENV} "
                "(or watch without --yes/--max-cost to see plans and costs only)"
            )
    pipe = Pipeline(compiler, name, jobs=max(1, jobs), api_key=api_key, base_url=base_url)

    def write_board(comp: Compilation) -> Path:
        from storyc.review.make import make_board

        return make_board(compiler.root, comp, backend=name, target=target, base_url=base_url).path

    return Wiring(
        root=compiler.root,
        compile=compiler,
        plan=pipe.plan,
        build=pipe.build,
        backend=name,
        parses=lambda: compiler.parses,
        close=compiler.save,
        pipeline=pipe,
        board=write_board if board else None,
    )
