"""Command `storyc export`: a cut handed to an editor.

Stage: the command-line edge of the film stage. In: a cut's name, the project, a folder.
Out: the folder with the numbered clips, the assembled cut, `<cut>.otio` and the EDL and
FCP XML files (see `storyc.film.export`); an exit code. I/O: compiles the project, reads
`storyc.lock` and the store, assembles the cut if it is not current (free: nothing is
rendered or sent), writes the folder; holds the project's build lock meanwhile.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from storyc.base.exits import ExitCode
from storyc.cli import project_digests, root_or_say

EPILOG = """\
examples:
  storyc export final --to handoff/          clips, final.otio, final.edl, final.xml, ...
  storyc export trailer --to out --backend inference

exit codes: 0 ok · 1 story errors or the cut cannot be made · 2 no such cut ·
3 no project, project locked, or OpenTimelineIO missing
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "export",
        help="hand a cut to an editor: numbered clips, OTIO, EDL, FCP XML",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=EPILOG,
        description="Write CUT to a folder for an editing program: each clip as a real "
        "file named in cut order (01_arrival.mp4, ...), the assembled cut, and the "
        "timeline as OpenTimelineIO (CUT.otio), CMX 3600 EDL (CUT.edl), Final Cut Pro 7 "
        "XML (CUT.xml) and Final Cut Pro X XML (CUT.fcpxml).",
    )
    p.add_argument("cut", metavar="CUT")
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--to", required=True, metavar="DIR", help="the folder to write")
    p.add_argument(
        "--backend",
        choices=("preview", "inference"),
        help="whose renders to export (default: the project's, else preview); scenes "
        "without one appear as their preview or a slate",
    )
    p.set_defaults(func=cmd_export)


def cmd_export(args: argparse.Namespace) -> int:
    from storyc.base.memory import settling
    from storyc.compiler.state import compile_with_state
    from storyc.film.assemble import Assembler
    from storyc.film.cuts import build_cuts
    from storyc.film.export import ExportError, export_cut
    from storyc.film.spec import specs_of
    from storyc.state.lockfile import LockFile, LockFileError
    from storyc.state.projectlock import ProjectLock, ProjectLocked
    from storyc.state.store import Store

    root = root_or_say(args.path)
    if root is None:
        return ExitCode.ENVIRONMENT
    digests = project_digests(root)
    # through the compiled state, as build does: an unchanged story is not compiled again,
    # and the cuts come from what it keeps of them (no project model is built)
    with settling():  # the compilation lives as long as the command (storyc.base.memory)
        comp = compile_with_state(Path(args.path), digests=digests)
    digests.save()
    shown = comp.rendered(notes=False)
    if shown:
        print(shown, file=sys.stderr)
    if comp.summary is None:
        return ExitCode.FAILED if comp.found else ExitCode.ENVIRONMENT
    errors = comp.counts()[0]
    specs = specs_of(comp.cut_facts(), comp.diagnostics if errors else ())
    spec = specs.get(args.cut)
    if spec is None:
        known = ", ".join(specs) or "none"
        print(f"error: no cut named {args.cut!r} (cuts: {known})", file=sys.stderr)
        return ExitCode.USAGE
    if spec.errors:
        print(f"error: cut {args.cut} has errors; fix them first", file=sys.stderr)
        return ExitCode.FAILED
    backend = args.backend or comp.summary.settings.get("backend") or "preview"
    from storyc.plan.address import key_provider

    provider = key_provider(str(backend), None, comp.summary.settings.get("base_url"))
    try:
        lock = LockFile.load(LockFile.path_for(root))
    except LockFileError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.FAILED
    store = Store.for_project(root)
    say = lambda text: print(text, file=sys.stderr)  # noqa: E731
    try:
        with ProjectLock(root), store:
            outcomes = build_cuts(
                root,
                store,
                lock,
                cuts={spec.name: spec},
                requests=comp.requests,
                order=comp.order,
                outcomes={},
                backend=str(backend),
                provider=provider,
                names=[spec.name],
                broken={**{n: f"blocked by {u}" for n, u in comp.blocked.items()}, **comp.broken},
                say=say,
            )
            cut = outcomes[0]
            if cut.state not in ("assembled", "up to date"):
                return ExitCode.FAILED
            assembler = Assembler(root, store)
            folder = Path(args.to)
            result = export_cut(
                assembler,
                spec,
                {s.scene: s for s in cut.sources},
                cut.digest,
                folder,
                say=say,
            )
    except ProjectLocked as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    except ExportError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    except OSError as exc:
        print(f"error: cannot write {args.to}: {exc.strerror or exc}", file=sys.stderr)
        return ExitCode.ENVIRONMENT
    for name in result.files:
        print(f"{folder / name}")
    print(
        f"exported cut {spec.name}: {len(result.clips)} clips, "
        f"{len(result.files) - len(result.clips)} more files in {folder}",
        file=sys.stderr,
    )
    return ExitCode.OK
