"""The `storyc` command line: one argparse parser, one module per group of commands.

Stage: the outermost edge. In: argv and the environment. Out: an exit code. Each module in `COMMAND_MODULES` exposes
`register(subparsers) -> None`, adding its commands with `set_defaults(func=...)`;
`func(args) -> int` returns the exit code. Exit codes are documented in
docs/cli.md and listed in `ExitCode`.
"""

from __future__ import annotations

import argparse
import errno
import gc
import importlib
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyc import __version__
from storyc.base.exits import ExitCode
from storyc.base.memory import unsettle

if TYPE_CHECKING:
    from storyc.base.hashing import DigestCache


# Order is the order of `storyc --help`.
COMMAND_MODULES = (
    "storyc.cli.lang",  # init, check, compile, graph
    "storyc.cli.plan",  # plan, why, gc
    "storyc.cli.build",  # build, pick
    "storyc.cli.journal",  # journal, adopt, forget
    "storyc.cli.status",  # status, webhook serve
    "storyc.cli.review",  # board
    "storyc.cli.watch",  # watch
    "storyc.cli.film",  # export
    "storyc.cli.remote",  # pull, push (the team store)
    "storyc.cli.provider",  # provider (loopback server)
    "storyc.cli.editor",  # fmt, lsp
    "storyc.cli.daemon",  # daemon
)
# Which module registers each command, so a run imports only the one it needs: start-up
# time is most of a no-op build. `storyc --help` (or an unknown word) imports them all.
COMMANDS = {
    "init": "storyc.cli.lang",
    "check": "storyc.cli.lang",
    "compile": "storyc.cli.lang",
    "graph": "storyc.cli.lang",
    "plan": "storyc.cli.plan",
    "why": "storyc.cli.plan",
    "gc": "storyc.cli.plan",
    "build": "storyc.cli.build",
    "pick": "storyc.cli.build",
    "journal": "storyc.cli.journal",
    "adopt": "storyc.cli.journal",
    "forget": "storyc.cli.journal",
    "status": "storyc.cli.status",
    "webhook": "storyc.cli.status",
    "board": "storyc.cli.review",
    "watch": "storyc.cli.watch",
    "export": "storyc.cli.film",
    "pull": "storyc.cli.remote",
    "push": "storyc.cli.remote",
    "provider": "storyc.cli.provider",
    "fmt": "storyc.cli.editor",
    "lsp": "storyc.cli.editor",
    "daemon": "storyc.cli.daemon",
}

# The commands that ask the project's daemon first (storyc.cli.client.SERVED, less `build`,
# which asks after its fast path), named here so that no other command imports the client.
ASKS_DAEMON = frozenset({"check", "compile", "plan", "why"})

EPILOG = """\
examples:
  storyc init my-film          start a new project
  storyc check                 validate the project in this directory
  storyc compile --scene intro show what the scene `intro` will send
  storyc plan                  what will render, why, and what it costs
  storyc build                 render what changed (local preview, no key needed)
  storyc journal               what paid renders cost, per day and in total
  storyc status                what is still rendering (after storyc build --detach)
  storyc board                 the storyboard page: renders/board.html
  storyc watch                 re-check and re-render on every save
  storyc pull / storyc push    share renders through the team store (docs/teams.md)
  storyc fmt                   format every .story file here (comments kept)
"""


def project_root(path: str | os.PathLike[str]) -> Path | None:
    """The project directory PATH names: a story file's folder, or a folder holding
    `*.story` files; None when there is no project there. (Which file is the entry is
    the loader's business: `storyc.lang.loader.find_entry`; `main` has already moved
    PATH up to the project's folder when it named a folder inside it.)"""
    p = Path(path).resolve()
    if p.is_file():
        return p.parent
    if p.is_dir() and any(p.glob("*.story")):
        return p
    return None


def root_or_say(path: str | os.PathLike[str]) -> Path | None:
    """`project_root(path)`, or None after saying on stderr that there is no project there
    (the path shown escaped: it is text from the command line)."""
    root = project_root(path)
    if root is None:
        from storyc.base.diagnostics import printable

        print(printable(f"error: no storyc project at {path}"), file=sys.stderr)
    return root


def _find_project(args: argparse.Namespace) -> None:
    """Run from a folder inside a project (or given one), a command works on the project
    above it, as git does: PATH becomes the project's folder, for every command alike
    (their `.storyc/` must be the project's, not the subfolder's)."""
    path = getattr(args, "path", None)
    if not isinstance(path, str) or args.command == "init":
        return
    from storyc.lang.discovery import project_dir

    found = project_dir(path)
    if found is not None:
        args.path = found


def project_digests(path: str | os.PathLike[str]) -> DigestCache:
    """The project's persistent digest cache (`.storyc/digests.json`), so a command that
    compiles re-reads no unchanged asset; in memory only when PATH holds no project."""
    from storyc.base.hashing import DigestCache

    root = project_root(path)
    if root is None:
        return DigestCache(None)
    from storyc.base import warm

    return warm.digest_cache(root)


