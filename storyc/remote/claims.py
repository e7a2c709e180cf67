"""Claims: one payer per request across machines.

Stage: remote. In: a render key about to be paid for, this process's identity. Out: a
held claim (this machine pays) or the claim another machine holds (with whether its
owner is alive, its state and its provider task id). I/O: small JSON objects under
`claims/` in the team store, written only with conditional writes.

A machine that is about to submit a paid request first creates `claims/<key>` with an
atomic create-if-absent write (`PutObject` with `If-None-Match: *`, which S3, R2, MinIO
and GCS honour): exactly one machine succeeds. The holder moves the claim through

    claimed ──▶ submitting ──▶ submitted (task id) ──▶ (deleted once the render is pushed)
                     └──▶ unknown (the answer to the submission was lost)

each step a write conditional on the version it last wrote (`If-Match`), and refreshes
it while it waits for the task (a heartbeat), so that its liveness can be judged from
another machine. The claim is deleted when the render's object and record are pushed,
or when the provider said the task failed (then anyone may submit again).

Whether the holder is alive: on the same machine, by its process id and start time (as
the journal does); elsewhere, by the age of the claim's last write on the server's
clock, against a time-to-live several heartbeats long. A claim whose holder died is
resolved like an attempt of unknown fate: one with a task id is adopted (the task is
followed, never sent again); one still `claimed` was never sent and is taken over; one
`submitting` or `unknown` may have reached the provider and needs the user's word.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import time
import uuid
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from storyc.base.hashing import canonical_json
from storyc.remote.client import Conflict, Head, NotFound, ObjectClient
from storyc.remote.layout import LAYOUT, claim_name

STATES = ("claimed", "submitting", "submitted", "unknown")
HEARTBEAT = 30.0  # seconds between refreshes of a held claim
ENV_HEARTBEAT = "STORYC_REMOTE_HEARTBEAT"  # for tests and slow links: seconds; a claim not refreshed for 6 of them (server clock) has lost its holder


def heartbeat_interval() -> float:
    try:
        return max(0.05, float(os.environ.get(ENV_HEARTBEAT, HEARTBEAT)))
    except ValueError:
        return HEARTBEAT


def _process_start(pid: int) -> str:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    return stat.rsplit(")", 1)[1].split()[19]


def _host_id() -> str:
    """This machine, as a hash of its name and boot (no host name leaves it as such)."""
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        boot = ""
    return hashlib.sha256(f"{socket.gethostname()}\0{boot}".encode()).hexdigest()[:16]


@dataclass(frozen=True)
class Owner:
    host: str
    pid: int
    start: str
    session: str

    @classmethod
    def me(cls) -> Owner:
        pid = os.getpid()
        return cls(_host_id(), pid, _process_start(pid), uuid.uuid4().hex[:12])

    def same_process(self, other: Owner) -> bool:
        return (self.host, self.pid, self.start) == (other.host, other.pid, other.start)

    def alive_here(self) -> bool:
        """Whether this owner, on this machine, is a live process."""
        try:
            os.kill(self.pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        actual = _process_start(self.pid)
        return not self.start or not actual or actual == self.start


@dataclass(frozen=True)
class Claim:
    key: str
    scene: str
    take: int
    state: str
    owner: Owner
    task_id: str | None = None
    created: float = 0.0

    def dumps(self) -> bytes:
        data = {
            "layout": LAYOUT,
            "key": self.key,
            "scene": self.scene,
            "take": self.take,
            "state": self.state,
            "task_id": self.task_id,
            "owner": {
                "host": self.owner.host,
                "pid": self.owner.pid,
                "start": self.owner.start,
                "session": self.owner.session,
            },
            "created": self.created,
            "updated": time.time(),
        }
        return canonical_json(data)


def parse_claim(data: bytes, key: str) -> Claim | None:
    try:
        raw = json.loads(data)
        o = raw["owner"]
        claim = Claim(
            key=raw["key"],
            scene=str(raw["scene"]),
            take=int(raw["take"]),
            state=raw["state"],
            owner=Owner(str(o["host"]), int(o["pid"]), str(o["start"]), str(o["session"])),
            task_id=raw.get("task_id"),
            created=float(raw.get("created") or 0.0),
        )
    except (ValueError, TypeError, KeyError, AttributeError):
        return None
    if claim.key != key or claim.state not in STATES:
        return None
    if claim.task_id is not None and not isinstance(claim.task_id, str):
        return None
    return claim


@dataclass(frozen=True)
class Held:
    """A claim this process holds, with the version it last wrote."""

    claim: Claim
    etag: str
    written: float  # monotonic time of the last write


@dataclass(frozen=True)
class Found:
    """A claim someone else holds (or held). `claim` is None when it is unreadable."""

    key: str
    claim: Claim | None
    head: Head
    alive: bool

    @property
    def state(self) -> str:
        return self.claim.state if self.claim is not None else "unknown"

    @property
    def task_id(self) -> str | None:
        return self.claim.task_id if self.claim is not None else None


class LostClaim(Exception):
    """Our claim was taken over (we were judged dead) or removed."""


class ClaimBook:
    def __init__(self, client: ObjectClient, owner: Owner | None = None) -> None:
        self.client = client
        self.owner = owner or Owner.me()
        self.heartbeat = heartbeat_interval()
        self.ttl = 6 * self.heartbeat  # several missed heartbeats, not one slow write

    def _alive(self, claim: Claim | None, head: Head) -> bool:
        if claim is not None and claim.owner.host == self.owner.host:
            return claim.owner.alive_here()
        now = head.server_now if head.server_now is not None else time.time()
        return now - head.modified < self.ttl

    def read(self, key: str) -> Found | None:
        try:
            data, head = self.client.get_bytes(claim_name(key), limit=64 << 10)
        except NotFound:
            return None
        claim = parse_claim(data, key)
        return Found(key, claim, head, self._alive(claim, head))

    def claim(self, key: str, scene: str, take: int) -> Held | Found:
        """Create the claim, or report the one that is there (read after a lost race;
        if it vanished in between, try again)."""
        for _ in range(5):
            c = Claim(key, scene, take, "claimed", self.owner, created=time.time())
            try:
                etag = self.client.put_bytes(claim_name(key), c.dumps(), create_only=True)
                return Held(c, etag, time.monotonic())
            except Conflict:
                found = self.read(key)
                if found is not None:
                    return found
        raise Conflict(f"the claim on {key[:19]}… keeps changing")

    def take_over(self, found: Found, scene: str, take: int, **changes: Any) -> Held | None:
        """Replace a dead holder's claim by ours; None when someone else was quicker."""
        old = found.claim
        c = Claim(
            found.key,
            scene,
            take,
            changes.get("state", old.state if old else "claimed"),
            self.owner,
            task_id=changes.get("task_id", old.task_id if old else None),
            created=time.time(),
        )
        try:
            etag = self.client.put_bytes(claim_name(found.key), c.dumps(), if_match=found.head.etag)
        except (Conflict, NotFound):
            return None
        return Held(c, etag, time.monotonic())

    def update(self, held: Held, **changes: Any) -> Held:
        """Move our claim on (state, task id) or refresh it; `LostClaim` if it is not ours."""
        c = replace(held.claim, **changes)
        try:
            etag = self.client.put_bytes(claim_name(c.key), c.dumps(), if_match=held.etag)
        except (Conflict, NotFound):
            raise LostClaim(f"the claim on {c.key[:19]}… was taken over") from None
        return Held(c, etag, time.monotonic())

    def release(self, held: Held) -> None:
        """Remove our claim (the render is pushed, or the task is known to have failed)."""
        with contextlib.suppress(Conflict):  # taken over by someone else: theirs now
            self.client.delete(claim_name(held.claim.key), if_match=held.etag)

    def forget(self, found: Found) -> None:
        """Remove a dead holder's claim (the user's decision)."""
        with contextlib.suppress(Conflict):
            self.client.delete(claim_name(found.key), if_match=found.head.etag)
