"""`storyc daemon`: one process that keeps a project compiled, so that `storyc check`,
`storyc compile`, `storyc plan`, `storyc why` and free builds after an edit cost what the
edit costs.

Stage: the command line (outermost). In: the project, then requests from `storyc`
commands over a Unix socket. Out: each command's output and exit code, exactly as the
command run on its own would give them. I/O: listens on `.storyc/daemon.sock` (mode
0600; a peer of another user is refused), appends to `.storyc/daemon.log`, and does
whatever the commands it runs do (a preview build renders, writes the store, the lock
file and renders/ as it always does).

A command run on its own reads the project's compiled state back from `.storyc/` before
it can compile the one scene that changed: at 10,000 scenes that reading is seconds.
The daemon keeps the compiler engine, the build cache and the digest cache in memory
(storyc.base.warm) and runs the command in its own process; the engine reads every story
file and stats every asset on each command, as `storyc watch` does, so an answer is
never older than the files. Served (`SERVED`): commands that change nothing but caches,
and builds that spend nothing and talk to nobody (the preview backend, no team store;
checked on a fresh compilation before anything runs, and again by the build itself).
Whatever goes wrong on the way — no daemon, a dead one, a daemon of another storyc or
another project, a reply cut short before anything was shown — the command simply runs
in the caller's process instead, with the same result.

A build's output goes to the caller as it is written (`STREAMED`); the caller closing
its side of the connection (its Ctrl-C) is passed on as SIGINT while the build runs, so
it stops exactly as a build stops on Ctrl-C in its own process.

Protocol: one JSON object per line each way.
  {"op": "run", "argv": [...], "cwd": ..., "env": {...}, "tty": [out, err], "who": [...]}
      -> {"declined": why}, or {"out": [1|2, text]} ... then {"exit": N}
  {"op": "status"} -> {"pid", "root", "served", "since", "rss_mb", "peak_mb", "last_ms"}
  {"op": "stop"} -> {"stopping": true}
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import struct
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from storyc.base.diagnostics import printable
from storyc.base.exits import ExitCode
from storyc.cli.client import (
    IDLE_S,
    LOG_NAME,
    PROTOCOL,
    SERVED,
    SOCKET_NAME,
    STREAMED,
    ask,
    identity,
    receive_line,
    send_line,
)

# -- the server ---------------------------------------------------------------------------


class _Capture:
    """A command's stdout or stderr: what it writes, in order with the other stream's,
    and whether the caller's stream is a terminal. With `live`, each write goes to the
    caller at once (a build's progress), from whichever thread writes it."""

    encoding = "utf-8"
    errors = "strict"

    def __init__(
        self,
        n: int,
        chunks: list[list[Any]],
        tty: bool,
        live: Callable[[int, str], None] | None = None,
    ) -> None:
        self.n, self.chunks, self.tty, self.live = n, chunks, tty, live

    def write(self, text: str) -> int:
        if not text:
            return 0
        if self.live is not None:
            self.live(self.n, text)
        elif self.chunks and self.chunks[-1][0] == self.n:
            self.chunks[-1][1].append(text)
        else:
            self.chunks.append([self.n, [text]])
        return len(text)

    def writelines(self, lines: Sequence[str]) -> None:
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        pass

    def isatty(self) -> bool:
        return self.tty

    def fileno(self) -> int:
        raise OSError("not a file")  # io.UnsupportedOperation is an OSError too

    @property
    def closed(self) -> bool:
        return False


class _Caller:
    """The connection of the command being run: what it prints goes there, and the
    caller closing its side (Ctrl-C) stops the command as Ctrl-C would here."""

    def __init__(self, conn: socket.socket, server: Server) -> None:
        self.conn = conn
        self.server = server
        self.lock = threading.Lock()
        self.gone = False  # the caller cannot be written to any more
        self.done = threading.Event()
        self._watch: threading.Thread | None = None

    def send(self, doc: dict[str, Any]) -> None:
        with self.lock:
            if self.gone:
                return
            try:
                send_line(self.conn, doc)
            except OSError:
                self.gone = True
                self.interrupt()

    def out(self, n: int, text: str) -> None:
        self.send({"out": [n, text]})

    def watch(self) -> None:
        """Until `finish`: the caller closing its side means Ctrl-C."""

        def run() -> None:
            while not self.done.is_set():
                try:
                    if not self.conn.recv(1 << 10):
                        break  # the caller closed its side
                except TimeoutError:
                    continue
                except OSError:
                    break
            self.interrupt()

        self._watch = threading.Thread(target=run, name="storyc-daemon-caller", daemon=True)
        self._watch.start()

    def interrupt(self) -> None:
        if not self.done.is_set() and not self.server.interrupted:
            self.server.interrupted = True
            os.kill(os.getpid(), signal.SIGINT)

    def finish(self) -> None:
        self.done.set()


class Server:
    def __init__(self, root: Path, idle: float = IDLE_S) -> None:
        self.root = root.resolve()
        self.sock_path = self.root / ".storyc" / SOCKET_NAME
        self.idle = idle
        self.served = 0
        self.since = time.time()
        self.stopping = False
        self._listener: socket.socket | None = None
        self._code = self._code_sig()
        self._inode: int | None = None
        self.last_ms: float | None = None  # the last command's time in the daemon
        self.interrupted = False  # a caller's Ctrl-C was passed on as SIGINT
        self.running = False  # a command is running (a SIGINT is for it)
        self.handles_sigint = False  # `sigint` is the process's SIGINT handler

    @staticmethod
    def _code_sig() -> list[Any]:
        from storyc.build.fastpath import code_paths, stat_of

        return [stat_of(p) for p in code_paths()]

    # -- running commands -----------------------------------------------------------------

    def run_command(self, req: dict[str, Any], caller: _Caller | None = None) -> dict[str, Any]:
        """Run the command `req` asks for. Returns {"declined": why} before anything is
        printed, or {"chunks": [[stream, text], ...], "exit": N}; with `caller`, a
        streamed command's output has gone to it already (its chunks are empty)."""
        from storyc import cli

        argv, cwd, env, tty = req.get("argv"), req.get("cwd"), req.get("env"), req.get("tty")
        if req.get("who") != identity():
            return {"declined": "another storyc"}
        if self._code_sig() != self._code:
            self.stopping = True  # storyc was changed under it: the code in memory is old
            return {"declined": "storyc changed since the daemon started"}
        if not (
            isinstance(argv, list)
            and all(isinstance(w, str) for w in argv)
            and isinstance(cwd, str)
            and isinstance(env, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in env.items())
            and isinstance(tty, list)
            and len(tty) == 2
        ):
            return {"declined": "a malformed request"}
        first = next((w for w in argv if not w.startswith("-")), None)
        live = caller.out if caller is not None and first in STREAMED else None
        chunks: list[list[Any]] = []
        out = _Capture(1, chunks, bool(tty[0]), live)
        err = _Capture(2, chunks, bool(tty[1]), live)
        saved_env = dict(os.environ)
        saved_streams = sys.stdout, sys.stderr
        try:
            os.chdir(cwd)
            os.environ.clear()
            os.environ.update(env)
            why = self._refusal(argv)
            if why is not None:
                return {"declined": why}
            sys.stdout, sys.stderr = out, err
            self.interrupted = False
            if caller is not None and live is not None:
                caller.watch()
            try:
                self.running = True  # a SIGINT now interrupts the command (`_sigint`)
                code = cli.run(argv)
            except SystemExit as exc:  # argparse's --help or a usage error
                code = exc.code if isinstance(exc.code, int) else ExitCode.USAGE
            except KeyboardInterrupt:  # between `run`'s own handlers: as `run` answers it
                code = ExitCode.INTERRUPTED
            finally:
                self.running = False
                if caller is not None:
                    caller.finish()
                if self.handles_sigint:  # asyncio put back Python's own handler, not ours
                    signal.signal(signal.SIGINT, self.sigint)
        except OSError as exc:
            return {"declined": f"cannot run there: {exc.strerror}"}
        finally:
            from storyc.base import warm
            from storyc.build.cache import HANDED_OVER

            warm.drop(HANDED_OVER)  # good for the command it was made for only
            sys.stdout, sys.stderr = saved_streams
            os.environ.clear()
            os.environ.update(saved_env)
            with contextlib.suppress(OSError):
                os.chdir(self.root)
        self.served += 1
        return {"chunks": [[n, "".join(parts)] for n, parts in chunks], "exit": int(code)}

    def _refusal(self, argv: list[str]) -> str | None:
        """Why `argv` is not for this daemon, or None: a served command on its project
        (the parse is thrown away: `run` parses again, as the command on its own would).
        A build is served only when it spends nothing and talks to nobody: the preview
        backend, no team store."""
        from storyc import cli
        from storyc.base import warm

        first = next((w for w in argv if not w.startswith("-")), None)
        if first not in SERVED:
            return "not a command the daemon serves"
        try:
            with contextlib.redirect_stderr(_Capture(2, [], False)):
                parser = warm.held(("parser", first), lambda: cli.build_parser(first))
                args, extra = parser.parse_known_args(argv)
        except SystemExit:
            return "a usage error"  # the caller's own parser says it
        if extra or getattr(args, "func", None) is None:
            return "a usage error"
        cli._find_project(args)
        root = cli.project_root(getattr(args, "path", "."))
        if root is None or root.resolve() != self.root:
            return "another project"
        if first == "build":
            return self._build_refusal(args, root)
        return None

    @staticmethod
    def _build_refusal(args: argparse.Namespace, root: Path) -> str | None:
        from storyc.base import warm
        from storyc.build.cache import HANDED_OVER, BuildCache
        from storyc.cli import project_digests
        from storyc.plan import pricing

        if args.backend is not None and args.backend not in pricing.FREE_BACKENDS:
            return "a paid build"
        if getattr(args, "remote", None) or os.environ.get("STORYC_REMOTE"):
            return "a build with a team store"
        if getattr(args, "detach", False):
            return "a detached build"
        # what the project says (the compilation the build is about to make anyway)
        bi = BuildCache.open(root).compile(Path(args.path), args.target, project_digests(root))
        # the build starts from this very compilation, checked here, instead of compiling
        # again a moment later (storyc.build.session)
        warm.put(HANDED_OVER, (os.path.realpath(args.path), args.target, bi))
        settings = bi.settings if bi.ok else {}
        backend = args.backend or _value(settings.get("backend")) or "preview"
        if backend not in pricing.FREE_BACKENDS:
            return "a paid build"
        if _value(settings.get("remote")) and not getattr(args, "no_remote", False):
            return "a build with a team store"
        return None

    # -- the socket -----------------------------------------------------------------------

    def bind(self) -> bool:
        """Listen on the project's socket; False if another daemon answers there."""
        path = self.sock_path
        path.parent.mkdir(parents=True, exist_ok=True)
        if ask(str(path), {"op": "status"}, timeout=2.0) is not None:
            return False
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # a dead daemon's socket
        s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        old = os.umask(0o077)  # the socket is the user's alone (srwx------)
        here = os.getcwd()
        try:
            os.chdir(path.parent)  # bound by its short name: a socket address is ~107 bytes
            s.bind(SOCKET_NAME)
        finally:
            os.chdir(here)
            os.umask(old)
        s.listen(8)
        self._listener = s
        self._inode = os.stat(path).st_ino
        return True

    def sigint(self, signum: int, frame: Any) -> None:
        """SIGINT: a caller's Ctrl-C passed on, or Ctrl-C on a daemon in the foreground.
        It interrupts a command that runs (as in the caller's own process); between
        commands it never lands in the middle of the daemon's own bookkeeping."""
        if not self.interrupted:
            self.stopping = True  # not passed on: someone stops the daemon itself
        if self.running:
            raise KeyboardInterrupt

    def close(self) -> None:
        if self._listener is not None:
            self._listener.close()
            self._listener = None
        with contextlib.suppress(OSError):
            if os.stat(self.sock_path).st_ino == self._inode:  # ours, not a newer daemon's
                self.sock_path.unlink()

    def serve(self) -> None:
        from storyc.base import warm
        from storyc.base.memory import Settler, give_back

        assert self._listener is not None
        # a full collection every ten commands, when idle: a build leaves cyclic garbage
        # (its event loop, tasks, tracebacks) that only a collection frees
        settler = Settler(every=10)
        last = time.monotonic()
        served = self.served  # commands since the heap was last given back
        self._listener.settimeout(1.0)
        while not self.stopping:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                # a second without commands: write back the compiled state and caches
                # (a burst of commands writes them once, after the last)
                warm.run_later(self._later_failed)
                if time.monotonic() - last > self.idle:
                    break
                settler.idle()
                if served != self.served:  # what the commands freed goes back to the system
                    give_back()
                    served = self.served
                continue
            last = time.monotonic()
            with conn:
                try:
                    self._handle(conn)
                except Exception as exc:  # one bad request never ends the daemon
                    print(f"{time.strftime('%H:%M:%S')} a request failed: {type(exc).__name__}")
            settler.refreshed()

    @staticmethod
    def _later_failed(exc: Exception) -> None:
        # a cache that cannot be written only makes the next command slower
        print(f"{time.strftime('%H:%M:%S')} writing a cache failed: {type(exc).__name__}")

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(30.0)
        if sys.platform.startswith("linux"):
            pid, uid, gid = struct.unpack(
                "3i", conn.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, 12)
            )
            if uid != os.getuid():
                return  # another user: not even a reply
        try:
            req = receive_line(conn)
        except OSError:
            return
        if req is None or req.get("v") != PROTOCOL:
            reply: dict[str, Any] = {"declined": "another protocol"}
        elif req.get("op") == "status":
            reply = self.status()
        elif req.get("op") == "stop":
            self.stopping = True
            reply = {"stopping": True}
        elif req.get("op") == "run":
            # sending waits at most a minute: a caller that stopped reading (Ctrl-Z)
            # must not hold every other
            conn.settimeout(60.0)
            caller = _Caller(conn, self)
            t = time.perf_counter()
            reply = self.run_command(req, caller)
            if "declined" in reply:
                caller.send({"declined": reply["declined"]})
            else:
                for n, text in reply["chunks"]:
                    caller.out(n, text)
                caller.send({"exit": reply["exit"]})
            got = req.get("argv")
            argv: list[Any] = got if isinstance(got, list) else []
            word = next((w for w in argv if not str(w).startswith("-")), None)
            word = word if word in SERVED else "(another command)"  # nothing else of argv
            what = f"exit {reply['exit']}" if "exit" in reply else f"declined: {reply['declined']}"
            self.last_ms = (time.perf_counter() - t) * 1000
            print(f"{time.strftime('%H:%M:%S')} {word}: {what}, {self.last_ms:.0f} ms", flush=True)
            return
        else:
            reply = {"declined": "unknown request"}
        conn.settimeout(60.0)  # a client that stopped reading (Ctrl-Z) must not hold everyone
        with contextlib.suppress(OSError):
            send_line(conn, reply)

    def status(self) -> dict[str, Any]:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        now = peak
        # Linux: what it holds now (the peak stays at the largest command's)
        with (
            contextlib.suppress(OSError, ValueError, IndexError),
            open("/proc/self/statm", "rb") as f,
        ):
            now = int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / (1 << 20)
        return {
            "pid": os.getpid(),
            "root": str(self.root),
            "served": self.served,
            "since": self.since,
            "rss_mb": round(now, 1),
            "peak_mb": round(peak, 1),
            "last_ms": self.last_ms,
        }


