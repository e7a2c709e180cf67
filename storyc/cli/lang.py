"""Commands about the language: `storyc init`, `check`, `compile` and `graph`.

Stage: the command-line edge. In: parsed argparse arguments. Out: text or JSON on
stdout, diagnostics on stderr, an exit code (`storyc.cli.ExitCode`). I/O: reads the
project through `storyc.compiler`; `init` writes two new files (atomically, never over
an existing story).

An unexpected exception is caught once, for every command, by `storyc.cli.main`: one
line, "internal error: ...", exit 1, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyc.base import warm
from storyc.base.diagnostics import dumps_json, json_safe, printable
from storyc.base.exits import ExitCode
from storyc.base.fsio import atomic_write_text
from storyc.base.memory import settling
from storyc.base.terminal import styled
from storyc.cli import project_digests

# The compiler's stages are imported by the commands that run them: a `check` answered
# from the compiled state never loads Lark, Jinja or pydantic.
if TYPE_CHECKING:
    from storyc.compiler import Compilation

GRAPH_FORMATS = ("text", "dot", "mermaid")  # storyc.check.graph.RENDERERS

FMT = argparse.RawDescriptionHelpFormatter

CHECK_EPILOG = """\
examples:
  storyc check                     the project in this directory
  storyc check films/night-market  a project directory
  storyc check --format json       machine-readable, for editors and CI
  storyc check --notes             also where inherited values came from

exit codes: 0 no errors (warnings allowed) · 1 errors · 3 no project at PATH
"""
COMPILE_EPILOG = """\
examples:
  storyc compile                              every scene, in dependency order
  storyc compile --scene arrival              one scene
  storyc compile --target inference/video-o1@v1 --json
"""
GRAPH_EPILOG = """\
examples:
  storyc graph                        a text tree
  storyc graph --format dot | dot -Tsvg > graph.svg
  storyc graph --format mermaid --assets
"""
INIT_EPILOG = """\
examples:
  storyc init my-film                 a new project in ./my-film
  storyc init . --name "Night Market" here, with a project name
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "init",
        help="start a new project",
        epilog=INIT_EPILOG,
        formatter_class=FMT,
        description="Create main.story and a .gitignore.",
    )
    p.add_argument("dir", nargs="?", default=".", metavar="DIR")
    p.add_argument("--name", help="project name (default: from the directory name)")
    p.set_defaults(func=cmd_init)

    p = sub.add_parser(
        "check",
        help="validate the project",
        epilog=CHECK_EPILOG,
        formatter_class=FMT,
        description="Load, resolve, check the model's rules and lower every "
        "scene; report every problem.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--format", choices=("text", "json"), default="text")
    p.add_argument(
        "--notes",
        action="store_true",
        help="also show notes (where inherited values came from, how a target "
        "lowered the scene); `compile` always shows them",
    )
    p.set_defaults(func=cmd_check)

    p = sub.add_parser(
        "compile",
        help="show each scene's resolved prompt and request",
        epilog=COMPILE_EPILOG,
        formatter_class=FMT,
        description="Show, for each scene in dependency order, the resolved "
        "prompt, the exact input object and the lowering notes.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument(
        "--target",
        metavar="T",
        help="override every scene's target (e.g. inference/video-o1@v1; docs/targets.md)",
    )
    p.add_argument("--scene", action="append", metavar="S", help="only this scene (repeatable)")
    p.add_argument("--json", action="store_true", help="print one JSON document")
    p.set_defaults(func=cmd_compile)

    p = sub.add_parser(
        "graph",
        help="show the scene dependency graph",
        epilog=GRAPH_EPILOG,
        formatter_class=FMT,
        description="Which scene starts from which.",
    )
    p.add_argument("path", nargs="?", default=".", metavar="PATH")
    p.add_argument("--format", choices=GRAPH_FORMATS, default="text")
    p.add_argument("--assets", action="store_true", help="also show assets and elements")
    p.set_defaults(func=cmd_graph)


# -- output helpers -----------------------------------------------------------------------

_COLOURS = {"error": "31", "warning": "33", "note": "36", "hint": "32"}
_HEAD = re.compile(r"\b(error|warning|note)(\[[EWN][0-9]{3}\])")


def _colour_enabled(stream: Any) -> bool:
    return styled(stream)


def colourize(text: str) -> str:
    text = _HEAD.sub(lambda m: f"\x1b[1;{_COLOURS[m.group(1)]}m{m.group(0)}\x1b[0m", text)
    return text.replace("= hint:", f"= \x1b[{_COLOURS['hint']}mhint\x1b[0m:")


def report(comp: Compilation, *, notes: bool = True) -> None:
    """Diagnostics as text on stderr (coloured only on a terminal); notes only if asked."""
    text = comp.rendered(notes=notes)
    if not text:
        return
    print(colourize(text) if _colour_enabled(sys.stderr) else text, file=sys.stderr)


def _status(comp: Compilation) -> int:
    if not comp.found:
        return ExitCode.ENVIRONMENT
    return ExitCode.FAILED if comp.has_errors else ExitCode.OK


def _compile(path: str, *, state: bool = True, **options: Any) -> Compilation:
    """Compile with the project's persistent digest cache (an asset is hashed again only
    when it changed) and, unless `state` is False, its compiled state (an unchanged
    project is not compiled again, an edited one only where it changed: see
    storyc.compiler.state)."""
    digests = project_digests(path)
    with settling():  # the compilation lives as long as the command (storyc.base.memory)
        if state:
            from storyc.compiler.state import compile_with_state

            comp = compile_with_state(path, digests=digests, **options)
        else:
            from storyc.compiler import compile_project

            comp = compile_project(path, digests=digests, **options)
    warm.save_soon(digests)
    return comp


