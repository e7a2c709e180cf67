"""`storyc watch`: re-check on every save, show the plan's change, render within consent.

Stage: command line (effects: terminal, files, rendering through the executor). In:
argv. Out: an exit code — 0 after a clean stop (Ctrl-C between renders), 3 when there
is no project or the backend cannot start, 130 after Ctrl-C during a render (requests
already sent are recorded, as in `build`).
"""

from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path

from storyc.base.exits import ExitCode
from storyc.cli.build import money, positive


def _debounce(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of milliseconds: {text!r}") from None
    if not 10 <= value <= 10_000:
        raise argparse.ArgumentTypeError("the debounce is between 10 and 10000 ms")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "watch",
        help="re-check and re-render on every save",
        description=(
            "Watch every story file the project includes and every local file its scenes "
            "use. On each save: check again, show what changed in the plan and its cost, "
            "and render what changed — automatically with the free preview backend; with "
            "a paid backend only within --max-cost for the session, or with --yes."
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  storyc watch                      preview renders on every save\n"
            "  storyc watch --backend inference  show plans and costs, render nothing\n"
            "  storyc watch --backend inference --max-cost 5   spend at most $5 this session\n"
            "  storyc watch --json               one JSON event per line, for tools\n"
            "  storyc watch --board              keep renders/board.html current\n"
        ),
    )
    p.add_argument("path", nargs="?", default=".", help="project directory or entry .story file")
    p.add_argument(
        "--backend",
        default=None,
        choices=("preview", "inference"),
        help="preview (free, local; default, or the project's `backend`) or inference (paid)",
    )
    p.add_argument("--target", default=None, help="override every scene's target")
    p.add_argument(
        "--max-cost",
        type=money,
        default=None,
        metavar="USD",
        help="session budget for a paid backend; renders beyond it wait",
    )
    p.add_argument(
        "--yes",
        action="store_true",
        help="render on a paid backend without a budget (every change costs)",
    )
    p.add_argument(
        "--jobs", "-j", type=positive, default=4, help="renders at the same time (default 4)"
    )
    p.add_argument(
        "--base-url",
        default=None,
        metavar="URL",
        help="provider base URL (default: INFERENCE_BASE_URL, the project's "
        "base_url, or inference.sh)",
    )
    p.add_argument(
        "--debounce",
        type=_debounce,
        default=80,
        metavar="MS",
        help="quiet time after the last save before checking (default 80)",
    )
    p.add_argument(
        "--board",
        action="store_true",
        help="rewrite the storyboard page (renders/board.html) after each build",
    )
    view = p.add_mutually_exclusive_group()
    view.add_argument("--json", action="store_true", help="one JSON event per line")
    view.add_argument("--plain", action="store_true", help="plain lines, even on a terminal")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from storyc.watch.session import WatchSession
    from storyc.watch.view import make_view
    from storyc.watch.wiring import SetupFailed, make_wiring

    emit = make_view("json" if args.json else "plain" if args.plain else "auto")
    path = Path(args.path)
    try:
        wiring = make_wiring(
            path,
            backend=args.backend,
            target=args.target,
            jobs=args.jobs,
            max_cost=args.max_cost,
            yes=args.yes,
            base_url=args.base_url,
            board=args.board,
        )
    except SetupFailed as exc:
        from storyc.base.diagnostics import printable

        print(printable(f"error: {exc}"), file=sys.stderr)
        return ExitCode.ENVIRONMENT
    session = WatchSession(
        wiring.root, wiring, emit, max_cost=args.max_cost, yes=args.yes, debounce_ms=args.debounce
    )
    stop = threading.Event()
    try:
        return session.run(stop)
    except KeyboardInterrupt:
        # Ctrl-C between renders is the ordinary way to end a watch; during a render the
        # executor's handler stops it and `run` returns 130 itself.
        stop.set()
        session.emit("stopped", interrupted=True, during_build=bool(session.rendering))
        return ExitCode.INTERRUPTED if session.rendering else ExitCode.OK
    finally:
        wiring.close()
