"""Reading a file a story names: regular files only, and never more than a limit.

Stage: foundation (the loader reads story files through it, the digest cache hashes media
through it, project discovery peeks at `*.story` files with it). In: a path and a byte
limit. Out: an open descriptor and its stat, or the bytes. I/O: open, fstat, read.

A path in a story is text anyone can write: it may name a FIFO (opening it for reading
blocks for ever), `/dev/zero` (reading it never ends), or a 3 GB file (reading it ends in
`MemoryError`). So a file is opened without blocking, checked with `fstat` on the very
descriptor that will be read (no window in which the path can be swapped), refused unless
it is a regular file within the limit, and read no further than the limit. Only `os` and
`stat` are imported: project discovery runs before any command's heavier modules load.
"""

from __future__ import annotations

import errno
import os
import stat

_FLAGS = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)


class NotRegularFile(OSError):
    """The path names a directory, FIFO, socket or device, not a regular file."""

    def __init__(self, path: str, kind: str) -> None:
        super().__init__(errno.EINVAL, f"not a regular file ({kind})", path)
        self.kind = kind


class FileTooLarge(OSError):
    """The file holds more bytes than the caller's limit."""

    def __init__(self, path: str, size: int, limit: int) -> None:
        super().__init__(errno.EFBIG, f"{size:,} bytes; the limit is {limit:,}", path)
        self.size = size
        self.limit = limit


def kind_of(mode: int) -> str:
    """What a stat mode is, in words ("a directory", "a FIFO", ...)."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(
    path: str | os.PathLike[str], limit: int | None = None
) -> tuple[int, os.stat_result]:
    """An open descriptor of `path` and its fstat; the caller closes it. Raises
    `NotRegularFile`, `FileTooLarge`, or the `OSError` of open (`ValueError` for a path with
    a NUL byte is turned into an `OSError` too)."""
    name = os.fspath(path)
    try:
        fd = os.open(name, _FLAGS)
    except ValueError as exc:  # embedded NUL byte
        raise OSError(errno.EINVAL, "the path contains a NUL byte", name) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise NotRegularFile(name, kind_of(st.st_mode))
        if limit is not None and st.st_size > limit:
            raise FileTooLarge(name, st.st_size, limit)
        if _FLAGS & getattr(os, "O_NONBLOCK", 0):
            os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd, st


def read_regular(path: str | os.PathLike[str], limit: int) -> bytes:
    """The whole of a regular file of at most `limit` bytes (a file that grows past the
    limit while it is read is refused too)."""
    return read_regular_stat(path, limit)[0]


def read_regular_stat(path: str | os.PathLike[str], limit: int) -> tuple[bytes, os.stat_result]:
    """`read_regular`, with the file's fstat taken before it was read."""
    fd, st = open_regular(path, limit)
    try:
        chunks: list[bytes] = []
        total = 0
        while True:
            chunk = os.read(fd, min(1 << 20, limit + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
            if total > limit:
                raise FileTooLarge(os.fspath(path), total, limit)
        return b"".join(chunks), st
    finally:
        os.close(fd)
