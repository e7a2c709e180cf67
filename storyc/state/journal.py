"""The journal: a durable record of every paid attempt, so nothing is paid for twice.

Stage: execute. In: the executor's transitions of each attempt, and the user's word on
an attempt of unknown fate (`storyc adopt`, `storyc forget`). Out: attempts to re-attach
after a crash, attempts of unknown fate, money spent. I/O: SQLite at
`.storyc/journal.sqlite` in WAL mode with `synchronous=FULL`: every transition is its
own committed transaction and is on disk before the call returns.

States of an attempt:

    planned ──▶ submitting ──▶ submitted(task id) ──▶ completed | failed | cancelled
       │             │
       │             ├─(died, or an error that may have come after sending)──▶ unknown
       │             └─(refused by the provider: 4xx, nothing created)──▶ failed
       └─(stopped or failed before any byte of the request left)──▶ not_sent

`begin` records the decision (the take's estimate reserved) before inputs are uploaded;
`mark_submitting` is called just before the POST, with the exact request that will be
sent, and `mark_submitted` as soon as the task id is known.

Liveness is not judged by process ids (a zombie or a reused pid still answers): the
journal is only recovered by a process that holds the project's build lock
(`storyc.state.projectlock`, released by the kernel when its holder dies). Holding it,
`recover()` knows that every `planned` or `submitting` attempt of another connection
belongs to a build that is gone: `submitting` ones become `unknown` (the request may
or may not have reached the provider, and there is no idempotency key), `planned` ones
`not_sent`. `unknown()` lists attempts nothing may repeat until the user decides:
`adopt` (the user found the task: it is followed), `forget` (it never ran) or
`resolve_unknown(..., "resend")` (`--resubmit-unknown`: may pay twice).

An attempt sent by a build that did not wait for it (`--detach`) is marked `detached`: the
next plain build collects it rather than waiting for it. `pending()` lists what `storyc
status` shows: attempts in flight, being sent, or of unknown fate.
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
from typing import Any

STATES = (
    "planned",
    "submitting",
    "submitted",
    "completed",
    "failed",
    "cancelled",
    "unknown",
    "not_sent",
)
TERMINAL = frozenset({"completed", "failed", "cancelled", "not_sent"})
SENT = frozenset(
    {"submitted", "completed", "unknown"}
)  # reached, or may have reached, the provider
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
# Columns added after the first release: (name, SQL type). Old journals gain them on open.
_ADDED = (
    ("request", "TEXT"),
    ("base_url", "TEXT"),
    ("sent_at", "REAL"),
    ("detached", "INTEGER"),
)


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
    request: str | None = None  # canonical JSON of the exact body sent (files as URIs)
    base_url: str | None = None  # the provider it was sent to
    sent_at: float | None = None  # when the POST started (None: never sent)
    # sent by a build that did not wait for it (`--detach`, or one collecting after it):
    # the next plain build collects it rather than waiting for it
    detached: bool = False

    @property
    def may_have_cost(self) -> bool:
        """Reached, or may have reached, the provider: the estimate may be owed."""
        return self.state in SENT or (self.state == "failed" and self.task_id is not None)


@dataclass(frozen=True, slots=True)
class Spent:
    billed: Decimal  # completed attempts (billed, or estimated when no bill came back)
    in_flight: Decimal  # estimates of attempts still running
    unknown: Decimal  # estimates of attempts of unknown fate
    completed: int
    attempts: int
    failed: int = 0  # attempts the provider failed or refused (not charged)


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


class Journal:
    """One connection to the journal. Not shared between threads."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # for people reading the journal; liveness comes from the build lock, never from this
        self.owner = f"{os.getpid()}:{uuid.uuid4().hex[:12]}"
        try:
            self._db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self._db.row_factory = _dict_row
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
            have = {r["name"] for r in self._db.execute("PRAGMA table_info(attempts)")}
            for name, kind in _ADDED:
                if name not in have:
                    self._db.execute(f"ALTER TABLE attempts ADD COLUMN {name} {kind}")
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
        base_url: str | None = None,
        detached: bool = False,
    ) -> int:
        now = time.time()
        with self._tx() as db:
            cur = db.execute(
                "INSERT INTO attempts (key, scene, take, target, backend, state, owner, estimate,"
                " body_digest, base_url, detached, created_at, updated_at)"
                " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?)",
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
                    base_url,
                    1 if detached else 0,
                    now,
                    now,
                ),
            )
            assert cur.lastrowid is not None
            return cur.lastrowid

    def mark_submitting(self, attempt_id: int, request: str | None = None) -> None:
        """Durable before the request is sent: after a crash this attempt is `unknown`.
        `request`: the exact body about to be sent, so that a task found later on the
        provider's dashboard can be matched against it (`adopt`)."""
        self._move(
            attempt_id,
            ("planned",),
            "submitting",
            request=request,
            sent_at=time.time(),
        )

    def set_request(self, attempt_id: int, request: str) -> None:
        """The request was sent again (an expired upload replaced): record the new one."""
        self._move(attempt_id, ("submitting",), "submitting", request=request)

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
        request left (a timeout, a dropped connection) is `unknown`, not `failed`;
        `certainly_not_sent` says the provider answered with a refusal (nothing created)."""
        att = self._row(attempt_id)
        if att.state == "submitting" and not certainly_not_sent:
            self._move(attempt_id, ("submitting",), "unknown", error=error)
        else:
            self._move(
                attempt_id, ("planned", "submitting", "submitted", "unknown"), "failed", error=error
            )

    def mark_not_sent(self, attempt_id: int, reason: str) -> None:
        """Stopped or failed before any byte of the request left the machine: cost nothing."""
        self._move(attempt_id, ("planned", "submitting"), "not_sent", error=reason)

    def mark_cancelled(self, attempt_id: int, reason: str = "cancelled") -> None:
        self._move(attempt_id, ("planned", "submitting", "submitted"), "cancelled", error=reason)

    # -- recovery --------------------------------------------------------------

    def recover(self) -> list[Attempt]:
        """After a crash: attempts of builds that are gone and were mid-send become
        `unknown`, planned ones `not_sent`. Returns the attempts that became unknown.

        Call it only while holding the project's build lock: then no other build is
        running, whatever the process table says (a dead build's pid may be a zombie
        or belong to another process by now)."""
        changed: list[int] = []
        with self._tx() as db:
            rows = db.execute(
                "SELECT id, state, owner FROM attempts WHERE state IN ('planned','submitting')"
            ).fetchall()
            now = time.time()
            for row in rows:
                if row["owner"] == self.owner:
                    continue  # this very build: it is sending it now
                if row["state"] == "submitting":
                    db.execute(
                        "UPDATE attempts SET state='unknown', updated_at=?, error=? WHERE id=?",
                        (
                            now,
                            "the build stopped while sending, before a task id came back",
                            row["id"],
                        ),
                    )
                    changed.append(row["id"])
                else:
                    db.execute(
                        "UPDATE attempts SET state='not_sent', updated_at=?, error=? WHERE id=?",
                        (now, "the build stopped before sending", row["id"]),
                    )
        return [self._row(i) for i in changed]

    def _select(self, where: str, args: tuple[object, ...] = ()) -> list[Attempt]:
        rows = self._db.execute(f"SELECT * FROM attempts WHERE {where} ORDER BY id", args)
        return [_attempt(r) for r in rows.fetchall()]

    def in_flight(self) -> list[Attempt]:
        """Submitted attempts (task id known) not yet finished: follow them, never resend."""
        return self._select("state='submitted'")

    def pending(self) -> list[Attempt]:
        """What `storyc status` lists: attempts in flight, being sent, or of unknown fate."""
        return self._select("state IN ('submitting','submitted','unknown')")

    def unknown(self) -> list[Attempt]:
        return self._select("state='unknown'")

    def attempts(self, key: str) -> list[Attempt]:
        return self._select("key=?", (key,))

    def of_scene(self, scene: str, take: int | None = None) -> list[Attempt]:
        if take is None:
            return self._select("scene=?", (scene,))
        return self._select("scene=? AND take=?", (scene, take))

    def by_task(self, task_id: str) -> Attempt | None:
        found = self._select("task_id=?", (task_id,))
        return found[-1] if found else None

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
        it becomes `failed` and the scene may be submitted again. "forget": the user
        knows it never ran, recorded as `cancelled`. "task:<id>": the user found the
        task; it is followed (see `adopt`, which checks the task first).
        """
        if decision.startswith("task:") and len(decision) > 5:
            self.adopt(attempt_id, decision[5:])
        elif decision == "resend":
            self._move(attempt_id, ("unknown",), "failed", decision=decision)
        elif decision == "forget":
            self._move(attempt_id, ("unknown",), "cancelled", decision=decision)
        else:
            raise JournalError(f"unknown decision {decision!r}: use resend, forget or task:<id>")

    def adopt(self, attempt_id: int, task_id: str) -> None:
        """The task the user found on the provider is this attempt's: follow it."""
        other = self.by_task(task_id)
        if other is not None and other.id != attempt_id:
            raise JournalError(
                f"task {task_id} is already recorded for scene {other.scene!r} "
                f"(take {other.take}, attempt {other.id})"
            )
        self._move(
            attempt_id, ("unknown",), "submitted", task_id=task_id, decision=f"task:{task_id}"
        )

    def spent(self) -> Spent:
        billed = in_flight = unknown = Decimal(0)
        completed = failed = 0
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
            elif row["state"] == "failed":
                failed += 1
        return Spent(billed, in_flight, unknown, completed, len(rows), failed)


def _dict_row(cursor: sqlite3.Cursor, values: tuple[Any, ...]) -> dict[str, Any]:
    """A row as a plain dict: each column is read by its exact name. (`sqlite3.Row` would
    answer to any case, so a column named in the wrong case could never fail a test.)"""
    return {col[0]: v for col, v in zip(cursor.description, values, strict=True)}


def _attempt(row: dict[str, Any]) -> Attempt:
    keys = row.keys()
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
        request=row["request"] if "request" in keys else None,
        base_url=row["base_url"] if "base_url" in keys else None,
        sent_at=row["sent_at"] if "sent_at" in keys else None,
        detached=bool(row["detached"]) if "detached" in keys else False,
    )
