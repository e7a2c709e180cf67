"""Garbage collection of the store: remove what nothing references.

Stage: execute (`storyc gc`). In: a `Store`, the set of output digests the lock file
and the journal reference, and whether paid renders may go. Out: a `GcReport` of what was (or, with `dry_run`, would be)
removed. I/O: deletes objects, records and stale temp files under `.storyc/`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from storyc.state.store import Store


@dataclass
class GcReport:
    """What `collect` removed (or would remove, with dry_run)."""

    objects: list[tuple[str, int]]  # (digest, size)
    renders: list[Path]
    derived: list[Path]
    temps: list[Path]
    kept: int

    @property
    def bytes(self) -> int:
        return sum(size for _, size in self.objects)


def collect(
    store: Store,
    referenced: set[str],
    *,
    keep_days: float = 30.0,
    dry_run: bool = False,
    now: float | None = None,
    include_paid: bool = False,
) -> GcReport:
    """Remove what nothing references.

    Kept: every object in `referenced` (the lock file's takes, paid and preview, and the
    outputs of the journal's completed attempts), the outputs of render records younger
    than `keep_days` (so reverting a recent edit is still free), the outputs of every
    paid render record whatever its age (money was spent on them: only `include_paid`
    lets an unreferenced one go), and the derived objects (frames) of anything kept.
    Removed: other objects, older preview render records, derived records whose source
    or result is gone, and temp files older than an hour (left by killed processes).
    """
    t = time.time() if now is None else now
    keep = set(referenced)
    old_renders: list[Path] = []
    for path, rec in store.iter_renders():
        if rec is None:
            old_renders.append(path)
            continue
        created = rec.created  # a hand-damaged record may hold anything here
        expired = not isinstance(created, int | float) or t - created > keep_days * 86400
        paid = rec.backend != "preview"
        if expired and rec.output not in referenced and (include_paid or not paid):
            old_renders.append(path)
            continue
        keep.add(rec.output)
    dead_derived: list[Path] = []
    for path, raw in store.iter_derived():
        src = raw.get("source") if raw else None
        res = raw.get("result") if raw else None
        if isinstance(src, str) and src in keep and isinstance(res, str):
            keep.add(res)
        else:
            dead_derived.append(path)
    doomed: list[tuple[str, int]] = []
    kept = 0
    for digest, path in store.iter_objects():
        if digest in keep:
            kept += 1
            continue
        try:
            doomed.append((digest, path.stat().st_size))
        except OSError:
            continue
    temps = store.stale_temps()
    if not dry_run:
        for digest, _ in doomed:
            store.remove(digest)
        for p in [*old_renders, *dead_derived, *temps]:
            p.unlink(missing_ok=True)
        store.save()
    return GcReport(doomed, old_renders, dead_derived, temps, kept)
