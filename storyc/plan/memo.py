"""The last plan, kept by a long-lived process: plan again only what an edit can change.

Stage: plan. In: successive compilations of one project, each with the planner's
`Sources` and a snapshot of what those sources read (`state`: the lock file, the
journal, the store's folders). Out: the same `Plan` a full `Planner.plan()` gives. I/O:
stats the store objects the kept plan relies on (nothing else beyond what planning does).

A scene's plan depends on its request, the plans of the scenes it uses, and the sources.
When the sources are as they were (same `state`, every object the last plan relied on
unchanged) and the story has the same scenes in the same order, only scenes whose
request changed, and every scene downstream of them, can plan differently: those are
planned again, with their upstream scenes as context, and the rest are kept. After a build
that held the project (so nobody else wrote), `rebase` moves the memo to the sources as the
build left them, with the scenes it touched planned again next time. Any doubt means a
full plan. storyc.watch.replan does the same for watch's compact view; this one
keeps whole `ScenePlan`s, for `storyc plan` answered by the daemon (storyc.cli.daemon).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from storyc.base.fsio import COARSE_NS, FINE_NS, stat_sig
from storyc.compiler import Compilation
from storyc.plan.planner import Plan, Planner, ScenePlan, Sources, planner_for
from storyc.targets.request import Request

# How recent a stat signature's time may be before a change within the same clock tick could
# hide behind it (storyc.base.fsio: 50 ms with sub-second times, 2 s with whole seconds)
RACY_NS = COARSE_NS  # the window when nothing shows which kind of filesystem it is


def closure(start: Iterable[str], edges: Callable[[str], Iterable[str]]) -> set[str]:
    """`start` and everything reachable from it along `edges`."""
    seen = set(start)
    todo = list(seen)
    while todo:
        for nxt in edges(todo.pop()):
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    return seen


def changed_requests(
    comp: Compilation, before: dict[str, Request], last: Compilation | None
) -> set[str] | None:
    """The scenes of `comp` whose request differs from `before` (the requests of `last`,
    the compilation planned last time); None when scenes were added or removed. The
    compiler says which requests it replaced since `last` when it can; else the incremental
    compiler hands back the very request object of a scene it did not compile again, so an
    identity test settles all but the scenes it did."""
    reqs = comp.requests
    known = comp.changed_since(last) if last is not None else None
    if known is None:
        if reqs.keys() != before.keys():
            return None
        return {n for n, r in reqs.items() if (p := before[n]) is not r and p != r}
    if any((n in reqs) != (n in before) for n in known):
        return None
    return {n for n in known if n in reqs and (p := before[n]) is not (r := reqs[n]) and p != r}


def _relied_on(scenes: Iterable[ScenePlan]) -> set[str]:
    """Every store object these plans' decisions name (their presence decided them)."""
    out: set[str] = set()
    for sp in scenes:
        if sp.output:
            out.add(sp.output)
        out.update(sp.upstream.values())
        for tp in sp.decisions.values():
            if tp.output:
                out.add(tp.output)
    return out


def _sigs(state: Iterable[Any]) -> list[tuple[int, int, int, int]]:
    out = []
    for item in state:
        sig = item[-1] if isinstance(item, tuple) and item and isinstance(item[-1], tuple) else item
        if isinstance(sig, tuple) and len(sig) == 4:
            out.append(sig)
    return out


def window_ns(sigs: Iterable[tuple[int, int, int, int]]) -> int:
    """The racy window for these signatures: fine when any time in them has sub-second
    digits (the filesystem keeps them), else coarse."""
    for s in sigs:
        if s[1] % 1_000_000_000 or s[3] % 1_000_000_000:
            return FINE_NS
    return COARSE_NS


def racy_for(state: Iterable[Any], now_ns: int | None = None) -> int:
    """How long (ns) until no stat signature in `state` (tuples ending in (size,
    mtime_ns, ino, ctime_ns)) is recent enough that a change within the same clock tick
    could hide behind it; 0 when none is."""
    now = time.time_ns() if now_ns is None else now_ns
    sigs = _sigs(state)
    if not sigs:
        return 0
    newest = max(max(s[1], s[3]) for s in sigs)
    return max(0, window_ns(sigs) - (now - newest))


def racy(state: Iterable[Any], now_ns: int | None = None) -> bool:
    return racy_for(state, now_ns) > 0


def settled(make_state: Callable[[], Any]) -> Any:
    """`make_state()` once no time in it is recent enough to hide a change, or None when
    that is further off than a fine window. The caller keeps other writers out (it holds
    the project lock): waiting out the tick of its own last write is then enough."""
    state = make_state()
    wait = racy_for(state)
    if wait == 0:
        return state
    if wait > FINE_NS:
        return None
    time.sleep(wait / 1e9)
    state = make_state()
    return None if racy(state) else state


