"""`storyc build` and `storyc pick`: render what changed; choose a take.

Stage: the command-line edge of execute. In: arguments, the project on disk, the
environment (`INFERENCE_API_KEY`, `INFERENCE_BASE_URL`). Out: exit codes per
`storyc.cli.ExitCode`; the plan and the summary on stdout, progress and diagnostics on
stderr (or everything as JSON events on stdout with `--json`). I/O: everything
`storyc.build.session` does, plus reading the terminal for consent. `pick` holds the
project's build lock while it changes `storyc.lock`, so a pick during a build is
refused, never lost.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys

from storyc.base.diagnostics import printable
from storyc.base.exits import ExitCode
from storyc.cli import add_remote_flags

TYPE_CHECKING = False  # not typing's: importing typing costs 2 ms of a no-op build
if TYPE_CHECKING:
    from decimal import Decimal
    from pathlib import Path


def money(text: str) -> Decimal:
    """argparse type of `--max-cost` (build and watch): a finite, non-negative USD amount."""
    from decimal import Decimal, InvalidOperation  # only when --max-cost is given

    try:
        value = Decimal(text.lstrip("$"))
    except InvalidOperation:
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}") from None
    # NaN would make `value < 0` raise InvalidOperation (a traceback), Infinity no budget
    if not value.is_finite():
        raise argparse.ArgumentTypeError(f"not an amount in USD: {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError("the budget cannot be negative")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 <= value < float("inf"):  # NaN too: it would wait for ever without a word
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}")
    return value


def positive(text: str) -> int:
    """argparse type of `--jobs` and of a take number: an integer of at least 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return value


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "build",
        help="render what changed (preview by default; no key needed)",
        description="Render every scene whose request changed, in dependency order, then "
        "assemble every cut. Outputs land in the store and under renders/<scene>.mp4 and "
        "renders/<cut>.mp4.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  storyc build\n  storyc build --scene arrival --jobs 2\n"
        "  storyc build --cut trailer\n"
        "  storyc build --backend inference --max-cost 5 --yes\n"
        "  storyc build --backend inference --detach --yes   (collect later: storyc build)\n",
    )
    p.add_argument("path", nargs="?", default=".", help="project directory or entry file")
    p.add_argument(
        "--backend",
        choices=("preview", "inference"),
        help="preview (free, local ffmpeg animatics; default) or inference (paid)",
    )
    p.add_argument("--target", help="compile every scene for this target")
    p.add_argument(
        "--scene",
        action="append",
        dest="scenes",
        metavar="SCENE",
        help="build only this scene and what it uses (repeatable)",
    )
    p.add_argument(
        "--cut",
        action="append",
        dest="cuts",
        metavar="CUT",
        help="build only this cut and the scenes it plays (repeatable; default: every cut)",
    )
    p.add_argument(
        "--jobs",
        "-j",
        type=positive,
        help="tasks in flight at the provider at once, re-attached ones included (default 4)",
    )
    p.add_argument(
        "--max-cost",
        type=money,
        metavar="USD",
        help="stop submitting before the cost of this build would exceed USD "
        "(work in flight counts)",
    )
    p.add_argument(
        "--yes", "-y", action="store_true", help="consent to the paid plan without asking (for CI)"
    )
    p.add_argument("--json", action="store_true", help="one JSON event per line on stdout")
    add_remote_flags(p)
    p.add_argument(
        "--resubmit-unknown",
        action="store_true",
        help="send again requests whose earlier attempt has an unknown fate (may pay twice)",
    )
    p.add_argument(
        "--base-url",
        help="provider base URL (default: INFERENCE_BASE_URL, "
        "the project's base_url, or inference.sh)",
    )
    g = p.add_mutually_exclusive_group()
    g.add_argument(
        "--detach",
        action="store_true",
        help="submit what can be sent now, record it and exit without waiting; "
        "collect later with storyc build (paid backends)",
    )
    g.add_argument(
        "--wait",
        nargs="?",
        type=_wait_value,
        const=float("inf"),
        default=None,
        metavar="SECONDS",
        help="follow every task to the end, even those a detached build sent; and wait "
        "(up to SECONDS, if given) for another build of this project to finish",
    )
    p.add_argument(
        "--webhook",
        metavar="URL",
        help="the URL the provider calls when each task ends (default: $STORYC_WEBHOOK, "
        "else the project's webhook); see storyc webhook serve",
    )
    p.add_argument(
        "--retries",
        type=int,
        default=2,
        metavar="N",
        help="re-submit a task the provider failed at most N times (default 2)",
    )
    p.add_argument("--poll-interval", type=float, default=2.0, help=argparse.SUPPRESS)
    p.set_defaults(func=run_build)

    q = sub.add_parser(
        "pick",
        help="choose which take of a scene is used",
        description="Record in storyc.lock which take of SCENE is the one "
        "used by renders/<scene>.mp4 and by the scenes that use it.",
    )
    q.add_argument("scene")
    q.add_argument("take", type=positive)
    q.add_argument("path", nargs="?", default=".", help="project directory or entry file")
    q.add_argument(
        "--backend",
        choices=("preview", "inference"),
        help="pick among the paid takes or the previews (needed only when the scene has both)",
    )
    q.set_defaults(func=run_pick)


