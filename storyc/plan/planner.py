"""The planner: for each scene, how each take's output is obtained, why, and the cost.

Stage: plan. In: compiled requests in dependency order, and what is already known
through a `Sources` (the lock file, the store's render records, the journal, the
backend). Out: a `Plan` — per scene its status (up to date / will render / waiting /
blocked), the field-level reasons against the lock file, the estimate, and per take a
`TakePlan`: the one decision the executor carries out. I/O: reads the store's records
and the journal through `Sources`; nothing is written.

This is the only place that decides. `storyc plan`, the consent and budget of
`storyc build`, `storyc watch` and the executor itself (for a scene whose upstream
output only becomes known during the build) all go through `Planner`. Per take, in
this order:

    reuse   the key's output is in the store (found by the key index, or by a
            completed attempt in the journal, or by the lock file's digest)
    pull    the team store has it (`storyc.remote`): downloaded and verified, free
    fetch   not in the store, but a recorded URL gives it (the digest is known and the
            URL is not known to be dead): downloaded and verified, free
    follow  the journal has an attempt with a task id: followed, never sent again
    decide  an attempt of unknown fate: nothing is sent until the user decides
            (`storyc adopt` / `storyc forget`, or `--resubmit-unknown`)
    render  otherwise: sent (paid, when the backend is)

A scene that uses the output of a scene that will render is *waiting*: its keys are not
known until then (every take counts as render, priced), and the executor asks the
planner again once the upstream outputs exist.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from storyc.plan import keys, pricing
from storyc.state.lockfile import LockFile, SceneEntry, TakeEntry
from storyc.state.store import RenderRecord, Store
from storyc.targets.request import FILE_MARKER, SCENE_MARKER, Request

if TYPE_CHECKING:
    from storyc.compiler import Compilation
    from storyc.state.journal import Attempt, Journal

Status = Literal["up-to-date", "render", "blocked", "waiting"]
STATUSES: tuple[Status, ...] = ("up-to-date", "render", "waiting", "blocked")
Action = Literal["reuse", "pull", "fetch", "follow", "decide", "render"]
ACTIONS: tuple[Action, ...] = ("reuse", "pull", "fetch", "follow", "decide", "render")


class RemoteLookup(Protocol):
    """What the planner asks the team store (`storyc.remote.planning.RemoteView`)."""

    def output(self, key: str) -> str | None:
        """The output digest the team store holds for `key`, or None."""
        ...


@dataclass(frozen=True)
class Change:
    """One reason a scene renders. `kind`: new, provider, backend, target, schema, app,
    prompt, input, setting, takes, upstream, missing, key."""

    kind: str
    field: str
    old: Any = None
    new: Any = None
    message: str = ""


@dataclass(frozen=True)
class TakePlan:
    """How one take's output is obtained: the decision the executor carries out.

    `key` is None only while the scene waits for an upstream render. For `reuse`,
    `output` is the stored output and `task_id`/`url`/`duration`/`cost` what the lock
    file records about it (from the lock, the key index or the journal, whichever
    knows); `indexed` is False when the key index lacks it (the executor writes it).
    For `fetch`, `url` must give exactly `output`. For `follow` and `decide`,
    `attempt` is the journal's attempt (`task_id` None: it was never confirmed sent,
    so it is never re-sent silently). For `render`, `resend` lists attempts of unknown
    fate the user chose to send again (`--resubmit-unknown`).
    """

    take: int
    action: Action
    key: str | None = None
    output: str | None = None
    url: str | None = None
    task_id: str | None = None
    attempt: int | None = None
    duration: float | None = None
    cost: Decimal | None = None
    indexed: bool = True
    resend: tuple[int, ...] = ()
    price: pricing.Estimate = pricing.FREE  # render: what sending this take costs


@dataclass
class ScenePlan:
    name: str
    status: Status
    takes: int = 1
    render: tuple[int, ...] = ()  # takes that will be rendered (sent, if paid)
    fetch: tuple[int, ...] = ()  # takes fetched again from their recorded URL
    pull: tuple[int, ...] = ()  # takes the team store has: pulled, not paid
    reuse: tuple[int, ...] = ()  # takes whose output is in the store
    follow: tuple[int, ...] = ()  # takes already sent (in the journal): followed, not resent
    unknown: tuple[int, ...] = ()  # takes with an attempt of unknown fate
    keys: dict[int, str] = field(default_factory=dict)  # known keys, by take
    reasons: list[Change] = field(default_factory=list)
    estimate: pricing.Estimate = pricing.FREE
    waiting_on: tuple[str, ...] = ()
    blocked: str | None = None
    upstream: dict[str, str] = field(default_factory=dict)  # scene -> output digest used
    output: str | None = None  # the picked take's output, when it exists already
    duration: float | None = None  # length of the picked output (for base edits downstream)
    request: Request | None = None
    decisions: dict[int, TakePlan] = field(default_factory=dict)  # by take
    picked: int = 1
    # takes the lock lacks that the journal has an attempt of (failed, of unknown fate):
    # missing from the lock, not added to the story (`explain`)
    tried: tuple[int, ...] = ()
    # every take is in the store already (nothing to render or fetch), yet the lock
    # file's entry names other renders (an edit undone since a build recorded another):
    # a build records these for free; `storyc watch` does it too
    stale_entry: bool = False

    @property
    def will_render(self) -> bool:
        return self.status in ("render", "waiting")


@dataclass
class Plan:
    backend: str
    scenes: dict[str, ScenePlan]
    order: list[str]
    provider: str | None = None  # a provider other than the default (see keys.key_material)

    def estimates(self) -> list[pricing.Estimate]:
        return [s.estimate for s in self.scenes.values() if s.will_render]

    @property
    def known_total(self) -> Decimal:
        return pricing.total(self.estimates())[0]

    @property
    def unknown_count(self) -> int:
        return pricing.total(self.estimates())[1]

    @property
    def total_estimate(self) -> Decimal | None:
        """The total, or None when any scene that will render has an unknown price."""
        known, unknown = pricing.total(self.estimates())
        return None if unknown else known

    def by_status(self, status: Status) -> list[str]:
        return [n for n in self.order if self.scenes[n].status == status]

    def to_json(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "provider": self.provider,
            "scenes": {n: _scene_json(self.scenes[n]) for n in self.order},
            "total": None if self.total_estimate is None else str(self.total_estimate),
            "known_total": str(self.known_total),
            "unknown_prices": self.unknown_count,
            "free": self.backend in pricing.FREE_BACKENDS,
        }


def _scene_json(s: ScenePlan) -> dict[str, Any]:
    return {
        "status": s.status,
        "takes": s.takes,
        "render": list(s.render),
        "fetch": list(s.fetch),
        "pull": list(s.pull),
        "reuse": list(s.reuse),
        "follow": list(s.follow),
        "unknown": list(s.unknown),
        "keys": {str(t): k for t, k in sorted(s.keys.items())},
        "reasons": [{"kind": c.kind, "field": c.field, "message": c.message} for c in s.reasons],
        # only what will render has a cost; null with kind "unknown" means unknown
        "estimate": None
        if s.estimate.amount is None or not s.will_render
        else str(s.estimate.amount),
        "estimate_kind": s.estimate.kind if s.will_render else None,
        "actions": {str(t): d.action for t, d in sorted(s.decisions.items())},
        "waiting_on": list(s.waiting_on),
        "blocked": s.blocked,
    }


@dataclass(frozen=True)
class PlanDiff:
    """What changed between two plans (watch mode shows this after every save)."""

    newly_rendering: list[str]
    no_longer_rendering: list[str]
    status_changes: dict[str, tuple[Status | None, Status | None]]
    cost_delta: Decimal | None  # None when either total is unknown


def diff_plans(old: Plan | None, new: Plan) -> PlanDiff:
    before = {n: s.status for n, s in old.scenes.items()} if old else {}
    after = {n: s.status for n, s in new.scenes.items()}
    changes = {
        n: (before.get(n), after.get(n))
        for n in sorted(set(before) | set(after))
        if before.get(n) != after.get(n)
    }
    rendering_before = {n for n, s in (old.scenes.items() if old else ()) if s.will_render}
    rendering_after = {n for n, s in new.scenes.items() if s.will_render}
    old_total = old.total_estimate if old else Decimal(0)
    delta = (
        None if old_total is None or new.total_estimate is None else new.total_estimate - old_total
    )
    return PlanDiff(
        [n for n in new.order if n in rendering_after - rendering_before],
        sorted(rendering_before - rendering_after),
        changes,
        delta,
    )


# -- explaining a change against the lock file -------------------------------


def records(
    entry: SceneEntry | None,
    takes: Iterable[tuple[int, str | None, str | None]],
    picked: int,
    backend: str,
    provider: str | None,
) -> bool:
    """Whether `entry` records exactly these takes (take, key, output, in take order),
    this pick, backend and provider: what a build would write for them (the planner asks
    it of a scene whose every take is reused, `ProjectIO.record_scene` before writing)."""
    return (
        entry is not None
        and entry.backend == backend
        and entry.provider == provider
        and entry.picked == picked
        and [(t.take, t.key, t.output) for t in entry.takes] == list(takes)
    )


def entry_for(
    request: Request,
    upstream: Mapping[str, str],
    *,
    backend: str,
    provider: str | None = None,
    takes: Sequence[TakeEntry] = (),
    picked: int = 1,
) -> SceneEntry:
    """The lock file's entry for `request`: what its keys were made from (the terms
    `explain` compares), with `takes`."""
    material = keys.key_inputs(request, upstream)
    return SceneEntry(
        name=request.scene,
        backend=backend,
        provider=provider,
        target=request.target,
        schema=request.schema,
        app=request.app,
        prompt=material["prompt"],
        inputs=material["inputs"],
        settings=material["settings"],
        picked=picked,
        takes=list(takes),
    )


def explain(
    entry: SceneEntry | None,
    request: Request,
    backend: str,
    upstream: dict[str, str],
    provider: str | None = None,
    tried: Collection[int] = (),
) -> list[Change]:
    """Field-level differences between what the lock file recorded and the request now.
    `tried`: takes the journal already holds an attempt of (failed, of unknown fate...):
    a take of those the lock lacks was not added, it is missing."""
    if entry is None:
        return [Change("new", "", message="not in the lock file (never built)")]
    out: list[Change] = []
    if entry.provider != provider and entry.backend == backend:
        old_p, new_p = entry.provider or keys.DEFAULT_PROVIDER, provider or keys.DEFAULT_PROVIDER
        out.append(Change("provider", "provider", old_p, new_p, f"provider: {old_p} → {new_p}"))
    for name, old, new in (
        ("backend", entry.backend, backend),
        ("target", entry.target, request.target),
        ("schema", entry.schema, request.schema),
        ("app", entry.app, request.app),
    ):
        if old != new:
            out.append(Change(name, name, old, new, f"{name}: {old} → {new}"))
    now = keys.key_inputs(request, upstream)
    if entry.prompt != now["prompt"]:
        out.append(Change("prompt", "prompt", entry.prompt, now["prompt"], "prompt text changed"))
    for path in sorted(set(entry.inputs) | set(now["inputs"])):
        msg = _input_change(path, entry.inputs.get(path), now["inputs"].get(path))
        if msg:
            kind = "upstream" if "scene" in (now["inputs"].get(path) or {}) else "input"
            out.append(Change(kind, path, entry.inputs.get(path), now["inputs"].get(path), msg))
    for name in sorted(set(entry.settings) | set(now["settings"])):
        was, value = entry.settings.get(name), now["settings"].get(name)
        if was != value:
            out.append(
                Change("setting", name, was, value, f"{name}: {_show(was)} → {_show(value)}")
            )
    locked_takes = {t.take for t in entry.takes}
    absent = [t for t in range(1, request.takes + 1) if t not in locked_takes]
    if absent and locked_takes:
        # beyond the last take the lock holds: added; before it, a take that failed or is
        # of unknown fate while its siblings were paid (ProjectIO.record_takes)
        last = max(locked_takes)
        added = [t for t in absent if t > last and t not in tried]
        missing = [t for t in absent if t < last or t in tried]
        said = [f"takes added: {', '.join(map(str, added))}"] if added else []
        if missing:
            which = ", ".join(map(str, missing))
            said.insert(0, f"take{'s' if len(missing) > 1 else ''} {which} not in storyc.lock")
        out.append(Change("takes", "takes", len(locked_takes), request.takes, "; ".join(said)))
    return out


def _show(v: Any) -> str:
    return (
        "(unset)"
        if v is None
        else repr(v)
        if isinstance(v, str)
        else str(v).lower()
        if isinstance(v, bool)
        else str(v)
    )


def _short(d: Any) -> str:
    return str(d)[7:19] if isinstance(d, str) and d.startswith("sha256:") else str(d)


def _describe(e: dict[str, Any]) -> str:
    if "path" in e:
        return f"{e['path']} ({_short(e.get('digest'))})"
    if "scene" in e:
        part = e.get("output", "video") + (f"@{e['at']}" if e.get("at") is not None else "")
        return f"{part} of scene {e['scene']}"
    return str(e.get("url", e))


def _input_change(path: str, old: dict[str, Any] | None, new: dict[str, Any] | None) -> str:
    if old == new:
        return ""
    if old is None:
        return f"{path}: added {_describe(new or {})}"
    if new is None:
        return f"{path}: removed {_describe(old)}"
    if "digest" in old and "digest" in new:
        if old["digest"] == new["digest"]:
            return ""  # renamed, same bytes: the key does not change
        return f"{path}: {_describe(old)} → {_describe(new)}"
    if (
        "scene" in new
        and old.get("scene") == new["scene"]
        and old.get("output") == new.get("output")
        and old.get("at") == new.get("at")
    ):
        if "upstream" not in new:
            return f"{path}: scene {new['scene']} renders first"
        return f"{path}: the output of scene {new['scene']} changed"
    return f"{path}: {_describe(old)} → {_describe(new)}"


# -- what the planner reads ----------------------------------------------------


class Sources:
    """What is already known, for one backend: keys, the store, the lock file, the journal.

    `key` and `lookup` may be given memoised versions (the build passes its key cache
    and key index, so a no-op build of 10,000 scenes hashes nothing); by default keys
    are computed and the store's render records read. `file_duration(path)` gives the
    length of a local video (for pricing base edits). `live_build`: another build holds
    the project now, so an attempt being sent is in progress rather than of unknown
    fate. `resubmit_unknown`: the user's `--resubmit-unknown`. `remote`: what the team
    store holds (asked in batches by `storyc.remote.planning`).
    """

    def __init__(
        self,
        *,
        lock: LockFile,
        store: Store,
        backend: str,
        journal: Journal | None = None,
        key: Callable[[Request, int, Mapping[str, str]], str] | None = None,
        lookup: Callable[[str], str | None] | None = None,
        file_duration: Callable[[str], float | None] | None = None,
        live_build: bool = False,
        resubmit_unknown: bool = False,
        remote: RemoteLookup | None = None,
        provider: str | None = None,
    ) -> None:
        self.remote = remote  # the team store, when there is one
        self.lock = lock
        self.store = store
        self.backend = backend
        self.provider = provider  # another provider than the default: its origin
        self.journal = journal
        self.entries = lock.table(backend)
        self._key = key
        self._lookup = lookup
        self.file_duration = file_duration or (lambda path: None)
        self.live_build = live_build
        self.resubmit_unknown = resubmit_unknown

    def key(self, request: Request, take: int, upstream: Mapping[str, str]) -> str:
        if self._key is not None:
            return self._key(request, take, upstream)
        return keys.request_key(
            request, backend=self.backend, take=take, upstream=upstream, provider=self.provider
        )

    def lookup(self, key: str) -> str | None:
        """The output of a finished render of `key`, if its object is in the store."""
        if self._lookup is not None:
            return self._lookup(key)
        rec = self.store.lookup_render(key)
        return rec.output if rec is not None and self.store.has(rec.output) else None

    def record(self, key: str) -> RenderRecord | None:
        return self.store.lookup_render(key)

    def attempts(self, key: str) -> list[Attempt]:
        return self.journal.attempts(key) if self.journal is not None else []

    def has(self, digest: str) -> bool:
        return self.store.has(digest)

    def unfetchable(self, key: str, url: str) -> str | None:
        return self.store.unfetchable(key, url)


# -- deciding ------------------------------------------------------------------


def _is_url(url: str | None) -> bool:
    return bool(url) and str(url).startswith(("http://", "https://"))


class Planner:
    """Plans a build, and decides a scene again when its upstream outputs become known.

    `requests` and `order` come from the compiler; `broken` and `blocked` name the
    scenes the front end set aside (with why), `extra` further scene names to list."""

    def __init__(
        self,
        requests: Mapping[str, Request],
        order: Iterable[str],
        sources: Sources,
        *,
        broken: Mapping[str, str] | None = None,
        blocked: Mapping[str, str] | None = None,
        extra: Iterable[str] = (),
    ) -> None:
        self.requests = requests
        self.order = list(order)
        self.sources = sources
        self.broken = dict(broken or {})
        self.blocked = dict(blocked or {})
        ordered = set(self.order)  # once: a set per name made this quadratic (7 s at 10,000)
        self.extra = [n for n in extra if n not in ordered]

    @property
    def backend(self) -> str:
        return self.sources.backend

    @property
    def provider(self) -> str | None:
        return self.sources.provider

    def plan(self, names: Iterable[str] | None = None) -> Plan:
        """The plan of `names` (default: every scene), in dependency order."""
        wanted = None if names is None else set(names)
        order = [n for n in [*self.order, *self.extra] if wanted is None or n in wanted]
        plans: dict[str, ScenePlan] = {}
        for name in order:
            plans[name] = self._plan_scene(name, plans)
        return Plan(self.backend, plans, order, self.provider)

    def _plan_scene(self, name: str, plans: dict[str, ScenePlan]) -> ScenePlan:
        if name in self.broken:
            return ScenePlan(name, "blocked", blocked=self.broken[name])
        req = self.requests.get(name)
        if req is None:
            up = self.blocked.get(name)
            why = (
                f"uses scene {up}, which cannot be built"
                if up is not None
                else "the scene has errors (see `storyc check`)"
            )
            return ScenePlan(name, "blocked", blocked=why)
        upstream: dict[str, str] = {}
        waiting: list[str] = []
        for up in req.upstream:
            up_plan = plans.get(up)
            if up_plan is None:  # not part of this plan (`--scene`): use what is recorded
                out = self.recorded_output(up)
                if out is None:
                    return _blocked(
                        ScenePlan(name, "blocked", takes=max(1, req.takes), request=req),
                        f"uses scene {up}, which has no output yet",
                    )
                upstream[up] = out
            elif up_plan.status == "blocked":
                return _blocked(
                    ScenePlan(name, "blocked", takes=max(1, req.takes), request=req),
                    f"uses scene {up}, which is blocked",
                )
            elif up_plan.output is None:
                waiting.append(up)
            else:
                upstream[up] = up_plan.output
        base = self._base_duration(req, plans)
        if waiting:
            return self._waiting(name, req, upstream, waiting, base)
        return self.decide(name, upstream, base)

    def recorded_output(self, scene: str) -> str | None:
        """The picked output the lock file records for a scene outside this plan."""
        entry = self.sources.entries.get(scene)
        pt = entry.picked_take() if entry else None
        return pt.output if pt is not None and pt.output and self.sources.has(pt.output) else None

    def _waiting(
        self,
        name: str,
        req: Request,
        upstream: dict[str, str],
        waiting: list[str],
        base: float | None,
    ) -> ScenePlan:
        n = max(1, req.takes)
        entry = self.sources.entries.get(name)
        sp = ScenePlan(name, "waiting", takes=n, request=req, upstream=upstream)
        sp.waiting_on = tuple(waiting)
        price = self.price(req, base)
        sp.decisions = {t: TakePlan(t, "render", price=price) for t in range(1, n + 1)}
        sp.render = tuple(sp.decisions)
        sp.picked = _picked(entry, n)
        sp.reasons = [
            Change("upstream", up, message=f"waits for scene {up} to render") for up in waiting
        ] + [
            c
            for c in explain(entry, req, self.backend, upstream, self.provider)
            if c.kind != "upstream"
        ]
        sp.estimate = pricing.estimate(req, backend=self.backend, takes=n, base_duration=base)
        sp.duration = float(req.duration) if req.duration is not None else base
        return sp

    def decide(
        self, name: str, upstream: Mapping[str, str], base_duration: float | None = None
    ) -> ScenePlan:
        """The plan of one scene whose upstream outputs are known: a decision per take.
        The executor calls this for a scene that was waiting, once its upstream rendered."""
        req = self.requests[name]
        entry = self.sources.entries.get(name)
        n = max(1, req.takes)
        sp = ScenePlan(name, "up-to-date", takes=n, request=req, upstream=dict(upstream))
        price: pricing.Estimate | None = None  # priced only when a take renders
        for t in range(1, n + 1):
            key = self.sources.key(req, t, upstream)
            sp.keys[t] = key
            d = self._take(t, key, entry)
            if d.action == "render":
                price = price or self.price(req, base_duration)
                d = replace(d, price=price)
            sp.decisions[t] = d
        sp.picked = _picked(entry, n)
        if all(d.action == "reuse" for d in sp.decisions.values()):  # the no-op case
            sp.reuse = tuple(sp.decisions)
            made = [(t, d.key, d.output) for t, d in sorted(sp.decisions.items())]
            sp.stale_entry = not records(entry, made, sp.picked, self.backend, self.provider)
            picked = sp.decisions[sp.picked]
            sp.output, sp.duration = picked.output, picked.duration
            if sp.duration is None:
                sp.duration = float(req.duration) if req.duration is not None else base_duration
            return sp
        by: dict[str, list[int]] = {a: [] for a in ACTIONS}
        for t, d in sp.decisions.items():
            by[d.action].append(t)
        sp.render, sp.fetch, sp.reuse = tuple(by["render"]), tuple(by["fetch"]), tuple(by["reuse"])
        sp.follow, sp.unknown, sp.pull = tuple(by["follow"]), tuple(by["decide"]), tuple(by["pull"])
        pending = by["render"] or by["follow"] or by["decide"]
        if pending:
            sp.status = "render"
        else:
            picked = sp.decisions[sp.picked]
            sp.output, sp.duration = picked.output, picked.duration
        if sp.duration is None:
            sp.duration = float(req.duration) if req.duration is not None else base_duration
        if pending or by["fetch"] or by["pull"]:
            sp.tried = self._tried(sp, entry)
            sp.reasons = self._reasons(sp, entry, req)
        if pending:  # what an up-to-date scene would cost is never shown or summed
            sp.estimate = pricing.estimate(
                req, backend=self.backend, takes=len(by["render"]), base_duration=base_duration
            )
        return sp

    def price(self, req: Request, base_duration: float | None = None) -> pricing.Estimate:
        """What sending one take of `req` costs (`base_duration`: the length of the video
        a base edit edits, when known)."""
        return pricing.estimate(req, backend=self.backend, takes=1, base_duration=base_duration)

    def _take(self, take: int, key: str, entry: SceneEntry | None) -> TakePlan:
        src = self.sources
        locked = entry.take(take) if entry else None
        locked = locked if locked is not None and locked.key == key else None
        found = src.lookup(key)
        if found is not None:
            return _reused(take, key, found, locked, src, indexed=True)
        attempts = src.attempts(key)
        done = next(
            (a for a in reversed(attempts) if a.state == "completed" and a.output is not None),
            None,
        )
        # paid and finished, but the key index never heard of it (the process died in
        # between, or the index was lost): the journal's or the lock's digest decides
        if done is not None and done.output is not None and src.has(done.output):
            return _reused(take, key, done.output, locked, src, indexed=False, attempt=done)
        if locked is not None and locked.output and src.has(locked.output):
            return _reused(take, key, locked.output, locked, src, indexed=False)
        team = src.remote.output(key) if src.remote is not None else None
        if team is not None:  # the team store has it: pulled, not paid
            return TakePlan(
                take,
                "pull",
                key,
                output=team,
                duration=locked.duration if locked is not None else None,
            )
        rec = src.record(key)
        for url, out in (
            (locked.url, locked.output) if locked else (None, None),
            (rec.url, rec.output) if rec else (None, None),
            (done.url, done.output) if done else (None, None),
        ):
            # a fetch needs the digest it must give: bytes nobody can verify are never adopted
            if _is_url(url) and out and src.unfetchable(key, str(url)) is None:
                return TakePlan(
                    take,
                    "fetch",
                    key,
                    output=out,
                    url=url,
                    task_id=locked.task_id if locked else None,
                    duration=locked.duration if locked else None,
                    cost=locked.cost if locked else None,
                )
        live = next(
            (a for a in reversed(attempts) if a.state in ("submitting", "submitted", "unknown")),
            None,
        )
        if live is not None and live.state == "submitted" and live.task_id:
            return TakePlan(take, "follow", key, task_id=live.task_id, attempt=live.id)
        if live is not None and live.state == "submitting" and src.live_build:
            return TakePlan(take, "follow", key, attempt=live.id)  # being sent right now
        if live is not None and live.state in ("submitting", "unknown"):
            if src.resubmit_unknown:
                unknown = tuple(a.id for a in attempts if a.state == "unknown")
                return TakePlan(take, "render", key, resend=unknown)
            return TakePlan(take, "decide", key, attempt=live.id)
        return TakePlan(take, "render", key)

    def _tried(self, sp: ScenePlan, entry: SceneEntry | None) -> tuple[int, ...]:
        """The takes the lock entry lacks whose key the journal already has an attempt of
        that gave no video (failed, of unknown fate, never sent): a paid sibling was locked
        without them (`ProjectIO.record_takes`)."""
        if entry is None or not entry.takes:
            return ()
        locked = {t.take for t in entry.takes}
        return tuple(
            t
            for t, key in sorted(sp.keys.items())
            if t not in locked and any(a.state != "completed" for a in self.sources.attempts(key))
        )

    def _reasons(self, sp: ScenePlan, entry: SceneEntry | None, req: Request) -> list[Change]:
        reasons = explain(entry, req, self.backend, sp.upstream, self.provider, sp.tried)
        pending = [*sp.render, *sp.unknown, *sp.follow]
        if entry is not None and not reasons and pending:
            reasons = [_missing_reason(entry, sp, pending)]
        for t in sp.follow:
            d = sp.decisions[t]
            msg = (
                f"take {t} was already sent (task {d.task_id}); it is followed, not sent again"
                if d.task_id
                else f"take {t} is being sent by a build running now"
            )
            reasons.append(Change("journal", f"take {t}", message=msg))
        for t in sp.unknown:
            reasons.append(
                Change(
                    "journal",
                    f"take {t}",
                    message=f"take {t}: an earlier attempt's fate is unknown; needs your "
                    f"decision (storyc adopt or storyc forget)",
                )
            )
        for t in sp.pull:
            reasons.append(
                Change(
                    "remote", f"take {t}", message=f"take {t}: in the team store; pulled, not paid"
                )
            )
        for t in sp.fetch:
            reasons.append(
                Change(
                    "missing",
                    f"take {t}",
                    message=f"take {t}: output not in the store; fetched again from its "
                    "recorded URL",
                )
            )
        return reasons

    def _base_duration(self, req: Request, plans: Mapping[str, ScenePlan]) -> float | None:
        marker = req.base_video
        if marker is None:
            return None
        if SCENE_MARKER in marker:
            up = plans.get(str(marker[SCENE_MARKER]))
            if up is None:
                return None
            if up.duration is not None:
                return up.duration
            return float(up.request.duration) if up.request and up.request.duration else None
        if FILE_MARKER in marker:
            return self.sources.file_duration(str(marker[FILE_MARKER]))
        return None


def _picked(entry: SceneEntry | None, takes: int) -> int:
    picked = entry.picked if entry is not None else 1
    return picked if 1 <= picked <= takes else 1


def _reused(
    take: int,
    key: str,
    output: str,
    locked: TakeEntry | None,
    src: Sources,
    *,
    indexed: bool,
    attempt: Attempt | None = None,
) -> TakePlan:
    """A reuse decision with what the lock file should record about the take: the lock
    entry's own facts, else the render record's, else the journal's (so a paid clip
    never loses its URL or task id because another record was lost)."""
    free = src.backend in pricing.FREE_BACKENDS
    if locked is not None and locked.output == output:
        d = TakePlan(
            take,
            "reuse",
            key,
            output=output,
            task_id=locked.task_id,
            url=locked.url,
            duration=locked.duration,
            cost=Decimal(0) if free else locked.cost,
            indexed=indexed,
        )
        if free or (d.url is not None and d.task_id is not None and d.cost is not None):
            return d  # the lock knows it all (a no-op build reads nothing else)
    else:
        d = TakePlan(take, "reuse", key, output=output, indexed=indexed)
    if d.url is None or d.task_id is None or d.duration is None:
        rec = src.record(key)
        if rec is not None and rec.output == output:
            d = replace(
                d,
                task_id=d.task_id or rec.task_id,
                url=d.url or rec.url,
                duration=d.duration if d.duration is not None else rec.duration,
            )
    if src.backend in pricing.FREE_BACKENDS:
        return replace(d, cost=Decimal(0))
    if d.url is None or d.task_id is None or d.cost is None:
        att = attempt or next(
            (
                a
                for a in reversed(src.attempts(key))
                if a.state == "completed" and a.output == output
            ),
            None,
        )
        if att is not None:
            d = replace(
                d,
                task_id=d.task_id or att.task_id,
                url=d.url or att.url,
                cost=d.cost if d.cost is not None else (att.billed or att.estimate),
            )
    return d


def _missing_reason(entry: SceneEntry, sp: ScenePlan, takes: list[int]) -> Change:
    locked = {t.take: t.key for t in entry.takes}
    if all(locked.get(t) == sp.keys[t] for t in takes):
        return Change(
            "missing",
            "output",
            message="output missing from the store, and no URL to fetch it again",
        )
    return Change(
        "key",
        "key",
        message="the key changed although no recorded field did "
        "(a new storyc version, or a lock file edited by hand)",
    )


def _blocked(sp: ScenePlan, why: str) -> ScenePlan:
    sp.status, sp.blocked = "blocked", why
    return sp


# -- the plan of a compilation (`storyc plan`, watch) -------------------------


def _file_durations(comp: Compilation) -> Callable[[str], float | None]:
    """The length of each local video the project uses (from its header, read once)."""
    known: dict[str, float | None] = {}

    def duration(path: str) -> float | None:
        if path not in known:
            known[path] = comp.media_duration(path)
        return known[path]

    return duration


def planner_for(comp: Compilation, sources: Sources) -> Planner:
    wanted: Iterable[str] = comp.selected or (comp.summary.scenes if comp.summary else ())
    return Planner(
        comp.requests, comp.order, sources, broken=comp.broken, blocked=comp.blocked, extra=wanted
    )


def make_plan(
    comp: Compilation,
    *,
    lock: LockFile,
    store: Store,
    backend: str,
    journal: Journal | None = None,
    live_build: bool = False,
    remote: RemoteLookup | None = None,
    provider: str | None = None,
) -> Plan:
    sources = Sources(
        lock=lock,
        store=store,
        backend=backend,
        journal=journal,
        file_duration=_file_durations(comp),
        live_build=live_build,
        remote=remote,
        provider=provider,
    )
    return planner_for(comp, sources).plan()


def base_duration(comp: Compilation, req: Request, plans: Mapping[str, ScenePlan]) -> float | None:
    """The length of the video a base edit edits, as the planner prices it: the planned
    length of the upstream scene, or the header of the local video."""
    sources = Sources(
        lock=LockFile(), store=_NO_STORE, backend="preview", file_duration=_file_durations(comp)
    )
    return Planner(comp.requests, comp.order, sources)._base_duration(req, plans)


class _NoStore:
    """For `base_duration`, which reads no store."""


_NO_STORE: Any = _NoStore()
