"""What a build was asked to do and what came of it: options, outcomes, the result.

Stage: execute (data shared by `storyc.build.executor`, the `storyc build` session and the
watcher). In: nothing. Out: dataclasses and the scene states. No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal

from storyc.targets.request import Request

# Outcomes of a scene, in the order the summary lists them.
DONE = "done"  # rendered now (at least one take)
REUSED = "reused"  # every take's output was already known
FAILED = "failed"
BLOCKED = "blocked"  # a scene it uses failed or was not built
UNKNOWN = "unknown"  # an earlier attempt's fate is unknown: storyc adopt / storyc forget
OVER_BUDGET = "over-budget"
EXPIRED = "expired"  # its recorded URL no longer gives the clip: the next build renders it
STOPPED = "stopped"  # interrupted before it could run
# A build that does not wait (`--detach`, or one collecting after it) leaves these; the
# next build (or `storyc webhook serve`) carries them on. Neither is a failure.
RUNNING = "running"  # sent: its task is still running on the provider
DEFERRED = "deferred"  # not sent yet: it uses a scene still running (or no slot was free)
FINAL = (DONE, REUSED, RUNNING, DEFERRED, FAILED, BLOCKED, UNKNOWN, OVER_BUDGET, EXPIRED, STOPPED)
UNSETTLED = frozenset({RUNNING, DEFERRED})
NEEDS_DECISION = frozenset({UNKNOWN, OVER_BUDGET, EXPIRED})  # exit 4


@dataclass
class BuildOptions:
    backend: str = "preview"
    jobs: int = 4
    max_cost: Decimal | None = None
    resubmit_unknown: bool = False
    retries: int = 2  # extra attempts after a failed task, per take
    scenes: tuple[str, ...] | None = None  # None: every scene
    # submit and record, do not wait: a task still running is left to a later build
    # (a take it would wait for a slot for is deferred too)
    detach: bool = False
    # `storyc webhook serve`: collect what finished, never send anything
    collect_only: bool = False


@dataclass
class TakeOutcome:
    take: int
    key: str
    digest: str | None = None
    task_id: str | None = None
    url: str | None = None
    cost: Decimal | None = None
    duration: float | None = None
    how: str = ""  # "rendered", "reused", "refetched", "reattached", "recovered"


@dataclass
class SceneOutcome:
    scene: str
    state: str
    takes: dict[int, TakeOutcome] = field(default_factory=dict)
    error: str | None = None
    picked: int = 1
    cause: str | None = None  # for BLOCKED: the state of the scene it waited on

    @property
    def failed(self) -> bool:
        """A failure (exit 1), as opposed to work that awaits the user's decision."""
        return self.state == FAILED or (self.state == BLOCKED and self.cause in (None, FAILED))

    @property
    def needs_decision(self) -> bool:
        return self.state in NEEDS_DECISION or (
            self.state == BLOCKED and self.cause in NEEDS_DECISION
        )


@dataclass
class BuildResult:
    scenes: dict[str, SceneOutcome] = field(default_factory=dict)
    submitted: int = 0
    reused: int = 0
    committed: Decimal = Decimal(0)  # reserved: sent, in flight or of unknown fate
    sent: Decimal = Decimal(0)  # estimates of the requests this build sent
    billed: Decimal | None = None  # what the provider reported it billed, where it did
    failed_attempts: int = 0  # sent, then failed or refused by the provider
    failed_cost: Decimal = Decimal(0)  # their estimates (failed tasks are not charged)
    reattached: int = 0  # tasks of an earlier build followed to the end
    interrupted: bool = False
    stopped_reason: str | None = None
    setup_error: str | None = None  # e.g. the key was refused: nothing more can be sent
    halted: str | None = None  # why no more takes were sent (budget, balance)
    running: list[tuple[str, str]] = field(default_factory=list)  # (take label, task id)
    collected: int = 0  # tasks of a detached build downloaded by this one

    def count(self, state: str) -> int:
        return sum(1 for s in self.scenes.values() if s.state == state)

    @property
    def settled(self) -> bool:
        """Nothing left running on the provider, nothing deferred to a later build."""
        return not any(s.state in UNSETTLED for s in self.scenes.values())

    @property
    def ok(self) -> bool:
        return all(s.state in (DONE, REUSED) for s in self.scenes.values())


def upstream_closure(requests: Mapping[str, Request], scenes: Iterable[str] | None) -> set[str]:
    """The scenes asked for plus every scene they use, directly or not (None: all)."""
    if not scenes:
        return set(requests)
    wanted: set[str] = set()
    todo = list(scenes)
    while todo:
        s = todo.pop()
        if s in wanted or s not in requests:
            continue
        wanted.add(s)
        todo.extend(requests[s].upstream)
    return wanted
