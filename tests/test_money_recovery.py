"""Recovery on purpose: the build killed at each named moment of a paid take (the fault
hook `STORYC_TEST_FAULT`), then built again, paying for nothing twice; attempts of
unknown fate resolved without paying (`storyc adopt`, `storyc forget`); a dead build's
pid that still answers; re-fetched outputs verified; a malformed key stopped before the
build."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from procs import Child
from test_build_support import build, final_states, make_project, rendered

from storyc.cli import main
from storyc.provider import loopback
from storyc.state.journal import Journal
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

HEAD = 'project "Recover" { quality = "std"  aspect = "16:9" }\n'
SCENES = (
    HEAD
    + 'scene a { prompt = "First shot of the harbour"  duration = 5 }\n'
    + 'scene b { start = a.last_frame  prompt = "Second shot, closer"  duration = 5 }\n'
    + 'scene c { prompt = "An unrelated shot"  duration = 5  takes = 2 }\n'
)
PAID = ("--backend", "inference", "--yes")


def _sub(root: Path, server: loopback.LoopbackServer, *args: str, **env: str) -> Any:
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "storyc",
            "build",
            str(root),
            *PAID,
            "--json",
            "--poll-interval",
            "0.05",
            "--jobs",
            "2",
            *args,
        ],  # fmt: skip
        env={**os.environ, **server.env, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def _cli(*argv: str) -> tuple[int, str]:
    import contextlib
    import io

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        code = main(list(argv))
    return code, out.getvalue()


def _resolve_as_a_user(root: Path, server: loopback.LoopbackServer) -> int:
    """What a user does with the dashboard open: adopt the task whose input is the
    request, or forget the attempt when the provider has no such task."""
    decided = 0
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        unknown = j.unknown()
        claimed = {a.task_id for a in j.all() if a.task_id}
    for att in unknown:
        want = json.loads(att.request or "{}").get("input")
        task = next(
            (
                s["task_id"]
                for s in server.submissions
                if s["input"] == want and s["task_id"] not in claimed
            ),
            None,
        )
        claimed.add(task)
        take = ["--take", str(att.take)] if att.scene == "c" else []
        if task is not None:
            code, text = _cli("adopt", att.scene, task, str(root), *take)
        else:
            code, text = _cli("forget", att.scene, str(root), *take)
        assert code == 0, text
        decided += 1
    return decided


def _paid_twice(server: loopback.LoopbackServer) -> int:
    """Tasks beyond one per take: the takes of `c` are the same request, twice."""
    count = Counter(
        s["input"]["prompt"]
        for s in server.submissions
        if s.get("outcome") not in ("failed", "rejected", "cancelled")
    )
    takes = {"An unrelated shot": 2}
    return sum(max(0, n - takes.get(p, 1)) for p, n in count.items())


POINTS = ["after-intent", "after-send", "after-task-id", "after-download", "before-index",
          "before-lock"]  # fmt: skip


def test_killed_at_every_moment_pays_nothing_twice(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", SCENES)
    decided = 0
    with loopback.serve(latency=0.1, fast_outputs=False) as server:
        for k, v in server.env.items():  # for `storyc adopt`, run in this process
            monkeypatch.setenv(k, v)
        for i, point in enumerate(POINTS):
            # new work for every kill: one more scene. Each build also recovers what the
            # killed one before it left (re-attaches, recovers, finds unknown fates)
            with open(root / "main.story", "a", encoding="utf-8") as f:
                f.write(f'scene n{i} {{ prompt = "New shot number {i}"  duration = 5 }}\n')
            p = _sub(root, server, STORYC_TEST_FAULT=f"{point}:kill")
            assert p.returncode == -signal.SIGKILL, (point, p.stderr)
            LockFile.load(root / "storyc.lock")  # always parses
            assert _paid_twice(server) == 0, point
        # then build until done; it stops (exit 4) only for unknown fates, which the user
        # resolves without paying
        for _ in range(3):
            p = _sub(root, server)
            if p.returncode == 0:
                break
            assert p.returncode == 4, p.stderr
            assert "storyc adopt" in p.stderr and "storyc forget" in p.stderr
            decided += _resolve_as_a_user(root, server)
        assert p.returncode == 0, p.stderr
        assert _paid_twice(server) == 0
        assert len(server.submissions) == 4 + len(POINTS)  # a, b, c#1, c#2, n0…: once each
    assert decided >= 1  # the kills after the intent left an unknown fate to decide
    lock = LockFile.load(root / "storyc.lock")
    store = Store.for_project(root)
    for entry in lock.scenes.values():
        for t in entry.takes:
            assert t.output and store.get(t.output) is not None and t.url and t.task_id


def test_a_completed_attempt_missing_from_the_key_index_is_not_paid_again(
    tmp_path: Path,
) -> None:
    root = make_project(tmp_path / "p", HEAD + 'scene a { prompt = "Only"  duration = 5 }\n')
    with loopback.serve(latency=0.05, fast_outputs=True) as server:
        p = _sub(root, server, STORYC_TEST_FAULT="before-index:kill")
        assert p.returncode == -signal.SIGKILL
        assert not list((root / ".storyc" / "renders").rglob("*"))  # the index never heard
        p = _sub(root, server)
        assert p.returncode == 0, p.stderr
        assert len(server.submissions) == 1
        states = {
            e["scene"]: e["detail"]
            for e in map(json.loads, p.stdout.splitlines())
            if e.get("state") == "reused"  # fmt: skip
        }
        assert states == {"a": "recovered"}


def test_unknown_fate_is_resolved_by_adopting_the_task(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", HEAD + 'scene a { prompt = "Only"  duration = 5 }\n')
    with loopback.serve(latency=0.05, fast_outputs=True) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        server.add_fault("submit:drop:nth=1")  # created, but the answer is lost
        code, events, err = build(root, *PAID)
        assert code == 4 and final_states(events)["a"] == "unknown"
        # the message names both ways out before the one that may pay twice
        assert err.index("storyc adopt a TASK_ID") < err.index("--resubmit-unknown")
        assert "storyc forget a" in err
        task = server.submissions[0]["task_id"]
        # a task that is another request is refused
        server.add_fault("submit:drop:nth=2")
        other = make_project(tmp_path / "o", HEAD + 'scene a { prompt = "Other"  duration = 5 }\n')
        build(other, *PAID)
        code, text = _cli("adopt", "a", server.submissions[1]["task_id"], str(root))
        assert code == 1 and "not the request storyc sent" in text and "prompt" in text
        code, text = _cli("adopt", "a", "no-such-task", str(root))
        assert code == 1 and "no task no-such-task" in text
        code, text = _cli("adopt", "a", task, str(root))
        assert code == 0, text
        code, events, err = build(root, *PAID)
        assert code == 0, err
        assert len(server.submissions) == 2  # nothing more was sent for `a`
        assert [e["scene"] for e in events if e.get("state") == "re-attaching"] == ["a"]
        code, text = _cli("adopt", "a", task, str(root))
        assert code == 1 and "no attempt of unknown fate" in text


def test_unknown_fate_forgotten_is_sent_once_more(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", HEAD + 'scene a { prompt = "Only"  duration = 5 }\n')
    with loopback.serve(latency=0.05, fast_outputs=True) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        server.add_fault("submit:drop_early:nth=1")  # never reached the provider's book
        code, _, _ = build(root, *PAID)
        assert code == 4 and not server.submissions
        with Journal(root / ".storyc" / "journal.sqlite") as j:
            assert [a.state for a in j.all()] == ["unknown"]
        code, text = _cli("forget", "a", str(root))
        assert code == 0 and "never ran" in text
        code, events, err = build(root, *PAID)
        assert code == 0 and rendered(events) == ["a"] and len(server.submissions) == 1


def test_a_dead_build_whose_pid_still_answers_is_not_sent_again(tmp_path: Path) -> None:
    # Killed while its POSTs were in the provider's hands, and not reaped: the zombie's
    # pid answers. The next build must not take those sends for living ones to "follow"
    # (finding no task id, it sent them again: every task paid twice).
    story = HEAD + "".join(
        f'scene z{i} {{ prompt = "Zombie {i}"  duration = 5 }}\n' for i in range(3)
    )
    root = make_project(tmp_path / "p", story)
    with loopback.serve(
        latency=0.05, fast_outputs=True, faults=["submit:delay:seconds=1"]
    ) as server:
        proc = Child(
            [sys.executable, "-m", "storyc", "build", str(root), *PAID, "--json", "--jobs", "3"],
            env={**os.environ, **server.env},
        )
        sending = 0
        for line in proc.lines():
            sending += json.loads(line).get("state") == "submitting"
            if sending == 3:
                break
        # whole (headers and body): from then on the provider has them, whatever the client
        _until(lambda: len(server.received) == 3, "the three sends reach the provider")
        os.kill(proc.pid, signal.SIGKILL)  # not waited for: a zombie keeps the pid
        p = _sub(root, server)
        assert p.returncode == 4, p.stderr
        # the provider creates the three tasks it was sent (each after its delay), and no other
        _until(lambda: len(server.submissions) >= 3, "the provider creates the three tasks")
        assert len(server.submissions) == len(server.arrivals) == 3  # nothing sent twice
        assert "fate is unknown" in p.stderr
        proc.finish(timeout=30)


def _until(condition: Callable[[], bool], what: str, timeout: float = 30) -> None:
    """Wait for an event seen from the test's side (polling, with a deadline)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"waited {timeout} s for: {what}"
        time.sleep(0.01)


