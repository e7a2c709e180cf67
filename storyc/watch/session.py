"""A watch session: recompile on every save, show what changed, render within consent.

Stage: the edge that drives the whole pipeline in a loop (effects: threads, and through
the injected functions: reading stories, the store, rendering). In: an entry file, a
`Wiring` (compile, plan and build functions — see storyc.watch.wiring), a view to emit
events to, and the session's rules for spending. Out: events, renders, and an exit code.

Two threads, so that checking stays instant while a render runs:

- the watcher thread (storyc.watch.watcher.Watcher) calls `refresh` on every burst of saves:
  compile (the parse cache re-parses only changed files), replace the diagnostics,
  plan, show the plan diff, and wake the builder;
- the calling thread (the main thread under the CLI, so that Ctrl-C reaches the
  executor exactly as in `storyc build`) runs `build_pending` whenever woken: re-plan
  against the store, pick the scenes that need rendering and have not been attempted
  in this session under the same key, check consent and budget, build.

Why no scene is ever submitted twice: builds run one at a time, a build re-plans
first (what just finished is in the store), and every attempted identity (the render
key, or for a scene whose upstream has no output yet, the request plus its upstream
identities) is remembered, so even a failed render is not retried in a loop. A scene
whose key changes while it renders finishes (it is paid for, and the store keeps it);
the new key is picked up by the next build.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import weakref
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyc.base.memory import Settler
from storyc.watch.view import Emit
from storyc.watch.watcher import Watcher

_Change = tuple[str | None, Decimal | None, tuple[str, ...], str]  # key, cost, upstream, body


class PlanView:
    """What watch needs from a plan, independent of the planner's own types.

    `render`: scene -> render key (None: upstream not rendered yet), in render order;
    `costs`: scene -> estimate (None: unknown); `paid`: the backend costs money;
    `upstream`: scene -> the scenes it uses; `bodies`: scene -> canonical request JSON
    (stands in for a key not known yet).

    A view made from another by changing some scenes' keys and costs (`patched`: the same
    scenes render, in the same order) builds its maps only when they are read: showing a
    plan after a save needs its scene names, its total and its scenes of unknown cost, all
    carried over from the view before, so nothing proportional to the project is done
    between a save and its plan on screen."""

    def __init__(
        self,
        render: dict[str, str | None],
        costs: dict[str, Decimal | None],
        paid: bool,
        upstream: dict[str, tuple[str, ...]] | None = None,
        bodies: dict[str, str] | None = None,
    ) -> None:
        self._render: dict[str, str | None] | None = render
        self._costs: dict[str, Decimal | None] | None = costs
        self._upstream: dict[str, tuple[str, ...]] | None = upstream if upstream is not None else {}
        self._bodies: dict[str, str] | None = bodies if bodies is not None else {}
        self.paid = paid
        # the whole plan's cost, once known: summed once per view (a save compares two),
        # or carried over from the view this one was made from
        self.total: Decimal | None = None
        # the view this one was made from, whose scenes to render are these in this order
        # (nothing is new, nothing is done); weak, so that views do not chain up
        self._same: weakref.ref[PlanView] | None = None
        self._root: PlanView | None = None  # where a patched view's maps come from
        self.unknown_list: list[str] | None = None
        self._names: list[str] | None = None
        self._changes: dict[str, _Change] = {}
        # scenes whose every take is in the store while the lock file names other
        # renders (an edit undone): scene -> its key; recorded by a build, for free
        self.relink: dict[str, str] = {}

    @classmethod
    def patched(cls, base: PlanView, changes: dict[str, _Change]) -> PlanView:
        """`base` with these scenes' key, cost, upstream and body replaced; every one of
        them renders in `base` and still does. Its maps come from the last view whose
        maps were all made, with every change since: a session of many saves never
        chains views (a read would walk the chain)."""
        out = cls({}, {}, base.paid)
        out._render = out._costs = out._upstream = out._bodies = None
        out._same = weakref.ref(base)
        if base._root is None or base._whole():
            out._root, out._changes = base, dict(changes)
        else:
            out._root, out._changes = base._root, {**base._changes, **changes}
        total = base.cost()  # the new total from the old one: no sum over every scene
        unknown_same = True
        for name, (_, cost, _, _) in changes.items():
            was = base.cost_of(name)
            total += (cost or Decimal(0)) - (was or Decimal(0))
            unknown_same = unknown_same and (was is None) == (cost is None)
        out.total = total
        out.relink = base.relink
        if unknown_same and base.unknown_list is not None:
            out.unknown_list = base.unknown_list
        return out

    def same_scenes(self) -> PlanView | None:
        """The view this one was made from, when it is still alive: the same scenes
        render, in the same order."""
        return self._same() if self._same is not None else None

    def _whole(self) -> bool:
        return None not in (self._render, self._costs, self._upstream, self._bodies)

    def _base(self) -> PlanView:
        assert self._root is not None
        return self._root

    def cost_of(self, scene: str) -> Decimal | None:
        if self._costs is None:
            hit = self._changes.get(scene)
            return hit[1] if hit is not None else self._base().cost_of(scene)
        return self._costs.get(scene)

    def _made(self, field: int) -> dict[str, Any]:
        """A patched view's map number `field` of `_Change` (key, cost, upstream, body):
        its root's with the changes (an empty body is none)."""
        base = self._base()
        out: dict[str, Any] = dict((base.render, base.costs, base.upstream, base.bodies)[field])
        for n, c in self._changes.items():
            if field == 3 and not c[3]:
                out.pop(n, None)
            else:
                out[n] = c[field]
        return out

    @property
    def render(self) -> dict[str, str | None]:
        if self._render is None:
            self._render = self._made(0)
        return self._render

    @render.setter
    def render(self, value: dict[str, str | None]) -> None:
        self._render = value
        self._names = self.unknown_list = self.total = None

    @property
    def costs(self) -> dict[str, Decimal | None]:
        if self._costs is None:
            self._costs = self._made(1)
        return self._costs

    @costs.setter
    def costs(self, value: dict[str, Decimal | None]) -> None:
        self._costs = value
        self.unknown_list = self.total = None

    @property
    def upstream(self) -> dict[str, tuple[str, ...]]:
        if self._upstream is None:
            self._upstream = self._made(2)
        return self._upstream

    @upstream.setter
    def upstream(self, value: dict[str, tuple[str, ...]]) -> None:
        self._upstream = value

    @property
    def bodies(self) -> dict[str, str]:
        if self._bodies is None:
            self._bodies = self._made(3)
        return self._bodies

    @bodies.setter
    def bodies(self, value: dict[str, str]) -> None:
        self._bodies = value

    def names(self) -> list[str]:
        """The scenes to render, in order (kept once made; a patched view's are its base's)."""
        if self._names is None:
            self._names = self._base().names() if self._render is None else list(self._render)
        return self._names

    def cost(self, scenes: Iterable[str] | None = None) -> Decimal:
        if scenes is None:
            if self.total is None:
                self.total = self._sum(self.render)
            return self.total
        return self._sum(scenes)

    def _sum(self, names: Iterable[str]) -> Decimal:
        return sum((self.cost_of(s) or Decimal(0) for s in names), Decimal(0))

    def unknown_cost(self, scenes: Iterable[str]) -> bool:
        return self.paid and any(self.cost_of(s) is None for s in scenes)

    def unknown(self) -> list[str]:
        """The scenes to render whose cost is not known, in order (kept once made)."""
        if self.unknown_list is None:
            costs = self.costs
            self.unknown_list = (
                [s for s in self.render if costs.get(s) is None] if self.paid else []
            )
        return self.unknown_list

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PlanView):
            return NotImplemented
        return (
            self.paid == other.paid
            and self.render == other.render
            and self.costs == other.costs
            and self.upstream == other.upstream
            and self.bodies == other.bodies
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"PlanView(render={self.render!r}, costs={self.costs!r}, paid={self.paid!r})"


@dataclass
class BuildReport:
    rendered: list[str]
    failed: list[str]
    spent: Decimal  # what the provider billed (or the estimate when it did not say)
    interrupted: bool = False


@dataclass
class Wiring:
    """The pipeline watch drives. `compile` returns an opaque compilation plus the
    diagnostics and the files it depends on; `plan` and `build` take that compilation."""

    root: Path
    compile: Callable[[], Compiled]
    plan: Callable[[Any], PlanView]
    build: Callable[[Any, list[str]], BuildReport]
    backend: str
    parses: Callable[[], int] = lambda: 0
    close: Callable[[], None] = lambda: None
    # Optional: an object with `emit(kind, data)` and `budget_left()` slots the session fills
    # (the executor's progress becomes events; the executor enforces the budget left too).
    pipeline: Any = None
    # Optional (`storyc watch --board`): rewrite the storyboard page for a compilation;
    # returns the page's path. Called after each build and each plan with nothing to build.
    board: Callable[[Any], Path] | None = None


class NotBuilt(Exception):
    """A build could not start for a reason the user can act on (e.g. another build runs)."""


@dataclass
class Compiled:
    comp: Any  # storyc.compiler.Compilation
    ok: bool  # no errors: safe to plan and render
    diagnostics: list[dict[str, Any]]  # storyc.base.diagnostics.to_json items
    text: str  # rendered diagnostics
    errors: int
    warnings: int
    files: set[Path]  # story files and local assets it depends on (absolute)


def _identity(scene: str, plan: PlanView, memo: dict[str, str]) -> str:
    """The render key, or a stand-in built from the request and its upstream identities."""
    if scene in memo:
        return memo[scene]
    key = plan.render.get(scene)
    if key is None:
        memo[scene] = ""  # cycle guard; the compiler rejects cycles anyway
        ups = [_identity(u, plan, memo) for u in plan.upstream.get(scene, ())]
        raw = json.dumps([scene, plan.bodies.get(scene, ""), ups])
        key = "pending:" + hashlib.sha256(raw.encode()).hexdigest()
    memo[scene] = key
    return key


def _uses(scene: str, plan: PlanView) -> set[str]:
    """Every scene `scene` uses, directly or not."""
    seen: set[str] = set()
    todo = list(plan.upstream.get(scene, ()))
    while todo:
        u = todo.pop()
        if u not in seen:
            seen.add(u)
            todo.extend(plan.upstream.get(u, ()))
    return seen


class WatchSession:
    def __init__(
        self,
        root: Path,
        wiring: Wiring,
        emit: Emit,
        *,
        max_cost: Decimal | None = None,
        yes: bool = False,
        debounce_ms: int = 80,
    ) -> None:
        self.root = Path(root).resolve()
        self.wiring = wiring
        self.emit_fn = emit
        self.max_cost = max_cost
        self.yes = yes
        self.debounce_ms = debounce_ms
        self.t0 = time.monotonic()
        self.lock = threading.Lock()  # compile and plan are not re-entrant (shared caches)
        self.wake = threading.Event()
        self.stop = threading.Event()
        self.good: Compiled | None = None
        self.last_plan: PlanView | None = None
        self.watched: set[Path] = set()
        self.attempted: set[str] = set()
        self.relinked: set[str] = set()  # `PlanView.relink` markers a build was asked for
        self.rendering: list[str] = []
        self.spent = Decimal(0)
        self._last_wait: tuple[str, str] | None = None
        self._last_held: tuple[str, str] | None = None
        self.refreshes = 0
        self.interrupted = False
        # what a refresh builds stays out of the collector's walks; its cyclic garbage
        # is collected once in a while, when the session is idle (storyc.base.memory)
        self.settler = Settler()
        if wiring.pipeline is not None:
            wiring.pipeline.emit = lambda kind, data: self.emit(kind, **data)
            wiring.pipeline.budget_left = self.budget_left

    def budget_left(self) -> Decimal | None:
        return None if self.max_cost is None else max(Decimal(0), self.max_cost - self.spent)

    # -- events ------------------------------------------------------------------

    def emit(self, event: str, **fields: Any) -> None:
        self.emit_fn({"event": event, "time": round(time.monotonic() - self.t0, 3), **fields})

    def _rel(self, p: Path) -> str:
        try:
            return p.relative_to(self.root).as_posix()
        except ValueError:
            return str(p)

    # -- the watcher thread ------------------------------------------------------

    def refresh(self, changed: frozenset[Path] = frozenset()) -> set[Path]:
        """Recompile, show diagnostics and the plan diff, wake the builder.
        Returns the new watched set. Never raises for a problem in the story."""
        t = time.perf_counter()
        if changed:
            self.emit("change", files=sorted(self._rel(p) for p in changed))
        with self.lock:
            try:
                if not self._refresh_locked(t):
                    return self.watched
            finally:
                self.settler.refreshed()
        self.wake.set()
        return self.watched

    def _refresh_locked(self, t: float) -> bool:
        """The refresh itself, under the lock: True when a plan was shown (the builder has
        something to look at), False when compiling or planning stopped short."""
        try:
            c = self.wiring.compile()
        except Exception as exc:  # a bug below must not end the session
            self.emit("error", message=f"compile failed: {type(exc).__name__}: {exc}")
            return False
        self.refreshes += 1
        self.emit(
            "diagnostics",
            errors=c.errors,
            warnings=c.warnings,
            items=c.diagnostics,
            text=c.text,
        )
        # A broken story may name fewer files than it did: keep watching the old ones
        # too, so fixing any of them is noticed.
        self.watched = set(c.files) if c.ok else set(c.files) | self.watched
        if not c.ok:
            self.emit("kept", reason="the story has errors")
            return False
        self.good = c
        try:
            plan = self.wiring.plan(c.comp)
        except Exception as exc:
            self.emit("error", message=f"planning failed: {type(exc).__name__}: {exc}")
            return False
        self._emit_plan(plan, (time.perf_counter() - t) * 1000)
        return True

    def _emit_plan(self, plan: PlanView, ms: float) -> None:
        old = self.last_plan
        now = list(plan.names())
        if old is not None and (plan is old or plan.same_scenes() is old):
            new: list[str] = []
            done: list[str] = []
        else:
            before = set() if old is None else set(old.render)
            new = [s for s in now if s not in before]
            done = sorted(before - plan.render.keys())
        cost = plan.cost()
        delta = cost - (old.cost() if old is not None else Decimal(0))
        self.emit(
            "plan",
            render=now,
            new=new,
            done=done,
            rendering=list(self.rendering),
            cost=float(cost),
            delta=float(delta),
            currency="USD",
            free=not plan.paid,
            unknown=list(plan.unknown()),
            ms=round(ms, 1),
            parses=self.wiring.parses(),
        )
        self.last_plan = plan

    # -- the builder (calling thread) --------------------------------------------

    def build_pending(self) -> BuildReport | None:
        """Render what the latest good state needs and this session has not attempted."""
        with self.lock:
            good = self.good
            if good is None:
                return None
            try:
                plan = self.wiring.plan(good.comp)
            except Exception as exc:
                self.emit("error", message=f"planning failed: {type(exc).__name__}: {exc}")
                return None
        memo: dict[str, str] = {}
        tried = {s for s in plan.render if _identity(s, plan, memo) in self.attempted}
        # A scene that uses one whose render was tried and did not land would make the
        # executor send that one again (it builds what a scene uses): leave both be.
        todo: list[Any] = []
        held: list[Any] = []
        for s in plan.render:
            if s not in tried:
                (held if _uses(s, plan) & tried else todo).append(s)
        if held:
            marker = ("failed", ",".join(memo[s] for s in held))
            if marker != self._last_held:
                self.emit(
                    "waiting", reason="failed", cost=float(plan.cost(held)), left=0.0, scenes=held
                )
                self._last_held = marker
        # scenes brought back to renders in the store (an edit undone): recorded by a
        # build, which renders and sends nothing for them; once per lock file state
        relink: list[str] = []
        if not plan.paid or self.yes or self.max_cost is not None:
            relink = [s for s, mark in plan.relink.items() if mark not in self.relinked]
        if not todo and not relink:
            self._board(good)
            return None
        cost = plan.cost(todo)
        if todo and plan.paid and (self.max_cost is not None or not self.yes):
            # --yes without a budget renders; a budget holds even with --yes.
            reason = None
            if self.max_cost is None:
                reason = "consent"
            elif plan.unknown_cost(todo) or self.spent + cost > self.max_cost:
                reason = "budget"
            if reason is not None:
                marker = (reason, ",".join(memo[s] for s in todo))
                if marker != self._last_wait:  # say it once per state, not on every wake
                    left = (self.max_cost - self.spent) if self.max_cost is not None else Decimal(0)
                    self.emit(
                        "waiting", reason=reason, cost=float(cost), left=float(left), scenes=todo
                    )
                    self._last_wait = marker
                if not relink:
                    return None
                todo, cost = [], Decimal(0)  # what waits stays out of the build
        marks = {plan.relink[s] for s in relink}
        self.relinked.update(marks)
        self.attempted.update(memo[s] for s in todo)
        self.rendering = list(todo)
        if todo:
            self.emit("build", scenes=todo, cost=float(cost), free=not plan.paid)
        if relink:
            self.emit("relink", scenes=relink)
        try:
            report = self.wiring.build(good.comp, todo + relink)
        except NotBuilt as exc:
            self.attempted.difference_update(memo[s] for s in todo)  # nothing was sent
            self.relinked.difference_update(marks)
            self.emit("error", message=str(exc))
            return None
        except Exception as exc:
            self.emit("error", message=f"build failed: {type(exc).__name__}: {exc}")
            return None
        finally:
            self.rendering = []
        if plan.paid:
            self.spent += report.spent
        self.emit(
            "built",
            rendered=report.rendered,
            failed=report.failed,
            spent=float(self.spent),
            interrupted=report.interrupted,
            free=not plan.paid,
        )
        if report.interrupted:  # Ctrl-C during the build: the session ends with it
            self.interrupted = True
            self.stop.set()
            return report
        self._board(good)
        t = time.perf_counter()
        with self.lock:
            if self.good is good:  # otherwise a newer refresh has shown a newer plan
                try:
                    self._emit_plan(self.wiring.plan(good.comp), (time.perf_counter() - t) * 1000)
                except Exception as exc:
                    self.emit("error", message=f"planning failed: {type(exc).__name__}: {exc}")
        self.wake.set()  # look again: edits made during the build are still pending
        return report

    def _board(self, good: Compiled) -> None:
        """Rewrite the storyboard page, when asked for; a failure is an event, not an end."""
        if self.wiring.board is None:
            return
        t = time.perf_counter()
        try:
            path = self.wiring.board(good.comp)
        except Exception as exc:
            self.emit("error", message=f"board failed: {type(exc).__name__}: {exc}")
            return
        self.emit("board", path=self._rel(path), ms=round((time.perf_counter() - t) * 1000, 1))

    # -- the whole session -------------------------------------------------------

    def run(
        self,
        stop: threading.Event | None = None,
        *,
        ready: threading.Event | None = None,
        force_polling: bool | None = None,
    ) -> int:
        """Watch until `stop` is set. Returns 0, 130 after a build interrupted by Ctrl-C,
        3 when the watcher fails; Ctrl-C while idle propagates as KeyboardInterrupt."""
        if stop is not None:
            self.stop = stop
        since_ns = time.time_ns()  # a save during the first check is not lost
        watched = self.refresh()
        self.emit(
            "watching",
            project=self.root.name,
            files=len(watched),
            backend=self.wiring.backend,
            budget=self._budget_text(),
        )
        watcher = Watcher(
            self.root,
            self.refresh,
            debounce_ms=self.debounce_ms,
            stop_event=self.stop,
            force_polling=force_polling,
        )
        self.watcher = watcher
        failure: list[BaseException] = []

        def watch_thread() -> None:
            try:
                watcher.run(watched, since_ns=since_ns)
            except BaseException as exc:
                failure.append(exc)
                self.stop.set()

        thread = threading.Thread(target=watch_thread, name="storyc-watch", daemon=True)
        thread.start()
        try:
            if ready is not None:
                watcher.ready.wait(10)
                ready.set()
            while not self.stop.is_set():
                # A short wait so Ctrl-C is handled promptly on the main thread.
                if self.wake.wait(0.2):
                    self.wake.clear()
                    self.build_pending()
                elif self.lock.acquire(blocking=False):  # idle: no refresh under way
                    try:
                        self.settler.idle()
                    finally:
                        self.lock.release()
        finally:
            self.stop.set()
            thread.join(10)
        if failure:
            self.emit("error", message=f"the file watcher stopped: {failure[0]}")
            return 3
        self.emit("stopped", interrupted=self.interrupted, during_build=self.interrupted)
        return 130 if self.interrupted else 0

    def _budget_text(self) -> str:
        if self.wiring.backend == "preview":
            return "free, renders automatically"
        if self.yes:
            return "renders on every change (--yes)"
        if self.max_cost is not None:
            return f"renders within ${self.max_cost} this session"
        return "shows plans only; --yes or --max-cost to render"
