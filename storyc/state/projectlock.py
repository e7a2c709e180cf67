"""One build at a time per project: an advisory lock on `.storyc/build.lock`.

Stage: execute (the outer edge of `storyc build`). In: the project directory. Out: a
held lock, or `ProjectLocked` naming the holder. I/O: opens and locks one file; the
holder's pid is written into it for the message.

`fcntl.flock` is released by the kernel when the holding process dies, even by
SIGKILL, so a crashed build never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path
from types import TracebackType

LOCK_NAME = "build.lock"


class ProjectLocked(Exception):
    """Another build holds the project."""


class ProjectLock:
    def __init__(
        self, root: str | os.PathLike[str], *, wait: float | None = None, poll: float = 0.1
    ) -> None:
        """`wait`: seconds to wait for the other build (None or 0: refuse at once)."""
        self.path = Path(root) / ".storyc" / LOCK_NAME
        self.wait = wait or 0.0
        self.poll = poll
        self._fd: int | None = None

    def _holder(self) -> str:
        try:
            pid = self.path.read_text("utf-8").strip()
        except OSError:
            pid = ""
        return f" (pid {pid})" if pid.isdigit() else ""

    def acquire(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        deadline = time.monotonic() + self.wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    os.close(fd)
                    raise ProjectLocked(
                        f"another storyc build is running in this project{self._holder()}; "
                        "wait for it to finish, or use --wait SECONDS"
                    ) from None
                time.sleep(self.poll)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd

    def held_by_another(self) -> bool:
        """Whether a build holds the project right now (asked without taking the lock
        or writing anything: `storyc plan` uses it to tell a send in progress from one
        whose build is gone)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False  # no lock file: no build ever ran here
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)  # closing drops a shared lock we may have taken
        return False

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> ProjectLock:
        self.acquire()
        return self

    def __exit__(
        self, t: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.release()
