"""Commands `storyc plan`, `storyc why` and `storyc gc`.

Stage: the command-line edge. In: parsed arguments. Out: a plan table (rich on a
terminal, plain text otherwise, or JSON), a field-level explanation of one scene, or
a garbage-collection report; an exit code (`storyc.cli.ExitCode`). I/O: compiles the
project, reads `storyc.lock`, the store and the journal; only `gc` deletes anything,
and only while holding the project's build lock.
"""

from __future__ import annotations

import argparse
import difflib
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyc.base import warm
from storyc.base.diagnostics import json_safe, printable
from storyc.base.exits import ExitCode
from storyc.base.memory import settling
from storyc.cli import add_remote_flags, project_digests, project_root, root_or_say
from storyc.plan import pricing
from storyc.plan.planner import Plan, ScenePlan, Status, explain, planner_for
from storyc.state.gc import collect
from storyc.state.lockfile import LockFile, LockFileError
from storyc.state.store import Store

if TYPE_CHECKING:
    from storyc.build.cache import BuildCache

FMT = argparse.RawDescriptionHelpFormatter
PLAN_EPILOG = """\
examples:
  storyc plan                          what `storyc build` would do, why, and the cost
  storyc plan --backend inference      priced for real renders
  storyc plan --json                   machine-readable

exit codes: 0 ok · 1 the story has errors, or storyc.lock cannot be read · 3 no project
"""
WHY_EPILOG = """\
examples:
  storyc why arrival                   every field that changed since the last build
  storyc why arrival --backend inference
"""
GC_EPILOG = """\
examples:
  storyc gc --dry-run                  list what would be removed
  storyc gc --keep-days 7              keep unreferenced previews for a week only
  storyc gc --include-paid --dry-run   what would go if paid renders could go too
"""
LABELS: dict[Status, str] = {
    "up-to-date": "up to date",
    "render": "will render",
    "waiting": "waiting",
    "blocked": "blocked",
}


def register(sub: Any) -> None:
    p = sub.add_parser(
        "plan",
        help="what will render, why, and what it costs",
        formatter_class=FMT,
        epilog=PLAN_EPILOG,
        description="For each scene: up to date, will render, waiting on "
        "another scene, or blocked by an error; why; and the estimated cost.",
    )
    _common(p)
    p.add_argument("--json", action="store_true", help="print the plan as JSON")
    p.set_defaults(func=cmd_plan)

    p = sub.add_parser(
        "why",
        help="why a scene will render: the field-level difference",
        formatter_class=FMT,
        epilog=WHY_EPILOG,
        description="Compare a scene with what storyc.lock recorded: a "
        "unified diff of the prompt, changed inputs, changed settings.",
    )
    p.add_argument("scene", metavar="SCENE")
    _common(p)
    p.set_defaults(func=cmd_why)

    p = sub.add_parser(
        "gc",
        help="remove stored outputs nothing references",
        formatter_class=FMT,
        epilog=GC_EPILOG,
        description="Keep what storyc.lock references, every paid render, and renders "
        "of the last --keep-days days; remove the rest of .storyc/objects.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--dry-run", action="store_true", help="only list what would be removed")
    p.add_argument(
        "--keep-days",
        type=float,
        default=30.0,
        metavar="N",
        help="keep renders younger than N days even if unreferenced (default 30)",
    )
    p.add_argument(
        "--include-paid",
        action="store_true",
        help="also remove paid renders nothing references any more, once older than "
        "--keep-days (they cost money: kept for ever otherwise)",
    )
    p.set_defaults(func=cmd_gc)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument(
        "--backend",
        choices=("preview", "inference"),
        help="price and key for this backend (default: the project's, else preview)",
    )
    p.add_argument("--target", metavar="T", help="override every scene's target")
    p.add_argument(
        "--base-url",
        metavar="URL",
        help="key for this provider, as `storyc build --base-url` does (default: "
        "INFERENCE_BASE_URL, the project's base_url, or inference.sh)",
    )
    add_remote_flags(p)


def open_team_store(args: argparse.Namespace, comp: Any, store: Store) -> Any:
    """The team store for this command, None when there is none; an int (exit code)
    after saying why a configured one cannot be used."""
    settings = comp.summary.settings if comp.summary is not None else {}
    setting = settings.get("remote")  # a plain value (no model is built for it)
    from storyc.remote.config import RemoteConfigError
    from storyc.remote.team import open_team

    try:
        return open_team(
            getattr(setting, "value", setting),
            store,
            flag=getattr(args, "remote", None),
            disabled=bool(getattr(args, "no_remote", False)),
            warn=lambda text: print(text, file=sys.stderr),
        )
    except RemoteConfigError as exc:
        print(f"error: the team store: {exc}", file=sys.stderr)
        return ExitCode.USAGE


