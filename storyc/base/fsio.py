"""Files written whole or not at all, and what says a file changed: the one place for both.

Stage: foundation (used by every store, cache and record: the content store, the digest
cache, render and upload records, the lock file, the build caches, the watcher). In:
paths and bytes. Out: files replaced atomically; stat signatures. I/O: yes, small and
local: open, write, fsync, rename, stat.

`atomic_write` writes a temp file beside the target (same directory, so the rename is
atomic), optionally fsyncs it and the directory, then `os.replace`s it into place: a
crash leaves the old file or the new one, never half of one. The temp file is created
with mode 0o666 and the process umask, like any other file the user makes (a lock file
in git must not come out 0600). Only `os` is imported: the build's no-op fast path
uses this module before anything heavier is loaded.

A stat signature is (size, mtime_ns, inode, ctime_ns). ctime is in it because no tool
can set it back: a file rewritten in place and given its old mtime still differs.
"""

from __future__ import annotations

import os
import shutil
from contextlib import suppress
from itertools import count

Sig = tuple[int, int, int, int]

_serial = count()


def sig_of(st: os.stat_result) -> Sig:
    return (st.st_size, st.st_mtime_ns, st.st_ino, st.st_ctime_ns)


# How long ago a file must have changed before its signature can be trusted to show the
# next change: a change within the same clock tick as the last one leaves the times as they
# were. A filesystem that keeps sub-second times stamps them from the kernel's clock, whose
# tick is at most 10 ms (HZ=100): 50 ms is five ticks. One that keeps whole seconds (or
# FAT's two) needs two seconds.
FINE_NS = 50_000_000
COARSE_NS = 2_000_000_000


def settled_sig(sig: Sig, now_ns: int) -> bool:
    """Whether `sig`'s last change is far enough before `now_ns` that a later change,
    however small, shows in the signature."""
    _, mtime, _, ctime = sig
    fine = mtime % 1_000_000_000 or ctime % 1_000_000_000
    return now_ns - max(mtime, ctime) >= (FINE_NS if fine else COARSE_NS)


def stat_sig(path: str | os.PathLike[str]) -> Sig | None:
    """The signature of `path` (following links), or None when it cannot be stat'ed."""
    try:
        return sig_of(os.stat(path))
    except (OSError, ValueError):  # ValueError: a NUL byte in the path
        return None


def fsync_dir(path: str | os.PathLike[str]) -> None:
    """Make a rename in `path` durable (best effort: some filesystems refuse)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def where_value(path: str, folders: dict[str, str] | None = None) -> str:
    """Where a file really is, when a link sends its path elsewhere ("" when it is where
    its path says): part of what a file is for a compilation (the engine's dependencies,
    the compiled state's inputs), so a file swapped for a link to the same bytes outside
    the project is checked again (E140, E017) instead of being taken from what was kept.
    `folders` keeps each folder's real path for one pass over many files (a pass, not
    longer: a folder may become a link between two): then a file costs one `lstat`, not
    the `lstat` of every part of its path."""
    folder, name = os.path.split(path)
    if name in ("", ".", "..") or os.path.islink(path):
        real = os.path.realpath(path)
    else:
        real_folder = folders.get(folder) if folders is not None else None
        if real_folder is None:
            real_folder = os.path.realpath(folder)
            if folders is not None:
                folders[folder] = real_folder
        real = os.path.join(real_folder, name)
    return "" if real == path else f"@{real}"


def atomic_write(
    path: str | os.PathLike[str], data: bytes, *, durable: bool = True, mode: int | None = None
) -> None:
    """Replace `path` with `data` atomically; parents are created. `durable` fsyncs the
    file and its directory (records and the lock file); caches that are only a speed-up
    pass False. `mode`: the new file's permission bits (a user's file rewritten in place
    keeps its own), else the umask's. On any error the temp file is removed and the old
    file is untouched."""
    target = os.fspath(path)
    folder = os.path.dirname(target) or "."
    os.makedirs(folder, exist_ok=True)
    # ".tmp-" is the prefix the store's sweeps know as an interrupted write
    tmp = os.path.join(folder, f".tmp-{os.path.basename(target)}.{os.getpid()}.{next(_serial)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.fchmod(f.fileno(), mode)
            f.write(data)
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        with suppress(OSError):
            os.unlink(tmp)
        raise
    if durable:
        fsync_dir(folder)


def atomic_write_text(
    path: str | os.PathLike[str], text: str, *, durable: bool = True, mode: int | None = None
) -> None:
    atomic_write(path, text.encode("utf-8"), durable=durable, mode=mode)


def replace_link(rel: str, name: str) -> None:
    """Point the name `name` at `rel` (relative to its folder), atomically replacing what
    was there; a copy where symbolic links are impossible. Nothing is written when the
    link is already right (a no-op build rewrites nothing)."""
    try:
        if os.readlink(name) == rel:
            return
    except OSError:
        pass
    folder, base = os.path.split(name)
    tmp = os.path.join(folder, f".{base}.{os.getpid()}.tmp")
    with suppress(FileNotFoundError):
        os.unlink(tmp)
    try:
        os.symlink(rel, tmp)
    except OSError:  # no symbolic links here: a copy
        shutil.copyfile(os.path.join(folder, rel), tmp)
    os.replace(tmp, name)
