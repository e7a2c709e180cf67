"""Commands `storyc journal`, `storyc adopt` and `storyc forget`: what was paid, and the
user's word on an attempt of unknown fate.

Stage: the command-line edge. In: parsed arguments, `.storyc/journal.sqlite`, and for
`adopt` the provider (`GET /tasks/{id}` with `INFERENCE_API_KEY`). Out: a table (or
JSON) of every paid attempt with totals per day and overall; journal transitions; an
exit code. I/O: reads the journal; `adopt` and `forget` change it while holding the
project's build lock (refused during a build), and `adopt` makes one read-only request.

An attempt is of unknown fate when the build that sent it stopped before the task id
came back (or the answer was lost): the provider may or may not have created a task,
and there is no idempotency key, so sending it again may pay twice. The user resolves
it without paying: `adopt` (the task is on the provider's dashboard: storyc checks that
its input is exactly the request the journal recorded, files compared by their uploaded
URI, and the next build follows it like any other) or `forget` (it never ran: the next
build sends it, after asking).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyc.base.exits import ExitCode
from storyc.cli import root_or_say
from storyc.plan import pricing

FMT = argparse.RawDescriptionHelpFormatter
JOURNAL_EPILOG = """\
examples:
  storyc journal                       every paid attempt, totals per day and overall
  storyc journal --scene arrival       one scene's attempts
  storyc journal --json                for programs

exit codes: 0 ok · 3 no project
"""
ADOPT_EPILOG = """\
examples:
  storyc adopt arrival 9f1c2e…         the task found on the provider's dashboard
  storyc adopt other 4b77a0… --take 2

exit codes: 0 adopted · 1 no such attempt or task, or the task is another request ·
3 no project, no API key, provider unreachable, a build is running
"""
FORGET_EPILOG = """\
examples:
  storyc forget arrival                it never reached the provider: send it again next build

exit codes: 0 forgotten · 1 no attempt of unknown fate · 3 no project, a build is running
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "journal",
        help="every paid attempt: scene, take, task, state, cost; totals per day",
        formatter_class=FMT,
        epilog=JOURNAL_EPILOG,
        description="List the journal of paid attempts (.storyc/journal.sqlite): per "
        "attempt its time, scene, take, task id, state and cost, then what was sent, "
        "spent and failed per day and overall.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--scene", metavar="SCENE", help="only this scene's attempts")
    p.add_argument("--json", action="store_true", help="print the journal as JSON")
    p.set_defaults(func=cmd_journal)

    p = sub.add_parser(
        "adopt",
        help="resolve an attempt of unknown fate with the task you found on the provider",
        formatter_class=FMT,
        epilog=ADOPT_EPILOG,
        description="Take TASK_ID (found on the provider's dashboard) as the task of the "
        "attempt of unknown fate of SCENE. storyc fetches the task, checks that its input "
        "is exactly the request it sent, and the next build follows it: nothing is paid "
        "again.",
    )
    p.add_argument("scene", metavar="SCENE")
    p.add_argument("task_id", metavar="TASK_ID")
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--take", type=int, metavar="N", help="which take (scenes with several)")
    p.add_argument(
        "--base-url", help="the provider's address (default: where the attempt was sent)"
    )
    p.set_defaults(func=cmd_adopt)

    p = sub.add_parser(
        "forget",
        help="resolve an attempt of unknown fate that you know never ran",
        formatter_class=FMT,
        epilog=FORGET_EPILOG,
        description="Record that the attempt of unknown fate of SCENE never reached the "
        "provider (you checked its dashboard): the next build sends the request again, "
        "after asking.",
    )
    p.add_argument("scene", metavar="SCENE")
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--take", type=int, metavar="N", help="which take (scenes with several)")
    p.add_argument(
        "--base-url",
        help="only the attempts sent to this provider (needed when they went to several)",
    )
    p.set_defaults(func=cmd_forget)


# -- storyc journal --------------------------------------------------------------------