def test_refetched_output_is_verified_against_its_digest(tmp_path: Path) -> None:
    story = (
        HEAD
        + 'scene a { prompt = "Left"  duration = 5 }\nscene b { prompt = "Right"  duration = 5 }\n'
    )
    root = make_project(tmp_path / "p", story)
    with loopback.serve(latency=0.05, fast_outputs=False) as server:
        assert _sub(root, server).returncode == 0
        lock = LockFile.load(root / "storyc.lock")
        a, b = lock.scenes["a"].takes[0], lock.scenes["b"].takes[0]
        assert a.output != b.output
        clone = tmp_path / "clone"
        shutil.copytree(root, clone, ignore=shutil.ignore_patterns(".storyc", "renders"))
        text = (clone / "storyc.lock").read_text("utf-8")
        assert a.url and b.url
        swapped = text.replace(a.url, "\0").replace(b.url, a.url).replace("\0", b.url)
        (clone / "storyc.lock").write_text(swapped, "utf-8")  # each URL serves the other clip
        p = _sub(clone, server)
        assert p.returncode == 4, p.stderr
        assert "other bytes than the recorded output" in p.stderr
        assert len(server.submissions) == 2  # and nothing was paid meanwhile
        assert not (clone / "renders" / "a.mp4").exists()  # never b's clip under a's name
        relock = LockFile.load(clone / "storyc.lock")
        assert relock.scenes["a"].takes[0].output == a.output  # the lock keeps the truth
        store = Store.for_project(clone)
        assert store.get(b.output) is None or store.lookup_render(a.key) is None
        # the next plan says what it would cost to render them, instead of fetching again
        code, text = _cli("plan", str(clone), "--backend", "inference", "--json")
        plan = json.loads(text)
        assert plan["scenes"]["a"]["render"] == [1] and plan["scenes"]["a"]["fetch"] == []


