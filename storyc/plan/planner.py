"""The plan: for each scene, up to date / will render / blocked / waiting, why, and the cost.

Stage: plan. In: a `Compilation`, the lock file, the store (what is already rendered),
optionally the journal (attempts already sent), and the backend. Out: a `Plan` —
per scene its status, the takes to render, re-fetch or reuse, the keys where they can
be known, the field-level reasons against the lock file, and the estimate. I/O: reads
the store's render records and verifies the objects they name (cheap after the first
time: see storyc.state.store); nothing is written.

It decides exactly as the executor does: a take whose key has a finished render with
its object present is reused; otherwise, if the team store has it (`remote`, see
`storyc.remote.planning`), it is pulled; otherwise, if the lock file recorded a URL for
that key, it is fetched again; otherwise it renders. A scene that uses the output of a scene that
will render is *waiting*: its key cannot be known until then, but its cost can.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import TYPE_CHECKING, Any, Literal, Protocol

from storyc.plan import keys, pricing
from storyc.state.lockfile import LockFile, SceneEntry
from storyc.state.store import Store
from storyc.targets.request import FILE_MARKER, SCENE_MARKER, Request

if TYPE_CHECKING:
    from storyc.compiler import Compilation
    from storyc.state.journal import Journal

Status = Literal["up-to-date", "render", "blocked", "waiting"]


class RemoteLookup(Protocol):
    """What the planner asks the team store (`storyc.remote.planning.RemoteView`)."""

    def output(self, key: str) -> str | None:
        """The output digest the team store holds for `key`, or None."""
        ...


STATUSES: tuple[Status, ...] = ("up-to-date", "render", "waiting", "blocked")


@dataclass(frozen=True)
class Change:
    """One reason a scene renders. `kind`: new, backend, target, schema, app, prompt,
    input, setting, takes, upstream, missing, key."""

    kind: str
    field: str
    old: Any = None
    new: Any = None
    message: str = ""


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

    @property
    def will_render(self) -> bool:
        return self.status in ("render", "waiting")


@dataclass
class Plan:
    backend: str
    scenes: dict[str, ScenePlan]
    order: list[str]

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


def explain(
    entry: SceneEntry | None, request: Request, backend: str, upstream: dict[str, str]
) -> list[Change]:
    """Field-level differences between what the lock file recorded and the request now."""
    if entry is None:
        return [Change("new", "", message="not in the lock file (never built)")]
    out: list[Change] = []
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
    added = [t for t in range(1, request.takes + 1) if t not in locked_takes]
    if added and locked_takes:
        out.append(
            Change(
                "takes",
                "takes",
                len(locked_takes),
                request.takes,
                f"takes added: {', '.join(map(str, added))}",
            )
        )
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


# -- making the plan -----------------------------------------------------------


def _base_duration(comp: Compilation, req: Request, plans: dict[str, ScenePlan]) -> float | None:
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
        return comp.media_duration(str(marker[FILE_MARKER]))
    return None


def make_plan(
    comp: Compilation,
    *,
    lock: LockFile,
    store: Store,
    backend: str,
    journal: Journal | None = None,
    remote: RemoteLookup | None = None,
) -> Plan:
    names = list(comp.order)
    wanted: Iterable[str] = comp.selected or (comp.summary.scenes if comp.summary else ())
    names += [n for n in wanted if n not in names]
    broken = comp.broken
    plans: dict[str, ScenePlan] = {}
    for name in names:
        if name in broken:
            plans[name] = ScenePlan(name, "blocked", blocked=broken[name])
        else:
            plans[name] = _plan_scene(comp, name, plans, lock, store, backend, journal, remote)
    return Plan(backend, plans, names)


def _plan_scene(
    comp: Compilation,
    name: str,
    plans: dict[str, ScenePlan],
    lock: LockFile,
    store: Store,
    backend: str,
    journal: Journal | None,
    remote: RemoteLookup | None = None,
) -> ScenePlan:
    req = comp.requests.get(name)
    if req is None:
        up = comp.blocked.get(name)
        why = (
            f"uses scene {up}, which cannot be built"
            if up is not None
            else "the scene has errors (see `storyc check`)"
        )
        return ScenePlan(name, "blocked", blocked=why)
    entry = lock.scenes.get(name)
    n_takes = max(1, req.takes)
    sp = ScenePlan(name, "up-to-date", takes=n_takes, request=req)
    waiting: list[str] = []
    for up in req.upstream:
        up_plan = plans.get(up)
        if up_plan is None:  # not part of this plan (`--scene`): use what is recorded
            ue = lock.scenes.get(up)
            pt = ue.picked_take() if ue else None
            if pt is not None and pt.output and store.has(pt.output):
                sp.upstream[up] = pt.output
            else:
                return _blocked(sp, f"uses scene {up}, which has no output yet")
        elif up_plan.status == "blocked":
            return _blocked(sp, f"uses scene {up}, which is blocked")
        elif up_plan.output is None:
            waiting.append(up)
        else:
            sp.upstream[up] = up_plan.output
    base = _base_duration(comp, req, plans)
    if waiting:
        sp.status, sp.waiting_on, sp.render = (
            "waiting",
            tuple(waiting),
            tuple(range(1, n_takes + 1)),
        )
        sp.reasons = [
            Change("upstream", up, message=f"waits for scene {up} to render") for up in waiting
        ] + [c for c in explain(entry, req, backend, sp.upstream) if c.kind not in ("upstream",)]
        sp.estimate = pricing.estimate(req, backend=backend, takes=n_takes, base_duration=base)
        return sp
    sp.keys = keys.scene_keys(req, backend=backend, upstream=sp.upstream)
    render, fetch, reuse, follow, unknown, pull = [], [], [], [], [], []
    outputs: dict[int, tuple[str, float | None]] = {}
    for take, key in sp.keys.items():
        rec = store.lookup_render(key)
        locked = entry.take(take) if entry else None
        locked = locked if locked is not None and locked.key == key else None
        if rec is not None and store.has(rec.output):
            reuse.append(take)
            outputs[take] = (
                rec.output,
                locked.duration if locked and locked.duration else rec.duration,
            )
            continue
        team = remote.output(key) if remote is not None else None
        if team is not None:  # the team store has it: pulled, not paid
            pull.append(take)
            outputs[take] = (team, locked.duration if locked else None)
            continue
        if locked is not None and locked.url and locked.url.startswith(("http://", "https://")):
            fetch.append(take)
            if locked.output:
                outputs[take] = (locked.output, locked.duration)
            continue
        att = journal.blocking(key) if journal is not None else None
        if att is not None and att.state in ("submitting", "submitted"):
            follow.append(take)
        elif att is not None and att.state == "unknown":
            unknown.append(take)
        else:
            render.append(take)
    sp.render, sp.fetch, sp.reuse = tuple(render), tuple(fetch), tuple(reuse)
    sp.follow, sp.unknown, sp.pull = tuple(follow), tuple(unknown), tuple(pull)
    picked = entry.picked if entry and 1 <= entry.picked <= n_takes else 1
    if not (render or follow or unknown):
        if picked in outputs:
            sp.output, sp.duration = outputs[picked]
        else:  # fetched without a recorded digest: its digest is known after the fetch
            sp.status = "render"
        if sp.duration is None and req.duration is not None:
            sp.duration = float(req.duration)
    else:
        sp.status = "render"
    if render or follow or unknown or fetch or pull:
        sp.reasons = explain(entry, req, backend, sp.upstream)
        if entry is not None and not sp.reasons and (render or unknown or follow):
            sp.reasons = [_missing_reason(entry, sp, render + unknown + follow)]
        for t in follow:
            sp.reasons.append(
                Change(
                    "journal",
                    f"take {t}",
                    message=f"take {t} was already sent; it is followed, not sent again",
                )
            )
        for t in unknown:
            sp.reasons.append(
                Change(
                    "journal",
                    f"take {t}",
                    message=f"take {t}: an earlier attempt's fate is unknown; needs your decision",
                )
            )
        for t in pull:
            sp.reasons.append(
                Change(
                    "remote",
                    f"take {t}",
                    message=f"take {t}: in the team store; pulled, not paid",
                )
            )
        for t in fetch:
            sp.reasons.append(
                Change(
                    "missing",
                    f"take {t}",
                    message=f"take {t}: output not in "
                    "the store; fetched again from its recorded URL",
                )
            )
    sp.estimate = pricing.estimate(req, backend=backend, takes=len(render), base_duration=base)
    return sp


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
