"""A test hook that kills (or pauses) a build at a named moment, so that every recovery
window is exercised on purpose rather than by chance.

Stage: execute (read by `storyc.build.executor` and `storyc.build.effects`). In: the
environment variable `STORYC_TEST_FAULT`, read once per process. Out: at the named
point, SIGKILL to this very process (`kill`), or a pause (`sleep=S`). I/O: none besides
the signal. Meant for the test suite and `bench/bench_money.py`; unset (always, for a
user), each point costs one dictionary lookup.

Syntax: `POINT:ACTION[,POINT:ACTION...]`, ACTION one of `kill`, `kill@N` (at the N-th
time the point is reached, counting from 1) or `sleep=S`. Points, in the order a paid
take meets them:

    hashing         before the take's inputs are hashed and its frames extracted
    upload          before the inputs are uploaded
    after-intent    the intent to send is in the journal; the request has not left
    after-send      the provider answered with a task id; the journal has not heard it
    after-task-id   the task id is in the journal
    after-download  the output is in the store; the journal does not say completed
    before-index    the journal says completed; the key index has not heard of it
    before-lock     the key index knows the output; storyc.lock is not written yet
"""

from __future__ import annotations

import os
import signal

ENV = "STORYC_TEST_FAULT"
POINTS = (
    "hashing",
    "upload",
    "after-intent",
    "after-send",
    "after-task-id",
    "after-download",
    "before-index",
    "before-lock",
)

_rules: dict[str, tuple[str, float]] | None = None
_seen: dict[str, int] = {}


def _parse(text: str) -> dict[str, tuple[str, float]]:
    rules: dict[str, tuple[str, float]] = {}
    for part in filter(None, (p.strip() for p in text.split(","))):
        point, _, action = part.partition(":")
        if point not in POINTS:
            raise ValueError(f"{ENV}: unknown point {point!r} ({', '.join(POINTS)})")
        if action == "kill":
            rules[point] = ("kill", 1.0)
        elif action.startswith("kill@"):
            rules[point] = ("kill", float(int(action[5:])))
        elif action.startswith("sleep="):
            rules[point] = ("sleep", float(action[6:]))
        else:
            raise ValueError(f"{ENV}: unknown action {action!r} (kill, kill@N, sleep=S)")
    return rules


def _rule(point: str) -> tuple[str, float] | None:
    global _rules
    if _rules is None:
        _rules = _parse(os.environ.get(ENV, ""))
    return _rules.get(point)


def reach(point: str) -> float:
    """Called at each named point: kills the process when the hook says so; returns the
    seconds to pause there (0 almost always). A caller inside the event loop awaits
    `asyncio.sleep` for that long rather than blocking the loop."""
    rule = _rule(point)
    if rule is None:
        return 0.0
    action, arg = rule
    _seen[point] = _seen.get(point, 0) + 1
    if action == "kill" and _seen[point] == int(arg):
        os.kill(os.getpid(), signal.SIGKILL)
    return arg if action == "sleep" else 0.0