def add_remote_flags(p: argparse.ArgumentParser) -> None:
    """`--remote URL` / `--no-remote`: the team store for this run (see docs/teams.md)."""
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--remote",
        metavar="URL",
        help="the team store (s3://BUCKET/PREFIX); default: $STORYC_REMOTE, else the project's",
    )
    g.add_argument("--no-remote", action="store_true", help="do not use the team store")


class _Parser(argparse.ArgumentParser):
    """argparse, whose usage errors repeat the words they refuse: those are shown with
    control characters escaped, as every other message of storyc (a path on the command
    line can hold escape codes). Subcommands' parsers are of this class too."""

    def _print_message(self, message: str, file: Any = None) -> None:
        if message:
            from storyc.base.diagnostics import printable

            message = printable(message)
        super()._print_message(message, file)


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole parser, or (with `only`) one that knows just that command's module."""
    parser = _Parser(
        prog="storyc",
        description="Compile .story files into Kling Video O1 requests, and build the videos.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"storyc {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    modules = (COMMANDS[only],) if only in COMMANDS else COMMAND_MODULES
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name == name:  # that command group is not built yet
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command `argv` names (the program's arguments by default) in this
    process, and leave the interpreter's collector as it found it."""
    try:
        return _main(argv)
    finally:
        unsettle()  # a command run in-process leaves the collector as it found it


def console() -> int:
    """The `storyc` program: `main`, with what the command built left settled
    (`storyc.base.memory`). The interpreter ends next, and its last collection walks every
    object the collector can see: unsettled, that was every object of the compilation
    (0.15 s after a check of 10,000 scenes)."""
    return _main(None)


def _main(argv: Sequence[str] | None) -> int:
    words = list(sys.argv[1:] if argv is None else argv)
    if words == ["--version"]:  # without importing every command's module
        print(f"storyc {__version__}")
        return ExitCode.OK
    first = next((w for w in words if not w.startswith("-")), None)
    if first in ASKS_DAEMON:
        from storyc.cli.client import try_served

        try:
            served = try_served(words)
        except KeyboardInterrupt:  # the daemon goes on and finishes alone: nothing spends
            print("interrupted", file=sys.stderr)
            return ExitCode.INTERRUPTED
        if served is not None:
            return served
    return run(words)


def run(words: list[str]) -> int:
    """Run one command in this process (`main` without the daemon; the daemon's own)."""
    # A compile allocates hundreds of thousands of small acyclic objects; the default
    # cyclic-GC threshold (700) walks them over and over. Collect 70x less often.
    gc.set_threshold(50_000, 20, 20)
    first = next((w for w in words if not w.startswith("-")), None)
    from storyc.base import warm

    # argparse keeps nothing from one parse to the next: a long-lived process (the
    # daemon) builds each command's parser once
    parser = warm.held(("parser", first), lambda: build_parser(first))
    args, extra = parser.parse_known_args(words)
    if extra:
        # argparse leaves a command's unknown options to the top-level parser, which would
        # print the top-level usage: the command's own usage is the helpful one
        sub = _subparser(parser, getattr(args, "command", None))
        (sub or parser).error(f"unrecognized arguments: {' '.join(extra)}")
    func = getattr(args, "func", None)
    if func is None:
        parser.print_help()
        return ExitCode.USAGE
    args.argv = list(words)  # as typed: what a command hands on to the daemon
    try:
        _find_project(args)
        return int(func(args))
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return ExitCode.INTERRUPTED
    except BrokenPipeError:
        return ExitCode.OK
    except OSError as exc:
        # The machine, not storyc: a read-only project, a full disk, `renders` that is a
        # file. One line that says which file and why; the atomic writers left no half file.
        print(f"storyc: {_os_error(exc)}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    except Exception as exc:  # the one boundary: no traceback ever reaches the user
        first = str(exc).splitlines()[0] if str(exc) else ""
        print(f"storyc: internal error: {type(exc).__name__}: {first}", file=sys.stderr)
        return ExitCode.FAILED


def _subparser(parser: argparse.ArgumentParser, name: str | None) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction) and name in action.choices:
            sub = action.choices[name]
            return sub if isinstance(sub, argparse.ArgumentParser) else None
    return None


_WHY = {
    errno.EROFS: "the file system is read-only",
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "the disk quota is exhausted",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a file is in the way where a folder is needed",
    errno.EEXIST: "a file is in the way",
    errno.EISDIR: "a folder is in the way where a file is needed",
}


def _os_error(exc: OSError) -> str:
    from storyc.base.diagnostics import printable

    why = _WHY.get(exc.errno or 0) or exc.strerror or type(exc).__name__
    where = exc.filename
    if where is None:
        return f"cannot continue: {why}"
    try:
        path = os.fspath(where)
        shown = os.path.relpath(path)
        if shown.startswith(os.pardir + os.sep + os.pardir):
            shown = str(path)
    except (TypeError, ValueError):
        return printable(f"cannot use {where}: {why}")
    if os.path.basename(shown).startswith(".tmp-"):  # an atomic write's temp file
        return printable(f"cannot write in {os.path.dirname(shown) or '.'}{os.sep}: {why}")
    return printable(f"cannot use {shown}: {why}")
