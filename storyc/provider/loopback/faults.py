"""Fault injection for the loopback provider: which call misbehaves, and how.

Stage: tooling (the offline provider). In: fault rules (objects, or specs such as
`submit:drop:nth=3` from the command line). Out: for each incoming call, the rule
that fires, if any. No I/O. Deterministic: exact schedules by call number, and
probabilities drawn from a seeded RNG.

Endpoints: submit (POST /apps/run), task (GET /tasks/{id}), status, stream, cancel,
files (POST /files), upload (PUT of the bytes), download (GET of a file or output), and
webhook: the call the provider makes to a task's webhook URL when the task ends.

Kinds:
    429 / 500 / 503   answer with that error (429 and 503 carry Retry-After if given)
    402               payment_required (on submit: nothing is created)
    401               unauthorized, whatever key was sent
    drop              read the request, then close without answering; on submit the task
                      IS created first (the answer was lost: the client cannot know)
    drop_early        on submit: close without answering and without creating a task
    delay             wait `seconds` before answering (provokes client read timeouts)
    truncate          downloads: promise the full length, send half, close
    slow              downloads: pause `seconds` between 64 KiB blocks
    fail / reject     on submit: accept the task, which then ends failed (11) or
                      rejected (13, "insufficient balance") instead of completing
    late              webhook: call `seconds` after the task ended
    duplicate         webhook: call twice
    lost              webhook: never call
    forged            webhook: half-way through the task, two forged calls to its URL:
                      one saying it completed (with a made-up output) while it runs, one
                      for a task id this provider never created; then the real call

A webhook fault is drawn once per task with a webhook, when it is submitted (`nth`
counts those tasks in the order they arrived).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

ENDPOINTS = (
    "submit",
    "task",
    "status",
    "stream",
    "cancel",
    "files",
    "upload",
    "download",
    "webhook",
)
KINDS = (
    "429",
    "500",
    "503",
    "402",
    "401",
    "drop",
    "drop_early",
    "delay",
    "truncate",
    "slow",
    "fail",
    "reject",
    "late",
    "duplicate",
    "lost",
    "forged",
)


class FaultSpecError(ValueError):
    pass


@dataclass(frozen=True)
class Fault:
    endpoint: str
    kind: str
    nth: frozenset[int] = frozenset()  # 1-based call numbers on that endpoint
    p: float = 0.0  # probability per call, when no `nth`
    retry_after: float | None = None
    seconds: float = 1.0  # for delay and slow
    times: int | None = None  # fire at most this many times

    def __post_init__(self) -> None:
        if self.endpoint not in ENDPOINTS:
            raise FaultSpecError(
                f"unknown endpoint {self.endpoint!r}; one of {', '.join(ENDPOINTS)}"
            )
        if self.kind not in KINDS:
            raise FaultSpecError(f"unknown fault {self.kind!r}; one of {', '.join(KINDS)}")
        if not 0.0 <= self.p <= 1.0:
            raise FaultSpecError(f"probability {self.p} is not between 0 and 1")


def parse_fault(spec: str) -> Fault:
    """`ENDPOINT:KIND[:key=value...]`, keys nth=3+5, p=0.1, retry_after=2, seconds=1, times=2.

    Without nth or p the fault fires on every call (p=1).
    """
    parts = [p.strip() for p in spec.split(":")]
    if len(parts) < 2:
        raise FaultSpecError(f"fault {spec!r}: expected ENDPOINT:KIND[:key=value...]")
    opts: dict[str, object] = {}
    for item in parts[2:]:
        key, sep, value = item.partition("=")
        if not sep:
            raise FaultSpecError(f"fault {spec!r}: {item!r} is not key=value")
        try:
            if key == "nth":
                opts["nth"] = frozenset(int(x) for x in value.replace(",", "+").split("+"))
            elif key in ("p", "retry_after", "seconds"):
                opts[key] = float(value)
            elif key == "times":
                opts["times"] = int(value)
            else:
                raise FaultSpecError(f"fault {spec!r}: unknown option {key!r}")
        except ValueError as exc:
            if isinstance(exc, FaultSpecError):
                raise
            raise FaultSpecError(f"fault {spec!r}: bad value for {key}: {value!r}") from None
    if "nth" not in opts and "p" not in opts:
        opts["p"] = 1.0
    return Fault(parts[0], parts[1], **opts)  # type: ignore[arg-type]


@dataclass
class FaultPlan:
    faults: list[Fault] = field(default_factory=list)
    seed: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    fired: list[tuple[str, int, str]] = field(default_factory=list)  # (endpoint, call, kind)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        self._times: dict[int, int] = {}

    def add(self, fault: Fault | str) -> None:
        self.faults.append(parse_fault(fault) if isinstance(fault, str) else fault)

    def pick(self, endpoint: str) -> Fault | None:
        """Count one call on `endpoint`; return the fault that fires for it, if any."""
        n = self.counts.get(endpoint, 0) + 1
        self.counts[endpoint] = n
        for i, f in enumerate(self.faults):
            if f.endpoint != endpoint:
                continue
            if f.times is not None and self._times.get(i, 0) >= f.times:
                continue
            hit = n in f.nth if f.nth else (f.p > 0 and self._rng.random() < f.p)
            if hit:
                self._times[i] = self._times.get(i, 0) + 1
                self.fired.append((endpoint, n, f.kind))
                return f
        return None
