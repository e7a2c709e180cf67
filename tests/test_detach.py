"""Submit now, collect later: `storyc build --detach`, `storyc status`, the build that
collects after a detached one, and `storyc webhook serve`, against the loopback provider
and its webhook calls (late, duplicated, lost, forged).

Money is counted by the provider itself: the loopback records every POST /apps/run that
reached it, and every webhook call it made and how it was answered."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from procs import Child
from test_build_support import (
    STORY_TAKES,
    build_subprocess,
    final_states,
    make_project,
    parse_events,
    summary,
)

from storyc.base.hashing import digest_file
from storyc.media import ffmpeg as media
from storyc.provider import loopback
from storyc.state.journal import Attempt, Journal
from storyc.state.lockfile import LockFile
from storyc.state.projectlock import ProjectLock

PAID = ("--backend", "inference", "--yes")


def _independent(n: int) -> str:
    return 'project "Pier" { quality = "std"  aspect = "16:9" }\n' + "".join(
        f'scene s{i} {{ prompt = "Shot {i} of the pier at night"  duration = 5 }}\n'
        for i in range(n)
    )


def _journal(root: Path) -> list[Attempt]:
    with Journal(root / ".storyc" / "journal.sqlite") as j:
        return j.all()


def _until(what: Callable[[], bool], timeout: float = 60.0) -> None:
    end = time.monotonic() + timeout
    while not what():
        assert time.monotonic() < end, "timed out"
        time.sleep(0.1)


def _ended(server: loopback.LoopbackServer) -> bool:
    return all(s["outcome"] is not None for s in server.submissions)


def _serve(root: Path, env: dict[str, str], *args: str) -> tuple[Child, str]:
    proc = Child(
        [sys.executable, "-m", "storyc", "webhook", "serve", str(root), "--port", "0", *args],
        env={**os.environ, **env},
    )
    line = proc.readline(timeout=60)
    assert line.startswith("listening on http://127.0.0.1:"), line + proc.stderr()
    return proc, line.split()[-1]


def _status(root: Path, env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]]]:
    p = subprocess.run(
        [sys.executable, "-m", "storyc", "status", str(root), "--json", *args],
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert "Traceback" not in p.stderr, p.stderr
    return p.returncode, [json.loads(line) for line in p.stdout.splitlines()]


def _snapshot(root: Path) -> Any:
    """Everything a collection writes: the lock file, the journal, the store, the names."""
    journal = [(a.id, a.state, a.task_id, a.output, a.updated_at) for a in _journal(root)]
    objects = sorted(str(p) for p in (root / ".storyc" / "objects").rglob("*") if p.is_file())
    names = sorted((p.name, os.readlink(p)) for p in (root / "renders").glob("*.mp4"))
    return (root / "storyc.lock").read_text("utf-8"), journal, objects, names


def _locked_scenes(root: Path) -> list[str]:
    path = root / "storyc.lock"
    return list(LockFile.load(path).scenes) if path.exists() else []


def _check_videos(root: Path) -> LockFile:
    lock = LockFile.load(root / "storyc.lock")
    for scene, entry in lock.scenes.items():
        (take,) = entry.takes
        assert take.task_id and take.output, scene
        assert digest_file(root / "renders" / f"{scene}.mp4")[0] == take.output, scene
    info = media.probe_video(root / "renders" / f"{next(iter(lock.scenes))}.mp4")
    assert info.duration is not None and info.duration > 1
    return lock


def test_a_detached_build_of_20_scenes_completes_by_webhook_alone(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", _independent(20))
    faults = [
        "webhook:duplicate:nth=1+5",
        "webhook:forged:nth=2",
        "webhook:late:nth=3:seconds=1",
        "submit:fail:nth=4",  # its call comes; the receiver records it and sends nothing
    ]
    with loopback.serve(latency=3.0, fast_outputs=True, faults=faults) as server:
        hook, url = _serve(root, server.env, "--sweep", "0")  # no polling of its own
        try:
            p = build_subprocess(root, *PAID, "--detach", "--webhook", url, env=server.env)
            # while a build holds the project, the receiver collects nothing: it waits
            with ProjectLock(root, wait=30):
                assert p.returncode == 0, p.stderr
                events = parse_events(p.stdout)
                s = summary(events)
                assert s["submitted"] == 20 and len(s["running"]) == 20 and not s["settled"]
                assert set(final_states(events).values()) == {"running"}
                _until(lambda: Counter(c["kind"] for c in server.webhook_calls)["real"] == 20)
                assert all(a.detached and a.state == "submitted" for a in _journal(root))
            # nobody polls now: the build has exited; only the webhook calls remain
            _until(lambda: all(a.state in ("completed", "failed") for a in _journal(root)))
            _until(lambda: len(server.webhook_calls) == 20 + 2 + 2)
            _until(lambda: len(_locked_scenes(root)) == 19)  # the last pass has written
            before = _snapshot(root)
            done = _journal(root)[0].task_id
            # a call repeated now, one for a task never sent, one that is not JSON
            assert httpx.post(url, json={"id": done, "status": 10}).status_code == 200
            forged = {"id": "f" * 20, "status": 10, "output": {"video": "https://x.invalid/v"}}
            assert httpx.post(url, json=forged).status_code == 404
            assert httpx.post(url, content=b"{oops").status_code == 400
            assert _snapshot(root) == before
        finally:
            hook.send_signal(signal.SIGTERM)
            code, _, err = hook.finish(timeout=60)
        assert code == 0 and "Traceback" not in err, err
        assert len(server.submissions) == 20  # nothing was sent twice, not even what failed
        failed = [a for a in _journal(root) if a.state == "failed"]
        assert len(failed) == 1 and "failed on the provider" in err
        calls = Counter((c["kind"], c.get("status")) for c in server.webhook_calls)
        assert calls[("real", 202)] == 20 and calls[("duplicate", 202)] == 2
        # a forged "completed" for a running task is read again and not trusted (W402);
        # a forged call for a task the journal does not know is refused unread (W401)
        assert calls[("forged", 202)] == 1 and calls[("forged", 404)] == 1
        assert "warning[W402]" in err and "warning[W401]" in err
        assert len(_check_videos(root).scenes) == 19
        # a plain build sends what failed (asked first) and has nothing else to do
        p = build_subprocess(root, *PAID, env=server.env)
        s = summary(parse_events(p.stdout))
        assert p.returncode == 0 and s["submitted"] == 1 and s["scenes"]["reused"] == 19
        assert len(server.submissions) == 21


def test_lost_webhook_calls_are_caught_by_status_and_by_the_next_build(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", _independent(4))
    with loopback.serve(latency=0.5, fast_outputs=True, faults=["webhook:lost"]) as server:
        hook = {"STORYC_WEBHOOK": "http://127.0.0.1:9/hook"}  # the CI setting, not the flag
        p = build_subprocess(root, *PAID, "--detach", env={**server.env, **hook})
        assert p.returncode == 0, p.stderr
        _until(lambda: _ended(server))
        posts = len(server.arrivals)
        assert [c["kind"] for c in server.webhook_calls] == ["lost"] * 4
        assert {c["url"] for c in server.webhook_calls} == {hook["STORYC_WEBHOOK"]}

        # no key: the journal's view, said plainly, exit 3
        code, (doc,) = _status(root, {"INFERENCE_API_KEY": ""})
        assert code == 3 and not doc["checked"]
        assert {r["provider"] for r in doc["attempts"]} == {"not checked"}

        code, (doc,) = _status(root, server.env)
        assert code == 0 and doc["settled"] and doc["total"]["finished"] == 4
        assert {r["provider"] for r in doc["attempts"]} == {"completed"}
        assert all("storyc build" in r["note"] for r in doc["attempts"])
        assert len(server.arrivals) == posts  # status never submits
        assert server.faults.counts.get("status", 0) == 4  # one cheap read per task

        p = build_subprocess(root, *PAID, env=server.env)  # collects what the calls missed
        s = summary(parse_events(p.stdout))
        assert p.returncode == 0 and s["collected"] == 4 and s["submitted"] == 0, p.stderr
        assert len(server.arrivals) == posts
        _check_videos(root)
        code, (doc,) = _status(root, server.env)
        assert code == 0 and doc["attempts"] == []


def _sent_to_the_projects_provider(
    tmp_path: Path, server: loopback.LoopbackServer
) -> tuple[Path, dict[str, str]]:
    """Three scenes sent (detached) to `server`, named by the project's `base_url`, with
    the key only in the environment, as in a team's committed story; the project and
    that environment."""
    story = _independent(3).replace(
        'aspect = "16:9" }', f'aspect = "16:9"  base_url = "{server.url}" }}'
    )
    root = make_project(tmp_path / "p", story)
    env = {"INFERENCE_API_KEY": server.api_key, "INFERENCE_BASE_URL": ""}
    p = build_subprocess(root, *PAID, "--detach", env=env)
    assert p.returncode == 0, p.stderr
    return root, env


def _unaskable(root: Path, attempt: int) -> None:
    """Make the journal say `attempt` went to a base URL httpx refuses (`http://[::1`)."""
    import sqlite3

    db = sqlite3.connect(root / ".storyc" / "journal.sqlite")
    with db:
        db.execute("UPDATE attempts SET base_url = ? WHERE id = ?", ("http://[::1", attempt))
    db.close()


def _others_collected_then_stop(
    hook: Child, root: Path, bad: int, server: loopback.LoopbackServer
) -> None:
    """Once the receiver collected every task but attempt `bad` (or ended), stop it: it
    ended cleanly, `bad` is left to the next build, and nothing was sent again."""

    def others_collected() -> bool:
        done = [a for a in _journal(root) if a.state == "completed"]
        return len(done) == 2 or hook.proc.poll() is not None

    _until(others_collected, timeout=120)
    hook.send_signal(signal.SIGTERM)
    code, _, err = hook.finish(timeout=60)
    assert code == 0 and "Traceback" not in err, err
    states = {a.id: a.state for a in _journal(root)}
    assert states.pop(bad) == "submitted", states  # asked again by the next build
    assert set(states.values()) == {"completed"}, states
    assert len(server.submissions) == 3  # nothing sent again


def test_the_receiver_reads_each_task_where_it_was_sent(tmp_path: Path) -> None:
    """`webhook serve` without `--base-url` read every task from the environment's
    provider or inference.sh, while the build had sent them where the project's
    `base_url` says: no task was ever collected by its calls."""
    with loopback.serve(latency=0.5, fast_outputs=True) as server:
        root, env = _sent_to_the_projects_provider(tmp_path, server)
        _until(lambda: _ended(server))
        # no call came (no webhook was given): its first sweep asks each task in flight
        hook, _ = _serve(root, env, "--until-settled")
        code, _, err = hook.finish(timeout=90)
        assert code == 0 and "Traceback" not in err, err
        assert "could not be read again" not in err, err
        assert len(_check_videos(root).scenes) == 3
        assert len(server.submissions) == 3  # collected, never sent again


def test_a_provider_that_cannot_be_asked_never_stops_the_receiver_for_the_others(
    tmp_path: Path,
) -> None:
    """Each task is read from the base URL its attempt records: one that cannot even be
    asked there (a journal naming an address httpx refuses, `http://[::1`) raised out of
    the sweep and of the reading worker (httpx.InvalidURL is no ProviderError), which
    then died without a word: the project's other tasks, finished on a provider that
    answers, were never collected by a sweep or a call (each call still answered 202)."""
    with loopback.serve(latency=0.5, fast_outputs=True) as server:
        root, env = _sent_to_the_projects_provider(tmp_path, server)
        _until(lambda: _ended(server))
        first = min(a.id for a in _journal(root))
        _unaskable(root, first)  # its attempt names a provider that cannot be asked
        hook, _ = _serve(root, env)
        with hook:
            _others_collected_then_stop(hook, root, first, server)


def test_a_call_for_a_task_that_cannot_be_asked_never_stops_the_receiver(
    tmp_path: Path,
) -> None:
    """The reading worker: a call for a task whose recorded provider cannot be asked
    (`http://[::1`, which httpx refuses) killed it, and every later call was still
    answered 202 while nothing was read or collected again."""
    with loopback.serve(latency=0.3, fast_outputs=True, hold=True) as server:
        root, env = _sent_to_the_projects_provider(tmp_path, server)
        sent = sorted(_journal(root), key=lambda a: a.id)
        bad = sent[0]
        _unaskable(root, bad.id)
        hook, url = _serve(root, env, "--sweep", "0")  # no polling: the calls only
        with hook:
            assert httpx.post(url, json={"id": bad.task_id, "status": 10}).status_code == 202
            server.release()
            _until(lambda: _ended(server))
            for a in sent[1:]:
                httpx.post(url, json={"id": a.task_id, "status": 10})
            _others_collected_then_stop(hook, root, bad.id, server)


def test_the_receiver_collects_each_task_for_the_provider_it_was_sent_to(
    tmp_path: Path,
) -> None:
    """A build sent with `INFERENCE_BASE_URL` set, the receiver started without it: it
    read each task where it was sent, but collected through the default provider, whose
    keys are others, so nothing was ever collected and it never settled."""
    root = make_project(tmp_path / "p", _independent(3))
    with loopback.serve(latency=0.5, fast_outputs=True) as server:
        p = build_subprocess(root, *PAID, "--detach", env=server.env)
        assert p.returncode == 0, p.stderr
        _until(lambda: _ended(server))
        env = {"INFERENCE_API_KEY": server.api_key, "INFERENCE_BASE_URL": ""}
        hook, _ = _serve(root, env, "--until-settled")
        code, _, err = hook.finish(timeout=90)
        assert code == 0 and "Traceback" not in err, err
        assert len(_check_videos(root).scenes) == 3
        assert len(server.submissions) == 3  # collected, never sent again


def test_detach_sends_what_is_ready_and_each_build_carries_it_on(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p")  # arrival → lanterns, rain; other (2 takes)
    # the tasks run until released: what the detached build and `status --watch` see
    # while they run does not depend on how fast this machine starts a process
    with loopback.serve(latency=0.3, fast_outputs=True, hold=True) as server:
        p = build_subprocess(root, *PAID, "--detach", env=server.env)
        assert p.returncode == 0, p.stderr
        events = parse_events(p.stdout)
        assert final_states(events) == {
            "arrival": "running",
            "other": "running",
            "lanterns": "deferred",
            "rain": "deferred",
        }
        assert summary(events)["submitted"] == 3 and len(server.submissions) == 3
        notes = " ".join(e.get("text", "") for e in events)
        assert "collect with `storyc build`" in notes

        # status --watch refreshes until nothing runs; it sends nothing
        watch = Child(
            [sys.executable, "-m", "storyc", "status", str(root), "--json", "--watch"]
            + ["--interval", "0.3"],
            env={**os.environ, **server.env},
        )
        first = json.loads(watch.readline(timeout=60))
        assert first["total"]["running"] == 3 and not first["settled"]
        server.release()
        code, rest, err = watch.finish(60)
        assert "Traceback" not in err, err
        docs = [first, *(json.loads(line) for line in rest.splitlines())]
        assert code == 0 and len(docs) >= 2
        assert docs[-1]["settled"] and docs[-1]["total"]["finished"] == 3
        assert len(server.arrivals) == 3

        # a plain build collects what finished, sends what became ready, and leaves it
        server.hold()
        p = build_subprocess(root, *PAID, env=server.env)
        events = parse_events(p.stdout)
        assert p.returncode == 0, p.stderr
        assert final_states(events) == {
            "arrival": "done",
            "other": "done",
            "lanterns": "running",
            "rain": "running",
        }
        s = summary(events)
        assert s["collected"] == 3 and s["submitted"] == 2 and len(server.submissions) == 5

        # --wait follows everything to the end
        server.release()
        p = build_subprocess(root, *PAID, "--wait", env=server.env)
        s = summary(parse_events(p.stdout))
        assert p.returncode == 0 and s["settled"] and s["submitted"] == 0, p.stderr
        assert len(server.submissions) == STORY_TAKES
        assert {a.state for a in _journal(root)} == {"completed"}


def _exact(root: Path, server: loopback.LoopbackServer) -> list[Attempt]:
    """Every task the provider has is in the journal, or is the one an attempt of unknown
    fate stands for; nothing is half-sent; no request reached the provider twice."""
    attempts = _journal(root)
    on_provider = {s["task_id"] for s in server.submissions}
    recorded = {a.task_id for a in attempts if a.task_id}
    unknown = [a for a in attempts if a.state == "unknown"]
    assert recorded <= on_provider
    # a task the journal has no id for is one an attempt of unknown fate may stand for (a
    # send cut short may also never have arrived)
    assert len(on_provider - recorded) <= len(unknown)
    assert not [a for a in attempts if a.state in ("planned", "submitting")]
    prompts = Counter(s["input"]["prompt"] for s in server.submissions)
    assert set(prompts.values()) == {1}, prompts
    return attempts


def test_a_kill_during_detach_leaves_the_journal_exact(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", _independent(4))
    with loopback.serve(latency=1.0, fast_outputs=True) as server:
        env = {**server.env, "STORYC_TEST_FAULT": "after-send:kill@2"}
        p = build_subprocess(root, *PAID, "--detach", env=env)
        assert p.returncode == -signal.SIGKILL
        p = build_subprocess(root, *PAID, "--detach", env=server.env)  # recovers, sends the rest
        assert p.returncode == 4, p.stderr  # the lost answer needs the user's word
        attempts = _exact(root, server)
        unknown = [a for a in attempts if a.state == "unknown"]
        assert unknown and len(server.submissions) <= 4  # none was sent again
        # every scene was sent once: by the killed build or, if it never got that far,
        # by the next one (a detached build collects what already finished)
        sent = {a.scene for a in attempts if a.state in ("submitted", "completed", "unknown")}
        assert sent == {"s0", "s1", "s2", "s3"}


def test_ctrl_c_during_detach_sends_nothing_new_and_the_next_one_goes_on(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", _independent(4))
    with loopback.serve(latency=1.0, fast_outputs=True, faults=["submit:delay:seconds=1"]) as s:
        proc = Child(
            [sys.executable, "-m", "storyc", "build", str(root), *PAID, "--detach", "--json"],
            env={**os.environ, **s.env},
        )
        seen = []
        for line in proc.lines():
            seen.append(json.loads(line))
            if seen[-1].get("state") == "submitting" and len(seen) < 100:
                proc.send_signal(signal.SIGINT)
                break
        code, out, err = proc.finish(timeout=60)
        assert code == 130 and "Traceback" not in err, err
        seen += parse_events(out)
        i = next(i for i, e in enumerate(seen) if "interrupted" in e.get("text", ""))
        assert [e for e in seen[i:] if e.get("state") == "submitting"] == []
        first = len(s.submissions)
        assert first == sum(1 for e in seen if e.get("state") == "submitting")
        assert {a.state for a in _exact(root, s)} <= {"submitted", "not_sent"}
        p = build_subprocess(root, *PAID, "--detach", env=s.env)
        assert p.returncode == 0, p.stderr
        _exact(root, s)
        assert len(s.submissions) == 4 and summary(parse_events(p.stdout))["submitted"] == 4 - first


def test_settings_and_refusals(tmp_path: Path) -> None:
    from storyc.build.webhook import task_id_of
    from storyc.compiler import compile_project

    assert task_id_of({"id": "abc_1"}) == "abc_1"
    assert task_id_of({"data": {"id": "t2", "status": 10}}) == "t2"
    assert task_id_of({"task": {"task_id": "t3"}}) == "t3"
    assert task_id_of({"id": "../../etc"}) is None and task_id_of([1]) is None

    for url, code in (("ftp://hooks.example.com/x", "E400"), ("https://u:p@h.example/x", "E401")):
        root = make_project(
            tmp_path / code,
            f'project "W" {{ aspect = "16:9"  webhook = "{url}" }}\nscene a {{ prompt = "x" }}\n',
        )
        comp = compile_project(root)
        assert [d.code for d in comp.diagnostics if d.is_error] == [code]
    root = make_project(tmp_path / "ok", _independent(1))
    env = {"INFERENCE_API_KEY": "inf_test_key_0000", "INFERENCE_BASE_URL": "http://127.0.0.1:9"}
    p = build_subprocess(root, *PAID, "--webhook", "http://example.com/h", env=env)
    assert p.returncode == 2 and "E400" in p.stderr
    p = build_subprocess(root, "--detach", env=env)  # previews: nothing to collect later
    assert p.returncode == 2 and "--detach is for a paid backend" in p.stderr


def test_the_pacer_holds_reads_to_the_rate() -> None:
    import asyncio

    from storyc.provider.status import Pacer

    now = [0.0]

    class Clock:
        def clock(self) -> float:
            return now[0]

        async def sleep(self, s: float) -> None:
            now[0] += s

    async def run() -> float:
        pacer = Pacer(Clock(), rate=10, burst=40)  # type: ignore[arg-type]
        for _ in range(60):
            await pacer.take()
        return now[0]

    assert asyncio.run(run()) == pytest.approx(2.0)  # 40 at once, then 20 at 10 a second


def test_a_task_not_collected_is_told_the_exit_of_its_own_providers_pass(
    tmp_path: Path,
) -> None:
    """Tasks of two providers collected together: a pass per provider, but W403 named the
    exit of the last pass for every task left uncollected. A task of a provider whose
    pass failed was said not collected although "the collecting build exited 0"."""
    root = make_project(tmp_path / "p", _independent(3))
    with (
        loopback.serve(latency=0.3, fast_outputs=True, hold=True, faults=["download:401"]) as bad,
        loopback.serve(latency=0.3, fast_outputs=True, hold=True) as good,
    ):
        for scene, server in (("s0", bad), ("s1", bad), ("s2", good)):
            p = build_subprocess(root, *PAID, "--detach", "--scene", scene, env=server.env)
            assert p.returncode == 0, p.stderr
        env = {"INFERENCE_API_KEY": good.api_key, "INFERENCE_BASE_URL": ""}

        def asked() -> int:  # the status reads each provider has answered
            return min(
                sum(s.faults.counts.get(e, 0) for e in ("task", "status")) for s in (bad, good)
            )

        before = asked()
        hook, url = _serve(root, env, "--sweep", "0")  # the calls only
        with hook:
            _until(lambda: asked() > before)  # its one sweep, while the tasks still run
            bad.release()
            good.release()
            _until(lambda: _ended(bad) and _ended(good))
            task = {a.scene: a.task_id for a in _journal(root)}
            with ProjectLock(root):  # a build holds the project: s0's pass waits for it
                assert httpx.post(url, json={"id": task["s0"], "status": 10}).is_success
                _until(lambda: "a build holds the project" in hook.stderr())
                for scene in ("s1", "s2"):  # come in meanwhile: one batch, two providers
                    assert httpx.post(url, json={"id": task[scene], "status": 10}).is_success

            def all_seen_to() -> bool:  # s2 collected, s0 and s1 warned about
                done = {a.scene for a in _journal(root) if a.state == "completed"}
                told = hook.stderr().count("warning[W403]")
                return ("s2" in done and told == 2) or hook.proc.poll() is not None

            _until(all_seen_to, timeout=120)
            hook.send_signal(signal.SIGTERM)
            code, _, err = hook.finish(timeout=60)
        assert code == 0 and "Traceback" not in err, err
        states = {a.scene: a.state for a in _journal(root)}
        assert states == {"s0": "submitted", "s1": "submitted", "s2": "completed"}, err
        assert "collecting 2 task(s): s1, s2" in err, err
        w403 = [line for line in err.splitlines() if "W403" in line]
        assert len(w403) == 2 and all("exited 0" not in line for line in w403), err