def _value(setting: Any) -> Any:
    """A project setting's plain value (settings may hold located values)."""
    return getattr(setting, "value", setting)


# -- the commands -------------------------------------------------------------------------


def _root(path: str) -> Path | None:
    from storyc.cli import root_or_say

    return root_or_say(path)


def cmd_run(args: argparse.Namespace) -> int:
    """The daemon in the foreground (what `start` runs in the background)."""
    from storyc.base import warm

    root = _root(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    server = Server(root, idle=args.idle)
    warm.enable()
    # warm up: the first command then costs what an edit costs, not a whole reading
    from storyc import cli

    with (
        contextlib.redirect_stdout(_Capture(1, [], False)),
        contextlib.redirect_stderr(_Capture(2, [], False)),
    ):
        cli.run(["plan", str(root)])
    warm.run_later()
    if not server.bind():
        print("storyc daemon: another daemon already serves this project", file=sys.stderr)
        return ExitCode.USAGE

    def stop(signum: int, frame: Any) -> None:
        server.stopping = True

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, server.sigint)
    server.handles_sigint = True
    print(printable(f"storyc daemon {os.getpid()}: serving {root}"), flush=True)
    try:
        server.serve()
    except KeyboardInterrupt:
        pass
    finally:
        server.close()
        warm.run_later(server._later_failed)
        warm.disable()
    print(f"storyc daemon {os.getpid()}: stopped after {server.served} commands", flush=True)
    return ExitCode.OK