class PlanMemo:
    """`plan(comp, sources, state)`: the full plan of `comp`, re-planning only what
    changed since the last call when `state` is equal to that call's."""

    def __init__(self) -> None:
        self.state: Any = None
        self.last: Plan | None = None
        self.requests: dict[str, Request] = {}
        self.shape: Any = None
        self.down: dict[str, set[str]] = {}
        self.objects: dict[str, Any] = {}  # object file -> its stat signature then
        self.replanned = 0  # scenes planned by the last call (tests and bench read it)
        self.dirty: set[str] = set()  # scenes a build touched since (see `rebase`)
        self.planner: Planner | None = None  # the last call's planner (a build goes on with it)
        self.comp: Compilation | None = None  # the last call's compilation

    def plan(
        self,
        comp: Compilation,
        sources: Sources,
        state: Any,
        make: Callable[[Compilation, Sources], Planner] = planner_for,
    ) -> Plan:
        """The plan `make(comp, sources).plan()` gives, re-planning only what changed."""
        planner = self.planner = make(comp, sources)
        shape = (
            sources.backend,
            sources.provider,
            planner.order,
            planner.extra,
            planner.broken,
            planner.blocked,
        )
        last = self.last
        changed = None
        if (
            last is not None
            and state is not None
            and state == self.state
            and shape == self.shape
            and not any(stat_sig(f) != s for f, s in self.objects.items())
        ):
            changed = changed_requests(comp, self.requests, self.comp)
        if last is None or changed is None:
            plan = self._full(planner, comp)
            self.objects = {}
            fresh: Iterable[ScenePlan] = plan.scenes.values()
            self.requests = dict(comp.requests)
        else:
            plan, fresh = self._patched(planner, comp, last, changed)
            for n in changed:
                self.requests[n] = comp.requests[n]
        self.dirty = set()
        self.state = None if state is None or racy(state) else state
        self.shape = shape
        self.comp = comp
        self.last = plan
        if self.state is not None:
            # objects a replaced plan relied on stay watched: one removed later only costs
            # a full plan
            store = sources.store
            new = {(f := store.object_file(d)): stat_sig(f) for d in _relied_on(fresh)}
            self.objects.update(new)
            if racy(new.values()):
                self.state = None
        return plan

    def rebase(self, before: Any, after: Any, touched: Iterable[str]) -> None:
        """A build that kept every other writer out (it held the project lock) went from
        sources `before` to `after`, changing what the planner reads only for the scenes
        in `touched` (their lock entries, outputs and records): a memo that planned against
        `before` now stands for `after`, with those scenes (and what is downstream of them)
        planned again next time. Anything else, or `after` None, means a full plan."""
        if self.last is None or after is None or self.state is None or self.state != before:
            self.state = None
            return
        self.state = after
        self.dirty |= set(touched)

    def _full(self, planner: Planner, comp: Compilation) -> Plan:
        self.down = {}
        for n, r in comp.requests.items():
            for u in r.upstream:
                self.down.setdefault(u, set()).add(n)
        plan = planner.plan()
        self.replanned = len(plan.order)
        return plan

    def _patched(
        self, planner: Planner, comp: Compilation, last: Plan, changed: set[str]
    ) -> tuple[Plan, list[ScenePlan]]:
        """The plan, and the scene plans made anew; `changed`: the scenes whose request
        changed (the same scenes as last time)."""
        before = self.requests
        reqs = comp.requests
        changed = changed | (self.dirty & reqs.keys())
        if not changed:
            self.replanned = 0
            return Plan(last.backend, dict(last.scenes), list(last.order), last.provider), []
        for n in changed:  # the edges of the changed scenes only
            for u in before[n].upstream:
                self.down.get(u, set()).discard(n)
            for u in reqs[n].upstream:
                self.down.setdefault(u, set()).add(n)
        affected = closure(changed, lambda n: self.down.get(n, ()))
        context = closure(affected, lambda n: reqs[n].upstream if n in reqs else ())
        order = [n for n in planner.order if n in context]
        if len(order) != len(context):  # a scene outside the dependency order: plan all
            self.objects = {}
            full = self._full(planner, comp)
            return full, list(full.scenes.values())
        sub = Planner(
            {n: reqs[n] for n in context if n in reqs},
            order,
            planner.sources,
            broken=planner.broken,
            blocked=planner.blocked,
        ).plan()
        scenes: dict[str, ScenePlan] = dict(last.scenes)
        for n in affected:
            scenes[n] = sub.scenes[n]
        self.replanned = len(affected)
        return Plan(last.backend, scenes, list(last.order), last.provider), [
            sub.scenes[n] for n in affected
        ]


def sources_state(root: str | os.PathLike[str], lock: Any, live: bool, store: Any) -> Any:
    """What the planner reads besides the compilation, as one comparable value: the lock
    file (the very object: a long-lived process re-reads it only when its file changes),
    the journal's files, the store's folders, and whether a build is running."""
    j = os.path.join(root, ".storyc", "journal.sqlite")
    return (
        lock,
        live,
        ("journal", stat_sig(j)),
        ("journal-wal", stat_sig(j + "-wal")),
        *store.shape(),
    )
