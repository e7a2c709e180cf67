"""The journal: transitions, durability across processes, recovery after a kill."""

from __future__ import annotations

import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest

from storyc.state.journal import Journal, JournalError

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
    proc = subprocess.run([sys.executable, "-c", CHILD, str(db)], capture_output=True)
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
        )
        with Journal(db) as j:
            assert [x.key for x in j.recover()] == ["k1"]
            assert j.attempts("k1")[0].state == "unknown"
    finally:
        sleeper.kill()
        sleeper.wait()


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