def cmd_start(args: argparse.Namespace) -> int:
    import subprocess

    root = _root(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    sock = str(root / ".storyc" / SOCKET_NAME)
    st = ask(sock, {"op": "status"}, timeout=2.0)
    if st is not None and "pid" in st:
        print(f"storyc daemon: already running (pid {st['pid']})")
        return ExitCode.OK
    (root / ".storyc").mkdir(exist_ok=True)
    cmd = [sys.executable, "-m", "storyc", "daemon", "run", str(root), "--idle", str(args.idle)]
    with open(root / ".storyc" / LOG_NAME, "ab") as log:
        proc = subprocess.Popen(
            cmd, stdin=subprocess.DEVNULL, stdout=log, stderr=log, start_new_session=True
        )
    deadline = time.monotonic() + args.wait
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            print(
                f"storyc daemon: it stopped at start (exit {proc.returncode}); see "
                f".storyc/{LOG_NAME}",
                file=sys.stderr,
            )
            return ExitCode.FAILED
        st = ask(sock, {"op": "status"}, timeout=2.0)
        if st is not None and st.get("pid") == proc.pid:
            print(printable(f"storyc daemon: serving {root} (pid {proc.pid})"))
            return ExitCode.OK
        time.sleep(0.05)
    print(f"storyc daemon: not ready after {args.wait:g} s (pid {proc.pid})", file=sys.stderr)
    return ExitCode.FAILED


def cmd_stop(args: argparse.Namespace) -> int:
    root = _root(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    sock = root / ".storyc" / SOCKET_NAME
    st = ask(str(sock), {"op": "status"}, timeout=2.0)
    if st is None:
        print("storyc daemon: none running")
        return ExitCode.OK
    ask(str(sock), {"op": "stop"}, timeout=2.0)
    deadline = time.monotonic() + 10.0
    while time.monotonic() < deadline and sock.exists():
        time.sleep(0.05)
    print(f"storyc daemon: stopped (pid {st.get('pid')})")
    return ExitCode.OK


def cmd_status(args: argparse.Namespace) -> int:
    root = _root(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    st = ask(str(root / ".storyc" / SOCKET_NAME), {"op": "status"}, timeout=2.0)
    if st is None:
        print("storyc daemon: none running")
        return ExitCode.FAILED
    up = time.time() - float(st.get("since", time.time()))
    print(
        f"storyc daemon: pid {st.get('pid')}, up {up:.0f} s, {st.get('served')} commands "
        f"served, {st.get('rss_mb')} MB (peak {st.get('peak_mb')} MB)"
    )
    return ExitCode.OK


def register(sub: Any) -> None:
    p = sub.add_parser(
        "daemon",
        help="keep the project compiled in memory for check, compile, plan, why and previews",
        description=(
            "A background process that keeps the project compiled, so `storyc check`, "
            "`storyc compile`, `storyc plan`, `storyc why` and preview builds run from "
            "inside the project after an edit cost what the edit costs. Paid builds always "
            "run in your own process. Set STORYC_NO_DAEMON to run without it."
        ),
    )
    dsub = p.add_subparsers(dest="action", metavar="ACTION", required=True)
    for name, func, helptext in (
        ("start", cmd_start, "start it in the background (once ready, it answers)"),
        ("stop", cmd_stop, "stop it"),
        ("status", cmd_status, "whether it runs, and what it served"),
        ("run", cmd_run, "run it in the foreground"),
    ):
        q = dsub.add_parser(name, help=helptext)
        q.add_argument("path", nargs="?", default=".", help="the project (default: here)")
        if name in ("start", "run"):
            q.add_argument(
                "--idle",
                type=float,
                default=IDLE_S,
                metavar="SECONDS",
                help=f"stop after this long without a command (default {IDLE_S:g})",
            )
        if name == "start":
            q.add_argument(
                "--wait", type=float, default=120.0, metavar="SECONDS", help=argparse.SUPPRESS
            )
        q.set_defaults(func=func)
