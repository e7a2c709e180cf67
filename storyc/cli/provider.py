"""`storyc provider serve`: run the loopback provider for offline rehearsals.

Stage: the outermost edge (command line). In: options for `storyc.provider.loopback.server`.
Out: a running server on 127.0.0.1 until Ctrl-C; prints the base URL and the key to
use (as shell `export` lines, so `eval` works). I/O: a socket, a scratch directory.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import signal
import sys
import tempfile
from pathlib import Path

from storyc.base.exits import ExitCode
from storyc.provider.loopback.faults import FaultPlan, FaultSpecError, parse_fault
from storyc.provider.loopback.server import DEFAULT_KEY, Options, start


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = sub.add_parser("provider", help="the loopback provider (offline rehearsals)")
    inner = group.add_subparsers(dest="provider_command", metavar="SUBCOMMAND")
    serve = inner.add_parser(
        "serve",
        help="run a local provider speaking the inference.sh protocol",
        description="Run a provider on 127.0.0.1 that speaks inference.sh's task protocol "
        "and renders real preview MP4s. Point storyc (or the official SDK) at it "
        "with INFERENCE_BASE_URL.",
        epilog="fault specs: ENDPOINT:KIND[:nth=3+5][:p=0.1][:retry_after=2][:seconds=1]"
        "[:times=N]\n  e.g. --fault submit:drop:nth=3  --fault status:503:p=0.2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    serve.add_argument("--port", type=int, default=0, help="port (default: a free one)")
    serve.add_argument(
        "--schema",
        choices=("v1", "v2"),
        default="v2",
        help="klingai/video-o1 input schema to validate against (default v2)",
    )
    serve.add_argument(
        "--app-version",
        action="append",
        default=[],
        metavar="ID=SCHEMA",
        help="host a pinned version of klingai/video-o1 speaking SCHEMA (v1 or v2), "
        "e.g. --app-version 0a1b=v1 (repeatable; unpinned is the live app, --schema)",
    )
    serve.add_argument(
        "--latency",
        type=float,
        default=5.0,
        metavar="S",
        help="seconds from submission to completion (default 5)",
    )
    serve.add_argument(
        "--fail-rate",
        type=float,
        default=0.0,
        metavar="X",
        help="probability that a task fails (status 11)",
    )
    serve.add_argument(
        "--reject-rate",
        type=float,
        default=0.0,
        metavar="X",
        help="probability that a task is rejected (status 13, no balance)",
    )
    serve.add_argument(
        "--fault",
        action="append",
        default=[],
        metavar="SPEC",
        help="inject a fault (repeatable; see below)",
    )
    serve.add_argument("--seed", type=int, default=0, help="seed for probabilistic faults")
    serve.add_argument("--key", default=DEFAULT_KEY, help="the API key the server expects")
    serve.add_argument(
        "--status-form",
        choices=("int", "string", "legacy"),
        default="int",
        help="how task status is written (default: current integers)",
    )
    serve.add_argument(
        "--video-form",
        choices=("url", "object"),
        default="url",
        help="output video as a URL string or an {uri} object",
    )
    serve.add_argument(
        "--fast-outputs",
        action="store_true",
        help="reuse one output per duration and aspect (benchmarks)",
    )
    serve.set_defaults(func=run_serve)

    def _usage(args: argparse.Namespace) -> int:
        group.print_help()
        return ExitCode.USAGE

    group.set_defaults(func=_usage)


def run_serve(args: argparse.Namespace) -> int:
    plan = FaultPlan(seed=args.seed)
    try:
        for spec in args.fault:
            plan.add(parse_fault(spec))
        if args.fail_rate:
            plan.add(parse_fault(f"submit:fail:p={args.fail_rate}"))
        if args.reject_rate:
            plan.add(parse_fault(f"submit:reject:p={args.reject_rate}"))
    except FaultSpecError as exc:
        print(f"storyc provider serve: {exc}", file=sys.stderr)
        return ExitCode.USAGE
    versions: dict[str, str] = {}
    for spec in args.app_version:
        vid, _, schema = spec.partition("=")
        if not vid or schema not in ("v1", "v2"):
            print(
                f"storyc provider serve: --app-version {spec!r}: expected ID=v1 or ID=v2",
                file=sys.stderr,
            )
            return ExitCode.USAGE
        versions[vid] = schema
    if args.latency < 0:
        print("storyc provider serve: --latency must be >= 0", file=sys.stderr)
        return ExitCode.USAGE
    if not 0 <= args.port <= 65535:
        print("storyc provider serve: --port must be 0-65535 (0: a free port)", file=sys.stderr)
        return ExitCode.USAGE
    options = Options(
        schema=args.schema,
        latency=args.latency,
        api_key=args.key,
        status_form=args.status_form,
        video_form=args.video_form,
        fast_outputs=args.fast_outputs,
        faults=plan,
        versions=versions,
    )
    scratch = Path(tempfile.mkdtemp(prefix="storyc-loopback-"))
    try:
        asyncio.run(_serve(options, scratch, args.port))
    except OSError as exc:
        print(
            f"storyc provider serve: cannot listen on port {args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return ExitCode.ENVIRONMENT
    except KeyboardInterrupt:
        print("stopped", file=sys.stderr)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return ExitCode.OK


async def _serve(options: Options, scratch: Path, port: int) -> None:
    server, provider = await start(options, scratch, port)
    print(f"loopback provider (schema {options.schema}) listening on {provider.base_url}")
    print(f"export INFERENCE_BASE_URL={provider.base_url}")
    print(f"export INFERENCE_API_KEY={options.api_key}")
    print("press Ctrl-C to stop", flush=True)
    stop = asyncio.Event()
    with contextlib.suppress(NotImplementedError):  # SIGTERM: stop cleanly (scratch removed)
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    try:
        await stop.wait()
    finally:
        await provider.book.shutdown()
        await server.stop()
