"""The journal: transitions, durability across processes, recovery after a kill."""

from __future__ import annotations

import re
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from storyc.state.journal import Journal, JournalError, Spent

K = "sha256:" + "1" * 64


def test_happy_path_and_spent(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.begin(K, "intro", 1, "inference/video-o1", "inference", Decimal("0.56"))
        assert j.get(a).state == "planned"
        j.mark_submitting(a)
        j.mark_submitted(a, "task-1")
        assert [x.id for x in j.in_flight()] == [a]
        j.mark_completed(a, "sha256:" + "2" * 64, "https://cdn.test/v.mp4", Decimal("0.56"))
        att = j.get(a)
        assert (
            att.state == "completed" and att.task_id == "task-1" and att.billed == Decimal("0.56")
        )
        assert j.blocking(K) is not None and j.in_flight() == []
        s = j.spent()
        assert s.billed == Decimal("0.56") and s.completed == 1 and s.attempts == 1


def test_illegal_transitions(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.begin(K, "intro", 1, "t", "inference", None)
        with pytest.raises(JournalError):
            j.mark_submitted(a, "task")  # never went through submitting
        j.mark_cancelled(a)
        with pytest.raises(JournalError):
            j.mark_submitting(a)


def test_failure_without_task_id_is_unknown(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.begin(K, "intro", 1, "t", "inference", Decimal("1"))
        j.mark_submitting(a)
        j.mark_failed(a, "read timeout")
        assert j.get(a).state == "unknown" and [x.id for x in j.unknown()] == [a]
        assert j.spent().unknown == Decimal("1")
        b = j.begin(K, "intro", 1, "t", "inference", None)
        j.mark_submitting(b)
        j.mark_failed(b, "400 validation_error", certainly_not_sent=True)
        assert j.get(b).state == "failed"


def test_resolve_unknown(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        ids = []
        for _ in range(3):
            a = j.begin(K, "intro", 1, "t", "inference", None)
            j.mark_submitting(a)
            j.mark_failed(a, "connection dropped")
            ids.append(a)
        j.resolve_unknown(ids[0], "resend")
        j.resolve_unknown(ids[1], "task:abc")
        j.resolve_unknown(ids[2], "forget")
        assert [j.get(i).state for i in ids] == ["failed", "submitted", "cancelled"]
        assert j.get(ids[1]).task_id == "abc"
        with pytest.raises(JournalError):
            j.resolve_unknown(ids[0], "maybe")


CHILD = """
import os, sys
from decimal import Decimal
from storyc.state.journal import Journal
j = Journal(sys.argv[1])
a = j.begin("k1", "a", 1, "t", "inference", Decimal("0.5")); j.mark_submitting(a)
b = j.begin("k2", "b", 1, "t", "inference", Decimal("0.5")); j.mark_submitting(b)
j.mark_submitted(b, "task-b")
c = j.begin("k3", "c", 1, "t", "inference", Decimal("0.5"))
os.kill(os.getpid(), 9)
"""


def test_recover_after_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    proc = subprocess.run([sys.executable, "-c", CHILD, str(db)], capture_output=True, timeout=60)
    assert proc.returncode == -9
    with Journal(db) as j:
        # Another process (a `storyc plan`) reading meanwhile must see the committed states.
        states = {x.key: x.state for x in j.all()}
        assert states == {"k1": "submitting", "k2": "submitted", "k3": "planned"}
        became = j.recover()
        assert [x.key for x in became] == ["k1"]
        states = {x.key: x.state for x in j.all()}
        assert states == {"k1": "unknown", "k2": "submitted", "k3": "not_sent"}
        assert [x.task_id for x in j.in_flight()] == ["task-b"]
        assert j.blocking("k1") is not None and j.blocking("k3") is None


def test_recover_leaves_its_own_sends_alone(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    with Journal(db) as mine, Journal(db) as other:
        a = mine.begin(K, "intro", 1, "t", "inference", None)
        mine.mark_submitting(a)
        assert mine.recover() == []  # this very build: it is sending it now
        assert mine.get(a).state == "submitting"
        # the caller of recover() holds the build lock: any other connection's send is
        # from a build that is gone, whatever the process table says
        assert [x.id for x in other.recover()] == [a]


ZOMBIE_OWNER = """
import sys
from storyc.state.journal import Journal
j = Journal(sys.argv[1])
j.owner = f"{sys.argv[2]}:left-by-a-dead-build"  # a pid that is alive (reused, or a zombie)
a = j.begin("k1", "a", 1, "t", "inference", None); j.mark_submitting(a)
"""


def test_recover_does_not_trust_a_living_pid(tmp_path: Path) -> None:
    # A build killed mid-send whose pid now answers (not yet reaped, or reused by another
    # process) must still count as gone: the attempt is of unknown fate, never "alive,
    # to follow" (which made the next build send it again).
    db = tmp_path / "j.sqlite"
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        subprocess.run(
            [sys.executable, "-c", ZOMBIE_OWNER, str(db), str(sleeper.pid)],
            check=True,
            capture_output=True,
            timeout=60,
        )
        with Journal(db) as j:
            assert [x.key for x in j.recover()] == ["k1"]
            assert j.attempts("k1")[0].state == "unknown"
    finally:
        sleeper.kill()
        sleeper.wait(30)


def test_adopt_and_forget(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.begin(K, "intro", 1, "t", "inference", Decimal("0.42"), base_url="http://x")
        j.mark_submitting(a, request='{"app":"x"}')
        j.mark_failed(a, "read timeout")
        b = j.begin(K, "intro", 1, "t", "inference", Decimal("0.42"))
        j.mark_submitting(b)
        j.mark_submitted(b, "task-b")
        with pytest.raises(JournalError, match="already recorded"):
            j.adopt(a, "task-b")
        j.adopt(a, "task-a")
        att = j.get(a)
        assert att.state == "submitted" and att.task_id == "task-a"
        assert att.request == '{"app":"x"}' and att.base_url == "http://x"
        c = j.begin(K, "intro", 1, "t", "inference", None)
        j.mark_submitting(c)
        j.mark_failed(c, "dropped")
        j.resolve_unknown(c, "forget")
        assert j.get(c).state == "cancelled"
        d = j.begin(K, "intro", 1, "t", "inference", None)
        j.mark_not_sent(d, "interrupted before sending")
        assert j.get(d).state == "not_sent" and not j.get(d).may_have_cost


STATES = ("planned", "submitting", "submitted", "unknown", "completed", "failed", "not_sent")
STATES += ("cancelled",)
OUT = "sha256:" + "2" * 64


def _in_state(j: Journal, state: str, scene: str = "intro", take: int = 1) -> int:
    """A new attempt brought to `state` by legal steps."""
    a = j.begin(K, scene, take, "t", "inference", Decimal("0.25"))
    if state in ("submitting", "submitted", "unknown", "completed"):
        j.mark_submitting(a, '{"first":1}')
    if state == "unknown":
        j.mark_failed(a, "read timeout")
    if state in ("submitted", "completed"):
        j.mark_submitted(a, f"task-{a}")
    if state == "completed":
        j.mark_completed(a, OUT, None, None)
    if state == "failed":
        j.mark_failed(a, "400")
    if state == "not_sent":
        j.mark_not_sent(a, "stopped")
    if state == "cancelled":
        j.mark_cancelled(a)
    assert j.get(a).state == state
    return a


# method -> (the states it may start from, the state it leads to)
MOVES: dict[str, tuple[set[str], str]] = {
    "mark_submitting": ({"planned"}, "submitting"),
    "set_request": ({"submitting"}, "submitting"),
    "mark_submitted": ({"submitting", "unknown"}, "submitted"),
    "mark_completed": ({"submitted", "submitting", "unknown"}, "completed"),
    "refused": ({"planned", "submitting", "submitted", "unknown"}, "failed"),
    "mark_not_sent": ({"planned", "submitting"}, "not_sent"),
    "mark_cancelled": ({"planned", "submitting", "submitted"}, "cancelled"),
    "resend": ({"unknown"}, "failed"),
    "forget": ({"unknown"}, "cancelled"),
    "adopt": ({"unknown"}, "submitted"),
}


def _do(j: Journal, move: str, a: int) -> None:
    calls = {
        "mark_submitting": lambda: j.mark_submitting(a, '{"x":1}'),
        "set_request": lambda: j.set_request(a, '{"again":2}'),
        "mark_submitted": lambda: j.mark_submitted(a, "task-new"),
        "mark_completed": lambda: j.mark_completed(a, OUT, "https://cdn.test/o.mp4", Decimal(1)),
        "refused": lambda: j.mark_failed(a, "402 balance", certainly_not_sent=True),
        "mark_not_sent": lambda: j.mark_not_sent(a, "stopped by the user"),
        "mark_cancelled": lambda: j.mark_cancelled(a, "Ctrl-C"),
        "resend": lambda: j.resolve_unknown(a, "resend"),
        "forget": lambda: j.resolve_unknown(a, "forget"),
        "adopt": lambda: j.adopt(a, f"task-found-{a}"),
    }
    calls[move]()


@pytest.mark.parametrize("move", MOVES)
def test_every_move_from_every_state(tmp_path: Path, move: str) -> None:
    """The journal's state machine, whole: each move is allowed from exactly its states,
    records what it says, and is refused from every other state, naming both states."""
    allowed, target = MOVES[move]
    with Journal(tmp_path / "j.sqlite") as j:
        for state in STATES:
            a = _in_state(j, state)
            before = j.get(a)
            if state in allowed:
                _do(j, move, a)
                after = j.get(a)
                assert after.state == target, (move, state)
                assert after.updated_at >= before.updated_at
            else:
                with pytest.raises(JournalError) as exc:
                    _do(j, move, a)
                assert str(exc.value) == f"attempt {a}: cannot go from {state} to {target}"
                assert j.get(a) == before
        with pytest.raises(JournalError) as exc:
            _do(j, move, 999)
        # mark_failed reads the attempt first (its state decides failed or unknown)
        assert str(exc.value) == (
            "no attempt 999"
            if move == "refused"
            else f"attempt 999: cannot go from missing to {target}"
        )


def test_what_each_move_records(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.begin(K, "intro", 2, "t", "inference", Decimal("0.25"))
        assert j.get(a).sent_at is None and j.get(a).request is None
        j.mark_submitting(a, '{"first":1}')
        assert j.get(a).sent_at is not None and j.get(a).request == '{"first":1}'
        j.set_request(a, '{"second":2}')
        assert j.get(a).request == '{"second":2}'
        j.mark_submitted(a, "task-7")
        j.mark_completed(a, OUT, "https://cdn.test/o.mp4", Decimal("0.2"))
        done = j.get(a)
        assert (done.output, done.url, done.billed) == (
            OUT,
            "https://cdn.test/o.mp4",
            Decimal("0.2"),
        )
        b = _in_state(j, "planned")
        j.mark_failed(b, "400 bad request")
        assert j.get(b).error == "400 bad request"
        c = _in_state(j, "submitting")
        j.mark_failed(c, "read timeout")  # may have left: unknown, with its error kept
        assert (j.get(c).state, j.get(c).error) == ("unknown", "read timeout")
        d = _in_state(j, "planned")
        j.mark_not_sent(d, "interrupted")
        assert j.get(d).error == "interrupted"
        e = _in_state(j, "planned")
        j.mark_cancelled(e)
        assert j.get(e).error == "cancelled"
        for decision, state in (("resend", "failed"), ("forget", "cancelled")):
            u = _in_state(j, "unknown")
            j.resolve_unknown(u, decision)
            assert (j.get(u).state, j.get(u).decision) == (state, decision)
        u = _in_state(j, "unknown")
        j.resolve_unknown(u, "task:abc")
        assert (j.get(u).state, j.get(u).task_id, j.get(u).decision) == (
            "submitted",
            "abc",
            "task:abc",
        )
        for bad in ("task:", "keep", ""):
            with pytest.raises(JournalError) as exc:
                j.resolve_unknown(_in_state(j, "unknown"), bad)
            assert str(exc.value) == (f"unknown decision {bad!r}: use resend, forget or task:<id>")
        # a task already recorded for another attempt is not adopted twice
        other = _in_state(j, "submitted", scene="rain", take=3)
        with pytest.raises(JournalError) as exc:
            j.adopt(_in_state(j, "unknown"), f"task-{other}")
        assert str(exc.value) == (
            f"task task-{other} is already recorded for scene 'rain' (take 3, attempt {other})"
        )
        # re-adopting its own task is no conflict (the attempt is unknown again after a kill)
        mine = _in_state(j, "unknown")
        j.adopt(mine, "task-mine")
        assert j.by_task("task-mine") == j.get(mine)


def test_queries_and_what_blocks_a_new_send(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        ids = {s: _in_state(j, s, take=1 + i % 2) for i, s in enumerate(STATES)}
        for state, a in ids.items():
            blocks = state in ("submitting", "submitted", "unknown", "completed")
            with Journal(tmp_path / f"{state}.sqlite") as alone:
                b = _in_state(alone, state)
                assert (alone.blocking(K) is not None) == blocks, state
                assert alone.blocking(K) == (alone.get(b) if blocks else None)
                assert alone.blocking("sha256:" + "9" * 64) is None
            assert j.get(a).state == state
        # the newest blocking attempt is the one named
        assert j.blocking(K) == j.get(ids["completed"])
        assert [x.id for x in j.of_scene("intro")] == sorted(ids.values())
        assert [x.take for x in j.of_scene("intro", 2)] == [2, 2, 2, 2]
        assert j.of_scene("intro", 3) == [] and j.of_scene("other") == []
        assert j.by_task(f"task-{ids['submitted']}") == j.get(ids["submitted"])
        assert j.by_task("nope") is None
        assert [x.id for x in j.in_flight()] == [ids["submitted"]]
        assert [x.id for x in j.unknown()] == [ids["unknown"]]
        assert len(j.all()) == len(j.attempts(K)) == len(STATES)


def test_spent_counts_each_state_once(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        for state in STATES:
            _in_state(j, state)  # each estimated at 0.25
        done = _in_state(j, "submitted")
        j.mark_completed(done, OUT, None, Decimal("0.30"))  # billed: the bill, not the estimate
        free = j.begin(K, "intro", 1, "t", "preview", None)  # no estimate: costs nothing
        j.mark_submitting(free)
        s = j.spent()
        # completed: 0.25 (estimate, no bill) + 0.30 (billed); in flight: submitting and
        # submitted (0.25 each) and the free one; unknown: 0.25
        assert s == Spent(
            billed=Decimal("0.55"),
            in_flight=Decimal("0.50"),
            unknown=Decimal("0.25"),
            completed=2,
            attempts=len(STATES) + 2,
            failed=1,
        )


def test_an_attempt_reads_back_whole(tmp_path: Path) -> None:
    # the journal's folder is made when missing (a fresh checkout has no .storyc/)
    with Journal(tmp_path / "new" / ".storyc" / "j.sqlite") as j:
        assert re.fullmatch(r"\d+:[0-9a-f]{12}", j.owner)
        a = j.begin(
            K, "intro", 2, "inference/video-o1", "inference", Decimal("0.56"),
            body_digest="sha256:" + "b" * 64, base_url="http://provider.test",
        )  # fmt: skip
        att = j.get(a)
        assert (att.key, att.scene, att.take, att.target, att.backend) == (
            K,
            "intro",
            2,
            "inference/video-o1",
            "inference",
        )
        assert (att.state, att.owner, att.estimate) == ("planned", j.owner, Decimal("0.56"))
        assert att.body_digest == "sha256:" + "b" * 64 and att.base_url == "http://provider.test"
        assert att.created_at == att.updated_at and att.created_at > 0
        assert (att.task_id, att.billed, att.output, att.url, att.error, att.decision) == (
            (None,) * 6
        )


def test_a_file_that_is_not_a_journal_is_a_clear_error(tmp_path: Path) -> None:
    bad = tmp_path / "j.sqlite"
    bad.write_bytes(b"this is not a database, just text that is long enough" * 40)
    with pytest.raises(JournalError) as exc:
        Journal(bad)
    assert str(exc.value).startswith("cannot open the journal j.sqlite: ")


def test_recover_goes_past_its_own_attempts(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    with Journal(db) as mine, Journal(db) as gone:
        own = _in_state(mine, "submitting")  # first in the table: this build's own
        sending = _in_state(gone, "submitting")
        planned = _in_state(gone, "planned")
        assert [x.id for x in mine.recover()] == [sending]
        assert mine.get(own).state == "submitting"
        assert (mine.get(sending).state, mine.get(sending).error) == (
            "unknown",
            "the build stopped while sending, before a task id came back",
        )
        assert (mine.get(planned).state, mine.get(planned).error) == (
            "not_sent",
            "the build stopped before sending",
        )


def test_the_shortest_task_id_is_adopted(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        a = _in_state(j, "unknown")
        j.resolve_unknown(a, "task:x")
        assert j.get(a).task_id == "x"


def test_spent_adds_up_several_of_each(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        for state in ("unknown", "unknown", "failed", "failed", "completed", "completed"):
            _in_state(j, state)
        s = j.spent()
        assert (s.unknown, s.failed, s.completed, s.billed) == (
            Decimal("0.50"),
            2,
            2,
            Decimal("0.50"),
        )


def test_a_detached_send_is_recorded_as_such(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        waited = j.begin(K, "intro", 1, "t", "inference", Decimal("0.25"))
        left = j.begin(K, "intro", 1, "t", "inference", Decimal("0.25"), detached=True)
        assert j.get(waited).detached is False and j.get(left).detached is True
    with Journal(tmp_path / "j.sqlite") as again:  # read back by the next build
        assert [a.detached for a in again.all()] == [False, True]


def test_amounts_read_back_only_when_plausible(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        cases = {
            Decimal(0): Decimal(0),  # free is a price
            Decimal(10**9): Decimal(10**9),  # the largest plausible amount
            Decimal(10**9 + 1): None,
            Decimal("-0.01"): None,
            Decimal("NaN"): None,
            Decimal("Infinity"): None,
        }
        for written, read in cases.items():
            a = j.begin(K, "intro", 1, "t", "inference", written)
            assert j.get(a).estimate == read, written


def test_unknown_amounts_are_stored_as_null_and_flags_as_0_or_1(tmp_path: Path) -> None:
    # other readers of the journal (sqlite3, `storyc status` of an older storyc) see NULL,
    # not the text "None"
    with Journal(tmp_path / "j.sqlite") as j:
        a = j.begin(K, "intro", 1, "t", "preview", None)
        j.mark_submitting(a)
        j.mark_submitted(a, "task-1")
        j.mark_completed(a, OUT, None, None)
    db = sqlite3.connect(tmp_path / "j.sqlite")
    try:
        row = db.execute("SELECT estimate, billed FROM attempts WHERE id=?", (a,)).fetchone()
        flags = db.execute("SELECT detached FROM attempts ORDER BY id").fetchall()
    finally:
        db.close()
    assert row == (None, None)
    assert flags == [(0,)]
    with Journal(tmp_path / "j.sqlite") as j:
        j.begin(K, "intro", 1, "t", "inference", None, detached=True)
    db = sqlite3.connect(tmp_path / "j.sqlite")
    try:  # a flag, 0 or 1, as SQLite keeps booleans
        assert db.execute("SELECT detached FROM attempts ORDER BY id").fetchall() == [(0,), (1,)]
    finally:
        db.close()


def test_pending_lists_what_status_shows(tmp_path: Path) -> None:
    with Journal(tmp_path / "j.sqlite") as j:
        ids = {s: _in_state(j, s) for s in STATES}
        want = [ids[s] for s in ("submitting", "submitted", "unknown")]
        assert [a.id for a in j.pending()] == sorted(want)


def test_a_busy_journal_is_waited_for_half_a_minute(tmp_path: Path) -> None:
    # another build's write in progress is waited for, not an error after sqlite's 5 s
    with Journal(tmp_path / "j.sqlite") as j:
        assert j._db.execute("PRAGMA busy_timeout").fetchone() == {"timeout": 30_000}