def _load_lock(root: Path) -> LockFile | None:
    """storyc.lock, or None after saying why it cannot be read (e.g. a merge conflict)."""
    try:
        return LockFile.load(LockFile.path_for(root))
    except LockFileError as exc:
        print(printable(f"error: {exc}"), file=sys.stderr)  # a lock file is text from anyone
        return None


def compiled(
    args: argparse.Namespace, cache: BuildCache | None = None
) -> tuple[Path, Any, Any, LockFile] | int:
    """(root, digests, compilation, lock file) for PATH, with errors and warnings shown;
    an exit code after saying why there is none (also for `storyc pull`). With the
    build's `cache` (made for the project when not given), the lock file is read from it
    when it is the file last seen, as `storyc build` reads it: parsing the TOML of a
    10,000-scene lock costs seconds."""
    from storyc.build.cache import BuildCache

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    digests = project_digests(root)
    cache = cache if cache is not None else BuildCache.open(root)
    # the compiled state: an unchanged story is not compiled again, an edited one only where
    # it changed (storyc.compiler.state); the keys of unchanged requests are the cache's
    with settling():  # the compilation lives as long as the command (storyc.base.memory)
        comp = cache.compile(Path(args.path), args.target, digests).comp
    if not comp.found:
        print(printable(f"error: no storyc project at {args.path}"), file=sys.stderr)
        return ExitCode.ENVIRONMENT
    # Errors and warnings only: notes make no fault (`storyc check --notes` shows them).
    shown = comp.rendered(notes=False)
    if shown:
        print(shown, file=sys.stderr)
    path = LockFile.path_for(root)
    lock = cache.lockfile(path)
    if lock is None:
        lock = _load_lock(root)
        if lock is None:
            return ExitCode.FAILED
        cache.store_lockfile(path, lock)
    return root, digests, comp, lock


def _prepare(args: argparse.Namespace) -> tuple[Any, Plan, LockFile] | int:
    from storyc.build.cache import BuildCache

    root = project_root(args.path)
    cache = BuildCache.open(root) if root is not None else None
    got = compiled(args, cache)
    if isinstance(got, int):
        return got
    root, digests, comp, lock = got
    settings = comp.summary.settings if comp.summary is not None else {}
    backend = args.backend or settings.get("backend") or "preview"
    if backend not in ("preview", "inference"):
        print(f"error: unknown backend {backend!r} (preview or inference)", file=sys.stderr)
        return ExitCode.USAGE
    journal = None
    jpath = root / ".storyc" / "journal.sqlite"
    if jpath.exists():
        from storyc.state.journal import Journal, JournalError

        try:
            journal = Journal(jpath)
        except JournalError as exc:  # the plan is still right, minus attempts in flight
            print(f"warning: {exc}; attempts already sent are not shown", file=sys.stderr)
    with Store.for_project(root) as store:
        try:
            team = open_team_store(args, comp, store)
            if isinstance(team, int):
                return team
            live = _build_running(root)
            # the build's own view of what is known: keys of unchanged requests and
            # finished renders from its cache, so a plan after a one-scene edit hashes
            # one request, not every one
            from storyc.build.effects import ProjectIO
            from storyc.plan.address import key_provider

            flag = getattr(args, "base_url", None)
            provider = key_provider(backend, flag, settings.get("base_url"))
            io = ProjectIO(
                root,
                store,
                journal,
                lock,
                digests,
                backend=backend,
                cache=cache,
                provider=provider,
            )
            if cache is not None:
                io.use_known_keys(cache.keys)

            def plan_of(remote: Any = None) -> Plan:
                return planner_for(comp, io.sources(live_build=live, remote=remote)).plan()

            if team is None and warm.enabled():
                # a long-lived process (storyc daemon) plans again only what changed
                from storyc.plan.memo import PlanMemo, sources_state

                memo = warm.held(("plan", str(root), backend, provider), PlanMemo)
                state = sources_state(root, lock, live, store)
                plan = memo.plan(comp, io.sources(live_build=live), state)
            elif team is None:
                plan = plan_of()
            else:
                from storyc.remote.planning import plan_with_remote

                plan = plan_with_remote(plan_of, team)
        finally:
            if journal is not None:
                journal.close()

    # caches only: a long-lived process writes them once its answer is out
    warm.save_soon(digests)
    if cache is not None:
        kept = cache
        warm.later(lambda: kept.save(keys_seen=len(kept.keys)), ("build-cache", str(root)))
    if backend not in pricing.FREE_BACKENDS:
        from storyc.build.session import pin_warnings

        for line in pin_warnings(plan):
            print(line, file=sys.stderr)
    return comp, plan, lock


