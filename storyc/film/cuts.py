"""After the scenes of a build: every cut (or those asked for) assembled, and said so.

Stage: film (called once by the build session, after the executor). In: the build's
cut specs, requests and order, the outcome of each scene, the lock file, the store, the
backend, the cuts asked for. Out: a `CutOutcome` per cut, reported as lines and events
through the callbacks. I/O: what `storyc.film.assemble` does.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from storyc.film.assemble import Assembler, CutOutcome
from storyc.film.sources import choose, preview_outputs
from storyc.film.spec import CutSpec
from storyc.plan.address import is_local
from storyc.state.lockfile import LockFile
from storyc.state.store import Store
from storyc.targets.request import Request


class _Take(Protocol):
    digest: str | None


class _SceneOutcome(Protocol):
    state: str
    picked: int
    error: str | None

    @property
    def takes(self) -> Mapping[int, _Take]: ...


def picked_outputs(
    scenes: Iterable[str],
    outcomes: Mapping[str, Any],
    lock: LockFile,
    store: Store,
    backend: str,
    provider: str | None = None,
) -> tuple[dict[str, str], dict[str, str]]:
    """Scene -> its picked output for `backend` (built now, or recorded in the lock for
    this backend and `provider`: a rehearsal's clip never stands in for a render of a real
    provider, `storyc.plan.address.key_provider`), and scene -> why it has none."""
    picked: dict[str, str] = {}
    why: dict[str, str] = {}
    for scene in scenes:
        o: _SceneOutcome | None = outcomes.get(scene)
        if o is not None and o.state in ("done", "reused"):
            take = o.takes.get(o.picked)
            if take is not None and take.digest is not None:
                picked[scene] = take.digest
                continue
        entry = lock.table(backend).get(scene)  # paid renders or previews
        t = entry.picked_take() if entry is not None and entry.backend == backend else None
        if (
            t is not None
            and entry is not None
            and entry.provider != provider
            and not is_local(provider)  # a rehearsal may show what is real
        ):
            t = None
            why.setdefault(scene, "its render is from another provider")
        if t is not None and t.output and store.has(t.output):
            picked[scene] = t.output
        elif o is not None and o.state not in ("done", "reused"):
            why[scene] = f"{o.state}" + (f": {o.error}" if o.error else "")
    return picked, why


def build_cuts(
    root: Path,
    store: Store,
    lock: LockFile,
    *,
    cuts: Mapping[str, CutSpec],
    requests: Mapping[str, Request],
    order: Sequence[str],
    outcomes: Mapping[str, Any],
    backend: str,
    provider: str | None = None,
    names: Sequence[str] | None = None,
    broken: Mapping[str, str] | None = None,
    jobs: int = 2,
    say: Callable[[str], None] = print,
    warn: Callable[[str], None] | None = None,
    event: Callable[..., None] | None = None,
) -> list[CutOutcome]:
    """Assemble the cuts named (all when None) and report each: what stands in for a
    missing scene (W380 preview, W381 slate), a failure (E380), the result."""
    wanted = [cuts[n] for n in (names or list(cuts)) if n in cuts]
    if not wanted:
        return []
    scenes = sorted({s for spec in wanted for s in spec.scenes})
    picked, why = picked_outputs(scenes, outcomes, lock, store, backend, provider)
    for scene in scenes:
        o = outcomes.get(scene)
        state = o.state if o is not None else None if scene in requests else "blocked"
        # a take this build obtained (the scene's other takes failed, storyc.lock holds
        # it already) is of the story as it is now
        obtained = o is not None and any(
            t.digest is not None and t.digest == picked.get(scene) for t in o.takes.values()
        )
        if (
            scene in picked
            and state is not None
            and state not in ("done", "reused")
            and not obtained
        ):
            # the video the lock records is from before the story changed: say so, or a
            # film "up to date" hides that one of its scenes could not be made as written
            (warn or say)(
                f"warning[W383]: scene {scene} is {state} now; the cuts show its last "
                "render, made before the story changed"
            )
    for scene in scenes:
        if scene not in requests and scene not in picked:
            why.setdefault(scene, (broken or {}).get(scene) or "it has errors")
    previews: dict[str, str] = {}
    if backend != "preview" and any(s not in picked for s in scenes):
        previews = preview_outputs(requests, order, store, lock)
    sources = choose(scenes, picked, backend=backend, previews=previews, why=why)
    assembler = Assembler(root, store, jobs=jobs)
    results = []
    for spec in wanted:
        outcome = assembler.assemble(spec, sources)
        report(outcome, backend, say, warn or say, event)
        results.append(outcome)
    return results


def report(
    o: CutOutcome,
    backend: str,
    say: Callable[[str], None],
    warn: Callable[[str], None],
    event: Callable[..., None] | None,
) -> None:
    """What became of a cut: warnings and errors through `warn`, the result through `say`,
    and one `cut` event."""
    shown: set[str] = set()
    for s in o.stand_ins:
        if s.scene in shown:
            continue
        shown.add(s.scene)
        if s.kind == "preview":
            warn(f"warning[W380]: cut {o.name}: scene {s.scene} has no {backend} render; "
                "its preview stands in")  # fmt: skip
        else:
            warn(f"warning[W381]: cut {o.name}: scene {s.scene} is shown as a slate ({s.why})")
    for scene in o.clamped:
        warn(f"warning[W382]: cut {o.name}: the out point of scene {scene} is past the end "
            "of its video; it plays to its end")  # fmt: skip
    if o.state == "failed":
        warn(f"error[E380]: cut {o.name}: {o.error}")
    elif o.state == "skipped":
        warn(f"cut {o.name}: not assembled: {o.error}")
    else:
        secs = f"{o.seconds:.2f} s" if o.seconds is not None else "?"
        how = f", {o.method}" if o.method else ""
        say(f"cut {o.name}: {o.state}: {o.path} ({secs}, {len(o.sources)} clips{how})")
    if event is not None:
        event(
            "cut",
            cut=o.name,
            state=o.state,
            path=o.path,
            seconds=o.seconds,
            method=o.method,
            stand_ins={s.scene: s.kind for s in o.stand_ins},
            error=o.error or None,
        )
