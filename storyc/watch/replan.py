"""Incremental planning for watch: re-plan only the scenes a save can have changed.

Stage: plan (for watch mode). In: successive `Compilation`s of one project, the lock
file and store (through `storyc.plan.planner.make_plan`). Out: `PlanView`s. I/O: what
`make_plan` does (reads the store's records), nothing else.

A scene's plan depends on its request, the plans of the scenes it uses, the lock file
and the store. So after a save, only scenes whose request changed, and everything
downstream of them, can plan differently — as long as the lock file and store are the
ones of the previous plan. Those scenes, with their upstream closure for context, go
through `make_plan` as a smaller compilation; the rest are kept. Any doubt (scenes
added, removed or reordered, another lock file, a build since) means a full plan.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from storyc.base.hashing import canonical_json
from storyc.compiler import Compilation
from storyc.plan.memo import changed_requests, closure
from storyc.plan.planner import Plan
from storyc.targets.request import Request
from storyc.watch.session import PlanView


@dataclass(frozen=True)
class _Entry:
    render: bool
    key: str | None
    cost: Decimal | None
    upstream: tuple[str, ...]
    body: str
    stale: bool = False  # every take in the store, the lock entry naming others


class IncrementalPlanner:
    """`plan(comp, state)`: `state` identifies the lock file and store contents; when it
    differs from the previous call's, everything is planned again."""

    def __init__(self, make: Callable[[Compilation], Plan], paid: bool) -> None:
        self.make = make
        self.paid = paid
        self.state: object = None
        self.order: list[str] = []
        self.requests: dict[str, Request] = {}
        self.entries: dict[str, _Entry] = {}
        self.down: dict[str, set[str]] = {}  # scene -> the scenes that use its output
        self.rendering: set[str] = set()  # scenes whose entry renders
        self.stale: set[str] = set()  # scenes whose entry is stale (`ScenePlan.stale_entry`)
        self.view: PlanView | None = None  # the last view (kept while nothing moves)
        self._scenes: Any = None  # the summary's scenes it was made with
        self.comp: Compilation | None = None  # the last call's compilation
        self._pos: tuple[list[str], dict[str, int]] | None = None
        self.last_replanned = 0  # scenes re-planned by the last call (for tests, bench)
        self.mark: object = None  # see `plan`

    def plan(self, comp: Compilation, state: object, mark: object = None) -> PlanView:
        """`mark`: what a build that records a scene changes (the lock file's state):
        `PlanView.relink` names it, so a build that could not record a scene is not
        asked again until it changed (a build changes `state` whatever it did)."""
        self.mark = mark
        if comp is self.comp and state == self.state and self.view is not None:
            self.last_replanned = 0
            return self.view  # the builder asks again about what the watcher just planned
        changed = None
        if state == self.state and (comp.order is self.order or comp.order == self.order):
            changed = changed_requests(comp, self.requests, self.comp)
        if changed is None:
            self.entries = {}
            self.rendering = set()
            self.stale = set()
            self.down = {}
            self.view = None
            for n, r in comp.requests.items():
                for u in r.upstream:
                    self.down.setdefault(u, set()).add(n)
            plan = self.make(comp)
            self._take(comp, plan, plan.order)
            self.requests = dict(comp.requests)
        else:
            before = self.requests
            if changed:
                for n in changed:  # the edges of the changed scenes only
                    for u in before[n].upstream:
                        self.down.get(u, set()).discard(n)
                    for u in comp.requests[n].upstream:
                        self.down.setdefault(u, set()).add(n)
                reqs = comp.requests
                affected = closure(changed, lambda n: self.down.get(n, ()))
                context = closure(affected, lambda n: reqs[n].upstream if n in reqs else ())
                pos = self._positions(comp.order)
                order = sorted((n for n in context if n in pos), key=pos.__getitem__)
                sub = comp.narrowed(order, {n: reqs[n] for n in context if n in reqs})
                was = {n for n in affected if n in self.rendering}
                stale = bool(self.stale & affected)
                self._take(comp, self.make(sub), [n for n in order if n in affected])
                if (
                    self.view is not None
                    and was == {n for n in affected if n in self.rendering}
                    and not stale
                    and not self.stale & affected
                ):
                    self.view = self._patched(self.view, affected)
                else:
                    self.view = None
                for n in changed:
                    before[n] = comp.requests[n]
            else:
                self.last_replanned = 0
        self.state = state
        self.order = comp.order
        self.comp = comp
        scenes = comp.summary.scenes if comp.summary else None
        if self.view is None or (scenes is not self._scenes and scenes != self._scenes):
            self.view = self._view(comp)
            self._scenes = scenes
        return self.view

    def _relink(self, comp: Compilation) -> dict[str, str]:
        """Scenes a build would record for free (`ScenePlan.stale_entry`), in order, with
        their keys and the lock file's state (`mark`): those whose upstream, all the way
        up, renders nothing (a build of a scene builds what it uses, and nothing may be
        sent that was not asked for)."""
        if not self.stale:
            return {}
        reqs = comp.requests
        out = {}
        pos = self._positions(comp.order)
        for name in sorted(self.stale, key=lambda n: pos.get(n, len(pos))):
            up = closure({name}, lambda n: reqs[n].upstream if n in reqs else ())
            key = self.entries[name].key
            if key is not None and not up & self.rendering:
                # with the lock file's state: a build that could not record it (a
                # rehearsal never replaces a real render's entry) is not asked again
                # until the lock file changes
                out[name] = f"{key}@{self.mark!r}"
        return out

    def _positions(self, order: list[str]) -> dict[str, int]:
        """Each scene's place in `order` (kept while the compiler hands back the same
        order)."""
        if self._pos is None or self._pos[0] is not order:
            self._pos = (order, {n: i for i, n in enumerate(order)})
        return self._pos[1]

    def _patched(self, view: PlanView, names: set[str]) -> PlanView:
        """`view` with the entries of `names` as planned now, when the same scenes render
        as before (their order is the last view's)."""
        changes = {}
        for name in names:
            if name in self.rendering:
                e = self.entries[name]
                changes[name] = (e.key, e.cost, e.upstream, e.body)
        return PlanView.patched(view, changes)

    def _take(self, comp: Compilation, plan: Plan, names: list[str]) -> None:
        self.last_replanned = len(names)
        for name in names:
            sp = plan.scenes.get(name)
            if sp is None:
                self.entries.pop(name, None)
                self.rendering.discard(name)
                self.stale.discard(name)
                continue
            req = comp.requests.get(name)
            key = (
                None
                if sp.status == "waiting" or not sp.keys
                else "|".join(sp.keys[t] for t in sorted(sp.keys))
            )
            body = ""
            if req is not None and sp.will_render and key is None:
                body = canonical_json(req.body).decode()  # stands in for the key
            self.entries[name] = _Entry(
                sp.will_render,
                key,
                sp.estimate.amount,
                tuple(req.upstream) if req else (),
                body,
                sp.stale_entry,
            )
            if sp.will_render:
                self.rendering.add(name)
            else:
                self.rendering.discard(name)
            if sp.stale_entry:
                self.stale.add(name)
            else:
                self.stale.discard(name)

    def _view(self, comp: Compilation) -> PlanView:
        view = PlanView({}, {}, self.paid)
        rendering = self.rendering
        view.relink = self._relink(comp)
        if not rendering:
            return view
        names = [n for n in comp.order if n in rendering]
        listed = set(comp.order)
        names += [
            n
            for n in (comp.summary.scenes if comp.summary else ())
            if n in rendering and n not in listed
        ]
        for name in names:
            e = self.entries[name]
            view.render[name] = e.key
            view.costs[name] = e.cost
            view.upstream[name] = e.upstream
            if e.body:
                view.bodies[name] = e.body
        return view
