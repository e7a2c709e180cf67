"""What a long-lived storyc process keeps from one command to the next.

Stage: foundation (used by the compiled state, the command line and the daemon). In:
nothing. Out: a registry of objects by key, and a queue of deferred work. I/O: none.

A one-shot command builds its digest cache, its build cache and its compiler engine, uses
them once and exits: the next command reads them back from `.storyc/` (seconds at 10,000
scenes). The daemon (`storyc daemon`, storyc.cli.daemon) answers many commands in one
process. After `enable()`, `held(key, make, fresh)` hands a command the object an earlier
command made under the same key, as long as `fresh(obj)` says it still describes what is
on disk (else a new one is made); and `later(fn)` defers work no answer waits for (writing
the compiled state back) until the process has nothing else to do (`run_later`). Without `enable()`
— every ordinary command — `held` makes a new object each time and `later` runs `fn` at
once: nothing changes.

Everything held is correct at any moment by its own checks (stat signatures, digests):
the registry only saves re-reading it.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:  # not imported by every command's start (the no-op build's fast path)
    from storyc.base.hashing import DigestCache

T = TypeVar("T")

_held: dict[Hashable, Any] | None = None
_later: dict[Hashable, Callable[[], None]] = {}  # by key: a newer save replaces an older


def enable() -> None:
    """Keep objects across commands in this process (the daemon calls this once)."""
    global _held
    if _held is None:
        _held = {}


def disable() -> None:
    """Forget everything held and run what was deferred (a test, or the daemon stopping)."""
    global _held
    run_later()
    _held = None


def enabled() -> bool:
    return _held is not None


def held(key: Hashable, make: Callable[[], T], fresh: Callable[[T], bool] | None = None) -> T:
    """The object kept under `key` if it is still `fresh`, else a new one from `make`
    (kept when enabled)."""
    if _held is None:
        return make()
    obj = _held.get(key)
    if obj is not None and (fresh is None or fresh(obj)):
        return obj  # type: ignore[no-any-return]
    obj = make()
    _held[key] = obj
    return obj


def peek(key: Hashable) -> Any:
    """What is held under `key`, or None (nothing is made)."""
    return None if _held is None else _held.get(key)


def put(key: Hashable, obj: Any) -> None:
    """Hand `obj` to whoever `take`s `key` next (when enabled; else nothing is kept)."""
    if _held is not None:
        _held[key] = obj


def take(key: Hashable) -> Any:
    """What `put` left under `key`, once (then it is gone), or None."""
    return None if _held is None else _held.pop(key, None)


def drop(key: Hashable) -> None:
    """Forget what is held under `key` (its next use makes a new one)."""
    if _held is not None:
        _held.pop(key, None)


def later(fn: Callable[[], None], key: Hashable = None) -> None:
    """Run `fn` once the reply is out when enabled, else now. A later `fn` under the same
    `key` replaces one not run yet (the newest state is the one worth writing)."""
    if _held is None:
        fn()
        return
    k = key if key is not None else ("unkeyed", len(_later), id(fn))
    _later.pop(k, None)
    _later[k] = fn


def pending() -> bool:
    """Whether deferred work waits."""
    return bool(_later)


def run_later(failed: Callable[[Exception], None] | None = None) -> None:
    """Run the deferred work, oldest first. With `failed`, an error in one piece is
    handed to it and the rest still runs (nobody waits for deferred work to report to)."""
    while _later:
        k = next(iter(_later))
        fn = _later.pop(k)
        if failed is None:
            fn()
            continue
        try:
            fn()
        except Exception as exc:
            failed(exc)


# -- what every command keeps the same way ------------------------------------------------


def digest_cache(root: str | os.PathLike[str]) -> DigestCache:
    """The project's persistent digest cache, `.storyc/digests.json`; when enabled, the one
    the last command used (being stat-keyed, it stays right as files change)."""
    from storyc.base.hashing import DigestCache

    return held(
        ("digests", str(root)), lambda: DigestCache(Path(root) / ".storyc" / "digests.json")
    )


def save_soon(digests: DigestCache) -> None:
    """`digests.save()` as a best effort (a cache that cannot be written only makes the
    next command slower): now, or when enabled once the answer is out."""

    def save() -> None:
        with contextlib.suppress(OSError):
            digests.save()

    later(save, ("digests", id(digests)))
