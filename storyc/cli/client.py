"""The client side of `storyc daemon` (storyc.cli.daemon): find the project's daemon, ask
it to run a command, print its answer. Light on purpose — socket and json only — because
`storyc` runs it before anything else.

Stage: the command line. In: argv, the working directory, the environment. Out: the
daemon's answer printed, and its exit code; or None (the caller runs the command itself).
I/O: connects to `.storyc/daemon.sock` of the project the working directory is in.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import sys
from collections.abc import Iterator, Sequence
from typing import Any

from storyc import __version__
from storyc.base.exits import ExitCode

SERVED = frozenset({"check", "compile", "plan", "why", "build"})
STREAMED = frozenset({"build"})  # shown as it comes, not when it ends
DISABLE_ENV = "STORYC_NO_DAEMON"  # set to anything: every command runs in its own process
SOCKET_NAME = "daemon.sock"
LOG_NAME = "daemon.log"
PROTOCOL = 1
IDLE_S = 3600.0  # a daemon nobody asked for an hour goes away
_MAX_LINE = 64 << 20  # a request is small; a reply holds a command's whole output
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def identity() -> list[str]:
    """What must be the same on both ends: storyc's version and code, the Python and its
    environment (the libraries storyc runs on)."""
    return [__version__, _PKG, sys.version, sys.prefix]


# -- the client: light (socket and json only), run by `storyc` before anything else -------


def find_socket(start: str) -> str | None:
    """The daemon socket of the project `start` is in (searched upwards, as git does)."""
    d = os.path.abspath(start)
    while True:
        candidate = os.path.join(d, ".storyc", SOCKET_NAME)
        with contextlib.suppress(OSError):
            if stat.S_ISSOCK(os.stat(candidate).st_mode):
                return candidate
        parent = os.path.dirname(d)
        if parent == d:
            return None
        d = parent


@contextlib.contextmanager
def _connected(path: str, timeout: float | None) -> Iterator[socket.socket]:
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.settimeout(timeout)
        if len(os.fsencode(path)) < 100:
            s.connect(path)
        else:  # a socket address holds ~107 bytes: connect by a path relative to its folder
            here = os.getcwd()
            os.chdir(os.path.dirname(path))
            try:
                s.connect(os.path.basename(path))
            finally:
                os.chdir(here)
        yield s
    finally:
        s.close()


def send_line(s: socket.socket, doc: dict[str, Any]) -> None:
    s.sendall(json.dumps(doc, ensure_ascii=False).encode("utf-8", "surrogatepass") + b"\n")


class Lines:
    """JSON object lines read from a socket, one at a time."""

    def __init__(self, s: socket.socket) -> None:
        self.s = s
        self.buf = bytearray()

    def next(self) -> dict[str, Any] | None:
        """The next object, or None if the peer closed or sent something else."""
        start = 0
        while True:
            nl = self.buf.find(b"\n", start)
            if nl >= 0:
                break
            if len(self.buf) > _MAX_LINE:
                return None
            start = len(self.buf)
            got = self.s.recv(1 << 16)
            if not got:
                return None
            self.buf += got
        line = bytes(self.buf[:nl])
        del self.buf[: nl + 1]
        try:
            doc = json.loads(line.decode("utf-8", "surrogatepass"))
        except ValueError:
            return None
        return doc if isinstance(doc, dict) else None


def receive_line(s: socket.socket) -> dict[str, Any] | None:
    """One JSON object line, or None if the peer closed or sent something else."""
    return Lines(s).next()


def ask(path: str, doc: dict[str, Any], timeout: float | None = 5.0) -> dict[str, Any] | None:
    """One request, its reply (None: no daemon answered)."""
    try:
        with _connected(path, timeout) as s:
            send_line(s, {"v": PROTOCOL, **doc})
            return receive_line(s)
    except OSError:
        return None


def try_served(words: Sequence[str]) -> int | None:
    """Run a `SERVED` command through the project's daemon: its exit code after printing
    its output, or None when there is no daemon to ask or it declined (the caller then
    runs the command itself). Never raises for a daemon's fault.

    What a command prints is held until its exit code arrives, so a reply cut short
    costs nothing but running the command here — except for `build` (`STREAMED`), whose
    progress is shown as it comes: cut short after that, it says so and fails. Ctrl-C
    during a build asks the daemon to stop it as Ctrl-C stops a build here (what was
    sent stays recorded); a second Ctrl-C leaves at once."""
    if os.environ.get(DISABLE_ENV):
        return None
    first = next((w for w in words if not w.startswith("-")), None)
    if first not in SERVED or any(w in ("-h", "--help") for w in words):
        return None
    try:
        cwd = os.getcwd()
        path = find_socket(cwd)
        if path is None:
            return None
        env = dict(os.environ)
        tty = [sys.stdout.isatty(), sys.stderr.isatty()]
        for stream, is_tty in zip((sys.stdout, sys.stderr), tty, strict=True):
            if is_tty and "COLUMNS" not in env:  # the daemon has no terminal to ask
                with contextlib.suppress(OSError, ValueError):
                    size = os.get_terminal_size(stream.fileno())
                    env["COLUMNS"], env["LINES"] = str(size.columns), str(size.lines)
    except OSError:  # no working directory any more, say: the command says so itself
        return None
    request = {"op": "run", "argv": list(words), "cwd": cwd, "env": env, "tty": tty}
    reply = _Reply(first in STREAMED)
    try:
        with _connected(path, None) as s:
            send_line(s, {"v": PROTOCOL, **request, "who": identity()})
            lines = Lines(s)
            try:
                return reply.pump(lines)
            except KeyboardInterrupt:
                if not reply.printed:
                    raise
                # as Ctrl-C stops a build here: no new sends, then its summary
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_WR)
                return reply.pump(lines)
    except _OutputClosed:
        return int(ExitCode.OK)  # as `main` answers a closed pipe
    except OSError:
        return _cut_short() if reply.printed else None


class _OutputClosed(Exception):
    """Our own stdout or stderr went away (`storyc build | head`)."""


def _cut_short() -> int:
    print("storyc: the daemon stopped answering in the middle of the command", file=sys.stderr)
    return int(ExitCode.FAILED)


class _Reply:
    def __init__(self, streamed: bool) -> None:
        self.streamed = streamed
        self.held: list[tuple[int, str]] = []
        self.printed = False  # something of it is on the screen already

    def pump(self, lines: Lines) -> int | None:
        while True:
            msg = lines.next()
            if msg is None:
                break
            if "declined" in msg and not self.printed and not self.held:
                return None
            out, code = msg.get("out"), msg.get("exit")
            if (
                isinstance(out, list)
                and len(out) == 2
                and out[0] in (1, 2)
                and isinstance(out[1], str)
            ):
                if self.streamed:
                    self._write(out[0], out[1])
                else:
                    self.held.append((out[0], out[1]))
            elif type(code) is int and len(msg) == 1:
                for n, text in self.held:
                    self._write(n, text)
                return code
            else:
                break
        return _cut_short() if self.printed else None

    def _write(self, n: int, text: str) -> None:
        out = sys.stdout if n == 1 else sys.stderr
        try:
            out.write(text)
            out.flush()
        except BrokenPipeError:
            raise _OutputClosed from None
        self.printed = True
