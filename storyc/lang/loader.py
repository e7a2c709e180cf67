"""Loader: find the entry story file, read it and every `include`, parse each once.

Stage: first stage of the front end, before `storyc.resolve.resolver`. In: a path (an entry
file or a project directory) and optionally a `ParseCache`. Out: `Loaded` (the syntax
trees in declaration order, a `SourceMap` for excerpts, loading and syntax diagnostics
E001-E013). I/O: reads story files; never writes.

Includes are expanded in place: declarations of `include "cast.story"` count as
written where the include is. A file included twice is loaded once; an include that
leads back to a file still being read is a cycle (E013) and names the whole cycle.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from storyc.base.diagnostics import Diagnostics, SourceMap
from storyc.lang import ast
from storyc.lang.parser import ParseResult, parse_text

ENTRY_NAME = "main.story"
_PROJECT_RE = re.compile(r"^[ \t]*project\b", re.M)
_MAX_INCLUDE_DEPTH = 64


class ParseCache:
    """Parsed files by (absolute path, label, text).

    `parses` counts real parses, so a watch loop can show that a re-load after one
    file changed parsed only that file. Trees are shared: callers must not mutate them.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, str, ParseResult]] = {}
        self.parses = 0

    def parse(self, abs_path: str, label: str, text: str) -> ParseResult:
        # Comparing the text itself is exact and cheaper than hashing it on every load
        # (a changed file usually differs in length, and equal strings compare by memcmp).
        hit = self._entries.get(abs_path)
        if hit is not None and hit[0] == label and hit[1] == text:
            return hit[2]
        result = parse_text(text, label)
        self.parses += 1
        self._entries[abs_path] = (label, text, result)
        return result


@dataclass
class LoadedFile:
    label: str  # project-relative POSIX path, as in spans
    abs_path: str
    text: str
    tree: ast.File
    # Index of an `include` item in tree.items -> label of the file it loaded.
    includes: dict[int, str] = field(default_factory=dict)


@dataclass
class Loaded:
    root: Path | None  # directory of the entry file
    entry: str | None  # label of the entry file; None when there is no project
    files: list[LoadedFile]  # entry first, then in the order includes were met
    sources: SourceMap
    diagnostics: Diagnostics

    @property
    def complete(self) -> bool:
        """True when every file was found and parsed to the end."""
        return (
            self.entry is not None
            and all(f.tree.complete for f in self.files)
            and not any(d.code in ("E010", "E012", "E013") for d in self.diagnostics)
        )

    def declarations(self) -> Iterator[tuple[LoadedFile, ast.Decl]]:
        """Every declaration in order, with includes expanded where they are written."""
        by_label = {f.label: f for f in self.files}
        seen: set[str] = set()

        def walk(f: LoadedFile) -> Iterator[tuple[LoadedFile, ast.Decl]]:
            seen.add(f.label)
            for i, item in enumerate(f.tree.items):
                if isinstance(item, ast.Include):
                    target = by_label.get(f.includes.get(i, ""))
                    if target is not None and target.label not in seen:
                        yield from walk(target)
                else:
                    yield f, item

        if self.files:
            yield from walk(self.files[0])


def label_for(abs_path: str, root: Path) -> str:
    rel = os.path.relpath(abs_path, root)
    return Path(rel).as_posix()


def find_entry(path: Path, diags: Diagnostics) -> Path | None:
    """The entry file for `path` (a file, or a directory holding the project)."""
    shown = str(path)
    if path.is_file():
        return path
    if not path.exists():
        diags.error(
            "E010",
            f"no such file or directory: {shown}",
            hint="give a .story file or a directory containing main.story",
        )
        return None
    main = path / ENTRY_NAME
    if main.is_file():
        return main
    candidates = []
    for p in sorted(path.glob("*.story")):
        try:
            if _PROJECT_RE.search(p.read_text("utf-8", errors="replace")):
                candidates.append(p)
        except OSError:
            continue
    if len(candidates) == 1:
        return candidates[0]
    if not candidates:
        diags.error(
            "E011",
            f"no project in {shown}: no {ENTRY_NAME} and no .story file with a `project` block",
            hint="run `storyc init` here, or give the path of the entry .story file",
        )
    else:
        names = ", ".join(p.name for p in candidates)
        diags.error(
            "E011",
            f"several .story files in {shown} have a `project` block ({names})",
            hint=f"name the entry file {ENTRY_NAME}, or give its path",
        )
    return None


