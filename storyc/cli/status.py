"""Commands `storyc status` and `storyc webhook serve`: what a detached build left
running, and a receiver that collects it when the provider says a task ended.

Stage: the command-line edge. In: parsed arguments, the project's journal, the
environment (`INFERENCE_API_KEY`, `INFERENCE_BASE_URL`). Out: a table (or JSON) of
attempts in flight with their provider state, elapsed time and cost; for `webhook
serve`, a listening socket and one line per call on stderr; an exit code. I/O: reads the
journal; `status` asks the provider for task statuses (never sends a submission);
`webhook serve` reads tasks and collects finished ones into the project under its
build lock (`storyc.build.webhook`), and never sends a submission either.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from typing import Any

from storyc.base.exits import ExitCode
from storyc.cli import root_or_say

FMT = argparse.RawDescriptionHelpFormatter
KEY_ENV = "INFERENCE_API_KEY"
STATUS_EPILOG = """\
examples:
  storyc status                  what is rendering now, and what it costs
  storyc status --watch          refresh until nothing runs any more
  storyc status --json           for programs

exit codes: 0 ok · 3 no project, no API key, or the provider could not be asked
"""
WEBHOOK_EPILOG = """\
examples:
  storyc webhook serve --port 8787
  storyc webhook serve --port 8787 --until-settled   (CI: exit once everything is collected)

The provider must reach it: pass its public address with `storyc build --webhook URL`
(or STORYC_WEBHOOK, or the project's webhook); behind a tunnel or a proxy it can stay on
127.0.0.1.

exit codes: 0 stopped (Ctrl-C) or settled · 2 bad arguments · 3 no project, no API key,
the port cannot be opened
"""


def _interval(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"not a positive number of seconds: {text!r}")
    return value


def _port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def register(sub: Any) -> None:
    p = sub.add_parser(
        "status",
        help="what is still rendering: each task's state on the provider, time and cost",
        formatter_class=FMT,
        epilog=STATUS_EPILOG,
        description="List every paid attempt in flight or of unknown fate (from the "
        "journal) with its scene, take, task id, its state on the provider (asked now, "
        "cheaply), the time since it was sent and its cost. It never sends a submission "
        "and changes nothing: `storyc build` collects what finished.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--json", action="store_true", help="print the status as JSON")
    p.add_argument(
        "--watch", action="store_true", help="refresh until nothing runs on the provider"
    )
    p.add_argument(
        "--interval",
        type=_interval,
        default=5.0,
        metavar="SECONDS",
        help="seconds between refreshes with --watch (default 5)",
    )
    p.add_argument("--base-url", help="the provider's address (default: where each was sent)")
    p.set_defaults(func=cmd_status)

    w = sub.add_parser(
        "webhook",
        help="receive the provider's webhooks and collect finished tasks (webhook serve)",
        formatter_class=FMT,
        epilog=WEBHOOK_EPILOG,
        description="storyc webhook serve: a small HTTP receiver for the provider's "
        "webhooks. Each call is only a nudge: the task is read again from the provider, "
        "and when it has ended it is collected into the project (downloaded, stored, "
        "entered in the journal, the key index and storyc.lock) under the project's "
        "build lock. Calls for tasks the journal does not know are refused. It never "
        "sends a submission.",
    )
    wsub = w.add_subparsers(dest="webhook_command", metavar="COMMAND", required=True)
    s = wsub.add_parser(
        "serve",
        help="listen for webhook calls and collect the tasks they name",
        formatter_class=FMT,
        epilog=WEBHOOK_EPILOG,
        description=w.description,
    )
    s.add_argument("path", nargs="?", default=".", metavar="PATH")
    s.add_argument("--port", type=_port, default=8787, help="port to listen on (default 8787)")
    s.add_argument(
        "--host",
        default="127.0.0.1",
        help="address to listen on (default 127.0.0.1; 0.0.0.0 exposes it to the network)",
    )
    s.add_argument(
        "--base-url",
        help="the provider's address for every task (default: where each task was sent)",
    )
    s.add_argument(
        "--until-settled",
        action="store_true",
        help="exit 0 once no task of this project is in flight or waiting to be collected",
    )
    s.add_argument(
        "--sweep",
        type=float,
        default=300.0,
        metavar="SECONDS",
        help="also check the tasks in flight every SECONDS, in case a call was lost "
        "(default 300; 0: never)",
    )
    s.set_defaults(func=cmd_webhook_serve)


# -- storyc status ---------------------------------------------------------------------


def cmd_status(args: argparse.Namespace) -> int:
    from storyc.build.status import gather, render_text
    from storyc.state.journal import JournalError

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    key = os.environ.get(KEY_ENV, "") or None
    tty = sys.stdout.isatty() and not args.json
    while True:
        try:
            status = asyncio.run(gather(root, api_key=key, base_url=args.base_url))
        except JournalError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return ExitCode.ENVIRONMENT
        if args.json:
            print(json.dumps(status.as_json(), ensure_ascii=False), flush=True)
        else:
            if tty and args.watch:
                print("\x1b[H\x1b[2J", end="")  # redraw in place
            stamp = time.strftime("%H:%M:%S")
            lines = render_text(status)
            if args.watch:
                lines.append(f"checked at {stamp}" + ("" if status.settled else ", refreshing"))
            print("\n".join(lines), flush=True)
        for line in status.problems:
            print(line, file=sys.stderr, flush=True)
        if not status.checked:
            return ExitCode.ENVIRONMENT
        if not args.watch or status.settled:
            return ExitCode.OK
        try:
            time.sleep(args.interval)
        except KeyboardInterrupt:
            return ExitCode.INTERRUPTED
        if not tty and not args.json:
            print(flush=True)


# -- storyc webhook serve --------------------------------------------------------------


def cmd_webhook_serve(args: argparse.Namespace) -> int:
    from storyc.build.webhook import serve_webhooks

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    return serve_webhooks(
        root,
        host=args.host,
        port=args.port,
        base_url=args.base_url,
        until_settled=args.until_settled,
        sweep=max(0.0, args.sweep),
    )
