"""Kill `storyc build` with SIGKILL at many moments, re-run it, and check that money and
data survived: every scene ends rendered, no request was sent twice unless its earlier
attempt failed or the user explicitly re-sent one of unknown fate, every store object
verifies, and the lock file always parses."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections import Counter
from pathlib import Path

from procs import Child
from test_build_support import STORY, STORY_TAKES, make_project

from storyc.base.hashing import digest_file
from storyc.provider import loopback
from storyc.state.journal import Journal
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

# Kill points: after the k-th progress event of a run (so the moments are spread over the
# build whatever the machine's speed), plus a small varying delay inside that step.
KILL_POINTS = [(k, (k % 4) * 0.02) for k in range(1, 16)]  # 15 kills
EXTRA = 6  # more independent scenes, so that every kill lands inside a build
CRASH_STORY = STORY + "".join(
    f'scene extra{i} {{ prompt = "Extra shot number {i}"  duration = 5  aspect = "1:1" }}\n'
    for i in range(EXTRA)
)
TAKES = STORY_TAKES + EXTRA


def _start(root: Path, env: dict[str, str], *extra: str, out: bool = False) -> Child:
    return Child(
        [
            sys.executable,
            "-m",
            "storyc",
            "build",
            str(root),
            "--backend",
            "inference",
            "--yes",
            "--json",
            "--poll-interval",
            "0.05",
            "--jobs",
            "2",
            *extra,
        ],
        env={**os.environ, **env},
        stdout=out,
    )


def _check_lock(root: Path) -> None:
    LockFile.load(root / "storyc.lock")  # raises if it does not parse


def test_sigkill_at_many_moments(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", CRASH_STORY)
    with loopback.serve(latency=0.3, fast_outputs=True) as server:
        env = server.env
        killed = 0
        for k, delay in KILL_POINTS:
            proc = _start(root, env, out=True)
            for _ in range(k):
                if not proc.readline():
                    break  # it finished first
            time.sleep(delay)  # a varying moment inside the step (the hook's windows are exact)
            proc.send_signal(signal.SIGKILL)
            code, _, _ = proc.finish(timeout=30)
            killed += code == -signal.SIGKILL
            _check_lock(root)
        # the kills landed mid-build (not after a finished run); progress is kept across them
        assert killed >= 10, killed

        # then run to completion; attempts of unknown fate need the user's explicit word
        resent_with_word = 0
        for _ in range(6):
            proc = _start(root, env)
            code, _, err = proc.finish(timeout=120)
            _check_lock(root)
            if code == 0:
                break
            assert code == 4, err  # only "needs a decision" is acceptable
            assert "unknown" in err
            with Journal(root / ".storyc" / "journal.sqlite") as j:
                resent_with_word += len(j.unknown())
            proc = _start(root, env, "--resubmit-unknown")
            code, _, err = proc.finish(timeout=120)
            _check_lock(root)
            if code == 0:
                break
        assert code == 0, err

        submissions = list(server.submissions)

    # every scene rendered, every output present
    lock = LockFile.load(root / "storyc.lock")
    store = Store.for_project(root)
    assert len(lock.scenes) == 4 + EXTRA
    assert sum(len(s.takes) for s in lock.scenes.values()) == TAKES
    for s in lock.scenes.values():
        for t in s.takes:
            assert t.output and store.get(t.output) is not None
    assert (root / "renders" / "lanterns.mp4").resolve().is_file()

    # every store object verifies (a partial object under a real name would not)
    for digest, path in store.iter_objects():
        assert digest_file(path)[0] == digest, path

    # count submissions per key through the journal's task ids
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        attempts = j.all()
    by_task = {a.task_id: a for a in attempts if a.task_id}
    per_key: Counter[str] = Counter()
    orphans = 0  # accepted by the provider, task id never came back (killed mid-send)
    for sub in submissions:
        att = by_task.get(sub["task_id"])
        if att is None:
            orphans += 1
        else:
            per_key[att.key] += 1
    resent = [a for a in attempts if a.decision == "resend"]
    # an orphan is exactly an attempt the journal marked unknown, and each was re-sent only
    # with --resubmit-unknown
    assert orphans <= len(resent) == resent_with_word
    for key, n in per_key.items():
        failed_before = sum(
            1 for a in attempts if a.key == key and a.state == "failed" and a.task_id
        )
        assert n <= 1 + failed_before, f"{key} submitted {n} times"
    assert len(submissions) == sum(per_key.values()) + orphans
    # and nothing was paid for a key the store already had: one completed attempt per key
    completed = Counter(a.key for a in attempts if a.state == "completed")
    assert all(n == 1 for n in completed.values()), completed
