"""What is still rendering, and what it has cost so far: `storyc status`.

Stage: execute (a reader beside the build). In: the project's journal (attempts in
flight, being sent, or of unknown fate) and the provider's word on each task (the cheap
status endpoint, batched and paced by `storyc.provider.status`). Out: a `Status` report
(rows and totals) and its text and JSON forms. I/O: reads `.storyc/journal.sqlite`, asks
whether a build holds the project (without taking its lock), and `GET
/tasks/{id}/status` for each task in flight.

It never sends a request that could cost money, never changes the journal and never
downloads: collecting what finished is `storyc build`'s (and `storyc webhook serve`'s)
job, under the project's build lock. So it is safe to run at any time, during a build
too.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyc.plan import pricing
from storyc.state.journal import Attempt, Journal
from storyc.state.projectlock import ProjectLock

# what the provider's statuses mean for the user, by how far the task got
RUNNING_WORDS = frozenset(
    {
        "unknown",
        "received",
        "queued",
        "dispatched",
        "preparing",
        "serving",
        "setting_up",
        "running",
        "cancelling",
        "uploading",
    }
)
ENDED_BADLY = frozenset({"failed", "cancelled", "rejected"})


@dataclass
class Row:
    attempt: int
    scene: str
    take: int
    task_id: str | None
    journal: str  # the journal's state: submitting, submitted, unknown
    provider: str  # the provider's status name, or "not checked", "unreachable", ...
    elapsed: float  # seconds since the request was sent
    cost: Decimal | None  # the estimate (what it costs when it completes)
    detached: bool
    note: str = ""

    @property
    def running(self) -> bool:
        """Still working on the provider (or being sent right now)."""
        return self.provider in RUNNING_WORDS or self.provider == "being sent"

    def as_json(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "scene": self.scene,
            "take": self.take,
            "task_id": self.task_id,
            "journal": self.journal,
            "provider": self.provider,
            "elapsed": round(self.elapsed, 1),
            "cost": None if self.cost is None else str(self.cost),
            "detached": self.detached,
            "note": self.note,
        }


@dataclass
class Status:
    rows: list[Row] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)  # warnings (W400), one line each
    checked: bool = True  # the provider was asked about every task
    build_running: bool = False

    @property
    def settled(self) -> bool:
        """Nothing still working on the provider: what is left needs a build or a word."""
        return self.checked and not any(r.running for r in self.rows)

    def totals(self) -> dict[str, Any]:
        def usd(rows: Iterable[Row]) -> str:
            return str(sum((r.cost or Decimal(0) for r in rows), Decimal(0)))

        running = [r for r in self.rows if r.running]
        finished = [r for r in self.rows if r.provider == "completed"]
        failed = [r for r in self.rows if r.provider in ENDED_BADLY]
        unknown = [r for r in self.rows if r.journal == "unknown"]
        return {
            "sent": len([r for r in self.rows if r.task_id]),
            "running": len(running),
            "running_cost": usd(running),
            "finished": len(finished),
            "finished_cost": usd(finished),
            "failed": len(failed),
            "unknown": len(unknown),
            "unknown_cost": usd(unknown),
            "cost": usd(r for r in self.rows if r.provider not in ENDED_BADLY),
        }

    def as_json(self) -> dict[str, Any]:
        return {
            "attempts": [r.as_json() for r in self.rows],
            "total": self.totals(),
            "settled": self.settled,
            "checked": self.checked,
            "build_running": self.build_running,
            "problems": self.problems,
            "time": time.time(),
        }


def read_journal(root: Path) -> tuple[list[Attempt], bool]:
    """The attempts `storyc status` lists, and whether a build holds the project now."""
    path = root / ".storyc" / "journal.sqlite"
    if not path.exists():
        return [], False
    with Journal(path) as journal:
        pending = journal.pending()
    return pending, ProjectLock(root).held_by_another()


async def gather(
    root: Path,
    *,
    api_key: str | None,
    base_url: str | None = None,
    client_factory: Any = None,
) -> Status:
    """The status of every attempt in flight or of unknown fate, each task asked now."""
    attempts, building = read_journal(root)
    out = Status(build_running=building)
    now = time.time()
    for a in attempts:
        if a.state == "unknown":
            provider, note = (
                "-",
                f"fate unknown: `storyc adopt {a.scene} TASK_ID` or `storyc forget {a.scene}`",
            )
        elif a.state == "submitting" and building:
            provider, note = "being sent", "a build is sending it now"
        elif a.state == "submitting":  # its build is gone: the next build says unknown
            provider, note = "-", "its build stopped while sending it: fate unknown"
        else:
            provider, note = "not checked", ""
        out.rows.append(
            Row(
                attempt=a.id,
                scene=a.scene,
                take=a.take,
                task_id=a.task_id,
                journal=a.state,
                provider=provider,
                elapsed=max(0.0, now - (a.sent_at or a.created_at)),
                cost=a.estimate,
                detached=a.detached,
                note=note,
            )
        )
    asking = [r for r in out.rows if r.journal == "submitted" and r.task_id]
    if not asking:
        return out
    if not api_key:
        out.checked = False
        out.problems.append(
            "warning[W400]: the provider was not asked (INFERENCE_API_KEY is not set): "
            "the states shown are the journal's"
        )
        return out
    by_url: dict[str | None, list[Row]] = {}
    where = {a.id: a.base_url for a in attempts}
    for r in asking:
        by_url.setdefault(base_url or where.get(r.attempt), []).append(r)
    for url, rows in by_url.items():
        await _ask(out, rows, api_key, url, client_factory)
    return out


async def _ask(
    out: Status, rows: list[Row], api_key: str, base_url: str | None, client_factory: Any
) -> None:
    from storyc.provider import errors as E
    from storyc.provider.client import ProviderClient
    from storyc.provider.status import read_statuses

    make = client_factory or (lambda key, url: ProviderClient(api_key=key, base_url=url))
    try:
        client = make(api_key, base_url)
    except E.ProviderError as exc:
        out.checked = False
        out.problems.append(f"warning[W400]: the provider was not asked: {exc}")
        return
    async with client:
        answers = await read_statuses(client, [r.task_id for r in rows if r.task_id])
    failures: list[str] = []
    for r in rows:
        got = answers.get(r.task_id or "")
        if isinstance(got, E.NotFound):
            r.provider, r.note = "not found", "the provider does not know this task"
        elif isinstance(got, E.ProviderError):
            r.provider = "unreachable"
            failures.append(str(got))
        elif got is not None:
            r.provider = got.name.lower()
            r.note = _note(r)
    if failures:
        out.checked = False
        out.problems.append(
            f"warning[W400]: {len(failures)} task(s) could not be asked about "
            f"({failures[0]}); the states shown are the journal's"
        )


def _note(r: Row) -> str:
    if r.provider == "completed":
        return "finished: `storyc build` collects it"
    if r.provider in ENDED_BADLY:
        return f"{r.provider} on the provider (not charged): the next build sends it again"
    return ""


def elapsed_text(seconds: float) -> str:
    s = int(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m {s % 60:02d}s"
    return f"{s // 3600}h {s % 3600 // 60:02d}m"


def render_text(status: Status) -> list[str]:
    if not status.rows:
        return ["nothing in flight: every paid attempt has ended and been collected"]
    head = ("scene", "take", "task", "provider", "elapsed", "cost", "note")
    rows = [head] + [
        (
            r.scene,
            str(r.take),
            r.task_id or "-",
            r.provider,
            elapsed_text(r.elapsed),
            pricing.format_usd(r.cost),
            r.note,
        )
        for r in status.rows
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(6)]
    lines = [
        "  ".join([*(row[i].ljust(widths[i]) for i in range(6)), row[6]]).rstrip() for row in rows
    ]
    t = status.totals()
    parts = [f"{t['sent']} task(s) sent"]
    if t["running"]:
        parts.append(f"{t['running']} running ({pricing.format_usd(Decimal(t['running_cost']))})")
    if t["finished"]:
        parts.append(
            f"{t['finished']} finished, not collected yet "
            f"({pricing.format_usd(Decimal(t['finished_cost']))}): `storyc build` collects them"
        )
    if t["failed"]:
        parts.append(f"{t['failed']} failed (not charged)")
    if t["unknown"]:
        parts.append(
            f"{t['unknown']} of unknown fate ({pricing.format_usd(Decimal(t['unknown_cost']))})"
        )
    lines.append("")
    lines.append("; ".join(parts))
    if status.build_running:
        lines.append("a build is running in this project now")
    return lines