STATE_WORDS = {
    "planned": "planned",
    "submitting": "sending",
    "submitted": "in flight",
    "completed": "completed",
    "failed": "failed",
    "cancelled": "forgotten",
    "unknown": "unknown fate",
    "not_sent": "not sent",
}


def _money(att: Any) -> dict[str, Decimal]:
    """What one attempt means for money: spent (completed), in flight, unknown, failed."""
    est = att.estimate or Decimal(0)
    out = {k: Decimal(0) for k in ("sent", "spent", "in_flight", "unknown", "failed")}
    if att.may_have_cost:
        out["sent"] = est
    if att.state == "completed":
        out["spent"] = att.billed if att.billed is not None else est
    elif att.state in ("submitting", "submitted"):
        out["in_flight"] = est
    elif att.state == "unknown":
        out["unknown"] = est
    elif att.state == "failed" and att.task_id:
        out["failed"] = est
    return out


def _totals(atts: list[Any]) -> dict[str, Any]:
    sums = {k: Decimal(0) for k in ("sent", "spent", "in_flight", "unknown", "failed")}
    failed = 0
    for a in atts:
        for k, v in _money(a).items():
            sums[k] += v
        failed += a.state == "failed"
    return {
        "attempts": len(atts),
        "failed_attempts": failed,
        **{k: str(v) for k, v in sums.items()},
    }


def _open_journal(root: Path) -> Any:
    from storyc.state.journal import Journal

    path = root / ".storyc" / "journal.sqlite"
    return Journal(path) if path.exists() else None


def cmd_journal(args: argparse.Namespace) -> int:
    from storyc.state.journal import JournalError

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    try:
        journal = _open_journal(root)
    except JournalError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    atts = []
    if journal is not None:
        with journal:
            atts = journal.of_scene(args.scene) if args.scene else journal.all()
    days: dict[str, list[Any]] = {}
    for a in atts:
        days.setdefault(time.strftime("%Y-%m-%d", time.localtime(a.created_at)), []).append(a)
    if args.json:
        doc = {
            "attempts": [
                {
                    "id": a.id,
                    "time": a.created_at,
                    "scene": a.scene,
                    "take": a.take,
                    "task_id": a.task_id,
                    "state": a.state,
                    "estimate": None if a.estimate is None else str(a.estimate),
                    "billed": None if a.billed is None else str(a.billed),
                    "backend": a.backend,
                    "target": a.target,
                    "error": a.error,
                }
                for a in atts
            ],
            "days": [{"date": d, **_totals(day)} for d, day in sorted(days.items())],
            "total": _totals(atts),
        }
        print(json.dumps(doc, indent=2, ensure_ascii=False))
        return ExitCode.OK
    if not atts:
        print("no paid attempts yet (previews are free and not journaled)")
        return ExitCode.OK
    rows = [("time", "scene", "take", "task", "state", "cost", "note")]
    for a in atts:
        cost = pricing.format_usd(a.billed if a.billed is not None else a.estimate)
        if a.state in ("not_sent", "cancelled") or (a.state == "failed" and not a.task_id):
            cost = "$0.00"
        rows.append(
            (
                time.strftime("%Y-%m-%d %H:%M", time.localtime(a.created_at)),
                a.scene,
                str(a.take),
                a.task_id or "-",
                STATE_WORDS.get(a.state, a.state),
                cost,
                (a.error or "").splitlines()[0][:60] if a.error else "",
            )
        )
    widths = [max(len(r[i]) for r in rows) for i in range(6)]
    for r in rows:
        print("  ".join([*(r[i].ljust(widths[i]) for i in range(6)), r[6]]).rstrip())
    print()
    for d, day in sorted(days.items()):
        print(f"{d}: {_total_line(_totals(day))}")
    print(f"total: {_total_line(_totals(atts))}")
    return ExitCode.OK


