"""A cold compile that answers at the whole-program compiler's speed.

Stage: compiler (around `storyc.compiler.state`). In: a project with no compiled state
(the first command after a clone, a storyc upgrade, `rm -rf .storyc`). Out: the
command's answer from `compile_project`, while a second process makes the compiled
state the next command needs. I/O: forks; a lock file in the state's directory.

Why. Making the incremental state costs more than compiling: each scene is resolved as
a unit that records what it consulted, its diagnostics are written relative to its
declaration, and everything is saved as JSON (about 1.5x the whole-program compiler at
10,000 scenes). A command with no state would pay that only for the benefit of the next
one. So, for a big project, this process compiles the whole program, then forks: it
answers while the child (its own process, on another core) builds the same compilation
unit by unit, from the parses this process made (the text of a file is not parsed
twice), and saves the state. Both are the same compilation (tests/test_incremental.py
holds the engine to `compile_project`: same diagnostics, payloads and order).

The hand-over. Before forking, this process takes `<state dir>/building` (an exclusive
`flock`); the child inherits it and holds it until its state is saved, or it dies (the
kernel drops the lock with its last holder, even on SIGKILL). A later command waits for
that lock before reading the state (`wait`), so it starts from the saved state instead
of compiling cold again; a command that finds the lock taken does not fork a second
builder. The child shares nothing else: it detaches from the terminal (its own session,
standard streams on /dev/null, every other descriptor closed, so a pipe reading this
command's output ends when this process does, and a build's own locks are not held
longer), ignores Ctrl-C meant for the command, and leaves with `os._exit` (no handler of
this process runs twice). Its writes are the state's own atomic ones, so a child killed
half way leaves a state that is a miss where it is incomplete, never wrong.

When it does not fork: `STORYC_NO_BACKGROUND=1`, a small project (below `MIN_BYTES` of
story text, the difference is a few milliseconds), a selection of scenes, a platform
without `fork`, or a process with other threads running (a fork copies only the calling
thread; a lock another thread held would never be released in the child). Those make the
state in the command, as before.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path

LOCK_NAME = "building"
# story text from which the state is made beside the answer (about 900 scenes)
MIN_BYTES = 64 * 1024
WAIT_SECONDS = 300.0  # a later command waits at most this long for the state
_POLL = 0.01
_WALK_LIMIT = 5000  # directory entries looked at to size a project


def story_bytes(root: Path, limit: int = MIN_BYTES) -> int:
    """The size of the `.story` files under `root` (hidden folders skipped), counted up
    to `limit`: enough to tell a big project from a small one without a parse."""
    total, seen = 0, 0
    todo = [str(root)]
    while todo and total < limit and seen < _WALK_LIMIT:
        try:
            it = os.scandir(todo.pop())
        except OSError:
            continue
        with it:
            for entry in it:
                seen += 1
                if entry.name.startswith("."):
                    continue
                try:
                    if entry.is_dir(follow_symlinks=False):
                        todo.append(entry.path)
                    elif entry.name.endswith(".story") and entry.is_file():
                        total += entry.stat().st_size
                except OSError:
                    continue
    return total


def possible() -> bool:
    """Whether this process may fork a state builder now (`STORYC_NO_BACKGROUND=1`: never,
    for a CI job that keeps `.storyc/` once its command ends, say)."""
    if os.environ.get("STORYC_NO_BACKGROUND", "") not in ("", "0"):
        return False
    return hasattr(os, "fork") and threading.active_count() == 1


def wait(state_dir: Path, seconds: float = WAIT_SECONDS) -> None:
    """Return once no process is making the state in `state_dir` (or after `seconds`:
    the state is then read as it is, which is never wrong, only maybe slower)."""
    try:
        # never blocking on a FIFO planted there, never through a link
        fd = os.open(state_dir / LOCK_NAME, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return  # never built in the background (or not a file of ours: a link)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return  # not a lock of ours
        deadline = time.monotonic() + seconds
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
                return
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    return
                time.sleep(_POLL)
            except OSError:
                return
    finally:
        os.close(fd)  # drops the shared lock


def fork_builder(state_dir: Path, build: Callable[[], None]) -> bool | None:
    """Run `build` in a detached child holding the state's lock. True: forked. None:
    another process holds the lock (it is making the state already). False: nothing
    could be forked (the caller makes the state itself)."""
    try:
        state_dir.mkdir(parents=True, exist_ok=True)
        # never through a link (the pid is written into it), never blocking on a FIFO
        flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK
        fd = os.open(state_dir / LOCK_NAME, flags, 0o644)
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False  # not a lock of ours: the caller makes the state itself
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return None  # another command is making it right now
        except OSError:
            return False
        try:
            pid = os.fork()
        except OSError:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        if pid == 0:  # the go-between: fork the builder and leave, so nobody must reap it
            try:
                if os.fork() == 0:
                    _builder(fd, build)
            finally:
                os._exit(0)
        # a process started with SIGCHLD ignored (kept across exec) reaps its children
        # itself, and a handler of its own may have reaped this one: nothing to wait for
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        return True
    finally:
        os.close(fd)  # the builder's copy keeps the lock


def _builder(lock_fd: int, build: Callable[[], None]) -> None:
    """The child's whole life: detach, build, leave (never returns)."""
    try:
        os.setsid()
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        null = os.open(os.devnull, os.O_RDWR)
        for std in (0, 1, 2):
            os.dup2(null, std)
        _close_all_but({0, 1, 2, lock_fd})
        os.ftruncate(lock_fd, 0)
        os.write(lock_fd, f"{os.getpid()}\n".encode())  # who holds it, for a reader
        build()
    except BaseException:  # a state not made is a miss next time, never an error
        pass
    finally:
        os._exit(0)


def _close_all_but(keep: set[int]) -> None:
    """Close every descriptor of this process but `keep`: those it has, where the system
    lists them (not a close per possible descriptor: a limit can be a million)."""
    try:
        fds = [int(x) for x in os.listdir("/proc/self/fd")]
    except (OSError, ValueError):
        try:
            top = min(int(os.sysconf("SC_OPEN_MAX")), 65536)
        except (OSError, ValueError):
            top = 4096
        fds = list(range(top))
    for fd in fds:
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
