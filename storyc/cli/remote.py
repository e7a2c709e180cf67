"""Commands `storyc pull` and `storyc push`: explicit syncs with the team store.

Stage: the command-line edge. In: parsed arguments, the project, `storyc.lock`, the
environment (`STORYC_REMOTE`, the AWS credentials). Out: a report of what moved and an
exit code. I/O: compiles the project (pull), reads and writes `.storyc/` while holding
the project's build lock, and talks to the team store through `storyc.remote`.

`storyc pull` brings every take the current story needs and the team store has into
`.storyc/` (verified), so that the next `storyc build` pays for nothing the team already
rendered. `storyc push` shares the renders `storyc.lock` records (every take of every
scene; `--all` for every render in `.storyc/`); previews only with `--previews`.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from storyc.base.exits import ExitCode
from storyc.cli import add_remote_flags, project_digests, root_or_say
from storyc.cli.plan import FMT, _load_lock, compiled, open_team_store

PULL_EPILOG = """\
examples:
  storyc pull                          everything the story needs that the team has
  storyc pull --backend inference      the paid renders (the project's backend by default)
  STORYC_REMOTE=s3://team/film storyc pull

exit codes: 0 ok · 1 a take could not be pulled · 2 no team store configured ·
3 the team store cannot be reached, the project is locked
"""
PUSH_EPILOG = """\
examples:
  storyc push                          the renders storyc.lock records
  storyc push --all                    every render in .storyc/ (older versions too)
  storyc push --previews               previews too (never pushed otherwise)

exit codes: 0 ok · 1 a render could not be pushed · 2 no team store configured ·
3 the team store cannot be reached or written, the project is locked
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "pull",
        help="bring the team's renders of this story into .storyc/",
        formatter_class=FMT,
        epilog=PULL_EPILOG,
        description="Download every take the story needs that the team store has "
        "(verified against its digest), so that `storyc build` does not pay for it.",
    )
    _common(p)
    p.add_argument("--backend", choices=("preview", "inference"), help="default: the project's")
    p.add_argument("--target", metavar="T", help="override every scene's target")
    p.add_argument(
        "--base-url",
        metavar="URL",
        help="pull the renders of this provider, as `storyc build --base-url` keys them "
        "(default: INFERENCE_BASE_URL, the project's base_url, or inference.sh)",
    )
    p.set_defaults(func=cmd_pull)

    p = sub.add_parser(
        "push",
        help="share this project's renders through the team store",
        formatter_class=FMT,
        epilog=PUSH_EPILOG,
        description="Upload the renders storyc.lock records (objects, then their "
        "records) that the team store does not have yet.",
    )
    _common(p)
    p.add_argument(
        "--all", action="store_true", help="every render in .storyc/, not only the lock's"
    )
    p.add_argument("--previews", action="store_true", help="push preview renders too")
    p.set_defaults(func=cmd_push)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    add_remote_flags(p)
    p.add_argument("--jobs", type=int, default=8, metavar="N", help="transfers at once (8)")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _say(args: argparse.Namespace, text: str) -> None:
    if not args.json:
        print(text, flush=True)


def _no_team(args: argparse.Namespace) -> int:
    print(
        "error: no team store: set `remote` in the project block, STORYC_REMOTE, or --remote "
        "(see docs/teams.md)",
        file=sys.stderr,
    )
    return ExitCode.USAGE


def _lock_project(root: Path) -> Any:
    """The project's build lock, held; an exit code after saying who holds it."""
    from storyc.state.projectlock import ProjectLock, ProjectLocked

    guard = ProjectLock(root)
    try:
        guard.acquire()
    except ProjectLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    return guard