def test_expired_url_says_so_and_pays_nothing(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", HEAD + 'scene a { prompt = "Only"  duration = 5 }\n')
    with loopback.serve(latency=0.05, fast_outputs=True) as server:
        assert _sub(root, server).returncode == 0
        clone = tmp_path / "clone"
        shutil.copytree(root, clone, ignore=shutil.ignore_patterns(".storyc", "renders"))
        text = (clone / "storyc.lock").read_text("utf-8")
        (clone / "storyc.lock").write_text(text.replace("/outputs/", "/outputs/gone-"), "utf-8")
        p = _sub(clone, server)
        assert p.returncode == 4 and "has expired (HTTP 404)" in p.stderr, p.stderr
        assert "the next build renders it again ($0.42, asked first)" in p.stderr
        assert len(server.submissions) == 1


@pytest.mark.parametrize("key", ["inf_loopback_key\n", "inf_loopback_kéy", "inf loopback"])
def test_malformed_key_stops_before_the_build(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str
) -> None:
    root = make_project(tmp_path / "p", HEAD + 'scene a { prompt = "Only"  duration = 5 }\n')
    with loopback.serve(latency=0.0) as server:
        monkeypatch.setenv("INFERENCE_BASE_URL", server.url)
        monkeypatch.setenv("INFERENCE_API_KEY", key)
        code, events, err = build(root, *PAID)
        assert code == 3 and "the API key cannot be used" in err
        assert key.strip() not in err and not server.arrivals
        assert not (root / ".storyc" / "journal.sqlite").exists()


def test_adopt_compares_what_was_sent_files_by_uri() -> None:
    from storyc.cli.journal import _difference
    from storyc.provider.task import Task

    sent = {
        "app": "klingai/video-o1",
        "input": {"prompt": "p", "image": "https://h/files/1/a.png", "duration": 5},
    }

    def task(inp: dict[str, Any], **raw: Any) -> Task:
        return Task.from_json({"id": "t", "status": 7, "input": inp, **raw})

    # the provider shows the file as an object and fills in a default: the same request
    same = {"prompt": "p", "image": {"uri": "https://h/files/1/a.png"}, "duration": 5,
            "resolution": "1080p"}  # fmt: skip
    assert _difference(sent, task(same)) is None
    assert "its image" in str(_difference(sent, task({**same, "image": "https://h/files/2/b.png"})))
    assert "its prompt" in str(_difference(sent, task({**same, "prompt": "q"})))
    assert "its duration" in str(_difference(sent, task({**same, "duration": 10})))
    assert "app" in str(_difference(sent, task(same, app="klingai/video-o1@x")))


def test_forget_never_mixes_the_attempts_of_two_providers(tmp_path: Path) -> None:
    """A rehearsal's attempt of unknown fate and a real one of the same scene: `forget a`
    would have cleared both, and the next real build sent the real request again though
    it may have reached the provider. Now it asks which provider (--base-url)."""
    root = make_project(tmp_path / "p", HEAD + 'scene a { prompt = "Only"  duration = 5 }\n')
    (root / ".storyc").mkdir(exist_ok=True)
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        ids = []
        for url in ("http://127.0.0.1:8765", None):
            key = "sha256:" + "1" * 64
            a = j.begin(key, "a", 1, "inference/video-o1", "inference", None, base_url=url)
            j.mark_submitting(a, '{"app":"klingai/video-o1"}')
            j.mark_failed(a, "read timeout")
            ids.append(a)
    code, text = _cli("forget", "a", str(root))
    assert code == 2, text
    assert "http://127.0.0.1:8765, https://api.inference.sh" in text
    code, text = _cli("forget", "a", str(root), "--base-url", "http://127.0.0.1:8765/")
    assert code == 0, text
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        assert [j.get(a).state for a in ids] == ["cancelled", "unknown"]
    code, text = _cli("forget", "a", str(root), "--base-url", "http://127.0.0.1:8765")
    assert code == 1 and "sent to http://127.0.0.1:8765" in text
    # one provider left: no --base-url needed
    code, text = _cli("forget", "a", str(root))
    assert code == 0, text
