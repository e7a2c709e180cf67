"""`storyc build`, `plan`, `pull` and `push` with a team store: several copies of one
project ("machines") against one S3 endpoint on loopback (moto's server) and one
loopback provider, over real sockets. Never pay twice across machines; faults on the
remote never cause a paid resubmission or a wrong clip; a remote that is down means a
local build with a warning."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from procs import Child
from s3_support import Bucket, S3Server
from test_build_support import (
    STORY,
    STORY_TAKES,
    build_subprocess,
    final_states,
    make_project,
    parse_events,
    summary,
)

from storyc.media import ffmpeg as media
from storyc.provider import loopback
from storyc.remote.claims import Claim, Owner
from storyc.remote.layout import claim_name
from storyc.state.journal import Journal
from storyc.state.lockfile import LockFile


@pytest.fixture
def bucket(s3: S3Server) -> Iterator[Bucket]:
    s3.faults.clear()
    yield s3.new_bucket()
    s3.faults.clear()


@pytest.fixture(params=[True])
def provider(request: pytest.FixtureRequest) -> Iterator[loopback.LoopbackServer]:
    # fast outputs: one video per (duration, aspect); False gives each prompt its own video
    with loopback.serve(latency=0.3, fast_outputs=request.param) as srv:
        yield srv


def _env(bucket: Bucket, provider: loopback.LoopbackServer, **extra: str) -> dict[str, str]:
    return {**bucket.env, **provider.env, "STORYC_REMOTE_TIMEOUT": "3", **extra}


def _paid(root: Path, env: dict[str, str], *args: str) -> tuple[int, list[dict[str, Any]], str]:
    p = build_subprocess(root, "--backend", "inference", "--yes", *args, env=env)
    return p.returncode, parse_events(p.stdout), p.stderr


def _spawn_args(root: Path) -> list[str]:
    return [sys.executable, "-m", "storyc", "build", str(root), "--json", "--poll-interval",
            "0.05", "--backend", "inference", "--yes"]  # fmt: skip


def _spawn(root: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        _spawn_args(root),
        env={**os.environ, **env},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _outputs(root: Path) -> dict[tuple[str, int], str | None]:
    lock = LockFile.load(root / "storyc.lock")
    return {(s, t.take): t.output for s, e in lock.scenes.items() for t in e.takes}


def _check_videos(root: Path, outputs: dict[tuple[str, int], str | None]) -> None:
    """Every clip in renders/ is a real video, and exactly the one the lock names."""
    from storyc.base.hashing import digest_file

    takes = {scene: 0 for scene, _ in outputs}
    for scene, _ in outputs:
        takes[scene] += 1
    for (scene, take), digest in outputs.items():
        name = f"{scene}.mp4" if takes[scene] == 1 else f"{scene}.take{take}.mp4"
        path = root / "renders" / name
        assert digest_file(path)[0] == digest, name
        info = media.probe_video(path)
        assert info.duration is not None and info.duration > 1, name


def test_two_machines_at_once_pay_once_and_a_third_pays_nothing(
    tmp_path: Path, bucket: Bucket
) -> None:
    # tasks long enough that both machines are building while the first ones run
    with loopback.serve(latency=3.0, fast_outputs=True) as provider:
        _two_machines_and_a_third(tmp_path, bucket, provider)


def _two_machines_and_a_third(
    tmp_path: Path, bucket: Bucket, provider: loopback.LoopbackServer
) -> None:
    env = _env(bucket, provider)
    a, b = make_project(tmp_path / "a"), make_project(tmp_path / "b")
    procs = [_spawn(a, env), _spawn(b, env)]
    results = [p.communicate(timeout=240) for p in procs]
    for p, (_out, err) in zip(procs, results, strict=True):
        assert p.returncode == 0, err
        assert "Traceback" not in err
    # exactly one task per key across both machines
    assert len(provider.submissions) == STORY_TAKES
    sums = [summary(parse_events(out)) for out, _ in results]
    assert sums[0]["submitted"] + sums[1]["submitted"] == STORY_TAKES
    assert sum(s["team"]["followed"] + s["team"]["pulled"] for s in sums) == STORY_TAKES
    # they overlapped: one of them followed the other's tasks or waited for its claims
    states = {e.get("state") for out, _ in results for e in parse_events(out)}
    assert states & {"following", "waiting"}, states
    assert _outputs(a) == _outputs(b)
    _check_videos(b, _outputs(b))
    assert not bucket.keys("claims/")  # every claim released once its render was pushed
    assert len(bucket.keys("renders/")) == STORY_TAKES

    # a third machine, empty .storyc/ and no lock file: everything pulled, nothing paid
    c = make_project(tmp_path / "c")
    code, events, err = _paid(c, env)
    assert code == 0, err
    assert len(provider.submissions) == STORY_TAKES
    s = summary(events)
    assert s["submitted"] == 0 and s["team"]["pulled"] == STORY_TAKES
    assert _outputs(c) == _outputs(a)
    _check_videos(c, _outputs(c))


def test_plan_shows_what_the_team_has_and_pull_push_sync(
    tmp_path: Path, bucket: Bucket, provider: loopback.LoopbackServer
) -> None:
    env = _env(bucket, provider)
    a = make_project(tmp_path / "a")
    code, _, err = _paid(a, env, "--no-remote")  # rendered alone, nothing shared yet
    assert code == 0, err
    assert not bucket.keys()
    push = subprocess.run(
        [sys.executable, "-m", "storyc", "push", str(a), "--json"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert push.returncode == 0, push.stderr
    assert json.loads(push.stdout.splitlines()[-1])["pushed"] == STORY_TAKES

    c = make_project(tmp_path / "c")
    plan = subprocess.run(
        [sys.executable, "-m", "storyc", "plan", str(c), "--backend", "inference", "--json"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert plan.returncode == 0, plan.stderr
    scenes = json.loads(plan.stdout)["scenes"]
    # downstream scenes too: their keys follow from the pulled upstream's digest
    assert {n: s["pull"] for n, s in scenes.items()} == {
        "arrival": [1], "lanterns": [1], "rain": [1], "other": [1, 2],
    }  # fmt: skip
    assert json.loads(plan.stdout)["known_total"] == "0"
    text = subprocess.run(
        [sys.executable, "-m", "storyc", "plan", str(c), "--backend", "inference"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    ).stdout  # fmt: skip
    assert "in the team store: pulled, not paid" in text and "5 takes from the team store" in text

    pull = subprocess.run(
        [sys.executable, "-m", "storyc", "pull", str(c), "--backend", "inference", "--json"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert pull.returncode == 0, pull.stderr
    assert json.loads(pull.stdout.splitlines()[-1])["pulled"] == STORY_TAKES
    n = len(provider.submissions)
    code, events, err = _paid(c, {**env, "STORYC_REMOTE": "off"})  # all local now
    assert code == 0 and len(provider.submissions) == n
    assert set(final_states(events).values()) == {"reused"}


# every clip distinct, so that a wrong one would be seen
@pytest.mark.parametrize("provider", [False], indirect=True)
def test_faults_on_the_remote_never_pay_again_nor_give_a_wrong_clip(
    tmp_path: Path, bucket: Bucket, provider: loopback.LoopbackServer
) -> None:
    env = _env(bucket, provider)
    a = make_project(tmp_path / "a")
    code, _, err = _paid(a, env)
    assert code == 0, err
    paid = len(provider.submissions)
    faults = bucket.server.faults

    # errors, a stall and cut downloads: retried and resumed
    faults.add("GET", "renders/", "error", status=500, times=2)
    faults.add("GET", "/objects/", "truncate", times=3)
    faults.add("GET", "/objects/", "stall", seconds=4, times=1, skip=3)
    b = make_project(tmp_path / "b")
    code, events, err = _paid(b, env)
    assert code == 0, err
    assert len(provider.submissions) == paid
    assert _outputs(b) == _outputs(a)
    _check_videos(b, _outputs(b))

    # downloads that never complete: the scenes fail, nothing is paid, a later build pulls
    faults.clear()
    faults.add("GET", "/objects/", "truncate", times=-1)
    c = make_project(tmp_path / "c")
    code, events, err = _paid(c, env)
    assert code == 1 and len(provider.submissions) == paid
    assert "could not be downloaded" in err and "not paid for again" in err
    faults.clear()
    code, events, err = _paid(c, env)
    assert code == 0 and len(provider.submissions) == paid, err
    _check_videos(c, _outputs(c))

    # a wrong object on the remote: a reported miss, rendered (paid) — never served
    arrival = _outputs(a)[("arrival", 1)]
    assert arrival is not None
    from storyc.remote.layout import object_name

    data = bucket.get(object_name(arrival))
    bucket.put(object_name(arrival), bytes([data[0] ^ 1]) + data[1:])
    d = make_project(tmp_path / "d", STORY.replace("takes = 2", "takes = 1"))
    code, events, err = _paid(d, env)
    assert code == 0, err
    assert "W341" in err
    assert [s["input"]["prompt"] for s in provider.submissions[paid:]] == [
        "A walk through @image_1 at dusk"
    ]  # only arrival; its dependents' keys are unchanged (same prompt, same output)
    _check_videos(d, _outputs(d))


def test_the_remote_down_means_a_local_build_with_a_warning(
    tmp_path: Path, bucket: Bucket, provider: loopback.LoopbackServer
) -> None:
    env = _env(bucket, provider, STORYC_REMOTE=f"s3://{bucket.name}/x?endpoint=http://127.0.0.1:9")
    a = make_project(tmp_path / "a")
    code, events, err = _paid(a, env)
    assert code == 0, err
    assert err.count("W340") == 1 and "building locally" in err
    assert len(provider.submissions) == STORY_TAKES
    assert summary(events)["team"]["down"] is True


def test_previews_are_not_pushed_unless_asked(
    tmp_path: Path, bucket: Bucket, provider: loopback.LoopbackServer
) -> None:
    env = _env(bucket, provider)
    a = make_project(tmp_path / "a")
    p = build_subprocess(a, env=env)
    assert p.returncode == 0, p.stderr
    assert not bucket.keys()
    run = [sys.executable, "-m", "storyc", "push", str(a), "--json"]
    p = subprocess.run(run, env={**os.environ, **env}, capture_output=True, text=True, timeout=60)
    assert p.returncode == 0 and json.loads(p.stdout.splitlines()[-1])["pushed"] == 0
    p = subprocess.run(
        [*run, "--previews"], env={**os.environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert json.loads(p.stdout.splitlines()[-1])["pushed"] == STORY_TAKES
    # a copy building previews pulls them (they were shared on purpose)
    b = make_project(tmp_path / "b")
    p = build_subprocess(b, env=env)
    assert p.returncode == 0 and summary(parse_events(p.stdout))["team"]["pulled"] == STORY_TAKES


def _claim(bucket: Bucket, key: str, state: str, owner: Owner, task_id: str | None = None) -> None:
    c = Claim(key, "arrival", 1, state, owner, task_id=task_id, created=time.time())
    bucket.put(claim_name(key), c.dumps())


def _dead_owner() -> Owner:
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(60)
    return Owner(Owner.me().host, p.pid, "1", "dead")


SOLO = 'project "T" { aspect = "16:9" }\nscene solo { prompt = "one shot"  duration = 5 }\n'


def _solo_key(root: Path, env: dict[str, str]) -> str:
    plan = subprocess.run(
        [sys.executable, "-m", "storyc", "plan", str(root), "--backend", "inference", "--json",
         "--no-remote"],
        env={**os.environ, **env}, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    return str(json.loads(plan.stdout)["scenes"]["solo"]["keys"]["1"])


def test_a_dead_machines_claim_is_adopted_or_needs_a_decision(
    tmp_path: Path, bucket: Bucket, provider: loopback.LoopbackServer
) -> None:
    env = _env(bucket, provider)
    a = make_project(tmp_path / "a", SOLO)
    key = _solo_key(a, env)

    # died while sending (no task id): its fate is unknown, nothing is sent
    _claim(bucket, key, "submitting", _dead_owner())
    code, events, err = _paid(a, env)
    assert code == 4 and "W344" in err and not provider.submissions
    assert final_states(events)["solo"] == "unknown"
    # a machine on another host that stopped refreshing its claim: the same
    bucket.put(
        claim_name(key),
        Claim(key, "solo", 1, "unknown", Owner("another-host", 1, "1", "x")).dumps(),
    )
    time.sleep(1.2)
    code, _, err = _paid(a, {**env, "STORYC_REMOTE_HEARTBEAT": "0.1"})
    assert code == 4 and "W344" in err and not provider.submissions
    # the user's word: sent once
    code, _, err = _paid(a, {**env, "STORYC_REMOTE_HEARTBEAT": "0.1"}, "--resubmit-unknown")
    assert code == 0, err
    assert len(provider.submissions) == 1


def test_a_killed_machines_task_is_adopted_by_another(tmp_path: Path, bucket: Bucket) -> None:
    with loopback.serve(latency=2.5, fast_outputs=True) as provider:
        env = _env(bucket, provider)
        a = make_project(tmp_path / "a", SOLO)
        proc = Child(_spawn_args(a), env={**os.environ, **env})
        for line in proc.lines():
            if json.loads(line).get("state") == "submitted":
                break
        proc.send_signal(signal.SIGKILL)
        proc.finish(timeout=30)
        assert len(provider.submissions) == 1
        (claim,) = bucket.keys("claims/")
        assert json.loads(bucket.get(claim))["state"] == "submitted"

        b = make_project(tmp_path / "b", SOLO)
        code, events, err = _paid(b, env)
        assert code == 0, err
        assert len(provider.submissions) == 1  # adopted, never sent again
        assert summary(events)["team"]["followed"] == 1
        assert not bucket.keys("claims/") and len(bucket.keys("renders/")) == 1
        _check_videos(b, _outputs(b))


def test_a_detached_task_is_collected_on_another_machine_through_its_claim(
    tmp_path: Path, bucket: Bucket
) -> None:
    with loopback.serve(latency=1.5, fast_outputs=True) as provider:
        env = _env(bucket, provider)
        a = make_project(tmp_path / "a", SOLO)
        code, events, err = _paid(a, env, "--detach")
        assert code == 0 and final_states(events) == {"solo": "running"}, err
        (claim,) = bucket.keys("claims/")  # left with its task id for whoever collects
        assert json.loads(bucket.get(claim))["state"] == "submitted"

        b = make_project(tmp_path / "b", SOLO)  # another machine: follows, pays nothing
        code, events, err = _paid(b, env)
        assert code == 0 and summary(events)["team"]["followed"] == 1, err
        assert len(provider.submissions) == 1 and not bucket.keys("claims/")
        _check_videos(b, _outputs(b))

        code, events, err = _paid(a, env)  # back on the first: pulled, and its task closed
        assert code == 0 and summary(events)["submitted"] == 0, err
        assert len(provider.submissions) == 1
        with Journal(a / ".storyc" / "journal.sqlite") as j:
            assert [x.state for x in j.all()] == ["completed"]
        _check_videos(a, _outputs(a))


def test_read_only_credentials_pull_and_build_the_rest_locally(
    tmp_path: Path, bucket: Bucket, provider: loopback.LoopbackServer
) -> None:
    env = _env(bucket, provider)
    a = make_project(tmp_path / "a")
    code, _, err = _paid(a, env)
    assert code == 0, err
    bucket.server.faults.add("PUT", "/", "deny", times=-1)
    bucket.server.faults.add("DELETE", "/", "deny", times=-1)
    b = make_project(
        tmp_path / "b", STORY + 'scene extra { prompt = "a new shot"  duration = 5 }\n'
    )
    code, events, err = _paid(b, env)
    assert code == 0, err
    assert "W342" in err
    assert len(provider.submissions) == STORY_TAKES + 1  # only the new scene is paid
    assert summary(events)["team"]["pulled"] == STORY_TAKES
