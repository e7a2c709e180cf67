"""`storyc board`: the storyboard and review page.

Stage: the command-line edge. In: parsed arguments. Out: `renders/board.html` (with its
images in `renders/board_files/`), a one-line summary, an exit code; with `--serve`, a
local server until Ctrl-C. I/O: compiles the project, reads `storyc.lock`, the store and
(with `--since`) git; writes thumbnails into the store and the page under `renders/`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from storyc.base.exits import ExitCode

EPILOG = """\
examples:
  storyc board                        write renders/board.html (open it in a browser)
  storyc board --since main           mark what changed since the branch `main`
  storyc board --since HEAD~3         ... or since any git revision
  storyc board --serve                also serve it on 127.0.0.1, reloading on rewrite

exit codes: 0 ok · 1 the story has errors (the page shows them) · 2 unknown revision ·
3 no project, unreadable lock file, or no git for --since
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "board",
        help="write the storyboard and review page (renders/board.html)",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="A static page with a card per scene, per cut in order: thumbnails of "
        "the picked take, its state, the prompt as written and as sent, its inputs, "
        "takes side by side, duration, backend and cost; a player for each assembled cut. "
        "Opens from file:// with no server and no network.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument(
        "--since",
        metavar="REV",
        help="review mode: mark scenes whose request changed since this git revision",
    )
    p.add_argument(
        "--backend",
        choices=("preview", "inference"),
        help="show the outputs and costs of this backend (default: the project's, else preview)",
    )
    p.add_argument("--target", metavar="T", help="override every scene's target")
    p.add_argument(
        "--serve",
        action="store_true",
        help="serve renders/ on 127.0.0.1 and reload the page whenever it is rewritten",
    )
    p.add_argument(
        "--port", type=int, default=8765, metavar="N", help="port for --serve (default 8765)"
    )
    p.set_defaults(func=cmd_board)


def cmd_board(args: argparse.Namespace) -> int:
    from storyc.cli.plan import _prepare  # compile, show diagnostics, read the lock file
    from storyc.review.make import make_board
    from storyc.review.since import SinceError
    from storyc.state.lockfile import LockFileError

    prepared = _prepare(args)
    if isinstance(prepared, int):
        return prepared if prepared != ExitCode.FAILED else ExitCode.ENVIRONMENT
    comp, plan, lock = prepared
    root = Path(comp.project.root) if comp.project else Path(args.path).resolve()
    try:
        made = make_board(
            root,
            comp,
            backend=plan.backend,
            lock=lock,
            since_rev=args.since,
            target=args.target,
        )
    except SinceError as exc:
        print(f"error: --since {args.since}: {exc}", file=sys.stderr)
        return exc.exit_code
    except LockFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    board = made.board
    n = len(board.cards)
    extra = f", {made.thumbnails_made} new thumbnails" if made.thumbnails_made else ""
    changed = f", {len(board.since.changes)} changed since {args.since}" if board.since else ""
    rel = made.path.relative_to(root) if made.path.is_relative_to(root) else made.path
    print(f"{rel}: {n} scene{'s' if n != 1 else ''}{changed}{extra} ({made.seconds:.2f} s)")
    if board.failed_thumbs:
        print(f"warning: {board.failed_thumbs} thumbnails could not be made", file=sys.stderr)
    if args.serve:
        return _serve(made.path.parent, args.port)
    return ExitCode.FAILED if comp.has_errors else ExitCode.OK


def _serve(folder: Path, port: int) -> int:
    import threading

    from storyc.review.serve import BoardServer

    try:
        server = BoardServer(folder, port).start()
    except OSError as exc:
        print(f"error: cannot listen on 127.0.0.1:{port}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    print(f"serving {server.url} (reloads when the page is rewritten; Ctrl-C to stop)")
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
    return ExitCode.OK
