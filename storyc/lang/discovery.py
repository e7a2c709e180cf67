"""Project discovery: which entry `.story` file a path means, walking up like git.

Stage: before the loader (the command line resolves `PATH` with it before any command
runs; `storyc.lang.loader.find_entry` reports what it finds). In: a path. Out: the entry
file, or why there is none. I/O: lists folders and reads the top of `*.story` files
(regular files only, bounded: `storyc.base.reading`). Imports nothing heavy: it runs
before a no-op build decides it has nothing to do.

A folder holds a project when it has `main.story`, or else exactly one top-level `*.story`
file with a `project` block. A folder without one (a subfolder of the project, such as
`scenes/` or `assets/`) sends the search to its parent, as git finds its repository from
any folder inside it. Above the folder asked about, only an unmistakable project counts
(`main.story`, or one entry candidate beside storyc's own `storyc.lock` or `.storyc/`), so
a stray story in a shared folder such as /tmp is never taken for the user's project; and the
search ends at the root of a git repository (a folder holding `.git`) or of the file
system. In the folder asked about, several candidate entry files are a question for the
user, not a reason to look elsewhere.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

from storyc.base.reading import read_regular

ENTRY_NAME = "main.story"
MAX_STORY_BYTES = 16 * 1024 * 1024  # one story file; far beyond a 10,000-scene project's
_PROJECT_RE = re.compile(rb"^[ \t]*project\b", re.M)


@dataclass(frozen=True)
class Found:
    entry: Path | None  # the entry file, when one was found
    folder: Path  # where the search ended: the project's folder, or where it gave up
    several: tuple[str, ...] = ()  # file names, when a folder has several entry candidates
    walked: bool = False  # the project is in a folder above the one asked about


def _is_regular(path: Path) -> bool:
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


def _entry_in(folder: Path) -> Path | tuple[str, ...] | None:
    main = folder / ENTRY_NAME
    if _is_regular(main):
        return main
    try:
        names = sorted(n for n in os.listdir(folder) if n.endswith(".story"))
    except OSError:
        return None
    candidates = []
    for name in names:
        try:
            if _PROJECT_RE.search(read_regular(folder / name, MAX_STORY_BYTES)):
                candidates.append(folder / name)
        except OSError:
            continue  # a FIFO, a device, a huge file: not an entry
    if len(candidates) == 1:
        return candidates[0]
    return tuple(p.name for p in candidates) or None


def discover(path: str | os.PathLike[str]) -> Found:
    """The entry file `path` means. A file is its own entry; a folder is searched, then
    its parents. `Found.entry` is None when nothing was found (or the choice is unclear)."""
    start = Path(path)
    if _is_regular(start):
        return Found(start, start.parent)
    try:
        folder = start.resolve()
    except (OSError, ValueError, RuntimeError):
        return Found(None, start)
    if not folder.is_dir():
        return Found(None, start)
    hit = _entry_in(folder)
    if isinstance(hit, Path):
        # inside the folder asked about, keep the path as given (spans stay as typed)
        return Found(start / hit.name, start)
    if isinstance(hit, tuple):
        return Found(None, folder, several=hit)
    here = folder
    while not _exists(here / ".git") and here.parent != here:
        here = here.parent
        hit = _entry_in(here)
        if isinstance(hit, Path) and (
            hit.name == ENTRY_NAME or _exists(here / "storyc.lock") or _exists(here / ".storyc")
        ):
            return Found(hit, here, walked=True)
    return Found(None, folder)


def _exists(path: Path) -> bool:
    try:
        return path.exists()
    except (OSError, ValueError):
        return False


def project_dir(path: str | os.PathLike[str]) -> str | None:
    """The folder to use for `path` when the project is found above it (as a string, for
    argparse's namespace); None when `path` itself is the right thing to use."""
    found = discover(path)
    if found.entry is None or not found.walked:
        return None
    return str(found.folder)
