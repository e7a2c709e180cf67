"""The journal: a durable record of every paid attempt, so nothing is paid for twice.

Stage: execute. In: the executor's transitions of each attempt. Out: attempts to
re-attach after a crash, attempts of unknown fate, money spent. I/O: SQLite at
`.storyc/journal.sqlite` in WAL mode with `synchronous=FULL`: every transition is
its own committed transaction and is on disk before the call returns.

States of an attempt:

    planned ──▶ submitting ──▶ submitted(task id) ──▶ completed | failed | cancelled
       │             │
       │             └─(died, or an error that may have come after sending)──▶ unknown
       └─(died before sending, or an error known to come before)──▶ cancelled | failed

`mark_submitting` is called just before the POST, `mark_submitted` as soon as the
task id is known. On the next run `recover()` turns every `submitting` attempt of a
process that is no longer alive into `unknown` (the request may or may not have
reached the provider, and there is no idempotency key), and every `planned` one into
`cancelled` (it was never sent). `in_flight()` lists submitted attempts to follow
again; `unknown()` lists attempts the executor must not repeat until the user
decides (`resolve_unknown`).
"""

from __future__ import annotations

import os
import sqlite3
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

STATES = ("planned", "submitting", "submitted", "completed", "failed", "cancelled", "unknown")
TERMINAL = frozenset({"completed", "failed", "cancelled"})
DECISIONS = ("resend", "forget")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS attempts (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key TEXT NOT NULL,
    scene TEXT NOT NULL,
    take INTEGER NOT NULL,
    target TEXT NOT NULL,
    backend TEXT NOT NULL,
    state TEXT NOT NULL,
    owner TEXT NOT NULL,
    task_id TEXT,
    estimate TEXT,
    billed TEXT,
    output TEXT,
    url TEXT,
    error TEXT,
    body_digest TEXT,
    decision TEXT,
    created_at REAL NOT NULL,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS attempts_key ON attempts(key);
CREATE INDEX IF NOT EXISTS attempts_state ON attempts(state);
"""


class JournalError(Exception):
    """An impossible transition (a bug in the caller), or an unreadable journal."""


@dataclass(frozen=True, slots=True)
class Attempt:
    id: int
    key: str
    scene: str
    take: int
    target: str
    backend: str
    state: str
    owner: str
    task_id: str | None
    estimate: Decimal | None
    billed: Decimal | None
    output: str | None
    url: str | None
    error: str | None
    body_digest: str | None
    decision: str | None
    created_at: float
    updated_at: float


@dataclass(frozen=True, slots=True)
class Spent:
    billed: Decimal  # completed attempts (billed, or estimated when no bill came back)
    in_flight: Decimal  # estimates of attempts still running
    unknown: Decimal  # estimates of attempts of unknown fate
    completed: int
    attempts: int


def _dec(v: object) -> Decimal | None:
    """A money amount from the journal; None (an unknown cost) when it is missing or is not
    a plausible amount (a damaged row must not stop a build or be counted as a price)."""
    if v is None:
        return None
    try:
        d = Decimal(str(v))
    except (ArithmeticError, ValueError):
        return None
    return d if d.is_finite() and 0 <= d <= _MAX_AMOUNT else None


_MAX_AMOUNT = Decimal(10**9)  # USD: no render costs a billion; a larger figure is damage


def _process_start(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (Linux), to survive pid reuse."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


def _alive(owner: str) -> bool:
    parts = owner.split(":")
    pid_s, start = parts[0], (parts[1] if len(parts) > 1 else "")
    try:
        pid = int(pid_s)
    except ValueError:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    actual = _process_start(pid)
    return actual is None or start in ("", actual)


class Journal:
    """One connection to the journal. Not shared between threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        pid = os.getpid()
        # pid + start time identify this process; the uuid tells sessions in it apart.
        self.owner = f"{pid}:{_process_start(pid) or ''}:{uuid.uuid4().hex[:12]}"
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = sqlite3.Row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.DatabaseError as exc:
            raise JournalError(f"cannot open the journal {self.path.name}: {exc}") from None

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _row(self, attempt_id: int) -> Attempt:
        row = self._db.execute("SELECT * FROM attempts WHERE id=?", (attempt_id,)).fetchone()
        if row is None:
            raise JournalError(f"no attempt {attempt_id}")
        return _attempt(row)

    def get(self, attempt_id: int) -> Attempt:
        return self._row(attempt_id)

    def _move(
        self, attempt_id: int, allowed: tuple[str, ...], state: str, **fields: object
    ) -> None:
        cols = ", ".join(f"{k}=?" for k in fields)
        sets = f"state=?, updated_at=?{', ' + cols if cols else ''}"
        with self._tx() as db:
            cur = db.execute(
                f"UPDATE attempts SET {sets} WHERE id=? AND state IN ({','.join('?' * len(allowed))})",
                (state, time.time(), *fields.values(), attempt_id, *allowed),
            )
            if cur.rowcount != 1:
                row = db.execute("SELECT state FROM attempts WHERE id=?", (attempt_id,)).fetchone()
                now = row["state"] if row else "missing"
                raise JournalError(f"attempt {attempt_id}: cannot go from {now} to {state}")

    # -- transitions -----------------------------------------------------------

    def begin(
        self,
        key: str,
        scene: str,
        take: int,
        target: str,
        backend: str,
        estimate: Decimal | None,
        *,
        body_digest: str | None = None,
    ) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO attempts (key, scene, take, target, backend, state, owner, estimate,"
                " body_digest, created_at, updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?)",
                (
                    key,
                    scene,
                    take,
                    target,
                    backend,
                    "planned",
                    self.owner,
                    None if estimate is None else str(estimate),
                    body_digest,
                    now,
                    now,
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def mark_submitting(self, attempt_id: int) -> None:
        """Durable before the request is sent: after a crash this attempt is `unknown`."""
        self._move(attempt_id, ("planned",), "submitting")

    def mark_submitted(self, attempt_id: int, task_id: str) -> None:
        self._move(attempt_id, ("submitting", "unknown"), "submitted", task_id=task_id)

    def mark_completed(
        self, attempt_id: int, output_digest: str, url: str | None, billed: Decimal | None
    ) -> None:
        self._move(
            attempt_id,
            ("submitted", "submitting", "unknown"),
            "completed",
            output=output_digest,
            url=url,
            billed=None if billed is None else str(billed),
        )

    def mark_failed(self, attempt_id: int, error: str, *, certainly_not_sent: bool = False) -> None:
        """A failed attempt. Without a task id, a failure that may have come after the
        request left (a timeout, a dropped connection) is `unknown`, not `failed`."""
        att = self._row(attempt_id)
        if att.state == "submitting" and not certainly_not_sent:
            self._move(attempt_id, ("submitting",), "unknown", error=error)
        else:
            self._move(
                attempt_id, ("planned", "submitting", "submitted", "unknown"), "failed", error=error
            )

    def mark_cancelled(self, attempt_id: int, reason: str = "cancelled") -> None:
        self._move(attempt_id, ("planned", "submitting", "submitted"), "cancelled", error=reason)

    # -- recovery --------------------------------------------------------------

    def recover(self) -> list[Attempt]:
        """After a crash: attempts of dead processes that were mid-send become `unknown`,
        planned ones `cancelled`. Returns the attempts that became unknown."""
        changed: list[int] = []
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, state, owner FROM attempts WHERE state IN ('planned','submitting')"
            ).fetchall()
            now = time.time()
            for row in rows:
                if row["owner"] == self.owner or _alive(row["owner"]):
                    continue
                if row["state"] == "submitting":
                    db.execute(
                        "UPDATE attempts SET state='unknown', updated_at=?, error=? WHERE id=?",
                        (
                            now,
                            "the process stopped after sending, before a task id came back",
                            row["id"],
                        ),
                    )
                    changed.append(row["id"])
                else:
                    db.execute(
                        "UPDATE attempts SET state='cancelled', updated_at=?, error=? WHERE id=?",
                        (now, "the process stopped before sending", row["id"]),
                    )
        return [self._row(i) for i in changed]

    def _select(self, where: str, args: tuple[object, ...] = ()) -> list[Attempt]:
        rows = self._db.execute(f"SELECT * FROM attempts WHERE {where} ORDER BY id", args)
        return [_attempt(r) for r in rows.fetchall()]

    def in_flight(self) -> list[Attempt]:
        """Submitted attempts (task id known) not yet finished: follow them, never resend."""
        return self._select("state='submitted'")

    def unknown(self) -> list[Attempt]:
        return self._select("state='unknown'")

    def attempts(self, key: str) -> list[Attempt]:
        return self._select("key=?", (key,))

    def all(self) -> list[Attempt]:
        return self._select("1=1")

    def blocking(self, key: str) -> Attempt | None:
        """An attempt that forbids a new submission for `key`: one in flight, one of
        unknown fate, or one already completed."""
        for att in reversed(self.attempts(key)):
            if att.state in ("submitting", "submitted", "unknown", "completed"):
                return att
        return None

    def resolve_unknown(self, attempt_id: int, decision: str) -> None:
        """The user's word on an attempt of unknown fate.

        "resend": it did not reach the provider (or the user accepts paying again) —
        it becomes `failed` and the scene may be submitted again. "forget": the same,
        recorded as `cancelled`. "task:<id>": the user found the task; follow it.
        """
        if decision.startswith("task:") and len(decision) > 5:
            self._move(
                attempt_id, ("unknown",), "submitted", task_id=decision[5:], decision=decision
            )
        elif decision == "resend":
            self._move(attempt_id, ("unknown",), "failed", decision=decision)
        elif decision == "forget":
            self._move(attempt_id, ("unknown",), "cancelled", decision=decision)
        else:
            raise JournalError(f"unknown decision {decision!r}: use resend, forget or task:<id>")

    def spent(self) -> Spent:
        billed = in_flight = unknown = Decimal(0)
        completed = 0
        rows = self._db.execute("SELECT state, estimate, billed FROM attempts").fetchall()
        for row in rows:
            est = _dec(row["estimate"]) or Decimal(0)
            if row["state"] == "completed":
                completed += 1
                billed += _dec(row["billed"]) or est
            elif row["state"] in ("submitting", "submitted"):
                in_flight += est
            elif row["state"] == "unknown":
                unknown += est
        return Spent(billed, in_flight, unknown, completed, len(rows))


def _attempt(row: sqlite3.Row) -> Attempt:
    return Attempt(
        id=row["id"],
        key=row["key"],
        scene=row["scene"],
        take=row["take"],
        target=row["target"],
        backend=row["backend"],
        state=row["state"],
        owner=row["owner"],
        task_id=row["task_id"],
        estimate=_dec(row["estimate"]),
        billed=_dec(row["billed"]),
        output=row["output"],
        url=row["url"],
        error=row["error"],
        body_digest=row["body_digest"],
        decision=row["decision"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
    )