class _PathWord(str):
    """What `--wait` was given that is no number: the project's path (see `_wait_value`)."""


def _wait_value(text: str) -> float | str:
    """`--wait`'s optional number of seconds. argparse hands it the next word, so in
    `storyc build --wait my-film` it gets the path: a word that is not number-like is the
    path (the wait then has no limit); a bad number is a usage error."""
    try:
        return _seconds(text)
    except argparse.ArgumentTypeError:
        number_like = text.strip().lower().lstrip("+-").replace(".", "", 1)
        if number_like.isdigit() or number_like in ("nan", "inf", "infinity") or not text:
            raise
        return _PathWord(text)


def _wait_or_path(args: argparse.Namespace) -> str | None:
    """Put a path `--wait` took back where it belongs; None, or the error to print."""
    if not isinstance(args.wait, _PathWord):
        return None
    if args.path != ".":
        return f"storyc build: error: argument --wait: not a number of seconds: {args.wait!r}"
    args.path, args.wait = str(args.wait), float("inf")
    return None


def run_build(args: argparse.Namespace) -> int:
    from storyc.build.fastpath import try_fast

    problem = _wait_or_path(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return ExitCode.USAGE

    code = try_fast(args)  # a build identical to the last clean one: nothing to import
    if code is not None:
        return code
    words = getattr(args, "argv", None)
    if words is not None:
        # the project's daemon, if one runs and the build is free: the compilation is in
        # its memory already (storyc.cli.daemon); it never asks itself
        from storyc.base import warm
        from storyc.cli.client import try_served

        if not warm.enabled():
            served = try_served(words)
            if served is not None:
                return served
    from storyc.build.session import BuildSession

    return BuildSession(args).run()


def run_pick(args: argparse.Namespace) -> int:
    from pathlib import Path  # not at the top: a fast no-op build never needs it

    from storyc.build.session import find_root
    from storyc.state.projectlock import ProjectLock, ProjectLocked

    root = find_root(Path(args.path))
    if root is None:
        print(printable(f"error: no storyc project at {args.path}"), file=sys.stderr)
        return ExitCode.ENVIRONMENT
    guard = ProjectLock(root)
    try:
        guard.acquire()
    except ProjectLocked as exc:
        print(
            f"error: {exc}; nothing was picked (pick again when the build is over)",
            file=sys.stderr,
        )
        return ExitCode.ENVIRONMENT
    try:
        return _pick(root, args)
    finally:
        guard.release()


def _pick(root: Path, args: argparse.Namespace) -> int:
    from storyc.build.effects import link_picked, shows
    from storyc.state.lockfile import PREVIEW, LockFile, LockFileError
    from storyc.state.store import Store

    try:
        lock = LockFile.load(LockFile.path_for(root))
    except LockFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    paid, preview = lock.scenes.get(args.scene), lock.previews.get(args.scene)
    if args.backend is not None:
        entry = preview if args.backend == PREVIEW else paid
    elif paid is not None and preview is not None:
        print(
            f"error: scene {args.scene!r} has paid takes and previews; say which with "
            "--backend inference or --backend preview",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    else:
        entry = paid or preview
    if entry is None:
        known = ", ".join(sorted({*lock.scenes, *lock.previews})) or "none yet; run storyc build"
        kind = f"{args.backend} " if args.backend else ""
        print(
            f"error: scene {args.scene!r} has no {kind}renders in storyc.lock (scenes: {known})",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    take = entry.take(args.take)
    if take is None or not take.output:
        have = ", ".join(str(t.take) for t in entry.takes if t.output) or "none"
        print(
            f"error: scene {args.scene!r} has no take {args.take} (takes: {have})", file=sys.stderr
        )
        return ExitCode.FAILED
    store = Store.for_project(root)
    is_preview = entry is preview
    keep_main = is_preview and shows(root, store, args.scene, paid)
    if not link_picked(
        root, store, args.scene, take.output, preview=is_preview, keep_main=keep_main
    ):
        print(
            f"error: the output of take {args.take} is not in the store; run storyc build "
            "to fetch it again",
            file=sys.stderr,
        )
        return ExitCode.FAILED
    before = entry.take(entry.picked)
    if entry.picked != args.take:
        # entries are replaced, never changed in place (LockFile.dumps keeps their text)
        table = lock.previews if is_preview else lock.scenes
        table[args.scene] = dataclasses.replace(entry, picked=args.take)
        lock.save(LockFile.path_for(root))
    store.save()
    name = f"renders/preview/{args.scene}.mp4" if keep_main else f"renders/{args.scene}.mp4"
    kind = "preview " if is_preview else ""
    if entry.picked == args.take:
        after = "it was already picked: nothing changes"
    elif before is not None and before.output == take.output:
        after = (
            f"its video is take {entry.picked}'s: the scenes that use {args.scene} stay as they are"
        )
    else:
        after = f"scenes that use {args.scene} will render again on the next build"
    print(f"{args.scene}: {kind}take {args.take} picked ({name}); {after}")
    return ExitCode.OK