def _build_running(root: Path) -> bool:
    """Whether another build holds the project now (its sends are in progress, not of
    unknown fate). Asked of the lock the kernel releases when that build dies."""
    from storyc.state.projectlock import ProjectLock

    return ProjectLock(root).held_by_another()


def _takes(sp: ScenePlan) -> str:
    if sp.status == "blocked":
        return ""
    parts = []
    for label, takes in (
        ("render", sp.render),
        ("fetch", sp.fetch),
        ("pull", sp.pull),
        ("follow", sp.follow),
        ("decide", sp.unknown),
    ):
        if takes:
            parts.append(f"{label} {len(takes)}/{sp.takes}" if sp.takes > 1 else label)
    return ", ".join(parts)


def _why_line(sp: ScenePlan) -> str:
    if sp.status == "blocked":
        return sp.blocked or ""
    if sp.status == "up-to-date":
        if sp.pull:
            return "in the team store: pulled, not paid"
        return "fetch from recorded URL" if sp.fetch else ""
    return "; ".join(c.message for c in sp.reasons[:3]) + (" …" if len(sp.reasons) > 3 else "")


def _cost(sp: ScenePlan) -> str:
    if not sp.will_render:
        return ""
    return pricing.format_estimate(sp.estimate)


def _total(plan: Plan) -> str:
    if plan.backend in pricing.FREE_BACKENDS:
        return "free (preview)"
    text = pricing.format_usd(plan.known_total)
    if plan.unknown_count:
        text += f" + unknown ({plan.unknown_count} scene{'s' if plan.unknown_count > 1 else ''})"
    return text


def _summary(plan: Plan) -> str:
    by: dict[str, int] = {}
    pulled = 0
    for sp in plan.scenes.values():  # one pass (10,000 scenes: six passes were 30 ms)
        by[sp.status] = by.get(sp.status, 0) + 1
        pulled += len(sp.pull)
    counts = [f"{by[s]} {LABELS[s]}" for s in LABELS if by.get(s)]
    team = f" · {pulled} take{'s' if pulled != 1 else ''} from the team store" if pulled else ""
    return (
        f"{', '.join(counts) or 'no scenes'}{team} · backend {plan.backend} · total {_total(plan)}"
    )


