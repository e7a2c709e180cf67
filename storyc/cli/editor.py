"""Commands for editors: `storyc fmt` (the formatter) and `storyc lsp` (the language server).

Stage: the command-line edge. In: parsed argparse arguments, story files or stdin. Out:
formatted files (written atomically, only when they change), file names or diffs on
stdout, diagnostics on stderr, an exit code; or an LSP session on stdin/stdout.
"""

from __future__ import annotations

import argparse
import difflib
import os
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from storyc.base.diagnostics import SourceMap, render_all
from storyc.base.exits import ExitCode
from storyc.base.fsio import atomic_write_text

FMT_EPILOG = """\
examples:
  storyc fmt                    rewrite every .story file under this directory
  storyc fmt --check            list the files that are not formatted (exit 1 if any): for CI
  storyc fmt --diff main.story  show what would change, and rewrite it
  storyc fmt - < a.story        format stdin to stdout

exit codes: 0 formatted · 1 a file is not formatted (--check) or has a syntax error ·
3 no such file
"""
LSP_EPILOG = """\
Started by an editor, not by hand: it speaks the Language Server Protocol on stdin and
stdout. See docs/editors.md for VS Code, Neovim and Helix.
"""


def register(sub: Any) -> None:
    p = sub.add_parser(
        "fmt",
        help="format story files (one canonical layout; comments kept)",
        epilog=FMT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Rewrite .story files in the one canonical layout. Only whitespace, "
        "alignment, separators and quoting change: never what a story means, never a "
        "comment. A file with a syntax error is left as it is.",
    )
    p.add_argument(
        "paths",
        nargs="*",
        default=["."],
        metavar="PATH",
        help="files, or directories to search for .story files (default: .); - for stdin",
    )
    p.add_argument(
        "--check",
        action="store_true",
        help="write nothing; list the files that would change and exit 1 if any",
    )
    p.add_argument("--diff", action="store_true", help="show the changes as a unified diff")
    p.set_defaults(func=cmd_fmt)

    p = sub.add_parser(
        "lsp",
        help="run the language server (for editors)",
        epilog=LSP_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="The storyc language server over stdio: diagnostics as you type, "
        "hover, go to definition, references, completion, rename, outline, formatting "
        "and quick fixes.",
    )
    p.add_argument("--stdio", action="store_true", help="accepted for editors that pass it")
    p.set_defaults(func=cmd_lsp)


def _story_files(path: Path) -> Iterator[Path]:
    """`.story` files under a directory, sorted, skipping hidden folders (.git, .storyc)
    and node_modules."""
    for dirpath, dirnames, filenames in os.walk(path):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith(".") and d != "node_modules")
        for name in sorted(filenames):
            if name.endswith(".story"):
                yield Path(dirpath) / name


def _diff(before: str, after: str, name: str) -> str:
    return "".join(
        difflib.unified_diff(
            before.splitlines(keepends=True),
            after.splitlines(keepends=True),
            f"{name} (before)",
            f"{name} (formatted)",
        )
    )


def cmd_fmt(args: argparse.Namespace) -> int:
    from storyc.editor.fmt import format_text, verify

    status = ExitCode.OK
    files: list[tuple[str, Path | None]] = []
    for raw in args.paths:
        if raw == "-":
            files.append(("<stdin>", None))
            continue
        given = Path(raw)
        if given.is_dir():
            files.extend((str(p), p) for p in _story_files(given))
        elif given.is_file():
            files.append((str(given), given))
        else:
            print(f"storyc fmt: no such file or directory: {raw}", file=sys.stderr)
            return ExitCode.ENVIRONMENT
    out = sys.stdout
    for name, path in files:
        try:
            text = sys.stdin.read() if path is None else path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            why = "not UTF-8 text" if isinstance(exc, UnicodeDecodeError) else exc.strerror
            print(f"storyc fmt: cannot read {name}: {why}", file=sys.stderr)
            status = ExitCode.FAILED
            continue
        result = format_text(text, name)
        if result.text is None:
            if result.diagnostics:
                print(render_all(result.diagnostics, SourceMap({name: text})), file=sys.stderr)
            else:
                print(f"storyc fmt: {name}: {result.problem}; left as it is", file=sys.stderr)
            print(f"storyc fmt: {name} left as it is", file=sys.stderr)
            if path is None and not args.check:
                out.write(text)  # stdin to stdout: what came in goes out
            status = ExitCode.FAILED
            continue
        formatted = result.text
        if result.changed:
            problem = verify(text, formatted)
            if problem is not None:  # a bug in the formatter must never reach a file
                print(
                    f"storyc fmt: internal error: {name}: {problem}; left as it is",
                    file=sys.stderr,
                )
                status = ExitCode.FAILED
                continue
        if args.diff and result.changed:
            out.write(_diff(text, formatted, name))
        if path is None:
            if args.check:
                if result.changed:
                    print(name)
                    status = ExitCode.FAILED
            elif not args.diff:
                out.write(formatted)
            continue
        if not result.changed:
            continue
        if args.check:
            if not args.diff:
                print(name)
            status = ExitCode.FAILED
            continue
        target = path.resolve()  # through a symlink, not over it
        try:
            mode: int | None = stat.S_IMODE(target.stat().st_mode)  # the file keeps its mode
        except OSError:
            mode = None
        atomic_write_text(target, formatted, mode=mode)
        if not args.diff:
            print(name)
    return status


def cmd_lsp(args: argparse.Namespace) -> int:
    try:
        from storyc.editor.lsp import serve
    except ModuleNotFoundError as exc:
        if exc.name in ("pygls", "lsprotocol") or str(exc.name).startswith(
            ("pygls.", "lsprotocol.")
        ):
            print(
                "storyc lsp: the language server needs pygls; install it with "
                "pip install 'storyc[lsp]'",
                file=sys.stderr,
            )
            return ExitCode.ENVIRONMENT
        raise
    serve()
    return ExitCode.OK
