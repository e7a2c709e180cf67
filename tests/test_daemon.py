"""`storyc daemon`: commands it answers give exactly what they give on their own.

Real processes over a real Unix socket: the daemon is started with `storyc daemon start`,
each command is run twice — through the daemon, and on its own (STORYC_NO_DAEMON) — and
stdout, stderr and the exit code must be the same, while the daemon's count of commands
served proves it answered (a client that quietly ran everything itself would pass the
comparison and fail the count). Edits between the commands: prompts, a new scene, an
error and its fix, an asset's bytes, a missing asset, a real preview build (new lock file
and store objects), `storyc gc`.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from procs import Child

from storyc.cli import client as daemon
from storyc.media import ffmpeg as media

STORY = """project "p" {
  aspect = "16:9"
}
let mood = "at dusk"
image market = "assets/market.png"
scene arrival {
  prompt = "A night market {{ mood }} @market"
  duration = 5
}
scene stall {
  prompt = "Close on a noodle stall"
  start = arrival.last_frame
}
scene alley {
  prompt = "An empty alley"
  duration = 10
}
cut main = [arrival, stall, alley]
"""

SMALL = 'scene a {\n  prompt = "x"\n  duration = 5\n  aspect = "16:9"\n}\n'
TIMEOUT = 120


def storyc(root: Path, *args: str, local: bool = False) -> tuple[int, str, str]:
    env = {k: v for k, v in os.environ.items() if k != daemon.DISABLE_ENV}
    if local:
        env[daemon.DISABLE_ENV] = "1"
    p = subprocess.run(
        [sys.executable, "-m", "storyc", *args],
        cwd=root,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    return p.returncode, p.stdout, p.stderr


def served(root: Path) -> int:
    st = daemon.ask(str(root / ".storyc" / daemon.SOCKET_NAME), {"op": "status"})
    assert st is not None, "the daemon does not answer"
    return int(st["served"])


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "assets").mkdir()
    media.make_test_image(tmp_path / "assets" / "market.png", 640, 360, seed=3)
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    code, out, err = storyc(tmp_path, "daemon", "start")
    assert code == 0, err
    assert "serving" in out
    try:
        yield tmp_path
    finally:
        storyc(tmp_path, "daemon", "stop")


EVERY = (
    ("plan",),
    ("plan", "--json"),
    ("check",),
    ("check", "--format", "json"),
    ("check", "--notes"),
    ("compile", "--json"),
    ("compile", "--scene", "stall"),
    ("why", "stall"),
)
COMMANDS = (("plan", "--json"), ("check",))


def same_both_ways(root: Path, commands: tuple[tuple[str, ...], ...] = COMMANDS) -> None:
    for args in commands:
        before = served(root)
        through = storyc(root, *args)
        assert served(root) == before + 1, f"{args}: not answered by the daemon"
        alone = storyc(root, *args, local=True)
        assert through == alone, args
        assert "Traceback" not in through[2]


def test_answers_equal_the_command_on_its_own(project: Path) -> None:
    root = project
    same_both_ways(root, EVERY)
    story = root / "main.story"
    text = STORY
    for edit in (
        lambda t: t.replace('"at dusk"', '"at dawn"'),  # a let: the scene that uses it
        # a new scene, and an error (E204) in another
        lambda t: (
            t.replace("duration = 10", "duration = 11")
            + 'scene coda {\n  prompt = "The lights go out"\n}\n'
        ),
        # the error fixed, two takes of a scene, one scene's prompt
        lambda t: (
            t.replace("duration = 11", "duration = 10")
            .replace("scene stall {", "scene stall {\n  takes = 2")
            .replace("empty alley", "rainy alley")
        ),
    ):
        text = edit(text)
        story.write_text(text, "utf-8")
        same_both_ways(root)

    # the asset's bytes change: every scene using it (and downstream) plans again
    media.make_test_image(root / "assets" / "market.png", 640, 360, seed=4)
    same_both_ways(root)

    # a real preview build between: a new lock file, new store objects, renders linked
    code, _, err = storyc(root, "build", local=True)
    assert code == 0, err
    same_both_ways(root, EVERY)
    plan = json.loads(storyc(root, "plan", "--json")[1])
    assert {s["status"] for s in plan["scenes"].values()} == {"up-to-date"}

    # an edit after the build: that scene and what uses it render again, the rest is kept
    story.write_text(text.replace("A night market", "A dusk market"), "utf-8")
    same_both_ways(root)
    plan = json.loads(storyc(root, "plan", "--json")[1])
    renders = {n for n, s in plan["scenes"].items() if s["status"] != "up-to-date"}
    assert renders == {"arrival", "stall"}

    # objects deleted by hand from the store: the kept plan must notice
    for obj in (root / ".storyc" / "objects").rglob("*"):
        if obj.is_file():
            obj.chmod(0o644)
            obj.unlink()
    same_both_ways(root)

    # a missing asset: located errors, the same both ways
    (root / "assets" / "market.png").unlink()
    same_both_ways(root)


def test_a_missing_daemon_is_never_a_failure(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(SMALL)
    code, out, err = storyc(tmp_path, "daemon", "start")
    assert code == 0, err
    st = daemon.ask(str(tmp_path / ".storyc" / daemon.SOCKET_NAME), {"op": "status"})
    assert st is not None
    sock = tmp_path / ".storyc" / daemon.SOCKET_NAME
    # the socket is the user's alone
    assert stat.S_IMODE(os.stat(sock).st_mode) & 0o077 == 0
    os.kill(int(st["pid"]), signal.SIGKILL)  # a dead daemon leaves its socket behind
    for _ in range(200):  # until it stops answering (it may stay a zombie: no parent here)
        if daemon.ask(str(sock), {"op": "status"}, timeout=1.0) is None:
            break
        time.sleep(0.05)
    assert stat.S_ISSOCK(os.stat(sock).st_mode)
    assert storyc(tmp_path, "plan") == storyc(tmp_path, "plan", local=True)
    assert storyc(tmp_path, "plan")[0] == 0
    code, out, _ = storyc(tmp_path, "daemon", "status")
    assert code == 1 and "none running" in out
    # a new daemon takes over the dead one's socket
    code, out, err = storyc(tmp_path, "daemon", "start")
    assert code == 0, err
    try:
        assert storyc(tmp_path, "plan")[0] == 0 and served(tmp_path) == 1
        # STORYC_NO_DAEMON: not asked
        storyc(tmp_path, "plan", local=True)
        assert served(tmp_path) == 1
        # a second start finds it running
        code, out, _ = storyc(tmp_path, "daemon", "start")
        assert code == 0 and "already running" in out
    finally:
        code, out, _ = storyc(tmp_path, "daemon", "stop")
    assert code == 0 and "stopped" in out
    assert not sock.exists()


def _fake_daemon(path: Path, reply: bytes) -> threading.Thread:
    """A socket that answers every request with `reply` (or closes, for b"")."""
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.bind(str(path))
    s.listen(4)

    def serve() -> None:
        with s:
            s.settimeout(20)
            for _ in range(1):
                try:
                    conn, _ = s.accept()
                except OSError:
                    return
                with conn:
                    conn.recv(1 << 20)
                    if reply:
                        conn.sendall(reply)

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    return t


REPLIES = (
    b"",  # closes at once
    b"not json\n",
    b'{"chunks": [[1, "you have been served\\n"]], "exit": "0"}\n',  # exit not a number
    b'{"chunks": "text", "exit": 0}\n',
    b'["a", "list"]\n',
    b'{"declined": "not mine"}\n',
    b'{"out": [1, "you have been served\\n"]}\n',  # cut short before its exit code
)


def test_a_damaged_reply_means_the_command_runs_here(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(SMALL)
    (tmp_path / ".storyc").mkdir()
    alone = storyc(tmp_path, "check", local=True)
    assert alone[0] == 0 and "ok:" in alone[1]
    sock = tmp_path / ".storyc" / daemon.SOCKET_NAME
    for reply in REPLIES:
        t = _fake_daemon(sock, reply)
        through = storyc(tmp_path, "check")
        t.join(timeout=1)
        sock.unlink()
        assert through == alone, reply
        assert "you have been served" not in through[1]


def test_a_regular_file_named_like_the_socket_is_ignored(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(SMALL)
    (tmp_path / ".storyc").mkdir()
    (tmp_path / ".storyc" / daemon.SOCKET_NAME).write_text("{}")
    assert daemon.find_socket(str(tmp_path)) is None
    assert storyc(tmp_path, "check")[0] == 0


def test_declines_other_projects_other_commands_and_another_storyc(project: Path) -> None:
    sock = str(project / ".storyc" / daemon.SOCKET_NAME)
    base = {"op": "run", "cwd": str(project), "env": dict(os.environ), "tty": [False, False]}
    other = project / "other"
    other.mkdir()
    (other / "main.story").write_text(SMALL.replace("scene a", "scene b"))
    for argv, who in (
        (["plan"], ["0.0.0", "elsewhere", sys.version]),  # another storyc
        (["build", "--backend", "inference"], daemon.identity()),  # would pay: never served
        (["gc"], daemon.identity()),  # not a command the daemon serves
        (["plan", str(other)], daemon.identity()),  # another project
        (["plan", "--no-such-option"], daemon.identity()),  # the caller says the usage error
    ):
        reply = daemon.ask(sock, {**base, "argv": argv, "who": who}, timeout=TIMEOUT)
        assert reply is not None and "declined" in reply, argv
    # hostile requests: not JSON, not an object, fields of the wrong type
    for raw in (b"garbage\n", b"[1, 2]\n", b'{"v": 1, "op": "run", "argv": "plan"}\n'):
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(TIMEOUT)
            s.connect(sock)
            s.sendall(raw)
            reply = daemon.receive_line(s)
        assert reply is not None and "declined" in reply, raw
    assert served(project) == 0
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:  # the whole answer
        s.settimeout(TIMEOUT)
        s.connect(sock)
        daemon.send_line(s, {"v": 1, **base, "argv": ["plan"], "who": daemon.identity()})
        lines = daemon.Lines(s)
        msgs = []
        while (msg := lines.next()) is not None:
            msgs.append(msg)
    assert msgs[-1] == {"exit": 0}
    assert all(list(m) == ["out"] for m in msgs[:-1]) and len(msgs) > 1
    assert served(project) == 1
    # the commands a daemon declines still work, in the caller's process
    code, out, _ = storyc(other, "plan")
    assert code == 0 and "b" in out


# -- builds ------------------------------------------------------------------------------

SHOTS = """project "p" {
  aspect = "16:9"
  duration = 5
}
image market = "assets/market.png"
scene a {
  prompt = "A night market @market"
}
scene b {
  prompt = "Close on a stall"
  start = a.last_frame
}
scene c {
  prompt = "An alley"
}
scene d {
  prompt = "Lanterns"
}
cut main = [a, b, c, d]
"""


def events(text: str) -> list[dict[str, object]]:
    """A build's JSON events without what differs from run to run: times, and what this
    process happened to hash or read from its caches."""
    out = []
    for line in text.splitlines():
        ev = json.loads(line)
        ev.pop("elapsed", None)
        if ev.get("event") == "summary":
            for k in ("bytes_read", "bytes_verified", "cached_compilation"):
                ev.pop(k, None)
        out.append(ev)
    return out


def links(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): os.readlink(p)
        for p in sorted((root / "renders").rglob("*"))
        if p.is_symlink()
    }


def out_of_racy_window(root: Path) -> None:
    """Wait until every file of `root` was last changed longer ago than the fast path's
    racy window (`storyc.build.fastpath.RACY_S`): a wait on the clock the fast path
    itself reads, not a bound on how long anything takes."""
    from storyc.build.fastpath import RACY_S

    newest = max(
        max(st.st_mtime, st.st_ctime)
        for p in [root, *root.rglob("*")]
        if not p.is_symlink() and (st := p.stat()) is not None
    )
    time.sleep(max(0.0, newest + RACY_S + 0.05 - time.time()))


def make_shots(root: Path) -> None:
    (root / "assets").mkdir(parents=True)
    media.make_test_image(root / "assets" / "market.png", 640, 360, seed=3)
    (root / "main.story").write_text(SHOTS, "utf-8")


def test_a_free_build_through_the_daemon_is_the_build_here(tmp_path: Path) -> None:
    here, there = tmp_path / "here", tmp_path / "there"
    make_shots(here)
    make_shots(there)
    code, _, err = storyc(there, "daemon", "start")
    assert code == 0, err
    try:
        for edit in (None, lambda t: t.replace("An alley", "A rainy alley")):
            if edit is not None:
                for root in (here, there):
                    story = root / "main.story"
                    story.write_text(edit(story.read_text("utf-8")), "utf-8")
            before = served(there)
            # one job: scenes finish in the same order both ways
            through = storyc(there, "build", "--json", "--jobs", "1")
            assert served(there) == before + 1
            alone = storyc(here, "build", "--json", "--jobs", "1", local=True)
            assert through[0] == alone[0] == 0, through[2]
            assert events(through[1]) == events(alone[1])
            assert through[2] == alone[2]
            lock = (there / "storyc.lock").read_text("utf-8")
            assert lock == (here / "storyc.lock").read_text("utf-8")
            assert links(there) == links(here) and links(here)
        # a no-op build: once it has been recorded clean (by a build that reused all,
        # here through the daemon), the fast path answers in the caller's process.
        # A build is recorded only once every file it read is older than the racy
        # window (a change within it could hide in the same clock tick): on a fast
        # machine every build below could come within it of the last one's writes.
        out_of_racy_window(there)
        for _ in range(3):
            before = served(there)
            code, out, _ = storyc(there, "build", "--json")
            assert code == 0
            if '"fast_path": true' in out:
                assert served(there) == before  # not asked
                break
            assert served(there) == before + 1
        else:
            raise AssertionError("no build took the fast path")
        # and the plan after a build through the daemon is the plan here
        assert storyc(there, "plan", "--json")[1] == storyc(there, "plan", "--json", local=True)[1]
    finally:
        storyc(there, "daemon", "stop")


def test_a_paid_build_is_never_served(project: Path) -> None:
    env_key = "INFERENCE_API_KEY"
    for args in (("build", "--backend", "inference"), ("build", "--detach")):
        before = served(project)
        through = storyc(project, *args)
        assert served(project) == before, args  # declined: it ran here
        assert through == storyc(project, *args, local=True)
        assert through[0] != 0  # no key here (inference), --detach needs a paid backend
    # the project's own setting: paid, and the daemon declines before anything prints
    story = project / "main.story"
    story.write_text(STORY.replace('aspect = "16:9"', 'aspect = "16:9"\n  backend = "inference"'))
    before = served(project)
    code, out, err = storyc(project, "build")
    assert served(project) == before
    assert code == 3 and env_key in err  # the local build's own refusal: no key
    assert "Traceback" not in err


def test_ctrl_c_stops_a_build_in_the_daemon_as_here(tmp_path: Path) -> None:
    root = tmp_path / "p"
    make_shots(root)
    code, _, err = storyc(root, "daemon", "start")
    assert code == 0, err
    try:
        env = {k: v for k, v in os.environ.items() if k != daemon.DISABLE_ENV}
        cmd = [sys.executable, "-m", "storyc", "build", "--json", "--jobs", "1"]
        with Child(cmd, cwd=str(root), env=env) as p:
            seen = []
            for line in p.lines(TIMEOUT):  # Ctrl-C once the first scene is done (an event)
                seen.append(line)
                if '"state": "done"' in line:
                    p.send_signal(signal.SIGINT)
                    break
            code, rest, err = p.finish(TIMEOUT)
        evs = [json.loads(x) for x in [*seen, *rest.splitlines()]]
        assert code == 130, err
        summary = evs[-1]
        assert summary["event"] == "summary" and summary["interrupted"] is True
        assert summary["scenes"]["stopped"] >= 1  # type: ignore[index]
        assert "Traceback" not in err
        # the daemon lives on, and the next build does what is left
        assert served(root) >= 1
        code, out, err = storyc(root, "build", "--json")
        assert code == 0, err
        done = [e for e in events(out) if e.get("event") == "scene" and e["state"] == "done"]
        assert 1 <= len(done) <= 3
        assert storyc(root, "plan") == storyc(root, "plan", local=True)
    finally:
        storyc(root, "daemon", "stop")


def test_a_daemon_killed_mid_build_loses_nothing_and_the_next_build_finishes(
    tmp_path: Path,
) -> None:
    """SIGKILL to the daemon while it runs a build (after the first scene's `done`): the
    client says the daemon stopped answering and fails — it never runs the build a second
    time behind the user's back — the project lock dies with the daemon, nothing it wrote
    is half-written, and the next build (in the caller's process: the socket is dead)
    does exactly what is left and ends where a build that was never killed ends."""
    root, clean = tmp_path / "p", tmp_path / "clean"
    make_shots(root)
    make_shots(clean)
    code, _, err = storyc(root, "daemon", "start")
    assert code == 0, err
    sock = str(root / ".storyc" / daemon.SOCKET_NAME)
    st = daemon.ask(sock, {"op": "status"})
    assert st is not None
    pid = int(st["pid"])
    try:
        env = {k: v for k, v in os.environ.items() if k != daemon.DISABLE_ENV}
        cmd = [sys.executable, "-m", "storyc", "build", "--json", "--jobs", "1"]
        with Child(cmd, cwd=str(root), env=env) as p:
            seen = []
            for line in p.lines(TIMEOUT):
                seen.append(line)
                if '"state": "done"' in line:
                    os.kill(pid, signal.SIGKILL)
                    break
            code, rest, err = p.finish(TIMEOUT)
        assert code == 1, err
        assert "the daemon stopped answering" in err
        assert "Traceback" not in err
        evs = [json.loads(x) for x in [*seen, *rest.splitlines()] if x.startswith("{")]
        assert not any(e.get("event") == "summary" for e in evs)  # it never ran again here
        # the lock file, if written, is whole; the next build finishes the rest here
        code, out, err = storyc(root, "build", "--json")
        assert code == 0, err
        done = [e for e in events(out) if e.get("event") == "scene" and e["state"] == "done"]
        assert 1 <= len(done) <= 3, out  # the killed build's finished scene is not redone
        code, _, err = storyc(clean, "build", "--json", local=True)
        assert code == 0, err
        assert (root / "storyc.lock").read_bytes() == (clean / "storyc.lock").read_bytes()
        assert links(root) == links(clean)
        assert storyc(root, "build", "--json")[0] == 0  # and then nothing is left to do
        assert storyc(root, "plan") == storyc(root, "plan", local=True)
    finally:
        storyc(root, "daemon", "stop")