def _read_bytes(abs_path: str) -> bytes:
    return Path(abs_path).read_bytes()


def load(
    path: str | os.PathLike[str],
    *,
    cache: ParseCache | None = None,
    overlays: Mapping[str, str] | None = None,
    read: Callable[[str], bytes] | None = None,
) -> Loaded:
    """Read and parse the project at `path`. Never raises for bad input.

    `overlays` maps absolute, normalised file paths to text that stands for what is on
    disk (an editor's unsaved buffers). `read(abs_path)` replaces reading any other story
    file from disk (the incremental compiler notes what it read); it raises `OSError` as
    reading would."""
    read_bytes = read if read is not None else _read_bytes
    diags = Diagnostics()
    sources = SourceMap()
    given = Path(path)
    if overlays and os.path.normpath(os.path.abspath(given)) in overlays:
        entry: Path | None = given  # a new file, not saved yet
    else:
        entry = find_entry(given, diags)
    if entry is None:
        return Loaded(None, None, [], sources, diags)
    entry = entry.resolve()
    root = entry.parent
    cache = cache if cache is not None else ParseCache()
    files: list[LoadedFile] = []
    loaded: dict[str, LoadedFile] = {}
    stack: list[str] = []

    def visit(abs_path: str, via: ast.Include | None) -> LoadedFile | None:
        label = label_for(abs_path, root)
        where = via.path.span if via is not None else None
        overlay = overlays.get(abs_path) if overlays else None
        try:
            raw = overlay.encode("utf-8") if overlay is not None else read_bytes(abs_path)
        except IsADirectoryError:
            diags.error(
                "E012",
                f"cannot include `{via.path.value if via else label}`: {label} is a directory",
                where,
                hint="include a .story file",
            )
            return None
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            if via is None:
                diags.error("E010", f"cannot read {label}: {reason}")
            else:
                diags.error(
                    "E012",
                    f"included file not found: `{via.path.value}` (resolved to {label})",
                    where,
                    hint="paths in `include` are relative to the file that includes them",
                )
            return None
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            diags.error(
                "E010",
                f"{label} is not UTF-8 text (bad byte at offset {exc.start})",
                where,
                hint="save the file as UTF-8",
            )
            return None
        text = text.removeprefix("\ufeff")
        sources.add(label, text)
        result = cache.parse(abs_path, label, text)
        diags.extend(result.diagnostics)
        lf = LoadedFile(label, abs_path, text, result.file)
        loaded[abs_path] = lf
        files.append(lf)
        stack.append(abs_path)
        base = Path(abs_path).parent
        for i, item in enumerate(result.file.items):
            if isinstance(item, ast.Include):
                target = _include_target(item, base, root, diags, stack)
                if target is None:
                    continue
                if target in loaded:
                    lf.includes[i] = loaded[target].label
                elif len(stack) >= _MAX_INCLUDE_DEPTH:
                    diags.error(
                        "E013",
                        f"includes nested more than {_MAX_INCLUDE_DEPTH} deep",
                        item.span,
                        hint="flatten the chain of includes",
                    )
                else:
                    child = visit(target, item)
                    if child is not None:
                        lf.includes[i] = child.label
        stack.pop()
        return lf

    visit(str(entry), None)
    return Loaded(root, files[0].label if files else None, files, sources, diags)


def _include_target(
    item: ast.Include, base: Path, root: Path, diags: Diagnostics, stack: list[str]
) -> str | None:
    written = item.path.value
    if not written.strip():
        diags.error(
            "E012",
            "empty include path",
            item.path.span,
            hint='write the path of a .story file, e.g. include "cast.story"',
        )
        return None
    target = os.path.normpath(base / written)
    if target in stack:
        chain = stack[stack.index(target) :] + [target]
        names = " -> ".join(label_for(p, root) for p in chain)
        diags.error(
            "E013",
            f"include cycle: {names}",
            item.span,
            hint="move what both files need into a third file that both include",
        )
        return None
    return target
