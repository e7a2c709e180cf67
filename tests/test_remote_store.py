"""The team store against a real S3 endpoint on loopback (moto's server): conditional
writes, batched look-ups, verified resumable pulls, pushes, claims, faults."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from s3_support import ACCESS, Bucket, S3Server

from storyc.base.hashing import digest_bytes
from storyc.remote import client as c
from storyc.remote.claims import ClaimBook, Found, Held, LostClaim, Owner
from storyc.remote.config import RemoteConfigError, choose, parse_remote
from storyc.remote.layout import Record, object_name, parse_record, record_name
from storyc.remote.team import Damaged, Miss, TeamStore
from storyc.state.store import Store


@pytest.fixture
def bucket(s3: S3Server, monkeypatch: pytest.MonkeyPatch) -> Iterator[Bucket]:
    for k, v in ACCESS.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("STORYC_REMOTE_TIMEOUT", "2")
    s3.faults.clear()
    yield s3.new_bucket()
    s3.faults.clear()


def _team(bucket: Bucket, root: Path, warnings: list[str] | None = None) -> TeamStore:
    sink = warnings if warnings is not None else []
    return TeamStore(parse_remote(bucket.url), Store(root / ".storyc"), warn=sink.append)


def _key(n: int) -> str:
    return digest_bytes(f"key {n}".encode())


def _render(team: TeamStore, n: int, data: bytes | None = None) -> Record:
    """A finished render of key n in the local store, as a record to push."""
    data = data if data is not None else os.urandom(3000) + f"video {n}".encode()
    output = team.store.put_bytes(data)
    return Record(_key(n), output, len(data), f"s{n}", 1, "inference", task_id=f"t{n}", cost="0.42")


# -- the endpoint itself -----------------------------------------------------------


def test_the_server_refuses_a_conflicting_conditional_put_with_412(bucket: Bucket) -> None:
    # The claim protocol rests on this: moto 5.2.0 answered 500 here (pinned to 5.2.5).
    cl = bucket.server.client()
    cl.put_object(Bucket=bucket.name, Key="claims/x", Body=b"first", IfNoneMatch="*")
    with pytest.raises(Exception) as err:
        cl.put_object(Bucket=bucket.name, Key="claims/x", Body=b"second", IfNoneMatch="*")
    resp = err.value.response  # type: ignore[attr-defined]
    assert resp["ResponseMetadata"]["HTTPStatusCode"] == 412
    assert resp["Error"]["Code"] == "PreconditionFailed"
    assert cl.get_object(Bucket=bucket.name, Key="claims/x")["Body"].read() == b"first"
    # and a replacement conditional on another version is refused the same way
    with pytest.raises(Exception) as err:
        cl.put_object(Bucket=bucket.name, Key="claims/x", Body=b"third", IfMatch='"0000"')
    assert err.value.response["ResponseMetadata"]["HTTPStatusCode"] == 412  # type: ignore[attr-defined]


def test_only_one_of_many_racing_creates_wins(bucket: Bucket) -> None:
    cfg = parse_remote(bucket.url)
    script = (
        "import sys\n"
        "from storyc.remote.client import ObjectClient, Conflict\n"
        "from storyc.remote.config import parse_remote\n"
        "cl = ObjectClient(parse_remote(sys.argv[1]))\n"
        "try:\n    cl.put_bytes('claims/race', sys.argv[2].encode(), create_only=True); print('won')\n"
        "except Conflict:\n    print('lost')\n"
    )
    env = {**os.environ, **bucket.env}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", script, cfg.url + f"?endpoint={bucket.server.endpoint}", str(i)],
            stdout=subprocess.PIPE,
            text=True,
            env=env,
        )
        for i in range(4)
    ]
    results = [p.communicate(timeout=60)[0].strip() for p in procs]
    assert sorted(results) == ["lost"] * 3 + ["won"]
    winner = results.index("won")
    assert bucket.get("claims/race") == str(winner).encode()


# -- configuration -----------------------------------------------------------------


def test_remote_urls() -> None:
    cfg = parse_remote(
        "s3://my-team/films/night-market?endpoint=https://acct.r2.example.com&region=auto"
    )
    assert (cfg.bucket, cfg.prefix, cfg.endpoint, cfg.region) == (
        "my-team",
        "films/night-market/",
        "https://acct.r2.example.com",
        "auto",
    )
    assert cfg.url == "s3://my-team/films/night-market"
    assert parse_remote("s3://my-team").prefix == ""
    for bad, words in [
        ("https://my-team/x", "s3://"),
        ("s3://AKIA:secret@my-team/x", "credentials never go"),
        ("s3://my-team/x?aws_secret_access_key=abc", "credential"),
        ("s3://my-team/x?colour=red", "unknown remote option"),
        ("s3://My_Team/x", "bad bucket name"),
        ("s3://my-team/a/../b", "bad prefix"),
        ("s3://my-team/x?endpoint=http://minio.example.com", "https://"),
    ]:
        with pytest.raises(RemoteConfigError, match=words):
            parse_remote(bad)
    # the flag beats the environment, which beats the project's setting; "off" turns it off
    env = {"STORYC_REMOTE": "s3://from-env/x"}
    assert choose("s3://from-story/x", env).bucket == "from-env"  # type: ignore[union-attr]
    assert choose("s3://from-story/x", {}).bucket == "from-story"  # type: ignore[union-attr]
    assert choose("s3://s/x", env, flag="s3://from-flag").bucket == "from-flag"  # type: ignore[union-attr]
    assert choose("s3://from-story/x", {"STORYC_REMOTE": "off"}) is None
    assert choose("s3://from-story/x", env, disabled=True) is None
    assert choose(None, {}) is None


# -- look-up, push, pull -----------------------------------------------------------


def test_push_then_pull_into_an_empty_store(bucket: Bucket, tmp_path: Path) -> None:
    a = _team(bucket, tmp_path / "a")
    recs = [_render(a, n) for n in range(5)]
    for r in recs:
        assert a.push(r)
    assert len(bucket.keys("objects/")) == 5 and len(bucket.keys("renders/")) == 5
    b = _team(bucket, tmp_path / "b")
    reads = f"/{bucket.name}/films/renders/"
    before = bucket.server.faults.count("GET", reads)
    have = b.lookup_many([r.key for r in recs] + [_key(99)])
    assert have == {r.key: r.output for r in recs}
    assert b.stats.requests == 1  # one listing answered six keys
    assert bucket.server.faults.count("GET", reads) == before  # no record read yet
    for r in recs:
        got = b.pull(r.key)
        assert got == r
        assert b.store.get(r.output) is not None
        local = b.store.lookup_render(r.key)
        assert local is not None and local.output == r.output and local.task_id == r.task_id
    with pytest.raises(Miss):
        b.pull(_key(99))
    # pushing again uploads nothing new
    puts = bucket.server.faults.count("PUT", "/objects/")
    assert a.push(recs[0]) and bucket.server.faults.count("PUT", "/objects/") == puts


def test_batched_lookup_jumps_over_a_large_store(bucket: Bucket, tmp_path: Path) -> None:
    team = _team(bucket, tmp_path / "a")
    out = digest_bytes(b"o")
    # records only: the look-up never reads them, nor objects
    bucket.put_many(record_name(_key(n), out) for n in range(2300))
    wanted = [_key(n) for n in (3, 1000, 2299)] + [_key(5000)]
    have = team.lookup_many(wanted)
    assert set(have) == set(wanted[:3])
    assert team.stats.requests <= 3  # at most one listing per key, fewer when they are close
    team2 = _team(bucket, tmp_path / "b")
    allk = [_key(n) for n in range(2300)]
    assert len(team2.lookup_many(allk)) == 2300
    assert team2.stats.requests == 3  # 1000 names a page


def test_a_damaged_remote_object_is_a_reported_miss(bucket: Bucket, tmp_path: Path) -> None:
    a = _team(bucket, tmp_path / "a")
    rec = _render(a, 1)
    a.push(rec)
    data = bucket.get(object_name(rec.output))
    bucket.put(object_name(rec.output), bytes([data[0] ^ 1]) + data[1:])  # same length
    warnings: list[str] = []
    b = _team(bucket, tmp_path / "b", warnings)
    with pytest.raises(Damaged):
        b.pull(rec.key)
    assert b.store.get(rec.output) is None
    assert any("W341" in w for w in warnings)
    assert b.known(rec.key) is None  # now a miss for the rest of the run
    assert not list((b.store.objects / "incoming").glob(".tmp-*"))  # nothing half-kept
    # a record that lies about its key is damaged too
    bucket.put(record_name(_key(7), rec.output), rec.dumps())
    assert parse_record(rec.dumps(), _key(7), rec.output) is None
    c2 = _team(bucket, tmp_path / "c", warnings)
    with pytest.raises(Damaged):
        c2.pull(_key(7))


def test_a_cut_download_resumes_where_it_stopped(bucket: Bucket, tmp_path: Path) -> None:
    a = _team(bucket, tmp_path / "a")
    rec = _render(a, 1, os.urandom(400_000))
    a.push(rec)
    b = _team(bucket, tmp_path / "b")
    bucket.server.faults.add("GET", "/objects/", "truncate", times=2)
    got = b.pull(rec.key)
    assert got.output == rec.output
    path = b.store.get(rec.output)
    assert path is not None and digest_bytes(path.read_bytes()) == rec.output
    ranges = [
        r
        for m, p, r in bucket.server.faults.log
        if m == "GET" and f"/{bucket.name}/" in p and "/objects/" in p
    ]
    assert ranges == ["", "bytes=200000-", "bytes=300000-"]
    # 400 kB cut in half, then the rest cut in half, then the rest: 200 + 100 + 100 kB
    assert b.stats.bytes_down == 400_000


def test_a_download_that_keeps_failing_is_an_error_not_a_miss(
    bucket: Bucket, tmp_path: Path
) -> None:
    a = _team(bucket, tmp_path / "a")
    rec = _render(a, 1, os.urandom(100_000))
    a.push(rec)
    b = _team(bucket, tmp_path / "b")
    bucket.server.faults.add("GET", "/objects/", "truncate", times=-1)
    with pytest.raises(c.Truncated):
        b.pull(rec.key)
    assert b.store.get(rec.output) is None
    kept = list((b.store.objects / "incoming").glob(".tmp-part-*"))
    assert len(kept) == 1 and 0 < kept[0].stat().st_size < 100_000  # kept for a later resume
    bucket.server.faults.clear()
    assert b.pull(rec.key).output == rec.output  # resumed in a later attempt
    assert not list((b.store.objects / "incoming").glob(".tmp-part-*"))


def test_server_errors_are_retried_and_a_dead_endpoint_is_unreachable(
    bucket: Bucket, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    a = _team(bucket, tmp_path / "a")
    rec = _render(a, 1)
    bucket.server.faults.add("PUT", "/objects/", "error", status=503)
    assert a.push(rec)  # boto3 retried the 503
    monkeypatch.setenv("STORYC_REMOTE_TIMEOUT", "0.5")
    stall = bucket.server.faults.add("GET", "renders/", "stall", seconds=1, times=-1)
    with pytest.raises(c.Unreachable):
        _team(bucket, tmp_path / "b").lookup_many([rec.key])
    # a few timed-out attempts at the listing (4 here, boto3's retries included), then
    # given up: counted, not timed
    assert 1 <= stall.hits <= 4, stall.hits
    bucket.server.faults.clear()
    dead = parse_remote(f"s3://{bucket.name}/x?endpoint=http://127.0.0.1:9")
    with pytest.raises(c.Unreachable):
        TeamStore(dead, Store(tmp_path / "d")).lookup_many([rec.key])


def test_read_only_credentials_pull_but_do_not_push(bucket: Bucket, tmp_path: Path) -> None:
    a = _team(bucket, tmp_path / "a")
    rec, other = _render(a, 1), _render(a, 2)
    a.push(rec)
    warnings: list[str] = []
    b = _team(bucket, tmp_path / "b", warnings)
    bucket.server.faults.add("PUT", "/", "deny", times=-1)
    assert b.pull(rec.key).output == rec.output
    b.store.put_bytes(a.store.get(other.output).read_bytes())  # type: ignore[union-attr]
    assert b.push(other) is False and b.read_only
    assert any("W342" in w for w in warnings)


# -- claims ------------------------------------------------------------------------


def test_one_claim_per_key_and_its_life(bucket: Bucket) -> None:
    cl = c.ObjectClient(parse_remote(bucket.url))
    me, other = ClaimBook(cl), ClaimBook(cl, Owner("elsewhere", 1, "1", "s"))
    k = _key(1)
    held = me.claim(k, "arrival", 1)
    assert isinstance(held, Held)
    found = other.claim(k, "arrival", 1)
    assert isinstance(found, Found) and found.alive and found.state == "claimed"
    held = me.update(held, state="submitting")
    held = me.update(held, state="submitted", task_id="task-1")
    seen = other.read(k)
    assert seen is not None and seen.task_id == "task-1" and seen.alive
    # a take-over needs the version it saw: a stale one loses
    assert other.take_over(found, "arrival", 1) is None
    me.release(held)
    assert other.read(k) is None
    assert isinstance(other.claim(k, "arrival", 1), Held)


def test_a_dead_holder_is_seen_as_dead(bucket: Bucket) -> None:
    cl = c.ObjectClient(parse_remote(bucket.url))
    me = ClaimBook(cl)
    k = _key(2)
    # same machine: a process that has exited
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(60)
    gone = Owner(me.owner.host, p.pid, "1", "x")
    held = ClaimBook(cl, gone).claim(k, "a", 1)
    assert isinstance(held, Held)
    found = me.read(k)
    assert found is not None and not found.alive
    new = me.take_over(found, "a", 1, state="submitted", task_id="t-9")
    assert isinstance(new, Held) and me.read(k).alive  # type: ignore[union-attr]
    # the old holder, back from the dead, cannot write over it
    with pytest.raises(LostClaim):
        ClaimBook(cl, gone).update(held, state="submitting")
    # another machine: by the age of the claim's last write, on the server's clock
    k2 = _key(3)
    far = ClaimBook(cl, Owner("another-host", 1, "1", "y"))
    far.claim(k2, "b", 1)
    # young, it is alive: S3 times are whole seconds, so a claim written at x.99 and read
    # at x+1.01 is a second old; a half-second limit made this fail (1 run in ~10 on a
    # loaded machine, found by running the suite in a loop)
    me.ttl = 30.0
    assert me.read(k2).alive  # type: ignore[union-attr]
    me.ttl = 0.5
    time.sleep(1.6)  # at least one whole second later on any clock: older than the limit
    assert not me.read(k2).alive  # type: ignore[union-attr]


def test_the_remote_setting_is_checked_in_the_story(tmp_path: Path) -> None:
    from storyc.compiler import compile_project

    def codes(remote: str) -> list[str]:
        (tmp_path / "main.story").write_text(
            f'project "T" {{ aspect = "16:9"  remote = "{remote}" }}\n'
            'scene a { prompt = "x"  duration = 5 }\n'
        )
        comp = compile_project(tmp_path / "main.story")
        return [d.code for d in comp.diagnostics if d.code.startswith("E3")]

    assert codes("s3://team-films/night-market?endpoint=https://r2.example.com") == []
    assert codes("https://team-films/x") == ["E340"]
    assert codes("s3://AKIAXYZ:hunter2@team-films/x") == ["E341"]
    assert codes("s3://team-films/x?secret_key=abc") == ["E341"]
    assert codes("https://AKIAXYZ:hunter2@team-films/x") == ["E341"]  # never echoed by E340
    assert codes("s3://team-films/x?endpoint=https://keys.example.com") == []