# -- commands -----------------------------------------------------------------------------


def cmd_check(args: argparse.Namespace) -> int:
    comp = _compile(args.path)
    summary = comp.summary
    if args.format == "json":
        doc = json.loads(dumps_json(comp.diagnostics))
        doc["ok"] = comp.found and not comp.has_errors
        doc["scenes"] = len(summary.scenes) if summary else 0
        print(json_safe(json.dumps(doc, indent=2, ensure_ascii=False)))
        return _status(comp)
    report(comp, notes=args.notes)
    if comp.found and not comp.has_errors and summary is not None:
        n = len(summary.scenes)
        hidden = comp.counts()[2]
        more = (
            f" ({hidden} note{'' if hidden == 1 else 's'}: --notes)"
            if hidden and not args.notes
            else ""
        )
        print(
            f"ok: {printable(summary.name)}: {n} scene{'' if n == 1 else 's'}, "
            f"{comp.ready()} ready to render{more}"
        )
    return _status(comp)


def cmd_compile(args: argparse.Namespace) -> int:
    if args.target is not None:
        from storyc import targets

        if args.target not in targets.names():
            known = ", ".join(targets.names())
            print(
                f"storyc compile: unknown target {args.target!r} (known: {known})", file=sys.stderr
            )
            return ExitCode.USAGE
    comp = _compile(args.path, target=args.target, scenes=args.scene)
    if args.json:
        sys.stdout.write(json_safe(comp.dumps_lines()))
        return _status(comp)
    report(comp)
    blocks = []
    for name in comp.order:
        req = comp.requests.get(name)
        if req is None:
            why = (
                f"it uses the output of `{comp.blocked[name]}`, which cannot be built"
                if name in comp.blocked
                else "see the errors above"
            )
            blocks.append(f"── {name}: not compiled ({why})")
            continue
        dur = "length of the input video" if req.duration is None else f"{req.duration} s"
        lines = [
            f"── {name}  [{req.target} · {req.schema} · {req.mode} · {req.quality} · {dur}"
            f"{f' · {req.takes} takes' if req.takes != 1 else ''}]",
            "prompt:",
            *(f"  {printable(ln)}" for ln in req.prompt.splitlines() or [""]),
            "input:",
            *(
                f"  {ln}"
                for ln in json_safe(
                    json.dumps(req.input, indent=2, ensure_ascii=False)
                ).splitlines()
            ),
        ]
        if req.notes:
            lines.append("notes:")
            lines.extend(f"  - {printable(n)}" for n in req.notes)
        blocks.append("\n".join(lines))
    if blocks:
        print("\n\n".join(blocks))
    return _status(comp)


def cmd_graph(args: argparse.Namespace) -> int:
    from storyc.check import graph as graph_mod

    comp = _compile(args.path, state=False)  # the graph needs the model, every edge
    report(comp, notes=False)
    if comp.graph is None:
        return _status(comp) or ExitCode.FAILED
    render = graph_mod.RENDERERS[args.format]
    if args.format == "dot":
        name = printable(comp.summary.name) if comp.summary else "storyc"
        out = graph_mod.render_dot(comp.graph, assets=args.assets, title=name)
    else:
        out = render(comp.graph, assets=args.assets)
    sys.stdout.write(out)
    return ExitCode.FAILED if any(d.code == "E240" for d in comp.diagnostics) else ExitCode.OK


# -- init ---------------------------------------------------------------------------------

INIT_STORY = """\
# {name}: a storyc project. `storyc check` validates it, `storyc compile` shows
# what each scene will send, `storyc build` renders it (a local preview, no key needed).

project "{name}" {{
  quality  = "std"
  aspect   = "16:9"
  duration = 5
}}

let style = "soft morning light, 35mm film"

scene opening {{
  prompt = "A quiet harbour at dawn, fishing boats rocking gently, {{{{ style }}}}"
}}

scene closer {{
  start  = opening.last_frame
  prompt = "The camera rises over the harbour as the sun comes up, {{{{ style }}}}"
}}

cut final = [opening, closer]
"""
GITIGNORE_LINES = (".storyc/", "renders/")


def cmd_init(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    name = args.name or (
        root.resolve().name.replace("-", " ").replace("_", " ").title() or "My Film"
    )
    if '"' in name or "\\" in name or "\n" in name:
        print(
            "storyc init: the project name may not contain quotes, backslashes or line breaks",
            file=sys.stderr,
        )
        return ExitCode.USAGE
    if root.exists() and not root.is_dir():
        print(f"storyc init: {root} exists and is not a directory", file=sys.stderr)
        return ExitCode.FAILED
    story = root / "main.story"
    if story.exists():
        print(f"storyc init: {story} already exists; not overwriting it", file=sys.stderr)
        return ExitCode.FAILED
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(story, INIT_STORY.format(name=name))
    ignore = root / ".gitignore"
    existing = ignore.read_text("utf-8").splitlines() if ignore.exists() else []
    missing = [ln for ln in GITIGNORE_LINES if ln not in existing]
    if missing:
        # An existing .gitignore keeps every line; storyc's entries are appended.
        atomic_write_text(ignore, "".join(f"{ln}\n" for ln in [*existing, *missing]))
    print(
        f"created {story}"
        + (f" and {'updated' if existing else 'created'} {ignore}" if missing else "")
    )
    print(f"next: storyc check {root} && storyc build {root}")
    return ExitCode.OK