def _total_line(t: dict[str, Any]) -> str:
    def usd(k: str) -> str:
        return pricing.format_usd(Decimal(t[k]))

    text = f"{t['attempts']} attempt(s), {usd('sent')} sent, {usd('spent')} spent"
    if Decimal(t["in_flight"]):
        text += f", {usd('in_flight')} in flight"
    if Decimal(t["unknown"]):
        text += f", {usd('unknown')} of unknown fate"
    if t["failed_attempts"]:
        text += f", {t['failed_attempts']} failed ({usd('failed')}; failed tasks are not charged)"
    return text


# -- storyc adopt / storyc forget -------------------------------------------------------


class _Refused(Exception):
    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _sent_to(attempt: Any) -> str:
    """The provider an attempt was sent to, spelled as keys name it (its origin)."""
    from storyc.plan.address import DEFAULT_BASE_URL, origin

    return origin(attempt.base_url or DEFAULT_BASE_URL)


def _unknown_attempts(
    journal: Any, scene: str, take: int | None, base_url: str | None = None, *, pick: bool = False
) -> list[Any]:
    """The attempts of unknown fate of `scene` (and `take`), all sent to one provider: those
    sent to `base_url` (with `pick`, only when they went to several)."""
    from storyc.plan.address import origin

    unknown = [a for a in journal.of_scene(scene, take) if a.state == "unknown"]
    there = ""
    if base_url is not None and not (pick and len({_sent_to(a) for a in unknown}) < 2):
        unknown = [a for a in unknown if _sent_to(a) == origin(base_url)]
        there = f" sent to {origin(base_url)}"
    elif base_url is not None:
        # adopt, the attempts sent to one provider: --base-url is where the task is read,
        # never another provider than the one the journal says they went to (its task
        # would stand for a request that may run there, which no build could then find);
        # an attempt of an old journal, which does not say, goes where the user says
        sent = sorted({_sent_to(a) for a in unknown})
        unknown = [a for a in unknown if a.base_url is None or _sent_to(a) == origin(base_url)]
        there = f" sent to {origin(base_url)}" + (f" (they went to {sent[0]})" if sent else "")
    if not unknown:
        which = f" take {take}" if take is not None else ""
        raise _Refused(
            f"scene {scene!r}{which} has no attempt of unknown fate{there} (see `storyc "
            f"journal --scene {scene}`)",
            ExitCode.FAILED,
        )
    providers = sorted({_sent_to(a) for a in unknown})
    if len(providers) > 1:
        # a rehearsal's attempt and a real one: forgetting both could send the real
        # request again when it did reach the provider
        raise _Refused(
            f"scene {scene!r} has attempts of unknown fate sent to {', '.join(providers)}: "
            "say which provider with --base-url URL",
            ExitCode.USAGE,
        )
    takes = sorted({a.take for a in unknown})
    if take is None and len(takes) > 1:
        raise _Refused(
            f"scene {scene!r} has attempts of unknown fate for takes "
            f"{', '.join(map(str, takes))}: say which with --take N",
            ExitCode.USAGE,
        )
    return unknown