def cmd_pull(args: argparse.Namespace) -> int:
    from storyc.plan.address import key_provider
    from storyc.plan.planner import make_plan
    from storyc.remote.client import RemoteError
    from storyc.remote.planning import plan_with_remote
    from storyc.remote.team import Miss
    from storyc.state.store import Store

    got = compiled(args)
    if isinstance(got, int):
        return got
    root, digests, comp, lock = got
    settings = comp.summary.settings if comp.summary is not None else {}
    backend = args.backend or settings.get("backend") or "preview"
    provider = key_provider(backend, getattr(args, "base_url", None), settings.get("base_url"))
    store = Store.for_project(root)
    team = open_team_store(args, comp, store)
    if isinstance(team, int):
        return team
    if team is None:
        return _no_team(args)
    guard = _lock_project(root)
    if isinstance(guard, int):
        return guard
    try:
        plan = plan_with_remote(
            lambda remote: make_plan(
                comp, lock=lock, store=store, backend=backend, remote=remote, provider=provider
            ),
            team,
        )
        if team.down:
            return ExitCode.ENVIRONMENT
        wanted = [(n, t, plan.scenes[n].keys[t]) for n in plan.order for t in plan.scenes[n].pull]
        here = sum(len(plan.scenes[n].reuse) for n in plan.order)
        failed: list[str] = []

        def one(item: tuple[str, int, str]) -> None:
            scene, take, key = item
            label = scene if plan.scenes[scene].takes <= 1 else f"{scene}#{take}"
            try:
                team.pull(key, scene=scene, take=take, backend=backend)
            except (Miss, RemoteError) as exc:
                failed.append(label)
                print(f"error: {label}: not pulled: {exc}", file=sys.stderr)
                return
            _say(args, f"pulled {label}")

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            list(pool.map(one, wanted))
        store.save()
        digests.save()
    finally:
        guard.release()
    report = {
        "pulled": team.stats.pulled,
        "bytes": team.stats.bytes_down,
        "already_here": here,
        "failed": failed,
        "remote": team.config.url,
    }
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(
            f"pull: {team.stats.pulled} take(s) pulled ({team.stats.bytes_down:,} bytes) from "
            f"{team.config.url}; {here} already here"
            + (f"; {len(failed)} failed" if failed else "")
        )
    return ExitCode.FAILED if failed else ExitCode.OK


def cmd_push(args: argparse.Namespace) -> int:
    from storyc.remote.client import RemoteError
    from storyc.remote.layout import Record
    from storyc.remote.team import Miss
    from storyc.state.store import Store

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    lock = _load_lock(root)
    if lock is None:
        return ExitCode.FAILED
    store = Store.for_project(root)
    from storyc.compiler.state import compile_with_state

    # only the project block is needed (the `remote` setting); a story with errors elsewhere
    # can still share what it rendered. Through the compiled state: after a build, nothing
    # is compiled again
    comp = compile_with_state(Path(args.path), digests=project_digests(root))
    team = open_team_store(args, comp, store)
    if isinstance(team, int):
        return team
    if team is None:
        return _no_team(args)
    records: dict[str, Record] = {}
    # previews may have a table of their own beside the paid renders
    tables = [lock.scenes, getattr(lock, "previews", {})]
    for entry in [e for table in tables for e in table.values()]:
        for t in entry.takes:
            if t.output and (entry.backend != "preview" or args.previews):
                path = store.get(t.output)
                if path is None:
                    continue
                records[t.key] = Record(
                    key=t.key,
                    output=t.output,
                    size=path.stat().st_size,
                    scene=entry.name,
                    take=t.take,
                    backend=entry.backend,
                    target=entry.target,
                    task_id=t.task_id,
                    duration=t.duration,
                    cost=None if t.cost is None else str(t.cost),
                )
    if args.all:
        for _, rec in store.iter_renders():
            if rec is None or rec.key in records:
                continue
            if rec.backend == "preview" and not args.previews:
                continue
            path = store.get(rec.output)
            if path is not None:
                records[rec.key] = Record(
                    key=rec.key,
                    output=rec.output,
                    size=path.stat().st_size,
                    scene=rec.scene,
                    take=max(1, rec.take),
                    backend=rec.backend,
                    task_id=rec.task_id,
                    duration=rec.duration,
                )
    guard = _lock_project(root)
    if isinstance(guard, int):
        return guard
    failed: list[str] = []
    try:
        try:
            there = team.lookup_many(records)
        except RemoteError as exc:
            print(f"error: the team store {team.config.describe()}: {exc}", file=sys.stderr)
            return ExitCode.ENVIRONMENT
        todo = [r for k, r in sorted(records.items()) if there.get(k) != r.output]

        def one(rec: Record) -> None:
            label = f"{rec.scene}#{rec.take}"
            try:
                if team.push(rec):
                    _say(args, f"pushed {label} ({rec.size:,} bytes)")
            except (Miss, RemoteError) as exc:
                failed.append(label)
                print(f"error: {label}: not pushed: {exc}", file=sys.stderr)

        with ThreadPoolExecutor(max(1, args.jobs)) as pool:
            list(pool.map(one, todo))
        store.save()
    finally:
        guard.release()
    report = {
        "pushed": team.stats.pushed,
        "bytes": team.stats.bytes_up,
        "already_there": len(records) - len(todo),
        "failed": failed,
        "read_only": team.read_only,
        "remote": team.config.url,
    }
    if args.json:
        print(json.dumps(report, sort_keys=True))
    else:
        print(
            f"push: {team.stats.pushed} render(s) pushed ({team.stats.bytes_up:,} bytes) to "
            f"{team.config.url}; {len(records) - len(todo)} already there"
            + (f"; {len(failed)} failed" if failed else "")
        )
    if team.read_only:
        return ExitCode.ENVIRONMENT
    return ExitCode.FAILED if failed else ExitCode.OK
