"""One `storyc build` from start to finish: compile, lock, plan, consent, execute, report.

Stage: execute (the session around the executor). In: the parsed command line and the
environment. Out: an exit code (`storyc.base.exits.ExitCode`); the plan and the summary
on stdout, progress through `storyc.build.progress`. I/O: compiles the project, holds
`.storyc/build.lock`, opens the store, journal and lock file, asks for consent on a
terminal, runs the executor.

Data flows one way: the compilation goes to the planner (`storyc.plan.planner`), whose
`Plan` is shown, consented to and handed to the executor, which carries it out; the
session then reports the executor's `BuildResult`.

Settings: a flag wins over the project setting (`backend`, `base_url`, `max_cost`,
`jobs` in the project block), which wins over the default. The API key comes only
from `INFERENCE_API_KEY` and is handed to the client, never printed or stored.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from storyc import backends
from storyc.backends import BackendOptions, SetupError, create
from storyc.base import warm
from storyc.base.diagnostics import printable
from storyc.base.exits import ExitCode
from storyc.base.hashing import DigestCache
from storyc.base.memory import settling
from storyc.build import fastpath as build_fastpath
from storyc.build.cache import BuildCache, BuildInput
from storyc.build.effects import LinkMemo, ProjectIO
from storyc.build.executor import Executor
from storyc.build.outcome import (
    BLOCKED,
    DEFERRED,
    EXPIRED,
    FAILED,
    FINAL,
    OVER_BUDGET,
    UNKNOWN,
    BuildOptions,
    BuildResult,
    upstream_closure,
)
from storyc.build.progress import Reporter, make_reporter
from storyc.build.team import TeamLink
from storyc.plan import pricing
from storyc.plan.address import key_provider, resolve_base_url
from storyc.plan.planner import Plan, Planner, RemoteLookup
from storyc.state.projectlock import ProjectLock, ProjectLocked

KEY_ENV = build_fastpath.KEY_ENV  # the fast path reads it without importing this module
WEBHOOK_ENV = "STORYC_WEBHOOK"  # the webhook URL for CI, where the story cannot hold it
# `--jobs` of a build that does not wait, unless given: no cap (the provider queues them)
UNCAPPED = 1 << 30


def find_root(path: Path) -> Path | None:
    path = path.resolve()
    if path.is_file():
        return path.parent
    if path.is_dir() and (any(path.glob("*.story"))):
        return path
    return None


async def execute(
    plan: Plan,
    planner: Planner,
    io: ProjectIO,
    options: BuildOptions,
    bopts: BackendOptions,
    report: Reporter,
    on_signal: Callable[[Executor], None],
    signals: tuple[signal.Signals, ...],
    team: TeamLink | None = None,
) -> BuildResult:
    """Open the backend, carry out `plan` and close the backend (`storyc build` and
    `storyc watch` both build through this). `on_signal(executor)` is called on each of
    `signals` — only on the main thread, the only one that may set them."""
    backend = create(options.backend, bopts)
    await backend.open()
    io.base_url = getattr(backend, "base_url", None)
    executor = Executor(plan, planner, backend, io, options, report, team)
    loop = asyncio.get_running_loop()
    if threading.current_thread() is not threading.main_thread():
        signals = ()
    for sig in signals:
        loop.add_signal_handler(sig, on_signal, executor)
    try:
        return await executor.run()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        await backend.close()


def takes_to_render(plan: Plan) -> dict[str, int]:
    """Scene -> takes that will be sent (an upper bound for waiting scenes)."""
    return {n: len(sp.render) for n, sp in plan.scenes.items() if sp.render}


def pin_warnings(plan: Plan) -> list[str]:
    """W300: scenes of the v1 schema sent to the app unpinned, which the live app
    (speaking v2) would refuse."""
    out = []
    for name in plan.order:
        sp = plan.scenes[name]
        req = sp.request
        if sp.render and req is not None and req.schema == "v1" and "@" not in req.app:
            out.append(
                f"warning[W300]: scene {name!r} is compiled for the v1 schema, but "
                f"{req.app} is sent unpinned and the live app speaks v2 (it refuses v1 "
                f'requests); pin the version that speaks v1: app = "{req.app}@VERSION"'
            )
    return out


def _setting(comp: BuildInput, name: str) -> Any:
    return comp.settings.get(name)


class BuildSession:
    def __init__(self, args: argparse.Namespace, reporter: Reporter | None = None) -> None:
        self.args = args
        self.started = time.time()  # before anything is read (see build_fastpath.record)
        self.report: Reporter = reporter or make_reporter(json_mode=bool(args.json))

    digests: DigestCache | None = None
    store_bytes_verified = 0
    paid = False
    cached_compilation = False

    def bytes_read(self) -> int:
        """Bytes of assets hashed in this build (0 on a no-op build)."""
        return self.digests.bytes_read if self.digests is not None else 0

    def say(self, text: str) -> None:
        self.report.note(text)

    def error(self, text: str) -> None:
        """Errors and warnings go to stderr in every mode (and are events with --json),
        with control characters escaped: a path, a name or a provider's message in them is
        text from outside."""
        text = printable(text)
        if self.args.json:
            self.report.event("message", text=text)
            print(text, file=sys.stderr, flush=True)
        else:
            self.report.note(text)

    def run(self) -> int:
        try:
            return self._run()
        finally:
            self.report.close()

    def _run(self) -> int:
        args = self.args
        root = find_root(Path(args.path))
        if root is None:
            self.error(f"error: no storyc project at {args.path}")
            return ExitCode.ENVIRONMENT
        digests = self.digests = warm.digest_cache(root)
        cache = self.cache = BuildCache.open(root)
        # through the compiled state: an unchanged story is not compiled again, an edited
        # one only where it changed (storyc.compiler.state)
        with settling():  # the compilation lives as long as the build (storyc.base.memory)
            comp = cache.handed_over(args.path, args.target) or cache.compile(
                Path(args.path), args.target, digests
            )
        self.cached_compilation = cache.cached
        if not comp.found or not comp.ok and not comp.rendered:
            self.error(f"error: no storyc project at {args.path}")
            return ExitCode.ENVIRONMENT
        self.diag_text = comp.rendered  # errors and warnings; notes are for `storyc check`
        if self.diag_text:
            print(self.diag_text, file=sys.stderr)
        if not comp.ok:
            return ExitCode.FAILED
        if args.scenes:
            bad = [s for s in args.scenes if s not in comp.scenes]
            if bad:
                self.error(f"error: no scene named {bad[0]!r} (scenes: {', '.join(comp.scenes)})")
                return ExitCode.USAGE
        self.scenes = list(args.scenes or [])
        for name in getattr(args, "cuts", None) or ():
            # `--cut NAME`: that cut, and the scenes it plays (with what they use)
            if name not in comp.cuts:
                known = ", ".join(comp.cuts) or "none"
                self.error(f"error: no cut named {name!r} (cuts: {known})")
                return ExitCode.USAGE
            self.scenes += [s for s in comp.cuts[name].scenes if s not in self.scenes]
        project = comp

        backend_name = args.backend or _setting(project, "backend") or "preview"
        if backend_name not in backends.names():
            self.error(f"error: unknown backend {backend_name!r} ({' or '.join(backends.names())})")
            return ExitCode.USAGE
        if warm.enabled() and backend_name not in pricing.FREE_BACKENDS:
            # the daemon (storyc.cli.daemon) serves free builds only and checked so before
            # it began; the story changed in between: nothing is sent from here
            self.error("error: the project now builds with a paid backend: run storyc build again")
            return ExitCode.USAGE
        jobs = args.jobs or _int(_setting(project, "jobs")) or 0  # 0: the mode's default
        detach = bool(getattr(args, "detach", False))
        if detach and backend_name in pricing.FREE_BACKENDS:
            self.error(
                "error: --detach is for a paid backend (previews render here, with nothing "
                "to collect later)"
            )
            return ExitCode.USAGE
        if detach and args.wait is not None:
            self.error("error: --detach and --wait contradict each other: choose one")
            return ExitCode.USAGE
        usable, webhook = self._webhook(project)
        if not usable:
            return ExitCode.USAGE
        max_cost = (
            args.max_cost if args.max_cost is not None else _dec(_setting(project, "max_cost"))
        )
        api_key = None
        if backend_name not in pricing.FREE_BACKENDS:
            api_key = os.environ.get(KEY_ENV, "")
            if not api_key:
                self.error(
                    f"error: the {backend_name} backend needs an API key: set {KEY_ENV} "
                    "(or build with --backend preview, which is free)"
                )
                return ExitCode.ENVIRONMENT
            from storyc.provider.errors import key_problem  # only a paid build needs it

            problem = key_problem(api_key, KEY_ENV)
            if problem is not None:  # found now, not as an error while sending
                self.error(f"error: the API key cannot be used: {problem}")
                return ExitCode.ENVIRONMENT
        for folder, role in ((".storyc", "its state"), ("renders", "links to the videos")):
            # before anything is rendered (and paid for): a file in the way would make every
            # finished render fail to be kept or linked
            if (root / folder).exists() and not (root / folder).is_dir():
                self.error(
                    f"error: {folder} is a file, but storyc keeps {role} in a folder of "
                    "that name: move or rename the file"
                )
                return ExitCode.ENVIRONMENT
        try:
            lock_guard = ProjectLock(root, wait=args.wait)
            lock_guard.acquire()
        except ProjectLocked as exc:
            self.error(f"error: {exc}")
            return ExitCode.ENVIRONMENT
        build_fastpath.forget(str(root))  # from here on the recorded clean state may change
        code: int = ExitCode.FAILED
        try:
            code = self._locked(root, comp, digests, backend_name, jobs, max_cost, api_key, webhook)
            if self._memo is not None:  # still holding the project: nobody else wrote
                self._rebase_memos(root, backend_name, self._provider)
            return code
        finally:
            seen = len(cache.keys)
            # a long-lived process writes it once the answer is out (it keeps the cache in
            # memory meanwhile: the next command there uses that very object)
            warm.later(lambda: cache.save(keys_seen=seen), ("build-cache-save", str(root)))
            if code == ExitCode.OK:
                # no record only means that the next no-op build takes the normal path
                with contextlib.suppress(OSError, ValueError, KeyError, TypeError, AttributeError):
                    self._record_clean(root, comp, backend_name)
            lock_guard.release()

    # set by _locked / _show_plan / _summary for `_record_clean`
    diag_text = ""
    _result: BuildResult | None = None
    _lock: Any = None
    _store: Any = None
    _journal_warned = False
    _plan_event: dict[str, Any] | None = None
    _plan_lines: list[str] | None = None
    _summary_event: dict[str, Any] | None = None
    _build_line = ""
    recorded_clean = False
    _cuts: list[Any] = []  # the film stage's outcomes (replaced, never mutated)
    _cut_log: list[tuple[str, dict[str, Any]]] = []  # what the cuts said (for the fast path)
    scenes: list[str] = []  # --scene and --cut (replaced, never mutated)
    # in a long-lived process: the kept plan, what it planned against, the lock's entries then
    _memo: tuple[Any, Any, dict[str, Any]] | None = None
    _plan: Plan | None = None
    _provider: str | None = None  # the provider this build's keys name (key_provider)

    def _rebase_memos(self, root: Path, backend: str, provider: str | None = None) -> None:
        """After a build in a long-lived process (storyc daemon): its kept plans stand for
        the sources as this build left them, re-planning next time only the scenes it
        touched — those whose lock entry it replaced, or that had anything to do — and
        what is downstream of them (storyc.plan.memo). A build only adds outputs, records
        and entries, so no other scene can plan differently."""
        from storyc.plan.memo import PlanMemo, settled, sources_state

        assert self._memo is not None
        memo, before, entries = self._memo
        lock, store, plan = self._lock, self._store, self._plan
        if plan is None or lock is None or store is None:
            memo.rebase(before, None, ())
            return
        now = lock.table(backend)
        touched = {n for n in entries.keys() | now.keys() if entries.get(n) is not now.get(n)}
        touched.update(
            n
            for n, sp in plan.scenes.items()
            if sp.status != "up-to-date"
            or any(tp.action != "reuse" or not tp.indexed for tp in sp.decisions.values())
        )
        after = settled(lambda: sources_state(root, lock, False, store))
        # `storyc plan`'s kept plan: the key it is held under (storyc.cli.plan._prepare)
        for m in (memo, warm.peek(("plan", str(root), backend, provider))):
            if isinstance(m, PlanMemo):
                m.rebase(before, after, touched)

    def _record_clean(self, root: Path, comp: Any, backend: str) -> None:
        """After a build that found everything selected up to date, remember the state for
        `storyc.build.fastpath` (a later identical build then skips all of this)."""
        result = self._result
        if (
            result is None
            or self._lock is None
            or self._store is None
            or self._journal_warned
            or result.submitted
            or result.interrupted
            or result.setup_error
            or self._plan_event is None
            or self._summary_event is None
        ):
            return
        states = self.report.states
        if (
            set(states) != set(result.scenes)
            or any(st != ("reused", "reused") for st in states.values())
            or any(s.state != "reused" for s in result.scenes.values())
        ):
            return
        paths = self.cache.input_paths(comp) + build_fastpath.code_paths()
        lock_path = self._lock.path_for(root)
        renders = str(root / "renders")
        paths += [str(lock_path), renders]
        if not self.paid:  # previews have their own folder of names
            paths.append(f"{renders}/preview")
        # discovery reads the top-level story files of a directory (a `project` block)
        arg = Path(self.args.path)
        paths += [str(arg / n) for n in build_fastpath.discovery(str(arg))]
        objects = str(self._store.objects)
        outputs: set[str] = set()
        for scene in states:
            locked = self._lock.table(backend).get(scene)
            if locked is None:
                return
            outputs.update(t.output for t in locked.takes if t.output)
            # what the build linked (a rehearsal's takes are not in the lock's entry)
            outputs.update(t.digest for t in result.scenes[scene].takes.values() if t.digest)
            paid = self._lock.scenes.get(scene) if not self.paid else None
            if paid is not None:  # renders/<scene>.mp4 may show the paid clip
                outputs.update(t.output for t in paid.takes if t.output)
        # only links: a copy could be edited in place unseen. This build just made every
        # name a link, or, where links are impossible, a copy of each: one tells which.
        first = next(iter(states), None)
        if first is not None and not os.path.islink(f"{renders}/{first}.mp4"):
            return
        # cuts: all up to date (nothing assembled, nothing failed, no stand-in to warn
        # about again), their outputs kept
        if any(
            c.state != "up to date" or not c.digest or c.stand_ins or c.clamped for c in self._cuts
        ):
            return
        outputs.update(c.digest for c in self._cuts)
        # the store's layout (objects/ab/cd…), as strings: 10,000 Paths cost 0.1 s
        if not all(d.startswith("sha256:") for d in outputs):
            return
        paths += [f"{objects}/{d[7:9]}/{d[9:]}" for d in outputs]
        if self.paid:
            journal = root / ".storyc" / "journal.sqlite"
            if os.path.exists(f"{journal}-wal"):
                return  # another connection is open: not a settled state
            paths.append(str(journal))
        import json

        # exactly what JsonReporter writes on a no-op build, but for the summary's facts
        # about the work this build did and the next one will not do
        summary = {
            **self._summary_event,
            "bytes_read": 0,
            "bytes_verified": 0,
            "cached_compilation": True,
            "fast_path": True,
        }
        json_lines = "".join(
            [
                json.dumps({"event": "plan", **self._plan_event}, sort_keys=True) + "\n",
                *(
                    f'{{"detail": "reused", "elapsed": 0.0, "event": "scene", '
                    f'"scene": {json.dumps(s)}, "state": "reused"}}\n'
                    for s in states
                ),
                *(
                    json.dumps({"event": name, **data}, sort_keys=True, default=str) + "\n"
                    for name, data in self._cut_log
                ),
                json.dumps({"event": "summary", **summary}, sort_keys=True) + "\n",
            ]
        )
        self.recorded_clean = build_fastpath.record(
            str(root),
            self.args,
            paths,
            {
                "backend": backend,
                "diagnostics": self.diag_text,
                "plan_lines": self._plan_lines or [],
                "scenes": list(states),
                "json": json_lines,
                "build_line": "\n".join(
                    [*(d["text"] for n, d in self._cut_log if n == "note"), self._build_line]
                ),
            },
            self.started,
        )

    def _locked(
        self,
        root: Path,
        comp: Any,
        digests: DigestCache,
        backend_name: str,
        jobs: int,
        max_cost: Decimal | None,
        api_key: str | None,
        webhook: str | None = None,
    ) -> int:
        from storyc.state.journal import Journal, JournalError
        from storyc.state.lockfile import LockFile, LockFileError
        from storyc.state.store import Store

        args = self.args
        try:
            lock = self.cache.lockfile(LockFile.path_for(root))
            lock_cached = lock is not None
            if lock is None:
                lock = LockFile.load(LockFile.path_for(root))
                self.cache.store_lockfile(LockFile.path_for(root), lock)
        except LockFileError as exc:
            self.error(f"error: {exc}")
            return ExitCode.FAILED
        store = self._store = Store.for_project(root)
        self._lock = lock
        paid = self.paid = backend_name not in pricing.FREE_BACKENDS
        journal = None
        if paid:
            try:
                journal = Journal(root / ".storyc" / "journal.sqlite")
            except JournalError as exc:
                self.error(f"error: {exc}")
                return ExitCode.ENVIRONMENT
        try:
            setting = _setting(comp, "base_url")
            base_url = resolve_base_url(
                args.base_url, setting if isinstance(setting, str) else None
            )
            provider = self._provider = key_provider(backend_name, args.base_url, setting)
            io = ProjectIO(
                root,
                store,
                journal,
                lock,
                digests,
                backend=backend_name,
                cache=self.cache,
                provider=provider,
            )
            if self.cache.holds(comp):
                io.use_known_keys(self.cache.keys)  # same requests: same keys
                io.lock_is_current = lock_cached and self.cached_compilation
            # kept by a long-lived process: what the last build found right, entry by entry
            io.verified = warm.held(("lock-verified", str(root), backend_name, provider), dict)
            if warm.enabled():  # and the readable names it knows to be right
                io.links = warm.held(("renders-links", str(root)), LinkMemo)
                io.links.begin()
                warm.later(io.links.check, ("renders-links", str(root)))
            if journal is not None:
                # we hold the build lock: every send of another build is from one that is
                # gone; what it was sending is of unknown fate until the user decides
                journal.recover()
                for att in journal.unknown():
                    self._journal_warned = True
                    take = f" --take {att.take}" if att.take > 1 else ""
                    self.error(
                        f"warning: an earlier submission of scene {att.scene!r} (take "
                        f"{att.take}) may have reached the provider: its fate is unknown "
                        f"(`storyc adopt {att.scene} TASK_ID{take}` or "
                        f"`storyc forget {att.scene}{take}`)"
                    )
            wanted = upstream_closure(comp.requests, self.scenes) if self.scenes else None
            team = self._team_store(comp, store)
            if isinstance(team, int):
                return team
            if team is not None and warm.enabled():  # as for a paid backend, above
                self.error("error: the project now uses a team store: run storyc build again")
                return ExitCode.USAGE
            planners: list[Planner] = []

            def make(remote: RemoteLookup | None) -> Plan:
                sources = io.sources(resubmit_unknown=bool(args.resubmit_unknown), remote=remote)
                planners.append(Planner(comp.requests, comp.order, sources))
                return planners[-1].plan(wanted)

            if team is None and wanted is None and warm.enabled():
                # a long-lived process (storyc daemon) plans again only what changed since
                # its last build or plan (storyc.plan.memo)
                from storyc.plan.memo import PlanMemo, sources_state

                unknown = bool(args.resubmit_unknown)
                memo = warm.held(
                    ("build-plan", str(root), backend_name, provider, unknown), PlanMemo
                )
                before = sources_state(root, lock, False, store)
                self._memo = (memo, before, dict(lock.table(backend_name)))
                plan = memo.plan(
                    comp,
                    io.sources(resubmit_unknown=unknown),
                    before,
                    make=lambda c, src: Planner(c.requests, c.order, src),
                )
                assert memo.planner is not None
                planners.append(memo.planner)
            elif team is None:
                plan = make(None)
            else:  # what the team store has is pulled, not paid: asked in batches
                from storyc.remote.planning import plan_with_remote

                plan = plan_with_remote(make, team)
                self.team = TeamLink(
                    team,
                    note=lambda label, state, detail: self.report.scene(
                        label, state, detail=detail
                    ),
                    poll=args.poll_interval,
                    resubmit_unknown=args.resubmit_unknown,
                )
            planner = planners[-1]  # the one that made the plan decides what is left
            self._plan = plan
            detach = self.detach = self._detaching(plan, journal)
            jobs = jobs or (UNCAPPED if detach else 4)
            self._show_plan(plan, backend_name)
            if any(sp.unknown or sp.follow for sp in plan.scenes.values()):
                self._journal_warned = True
            if paid:
                for line in pin_warnings(plan):
                    self.error(line)
            collect_only = bool(getattr(args, "collect_only", False))
            if (
                paid
                and not collect_only  # it sends nothing: there is nothing to agree to
                and takes_to_render(plan)
                and not self._consent(plan, max_cost)
            ):
                return ExitCode.NEEDS_DECISION
            options = BuildOptions(
                backend=backend_name,
                jobs=jobs,
                max_cost=max_cost,
                resubmit_unknown=args.resubmit_unknown,
                retries=max(0, args.retries),
                scenes=tuple(self.scenes) if self.scenes else None,
                detach=detach,
                collect_only=collect_only,
            )
            bopts = BackendOptions(
                root=root,
                store=store,
                base_url=base_url,
                api_key=api_key,
                poll_interval=args.poll_interval,
                webhook=webhook,
            )
            try:
                result = asyncio.run(self._execute(plan, planner, io, options, bopts))
            except SetupError as exc:
                self.error(f"error: {exc}")
                return ExitCode.ENVIRONMENT
            if collect_only:
                pass  # the webhook receiver collects scenes; the next build makes the cuts
            elif not (result.interrupted or result.setup_error) and result.settled:
                self._assemble_cuts(root, store, lock, comp, result, backend_name, jobs)
            elif not result.settled and comp.cuts:
                self.say("cuts: assembled once every scene is collected")
            self.store_bytes_verified = store.bytes_verified
            self._result = result
            return self._summary(result, comp, max_cost)
        finally:
            if journal is not None:
                journal.close()

    def _assemble_cuts(
        self, root: Path, store: Any, lock: Any, comp: Any, result: BuildResult, backend: str,
        jobs: int,
    ) -> None:  # fmt: skip
        """The seam to the film stage: every cut (or those of `--cut`) after the scenes."""
        from storyc.film.cuts import build_cuts

        self._cut_log = []
        self._cuts = build_cuts(
            root,
            store,
            lock,
            cuts=comp.cuts,
            requests=comp.requests,
            order=comp.order,
            outcomes=result.scenes,
            backend=backend,
            provider=self._provider,
            names=getattr(self.args, "cuts", None),
            broken=comp.broken,
            jobs=min(jobs, os.cpu_count() or 1),
            say=self._cut_note,
            warn=self.error,
            event=self._cut_event,
        )

    def _cut_note(self, text: str) -> None:
        self._cut_log.append(("note", {"text": text}))
        self.say(text)

    def _cut_event(self, name: str, **data: Any) -> None:
        self._cut_log.append((name, data))
        self.report.event(name, **data)

    async def _execute(
        self,
        plan: Plan,
        planner: Planner,
        io: ProjectIO,
        options: BuildOptions,
        bopts: BackendOptions,
    ) -> BuildResult:
        return await execute(
            plan,
            planner,
            io,
            options,
            bopts,
            self.report,
            self._interrupt,
            signals=(signal.SIGINT, signal.SIGTERM),
            team=self.team,
        )

    team: TeamLink | None = None
    detach = False  # this build does not wait (`--detach`, or collecting after one)

    def _webhook(self, comp: Any) -> tuple[bool, str | None]:
        """The webhook URL passed with every submission: `--webhook`, else
        `STORYC_WEBHOOK`, else the project's `webhook` (None: no webhook). False first
        after saying why a given one cannot be used."""
        from storyc.resolve.values import webhook_problem

        flag = getattr(self.args, "webhook", None)
        for value, where in ((flag, "--webhook"), (os.environ.get(WEBHOOK_ENV), WEBHOOK_ENV)):
            if value:
                problem = webhook_problem(value)
                if problem is not None:
                    self.error(f"error[E400]: {where}: {problem}")
                    return False, None
                return True, str(value)
        setting = _setting(comp, "webhook")  # checked by the compiler (E400, E401)
        return True, str(setting) if setting else None

    def _detaching(self, plan: Plan, journal: Any) -> bool:
        """Whether this build waits for nothing: `--detach`, the webhook receiver, or a
        plain build that finds tasks a detached build sent still in flight (it collects
        what finished and leaves the rest; `--wait` follows everything to the end)."""
        args = self.args
        if getattr(args, "detach", False) or getattr(args, "collect_only", False):
            return True
        if args.wait is not None or journal is None:
            return False
        sent = [
            sp.decisions[t].attempt
            for sp in plan.scenes.values()
            for t in sp.follow
            if sp.decisions[t].attempt is not None
        ]
        detached = sum(1 for a in sent if a is not None and journal.get(a).detached)
        if detached:
            self.say(
                f"collecting: {detached} task(s) sent by a detached build; what finished is "
                "downloaded, what runs is left running (--wait follows everything to the end)"
            )
        return detached > 0

    def _team_store(self, comp: Any, store: Any) -> Any:
        """The team store (storyc.remote) for this build, None without one, or an exit
        code after saying why a configured one cannot be used."""
        flag, off = getattr(self.args, "remote", None), getattr(self.args, "no_remote", False)
        setting = _setting(comp, "remote")
        if not (flag or off or setting or os.environ.get("STORYC_REMOTE")):
            return None  # the common case imports nothing more
        from storyc.remote.config import RemoteConfigError
        from storyc.remote.team import open_team

        try:
            return open_team(setting, store, flag=flag, disabled=off, warn=self.error)
        except RemoteConfigError as exc:
            self.error(f"error: the team store: {exc}")
            return ExitCode.USAGE

    def _interrupt(self, executor: Executor) -> None:
        first = not executor.result.interrupted
        executor.stop()
        if first and self.detach:
            self.say(
                "interrupted: no new submissions; what was sent is recorded (collect it "
                "with storyc build)"
            )
        elif first:
            n = executor.in_flight
            what = "task(s) already sent" if self.paid else "render(s) already running"
            self.say(
                f"interrupted: no new submissions; waiting for the {n} {what} "
                "(Ctrl-C again to stop waiting: what was sent stays recorded and is "
                "re-attached by the next build)"
                if n
                else "interrupted: no new submissions"
            )
        else:
            self.say(
                "interrupted again: no longer waiting; tasks already sent stay recorded "
                "and are re-attached by the next build"
            )

    def _show_plan(self, plan: Plan, backend: str) -> None:
        render = takes_to_render(plan)
        takes = sum(render.values())
        known, unknown = plan.known_total, plan.unknown_count
        fetch = sum(len(sp.fetch) for sp in plan.scenes.values())
        follow = sum(len(sp.follow) for sp in plan.scenes.values())
        decide = sum(len(sp.unknown) for sp in plan.scenes.values())
        up = sum(1 for sp in plan.scenes.values() if sp.status == "up-to-date")
        cost = "free" if backend in pricing.FREE_BACKENDS else pricing.format_usd(known)
        if unknown and backend not in pricing.FREE_BACKENDS:
            cost += f" + {unknown} scene(s) of unknown cost"
        self._plan_event = dict(
            backend=backend,
            render=render,
            takes=takes,
            up_to_date=up,
            estimate=str(known),
            unknown=unknown,
            fetch=fetch,
            follow=follow,
            decide=decide,
        )
        self.report.event("plan", **self._plan_event)
        # kept in both modes: the fast path may answer a later build in the other one
        lines: list[str] = []
        if backend not in pricing.FREE_BACKENDS:  # a paid plan is shown scene by scene
            for scene, n in render.items():
                est = plan.scenes[scene].estimate
                price = pricing.format_usd(est.amount) if est.amount is not None else "unknown"
                lines.append(f"  {scene}: {n} take(s), {price}")
        extra = ""
        if fetch:
            extra += f"; {fetch} fetched again from recorded URLs (free)"
        if follow and self.detach:
            extra += f"; {follow} already sent, collected if finished (not paid again)"
        elif follow:
            extra += f"; {follow} already sent, followed (not paid again)"
        if decide:
            extra += f"; {decide} of unknown fate, waiting for your decision"
        lines.append(
            f"plan: {len(render)} scene(s), {takes} take(s) to render with "
            f"{backend} ({cost}); {up} up to date{extra}"
        )
        self._plan_lines = lines
        if not self.args.json:
            for line in lines:
                self.report.result(line)

    def _consent(self, plan: Plan, max_cost: Decimal | None) -> bool:
        if self.args.yes:
            return True
        if not sys.stdin.isatty():
            self.error(
                "error: this build sends paid requests; re-run with --yes to agree to the "
                "plan above (or use --backend preview)"
            )
            return False
        cap = f" (budget {pricing.format_usd(max_cost)})" if max_cost is not None else ""
        unknown = f" + {plan.unknown_count} of unknown cost" if plan.unknown_count else ""
        later = ""
        if self.detach:  # what waits for an upstream render is sent by a later build
            deferred = sum(len(sp.render) for sp in plan.scenes.values() if sp.waiting_on)
            if deferred:
                later = f"; {deferred} of them only once what they use is done"
        try:
            answer = input(
                f"Render {sum(takes_to_render(plan).values())} take(s) for about "
                f"{pricing.format_usd(plan.known_total)}{unknown}{cap}{later}? [y/N] "
            )
        except EOFError:
            answer = ""
        if answer.strip().lower() not in ("y", "yes"):
            self.say("nothing submitted")
            return False
        return True

    def _money_line(self, result: BuildResult) -> str:
        if not self.paid:
            return f"{result.submitted} rendered (free)"
        text = f"{result.submitted} submitted, {pricing.format_usd(result.sent)} sent (estimated"
        if result.billed is not None:
            text += f"; billed {pricing.format_usd(result.billed)} as reported"
        else:
            text += "; the provider reported no bill"
        text += ")"
        if result.reattached:
            text += f"; {result.reattached} re-attached task(s) finished (paid for before)"
        if result.collected:
            text += f"; {result.collected} task(s) collected (paid for before)"
        if result.failed_attempts:
            text += (
                f"; {result.failed_attempts} failed attempt(s) "
                f"({pricing.format_usd(result.failed_cost)}; failed tasks are not charged)"
            )
        return text

    def _summary(self, result: BuildResult, comp: Any, max_cost: Decimal | None) -> int:
        counts = {s: result.count(s) for s in FINAL}
        self._summary_event = dict(
            submitted=result.submitted,
            reused=result.reused,
            committed=str(result.committed),
            sent=str(result.sent),
            billed=None if result.billed is None else str(result.billed),
            failed_attempts=result.failed_attempts,
            failed_cost=str(result.failed_cost),
            reattached=result.reattached,
            interrupted=result.interrupted,
            scenes=counts,
            collected=result.collected,
            settled=result.settled,
            running=[{"scene": label, "task_id": task} for label, task in result.running],
        )
        if self.team is not None:
            t = self.team
            self._summary_event["team"] = dict(
                pulled=t.pulled, pushed=t.pushed, followed=t.followed, down=t.team.down is not None
            )
        self.report.event(
            "summary",
            **self._summary_event,
            bytes_read=self.bytes_read(),
            bytes_verified=self.store_bytes_verified,
            cached_compilation=self.cached_compilation,
            fast_path=False,
        )
        for s in result.scenes.values():
            if s.state in (FAILED, BLOCKED, UNKNOWN, OVER_BUDGET, EXPIRED):
                self.error(f"{s.state}: scene {s.scene}: {s.error}")
        if result.halted and result.halted.startswith("over budget"):
            left = counts[OVER_BUDGET]
            cap = pricing.format_usd(max_cost) if max_cost is not None else "the budget"
            self.error(
                f"stopped at the budget ({cap}): {pricing.format_usd(result.committed)} sent "
                f"or reserved; {left} scene(s) not submitted. Raise --max-cost (or the "
                "project's max_cost) to render them."
            )
        parts = [f"{n} {k}" for k, n in counts.items() if n]
        self._build_line = (
            f"build: {', '.join(parts) or 'nothing to do'}; {self._money_line(result)}"
        )
        if not self.args.json:
            self.report.result(self._build_line)
        if not result.settled and not getattr(self.args, "collect_only", False):
            self._how_to_collect(result, counts)
        if result.interrupted:
            return ExitCode.INTERRUPTED
        if result.setup_error:
            self.error(f"error: {result.setup_error}")
            return ExitCode.ENVIRONMENT
        if (
            any(s.failed for s in result.scenes.values())
            or comp.has_errors
            or any(c.state == "failed" for c in self._cuts)
        ):
            return ExitCode.FAILED
        if any(s.needs_decision for s in result.scenes.values()):
            return ExitCode.NEEDS_DECISION
        return ExitCode.OK

    def _how_to_collect(self, result: BuildResult, counts: dict[str, int]) -> None:
        running, deferred = len(result.running), counts[DEFERRED]
        parts = []
        if running:
            parts.append(f"{running} task(s) still running on the provider")
        if deferred:
            parts.append(f"{deferred} scene(s) deferred until what they use is done")
        if not parts:
            return
        self.say(
            f"{' and '.join(parts)}: collect with `storyc build` (it downloads what finished "
            "and sends what became ready), or `storyc build --wait` to follow to the end; "
            "`storyc status` shows what runs"
        )


def _int(v: Any) -> int | None:
    try:
        return int(v) if v is not None else None
    except (TypeError, ValueError):
        return None


def _dec(v: Any) -> Decimal | None:
    try:
        return Decimal(str(v)) if v is not None else None
    except InvalidOperation:
        return None