def _locked(args: argparse.Namespace, work: Any) -> int:
    from storyc.state.journal import JournalError
    from storyc.state.projectlock import ProjectLock, ProjectLocked

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    try:
        with ProjectLock(root):
            journal = _open_journal(root)
            if journal is None:
                raise _Refused("no paid attempts in this project yet", ExitCode.FAILED)
            with journal:
                return int(work(root, journal))
    except ProjectLocked as exc:
        print(f"error: {exc}; nothing was changed", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    except (_Refused, JournalError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.code if isinstance(exc, _Refused) else ExitCode.FAILED


def cmd_forget(args: argparse.Namespace) -> int:
    def work(root: Path, journal: Any) -> int:
        unknown = _unknown_attempts(journal, args.scene, args.take, args.base_url)
        for a in unknown:
            journal.resolve_unknown(a.id, "forget")
        take = unknown[-1].take
        est = pricing.format_usd(unknown[-1].estimate)
        print(
            f"{args.scene} (take {take}): forgot {len(unknown)} attempt(s) of unknown fate "
            f"(you checked that they never ran); the next build sends it again (about {est}, "
            "asked first)"
        )
        return ExitCode.OK

    return _locked(args, work)


def cmd_adopt(args: argparse.Namespace) -> int:
    from storyc.provider import errors as E

    key = os.environ.get("INFERENCE_API_KEY", "")
    problem = "INFERENCE_API_KEY is not set" if not key else E.key_problem(key)
    if problem is not None:
        print(f"error: storyc adopt reads the task from the provider: {problem}", file=sys.stderr)
        return ExitCode.ENVIRONMENT

    def work(root: Path, journal: Any) -> int:
        unknown = _unknown_attempts(journal, args.scene, args.take, args.base_url, pick=True)
        att = unknown[-1]
        if not att.request:
            raise _Refused(
                f"the journal did not record the request of scene {args.scene!r} (take "
                f"{att.take}), so task {args.task_id} cannot be checked against it; use "
                "`storyc forget` if it never ran",
                ExitCode.FAILED,
            )
        sent = json.loads(att.request)
        try:
            task = asyncio.run(_get_task(key, args.base_url or att.base_url, args.task_id))
        except E.NotFound:
            raise _Refused(
                f"the provider has no task {args.task_id} (check the id on its dashboard)",
                ExitCode.FAILED,
            ) from None
        except E.ProviderError as exc:
            raise _Refused(str(exc), ExitCode.ENVIRONMENT) from None
        diff = _difference(sent, task)
        if diff is not None:
            raise _Refused(
                f"task {args.task_id} is not the request storyc sent for scene "
                f"{args.scene!r} (take {att.take}): {diff}; not adopted",
                ExitCode.FAILED,
            )
        journal.adopt(att.id, args.task_id)
        for other in unknown[:-1]:  # the same request sent before: that one never ran
            journal.resolve_unknown(other.id, "forget")
        if task.status.name.lower() in ("failed", "cancelled", "rejected"):
            journal.mark_failed(att.id, f"adopted task {args.task_id} {task.status_name}")
            print(
                f"{args.scene} (take {att.take}): task {args.task_id} {task.status_name} on "
                "the provider; the next build may send the request again (asked first)"
            )
            return ExitCode.OK
        print(
            f"{args.scene} (take {att.take}): adopted task {args.task_id} "
            f"({task.status_name}); the next `storyc build` follows it and downloads its "
            "output, paying nothing more"
        )
        return ExitCode.OK

    return _locked(args, work)


async def _get_task(key: str, base_url: str | None, task_id: str) -> Any:
    from storyc.provider.client import ProviderClient

    async with ProviderClient(api_key=key, base_url=base_url) as client:
        return await client.get_task(task_id)


def _difference(sent: dict[str, Any], task: Any) -> str | None:
    """How the task differs from the request storyc sent (None: it is that request).
    Every field storyc sent must be there, equal; files are compared by the URI they were
    uploaded as (the provider may show a file as a string or as `{"uri": ...}`). Fields
    only the task has are defaults the provider filled in."""
    have = task.input if isinstance(task.input, dict) else None
    if have is None:
        return "the provider shows no input for it"
    want = sent.get("input", {})
    for name in sorted(want):
        if not _same(want[name], have.get(name)):
            shown = json.dumps(have.get(name), ensure_ascii=False)[:60]
            return f"its {name} is {shown}, storyc sent {json.dumps(want[name])[:60]}"
    app = task.raw.get("app")
    if isinstance(app, str) and app != sent.get("app"):
        return f"it ran app {app}, storyc sent {sent.get('app')}"
    return None


def _same(want: Any, have: Any) -> bool:
    if isinstance(want, str) and isinstance(have, dict):
        return want in (have.get("uri"), have.get("url"))
    if isinstance(want, list) and isinstance(have, list):
        return len(want) == len(have) and all(_same(w, h) for w, h in zip(want, have, strict=True))
    if isinstance(want, dict) and isinstance(have, dict):
        return all(_same(v, have.get(k)) for k, v in want.items())
    return bool(want == have)
