"""Loader: find the entry story file, read it and every `include`, parse each once.

Stage: first stage of the front end, before `storyc.resolve.resolver`. In: a path (an entry
file or a project directory) and optionally a `ParseCache`. Out: `Loaded` (the syntax
trees in declaration order, a `SourceMap` for excerpts, loading and syntax diagnostics
E001-E017). I/O: reads story files; never writes.

Includes are expanded in place: declarations of `include "cast.story"` count as
written where the include is. A file included twice is loaded once; an include that
leads back to a file still being read is a cycle (E013) and names the whole cycle.

A story file is read only if it is a regular file of at most `MAX_STORY_BYTES` (E016),
and an include must stay inside the project (the entry file's folder) once symlinks are
resolved, or inside a folder the project block lists in `shared_folders` (E017).
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from storyc.base.diagnostics import Diagnostics, SourceMap, Span
from storyc.base.reading import FileTooLarge, NotRegularFile, read_regular
from storyc.lang import ast
from storyc.lang.discovery import ENTRY_NAME as ENTRY_NAME
from storyc.lang.discovery import MAX_STORY_BYTES, discover
from storyc.lang.parser import ParseResult, parse_text

_MAX_INCLUDE_DEPTH = 64
SHARED_SETTING = "shared_folders"


# what leaves a load incomplete (`Loaded.complete`): a story file unreadable or not UTF-8
# (E010), missing (E012), included in a cycle (E013), not a regular file or too big (E016),
# outside the project (E017)
INCOMPLETE = frozenset(("E010", "E012", "E013", "E016", "E017"))


class ParseCache:
    """Parsed files by (absolute path, label, text).

    `parses` counts real parses, so a watch loop can show that a re-load after one
    file changed parsed only that file. Trees are shared: callers must not mutate them.
    """

    def __init__(self) -> None:
        self._entries: dict[str, tuple[str, str, ParseResult]] = {}
        self.parses = 0

    def known(self, abs_path: str, label: str, text: str) -> ParseResult | None:
        """The parse of exactly this text of this file, if this cache made it."""
        # Comparing the text itself is exact and cheaper than hashing it on every load
        # (a changed file usually differs in length, and equal strings compare by memcmp).
        hit = self._entries.get(abs_path)
        if hit is not None and hit[0] == label and hit[1] == text:
            return hit[2]
        return None

    def results(self) -> list[ParseResult]:
        """Every parse this cache holds (one per file)."""
        return [entry[2] for entry in self._entries.values()]

    def parse(self, abs_path: str, label: str, text: str) -> ParseResult:
        hit = self.known(abs_path, label, text)
        if hit is not None:
            return hit
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
    # Real paths of the folders whose files the story may use: the project's, then the
    # `shared_folders` of the project block (see `shared_folders`).
    allowed: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        """True when every file was found and parsed to the end."""
        return (
            self.entry is not None
            and all(f.tree.complete for f in self.files)
            and not any(d.code in INCOMPLETE for d in self.diagnostics)
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


def label_for(abs_path: str, root: Path | str) -> str:
    top = os.fspath(root)
    if abs_path.startswith(top) and abs_path[len(top) : len(top) + 1] == os.sep:
        rel = abs_path[len(top) + 1 :]  # the usual case, without relpath's walk
    else:
        rel = os.path.relpath(abs_path, top)
    return rel if os.sep == "/" else rel.replace(os.sep, "/")


class _RealPaths:
    """`os.path.realpath` for the story files of one load: the folder's real path once
    per folder, then one `lstat` per file (a file that is itself a link, or whose folder
    is not a folder, takes the whole walk)."""

    def __init__(self) -> None:
        self.folders: dict[str, str] = {}

    def __call__(self, path: str) -> str:
        folder, name = os.path.split(path)
        if not name or name in (".", ".."):
            return os.path.realpath(path)
        try:
            if stat.S_ISLNK(os.lstat(path).st_mode):
                return os.path.realpath(path)
        except FileNotFoundError:
            pass  # realpath keeps a missing last part as it is written
        except OSError:
            return os.path.realpath(path)
        real = self.folders.get(folder)
        if real is None:
            real = self.folders[folder] = os.path.realpath(folder)
        return os.path.join(real, name)


def find_entry(path: Path, diags: Diagnostics) -> Path | None:
    """The entry file for `path` (a file, or a directory holding the project or inside
    it: the search walks up to the folders above, as git does)."""
    shown = str(path)
    found = discover(path)
    if found.entry is not None:
        return found.entry
    if found.several:
        names = ", ".join(found.several)
        diags.error(
            "E011",
            f"several .story files in {found.folder if found.walked else shown} have a "
            f"`project` block ({names})",
            hint=f"name the entry file {ENTRY_NAME}, or give its path",
        )
        return None
    if not path.exists():
        diags.error(
            "E010",
            f"no such file or directory: {shown}",
            hint="give a .story file or a directory containing main.story",
        )
        return None
    diags.error(
        "E011",
        f"no project in {shown} or any folder above it: no {ENTRY_NAME} and no .story file "
        "with a `project` block",
        hint="run `storyc init` to start one here, or give the path of the entry .story file",
    )
    return None


def shared_folders(tree: ast.File, root: Path) -> list[tuple[ast.Str, str]]:
    """The `shared_folders = ["../brand", ...]` of the entry file's project block: each
    string as written and its real path. Only well-formed strings; the resolver reports
    the rest (and folders that do not exist)."""
    out: list[tuple[ast.Str, str]] = []
    for item in tree.items:
        if not isinstance(item, ast.ProjectDecl):
            continue
        for s in item.settings:
            if s.name != SHARED_SETTING:
                continue
            values = s.value.items if isinstance(s.value, ast.ListV) else [s.value]
            for v in values:
                if isinstance(v, ast.Str) and v.value.strip() and "\0" not in v.value:
                    real = os.path.realpath(root / v.value.strip())
                    if os.path.dirname(real) != real:  # never the whole file system
                        out.append((v, real))
    return out


def is_inside(real: str, folders: tuple[str, ...]) -> bool:
    """Whether the real path `real` is one of `folders` or below one of them."""
    return any(real == f or real.startswith(f.rstrip(os.sep) + os.sep) for f in folders)


def _read_bytes(abs_path: str) -> bytes:
    return read_regular(abs_path, MAX_STORY_BYTES)


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
    allowed: list[str] = [str(root)]  # + the entry's shared folders, once it is parsed
    top = str(root)
    realpath = _RealPaths()

    def visit(abs_path: str, via: ast.Include | None) -> LoadedFile | None:
        label = label_for(abs_path, top)
        where = via.path.span if via is not None else None
        overlay = overlays.get(abs_path) if overlays else None
        try:
            raw = overlay.encode("utf-8") if overlay is not None else read_bytes(abs_path)
        except NotRegularFile as exc:
            diags.error(
                "E016" if exc.kind != "a directory" else "E012",
                f"cannot {'include' if via else 'read'} `{via.path.value if via else label}`: "
                f"{label} is {exc.kind}",
                where,
                hint="name a .story file",
            )
            return None
        except FileTooLarge as exc:
            diags.error(
                "E016",
                f"{label} is {exc.size:,} bytes; a story file may be at most "
                f"{MAX_STORY_BYTES // (1024 * 1024)} MB",
                where,
                hint="split it into several files joined with `include`",
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
        base = os.path.dirname(abs_path)
        if via is None:
            allowed.extend(real for _, real in shared_folders(result.file, root))
        for i, item in enumerate(result.file.items):
            if isinstance(item, ast.Include):
                target = _include_target(item, base, root, diags, stack, tuple(allowed), realpath)
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
    return Loaded(root, files[0].label if files else None, files, sources, diags, tuple(allowed))


def _include_target(
    item: ast.Include,
    base: str,
    root: Path,
    diags: Diagnostics,
    stack: list[str],
    allowed: tuple[str, ...],
    realpath: Callable[[str], str] = os.path.realpath,
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
    if "\0" in written:
        diags.error("E012", "an include path cannot contain a NUL byte", item.path.span)
        return None
    target = os.path.normpath(os.path.join(base, written))
    if not is_inside(realpath(target), allowed):
        _outside(diags, item.path.span, f"`{written}`", "include")
        return None
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


def _outside(diags: Diagnostics, span: Span, shown: str, what: str) -> None:
    diags.error(
        "E017",
        f"cannot {what} {shown}: it is outside the project folder",
        span,
        hint="keep story files inside the project (symlinks are followed); a folder "
        f"shared by several projects can be listed in the project block: {SHARED_SETTING} "
        '= ["../shared"]',
    )
