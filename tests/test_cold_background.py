"""A cold compile of a big project answers with the whole-program compiler while a forked
process makes the compiled state (`storyc.compiler.background`): the answer is the one
the state gives next time, the next command starts from that state, and the builder
shares nothing with the command (streams, descriptors, session, Ctrl-C)."""

from __future__ import annotations

import fcntl
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from test_incremental import snapshot

from storyc.base.hashing import DigestCache
from storyc.compiler import background, compile_project
from storyc.compiler.state import CompiledState, compile_with_state
from storyc.media import ffmpeg as media

REPO = Path(__file__).resolve().parent.parent


def big_project(root: Path, scenes: int = 1200) -> Path:
    """More than `background.MIN_BYTES` of story text over three files, with templates,
    chained scenes, a style, warnings, notes and one error (an unknown mention)."""
    (root / "img").mkdir(parents=True)
    media.make_test_image(root / "img" / "square.png", 640, 480, seed=3)
    head = [
        'project "Cold" { aspect = "16:9"  duration = 5 }',
        'let city = "Lisbon"',
        'image square "img/square.png"',
        'image unused "img/square.png"',
        'style warm { negative = "blur" }',
        'include "a.story"',
        'include "b.story"',
    ]
    (root / "main.story").write_text("\n".join(head) + "\n", "utf-8")
    half = scenes // 2
    for name, lo, hi in (("a", 0, half), ("b", half, scenes)):
        lines = []
        for i in range(lo, hi):
            extra = f"  start = s{i - 1}.last_frame" if i % 7 == 1 else ""
            style = "  use = warm" if i % 5 == 0 else ""
            lines.append(
                f'scene s{i} {{ prompt = "Shot {i} of @square in {{{{ city }}}}, slow dolly"'
                f"{extra}{style} }}"
            )
        if name == "b":
            lines.append('scene lost { prompt = "@nobody walks in" }')
        (root / f"{name}.story").write_text("\n".join(lines) + "\n", "utf-8")
    assert background.story_bytes(root) >= background.MIN_BYTES
    return root


