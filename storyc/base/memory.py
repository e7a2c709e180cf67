"""What the cyclic garbage collector is asked to look at: not the compilation.

Stage: foundation (used by the command line's compile, watch and the language server).
In: nothing. Out: nothing. I/O: none (the interpreter's collector only).

A compilation of 10,000 scenes is about a million small objects (declarations, units,
requests, diagnostics) that live as long as the command, or until the next save in a
session. Python's collector walks every tracked object on each full collection: at that
size a full collection costs most of a second, and it comes at random moments — during
planning, during the lock file's decoding, in the middle of a watch refresh (the slow
saves in bench/bench_watch.py were these). Reference counting frees these objects (they
hold no cycles), so the collector has nothing to find in them.

`settle()` moves every object alive now into the collector's permanent generation
(`gc.freeze`): later collections look only at what is made afterwards. A one-shot command
calls it once its compilation is in hand. A session that compiles again and again uses
a `Settler`: it settles after each refresh and, every so many refreshes, when the session
is idle, lets the collector see everything once (`gc.unfreeze` then a full collection), so
cyclic garbage left by objects that died since cannot pile up over a long session.
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any


def settle() -> None:
    """Exclude every object alive now from future cyclic collections (see above)."""
    gc.freeze()


@contextmanager
def settling() -> Iterator[None]:
    """Make what lives as long as the command (a compilation) with the collector off, and
    settle it before the collector is on again: switched on first, its first collection
    would walk every object just made (0.2-0.3 s at 10,000 scenes)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
        gc.freeze()
    finally:
        if was_enabled:
            gc.enable()


def unsettle() -> None:
    """Let the collector see everything again: a command run in-process (by a test, or
    a program using storyc) leaves the interpreter as it found it."""
    gc.unfreeze()


class Settler:
    """Settle after each refresh; a full collection every `every` refreshes, when idle."""

    def __init__(self, every: int = 25) -> None:
        self.every = max(1, every)
        self.since = 0  # refreshes since the last full collection
        self.collections = 0  # full collections done (for tests)

    def refreshed(self) -> None:
        """After a refresh: what it built is settled."""
        self.since += 1
        gc.freeze()

    def idle(self) -> bool:
        """When nothing is waiting: a full collection if one is due. True if it ran."""
        if self.since < self.every:
            return False
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.since = 0
        self.collections += 1
        return True


def give_back() -> bool:
    """Return the C heap's free memory to the system (glibc's `malloc_trim`), for a
    long-lived process between commands: a command at 10,000 scenes makes and frees tens
    of megabytes of text (a lock file, a plan table, JSON), and the freed pages, scattered
    among objects kept alive, otherwise stay with the process — its size grew by megabytes
    per command. True if the call was made (not glibc: nothing to do)."""
    global _trim
    if _trim is None:
        try:
            import ctypes

            # the C library this interpreter runs on, whatever its file is called; only
            # glibc has malloc_trim (musl, macOS: nothing to give back this way)
            _trim = ctypes.CDLL(None).malloc_trim
        except (OSError, AttributeError, TypeError):
            _trim = False
    if _trim is False:
        return False
    _trim(0)
    return True


_trim: Any = None