def cmd_plan(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    if isinstance(prepared, int):
        return prepared
    comp, plan, _ = prepared
    cuts = cut_plans(comp, plan)
    if args.json:
        doc = {**plan.to_json(), "cuts": cuts}
        print(json_safe(json.dumps(doc, indent=2, ensure_ascii=False)))
    else:
        kept = _Rows.held(plan.backend)
        rows = kept.rows(plan)
        if sys.stdout.isatty():
            _rich_table(rows, _summary(plan))
        else:
            _plain_table(rows, _summary(plan), kept)
        for line in cut_lines(cuts):
            print(line)
    return ExitCode.FAILED if comp.has_errors else ExitCode.OK


def cut_plans(comp: Any, plan: Plan) -> dict[str, Any]:
    """Each cut: its entries in order, its running time (the renders' lengths where they
    exist, else the story's), and its scenes that have no render for this backend yet."""
    from storyc.film.spec import specs_of

    facts = comp.cut_facts()  # kept with the compilation: no model is built for them
    if not facts:
        return {}
    out: dict[str, Any] = {}
    for name, spec in specs_of(facts, comp.diagnostics if comp.has_errors else ()).items():
        total: float | None = 0.0
        entries = []
        missing: dict[str, str] = {}
        for clip in spec.clips:
            sp = plan.scenes.get(clip.scene)
            length = sp.duration if sp is not None and sp.duration else clip.length
            end = clip.end if clip.end is not None else length
            if end is None or total is None:
                total = None
            else:
                total += end - (clip.start or 0.0) - clip.fade
            entries.append(
                {"scene": clip.scene, "in": clip.start, "out": clip.end, "crossfade": clip.fade}
            )
            if sp is None:
                missing[clip.scene] = "has errors"
            elif sp.status != "up-to-date":
                missing[clip.scene] = LABELS[sp.status]
        out[name] = {
            "entries": entries,
            "running_time": None if total is None else round(total, 3),
            "missing": missing,
            "errors": list(spec.errors),
        }
    return out


def cut_lines(cuts: dict[str, Any]) -> list[str]:
    lines = []
    for name, c in cuts.items():
        entries = []
        for e in c["entries"]:
            if e["crossfade"]:
                entries.append(f"crossfade({e['crossfade']:g})")
            trim = ""
            if e["in"] is not None or e["out"] is not None:
                a = f"{e['in']:g}" if e["in"] is not None else "0"
                b = f"{e['out']:g}" if e["out"] is not None else "end"
                trim = f" [{a}-{b} s]"
            entries.append(e["scene"] + trim)
        secs = c["running_time"]
        head = f"cut {name}: {len(c['entries'])} scenes, " + (
            f"{secs:g} s" if secs is not None else "running time unknown"
        )
        if c["errors"]:
            head += f"; has errors ({', '.join(c['errors'][:2])})"
        if c["missing"]:
            head += "; missing: " + ", ".join(f"{s} ({why})" for s, why in c["missing"].items())
        lines += [head, "  " + ", ".join(entries)]
    return lines


class _Rows:
    """Each scene plan's table row, and its line at the last widths. A long-lived process
    (storyc daemon) keeps them: its kept plan hands back the very `ScenePlan` of a scene it
    did not plan again (storyc.plan.memo), and a row depends on its scene plan alone."""

    def __init__(self) -> None:
        self.by_plan: dict[int, tuple[ScenePlan, tuple[str, ...]]] = {}
        self.lines: dict[int, tuple[tuple[str, ...], str]] = {}  # id(row) -> row, line
        self.widths: tuple[int, ...] = ()

    @staticmethod
    def held(backend: str) -> _Rows:
        return warm.held(("plan-rows", backend), _Rows)

    def rows(self, plan: Plan) -> list[tuple[str, ...]]:
        old, new = self.by_plan, {}
        out = []
        for n in plan.order:
            sp = plan.scenes[n]
            hit = old.get(id(sp))
            if hit is not None and hit[0] is sp:
                row = hit[1]
            else:
                row = (n, LABELS[sp.status], _takes(sp), _cost(sp), _why_line(sp))
            new[id(sp)] = (sp, row)
            out.append(row)
        self.by_plan = new  # only what this plan holds: the rest may be freed
        return out


def _plain_table(rows: Sequence[tuple[str, ...]], summary: str, kept: _Rows | None = None) -> None:
    head = ("scene", "status", "takes", "cost", "why")
    widths = tuple(max(len(r[i]) for r in [head, *rows]) for i in range(4))
    a, b, c, d = widths
    known: dict[int, tuple[tuple[str, ...], str]] = {}
    if kept is not None and kept.widths == widths:  # lines of rows kept from the last plan
        known = kept.lines
    lines = []
    made: dict[int, tuple[tuple[str, ...], str]] = {}
    for r in [head, *rows]:
        hit = known.get(id(r))
        if hit is not None and hit[0] is r:
            line = hit[1]
        else:
            line = f"{r[0].ljust(a)}  {r[1].ljust(b)}  {r[2].ljust(c)}  {r[3].ljust(d)}  {r[4]}"
            line = line.rstrip()
        made[id(r)] = (r, line)
        lines.append(line)
    if kept is not None:
        kept.lines, kept.widths = made, widths
    lines.append(summary)
    # one write, escaped once: 10,000 rows printed one by one were most of a plan's time
    sys.stdout.write(printable("\n".join(lines)) + "\n")


def _rich_table(rows: Sequence[tuple[str, ...]], summary: str) -> None:
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    styles = {"up to date": "green", "will render": "yellow", "waiting": "cyan", "blocked": "red"}
    table = Table(show_edge=False, header_style="bold")
    for col in ("scene", "status", "takes", "cost", "why"):
        table.add_column(col, justify="right" if col == "cost" else "left")
    for r in rows:
        table.add_row(escape(r[0]), f"[{styles[r[1]]}]{r[1]}[/]", r[2], r[3], escape(r[4]))
    from storyc.base.terminal import rich_options

    console = Console(**rich_options())
    console.print(table)
    console.print(escape(summary), highlight=False)


def cmd_why(args: argparse.Namespace) -> int:
    prepared = _prepare(args)
    if isinstance(prepared, int):
        return prepared
    comp, plan, lock = prepared
    sp = plan.scenes.get(args.scene)
    if sp is None:
        known = ", ".join(plan.order) or "none"
        print(f"error: no scene named {args.scene!r} (scenes: {known})", file=sys.stderr)
        return ExitCode.USAGE
    print(printable("\n".join(why_lines(sp, lock, plan.backend, plan.provider))))
    return ExitCode.FAILED if comp.has_errors else ExitCode.OK


def why_lines(
    sp: ScenePlan, lock: LockFile, backend: str, provider: str | None = None
) -> list[str]:
    """The full explanation of one scene, as `storyc why` prints it."""
    out = [f"{sp.name}: {LABELS[sp.status]}"]
    if sp.status == "blocked":
        return [*out, f"  {sp.blocked}"]
    entry = lock.table(backend).get(sp.name)
    assert sp.request is not None
    changes = explain(entry, sp.request, backend, sp.upstream, provider, sp.tried)
    if sp.status == "up-to-date" and changes and entry is not None:
        out.append(
            "  differs from storyc.lock, but an earlier render with exactly these "
            "inputs is in the store and is reused"
        )
    for up in sp.waiting_on:
        out.append(f"  waits for scene {up} to render (its output is one of the inputs)")
    if not changes and sp.status == "up-to-date":
        out.append("  nothing changed since the last build")
    for c in changes:
        if c.kind == "prompt":
            out.append("  prompt:")
            diff = difflib.unified_diff(
                str(c.old).splitlines(),
                str(c.new).splitlines(),
                "storyc.lock",
                "now",
                lineterm="",
                n=2,
            )
            out.extend("    " + line for line in diff)
        else:
            out.append(f"  {c.message}")
    extra = [c for c in sp.reasons if c.kind in ("missing", "key", "journal")]
    out.extend(f"  {c.message}" for c in extra)
    if sp.will_render:
        out.append(
            f"  estimate: {pricing.format_estimate(sp.estimate)}"
            + (f" ({sp.estimate.reason})" if sp.estimate.reason else "")
        )
    return out


def _linked(root: Path) -> set[str]:
    """Objects that names under renders/ point at: the assembled cuts (which the lock file
    does not list) stay as long as their names do."""
    out = set()
    folder = root / "renders"
    for p in folder.glob("*.mp4") if folder.is_dir() else ():
        try:
            target = Path(os.readlink(p))
        except OSError:
            continue
        digest = f"sha256:{target.parent.name}{target.name}"
        if target.parent.parent.name == "objects" and len(digest) == 71:
            out.add(digest)
    return out


def _journal_outputs(root: Path) -> set[str]:
    jpath = root / ".storyc" / "journal.sqlite"
    if not jpath.exists():
        return set()
    from storyc.state.journal import Journal, JournalError

    try:
        with Journal(jpath) as j:
            return {a.output for a in j.all() if a.state == "completed" and a.output}
    except JournalError:
        return set()


def cmd_gc(args: argparse.Namespace) -> int:
    from storyc.state.projectlock import ProjectLock, ProjectLocked

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    lock = _load_lock(root)
    if lock is None:
        return ExitCode.FAILED
    entries = [*lock.scenes.values(), *lock.previews.values()]
    referenced = {t.output for e in entries for t in e.takes if t.output}
    referenced |= _linked(root)
    store = Store.for_project(root)
    try:
        with ProjectLock(root):
            if not args.include_paid:  # what the journal says was paid for is kept too
                referenced |= _journal_outputs(root)
            report = collect(
                store,
                referenced,
                keep_days=args.keep_days,
                dry_run=args.dry_run,
                include_paid=args.include_paid,
            )
    except ProjectLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    verb = "would remove" if args.dry_run else "removed"
    for digest, size in report.objects:
        print(f"{verb} {digest[:19]}…  {size:,} bytes")
    print(
        f"{verb} {len(report.objects)} objects ({report.bytes:,} bytes), "
        f"{len(report.renders)} render records, {len(report.derived)} frame records, "
        f"{len(report.temps)} temp files; kept {report.kept} objects"
    )
    return ExitCode.OK