def storyc(
    *args: str,
    cwd: Path,
    timeout: float = 300,
    preexec: Callable[[], object] | None = None,
    **extra: str,
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(REPO), **extra}
    return subprocess.run(
        [sys.executable, "-m", "storyc", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        preexec_fn=preexec,
    )


def state_of(root: Path) -> CompiledState:
    return CompiledState(root, root, None, DigestCache())


def test_a_cold_check_answers_as_the_state_it_leaves_behind(tmp_path: Path) -> None:
    root = big_project(tmp_path / "p")
    state = state_of(root)
    cold = storyc("check", "--notes", ".", cwd=root)
    assert cold.returncode == 1, cold.stderr  # the unknown mention
    assert "E1" in cold.stderr and "@nobody" in cold.stderr
    background.wait(state.dir)
    # the command itself wrote nothing there: the builder did, and said who it was
    pid = (state.dir / background.LOCK_NAME).read_text("utf-8").strip()
    assert pid.isdigit() and int(pid) != os.getpid()
    index = state.dir / "index.json"
    made = index.stat()
    warm = storyc("check", "--notes", ".", cwd=root)
    assert (warm.returncode, warm.stdout, warm.stderr) == (
        cold.returncode,
        cold.stdout,
        cold.stderr,
    )
    # answered from the builder's state: nothing was compiled or written again
    assert index.stat().st_mtime_ns == made.st_mtime_ns
    as_json = storyc("check", "--format", "json", ".", cwd=root)
    assert json.loads(as_json.stdout)["scenes"] == 1201


def test_the_builders_state_is_the_whole_program_compilation(tmp_path: Path) -> None:
    root = big_project(tmp_path / "p", scenes=1000)
    first = compile_with_state(root)
    state = state_of(root)
    background.wait(state.dir)
    assert (state.dir / background.LOCK_NAME).is_file()  # made by a builder
    again = compile_with_state(root)
    assert snapshot(again) == snapshot(compile_project(root)) == snapshot(first)


def test_an_edit_after_a_cold_check_recompiles_from_the_builders_state(tmp_path: Path) -> None:
    root = big_project(tmp_path / "p", scenes=1000)
    assert storyc("check", ".", cwd=root).returncode == 1
    state = state_of(root)
    background.wait(state.dir)
    a = root / "a.story"
    a.write_text(a.read_text("utf-8").replace("Shot 3 of", "Shot three of"), "utf-8")
    engine = state.engine()
    comp = engine.update()
    assert engine.stats.resolved == ["s3"]  # one scene, not the project
    assert snapshot(comp) == snapshot(compile_project(root))


def test_a_small_project_makes_its_state_in_the_command(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "main.story").write_text(
        'project "Small" { aspect = "16:9" }\nscene a { prompt = "A quiet street" }\n'
    )
    assert storyc("check", ".", cwd=root).returncode == 0
    state = state_of(root)
    assert (state.dir / "index.json").is_file()
    assert not (state.dir / background.LOCK_NAME).exists()


def test_no_background_makes_the_state_in_the_command(tmp_path: Path) -> None:
    """`STORYC_NO_BACKGROUND=1` (a CI job that keeps `.storyc/` right after its command):
    the state is there when the command ends, and it answers the next one."""
    root = big_project(tmp_path / "p", scenes=1000)
    state = state_of(root)
    cold = storyc("check", ".", cwd=root, STORYC_NO_BACKGROUND="1")
    assert cold.returncode == 1
    assert not (state.dir / background.LOCK_NAME).exists()
    made = (state.dir / "index.json").stat()
    warm = storyc("check", ".", cwd=root)
    assert (warm.returncode, warm.stderr) == (cold.returncode, cold.stderr)
    assert (state.dir / "index.json").stat().st_mtime_ns == made.st_mtime_ns


def test_a_planted_link_is_never_the_builders_lock(tmp_path: Path) -> None:
    """The builder writes its pid into its lock: never through a link planted there."""
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me", "utf-8")
    (state_dir / background.LOCK_NAME).symlink_to(victim)
    assert background.fork_builder(state_dir, lambda: None) is False  # made in the command
    background.wait(state_dir, seconds=5)
    assert victim.read_text("utf-8") == "keep me"


def _recording_build(out: Path, go: Path):  # type: ignore[no-untyped-def]
    """A build that waits for `go`, then records what the builder process looks like."""

    def build() -> None:
        import time

        while not go.exists():
            time.sleep(0.01)
        fds = {}
        for name in os.listdir("/proc/self/fd"):
            try:
                fds[name] = os.readlink(f"/proc/self/fd/{name}")
            except OSError:
                continue  # the directory listing's own descriptor, closed already
        doc = {
            "pid": os.getpid(),
            "sid": os.getsid(0),
            "sigint": signal.getsignal(signal.SIGINT) == signal.SIG_IGN,
            "fds": fds,
        }
        out.write_text(json.dumps(doc), "utf-8")

    return build


def test_the_builder_shares_nothing_with_the_command(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    out, go = tmp_path / "out.json", tmp_path / "go"
    keep_r, keep_w = os.pipe()  # a descriptor of this process: the builder must not hold it
    try:
        assert background.fork_builder(state_dir, _recording_build(out, go)) is True
        go.touch()
        background.wait(state_dir)
    finally:
        os.close(keep_r)
        os.close(keep_w)
    doc = json.loads(out.read_text("utf-8"))
    assert doc["pid"] != os.getpid() and doc["sid"] == doc["pid"]  # its own session
    assert doc["sigint"]  # Ctrl-C at the terminal is for the command, not for it
    fds = doc["fds"]
    assert all(fds[s] == os.devnull for s in ("0", "1", "2")), fds
    others = {k: v for k, v in fds.items() if k not in ("0", "1", "2")}
    # the lock, and what the build itself opened (the listing of /proc/self/fd)
    assert list(others.values()).count(str(state_dir / background.LOCK_NAME)) == 1
    assert all(
        v == str(state_dir / background.LOCK_NAME) or v.startswith("/proc/")
        for v in others.values()
    ), others
    assert (state_dir / background.LOCK_NAME).read_text("utf-8").strip() == str(doc["pid"])


def test_one_builder_at_a_time_and_the_next_command_waits_for_it(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"
    out, go = tmp_path / "out.json", tmp_path / "go"
    assert background.fork_builder(state_dir, _recording_build(out, go)) is True
    background.wait(state_dir, seconds=0.3)  # gives up: the builder holds the lock
    assert not out.exists()  # it waits for `go`, so it cannot have finished
    lock = os.open(state_dir / background.LOCK_NAME, os.O_RDONLY)
    try:
        with pytest.raises(BlockingIOError):
            fcntl.flock(lock, fcntl.LOCK_SH | fcntl.LOCK_NB)
    finally:
        os.close(lock)
    assert background.fork_builder(state_dir, lambda: None) is None  # one at a time
    go.touch()
    background.wait(state_dir)
    assert out.exists()


def test_the_builder_takes_the_answers_parses_and_gives_the_same_compilation(
    tmp_path: Path,
) -> None:
    """What the builder does: the engine takes each file apart from the whole-program
    compiler's parse of the same text (nothing parsed twice) and compiles exactly what
    that compiler did."""
    from storyc.compiler.incremental import Engine
    from storyc.lang.loader import ParseCache

    root = big_project(tmp_path / "p", scenes=1000)
    parses = ParseCache()
    answer = compile_project(root, parse_cache=parses)
    assert parses.parses == 3
    engine = Engine(root)
    engine.parsed = parses
    comp = engine.update()
    assert engine.stats.regions_parsed == 0
    assert snapshot(comp) == snapshot(answer)
    # a file whose text is not the one parsed is parsed as always
    b = root / "b.story"
    b.write_text(b.read_text("utf-8").replace("Shot 700 of", "Shot seven hundred of"), "utf-8")
    fresh = Engine(root)
    fresh.parsed = parses
    comp = fresh.update()
    assert fresh.stats.regions_parsed == 1
    assert snapshot(comp) == snapshot(compile_project(root))


def test_a_builder_that_dies_releases_the_state(tmp_path: Path) -> None:
    state_dir = tmp_path / "state"

    def die() -> None:
        os.kill(os.getpid(), signal.SIGKILL)

    assert background.fork_builder(state_dir, die) is True
    background.wait(state_dir, seconds=120)
    lock = os.open(state_dir / background.LOCK_NAME, os.O_RDONLY)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)  # nobody holds it any more
    finally:
        os.close(lock)


def test_a_command_started_with_sigchld_ignored_still_answers(tmp_path: Path) -> None:
    """A process started with SIGCHLD ignored (a disposition kept across exec: some
    supervisors and embedding programs start children so) reaps its children itself:
    waiting for the builder's go-between finds no child. The command must answer as
    always (the unknown mention: exit 1), not fail, and the state must still be made."""
    root = big_project(tmp_path / "p", scenes=1000)
    cold = storyc(
        "check", ".", cwd=root, preexec=lambda: signal.signal(signal.SIGCHLD, signal.SIG_IGN)
    )
    assert cold.returncode == 1, cold.stderr
    assert "@nobody" in cold.stderr and "cannot continue" not in cold.stderr
    state = state_of(root)
    background.wait(state.dir)
    assert (state.dir / background.LOCK_NAME).is_file()  # made by a builder
    assert state.answer() is not None


def test_a_planted_fifo_is_never_the_builders_lock(tmp_path: Path) -> None:
    """Every command waits on the builder's lock before reading the state: a FIFO planted
    there (as a link is: see above) must not make opening it block, so the command
    answers (bounded by the subprocess timeout, which a hang would hit)."""
    root = tmp_path / "p"
    root.mkdir()
    (root / "main.story").write_text(
        'project "Small" { aspect = "16:9" }\nscene a { prompt = "A quiet street" }\n'
    )
    state = state_of(root)
    state.dir.mkdir(parents=True)
    os.mkfifo(state.dir / background.LOCK_NAME)
    try:
        done = storyc("check", ".", cwd=root, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("storyc check hung opening the FIFO planted as the builder's lock")
    assert done.returncode == 0, done.stderr
    assert background.fork_builder(state.dir, lambda: None) is False  # not a lock of ours


@pytest.mark.parametrize(
    "breakage",
    ["syntax error", "a name declared twice", "a missing include"],
)
def test_no_builder_for_a_story_no_state_can_hold(tmp_path: Path, breakage: str) -> None:
    """A story the engine compiles whole keeps no state: a builder would work for
    nothing, and every next command would wait for it, then compile cold again."""
    root = big_project(tmp_path / "p", scenes=1000)
    main = root / "main.story"
    text = main.read_text("utf-8")
    if breakage == "syntax error":
        text += "scene broken { prompt = }\n"
    elif breakage == "a name declared twice":
        text += 'scene s1 { prompt = "again" }\n'
    else:
        text += 'include "gone.story"\n'
    main.write_text(text, "utf-8")
    done = storyc("check", ".", cwd=root)
    assert done.returncode == 1, done.stderr
    state = state_of(root)
    assert not (state.dir / background.LOCK_NAME).exists()
    assert not (state.dir / "index.json").exists()


def test_a_duplicate_let_still_gets_its_state(tmp_path: Path) -> None:
    """E101 for a `let` defined twice is an error the engine takes apart: state kept."""
    root = big_project(tmp_path / "p", scenes=1000)
    main = root / "main.story"
    main.write_text(main.read_text("utf-8") + 'let city = "Porto"\n', "utf-8")
    assert storyc("check", ".", cwd=root).returncode == 1
    state = state_of(root)
    background.wait(state.dir)
    assert (state.dir / background.LOCK_NAME).is_file()
    assert (state.dir / "index.json").is_file()
