"""Resolver helpers: media files and URLs named in a story, checked and hashed.

Stage: part of the resolver (`storyc.resolve.resolver`). In: a path or URL as written, the
directory of the file that wrote it, and the media kind the slot needs. Out:
`LocalFile` (project-relative path, size, digest, header facts) or `RemoteFile`, or
located diagnostics E130-E137, E140, E142. I/O: stats files, reads headers (through
`storyc.media.info.probe`) and hashes contents (through `storyc.base.hashing.DigestCache`).

Each distinct (file, kind) is checked once; its problems are re-reported at every
place that names it, since each place is something the writer must fix.

What a paid build uploads is decided here, so a file must earn its place: it stays inside
the project folder once symlinks are resolved (or inside a folder the project block
lists in `shared_folders`), it is a regular file within the model's size limit, and its
content is what the slot needs (a `.png` that holds text is an error, not a warning: the
provider would fail the task, and a retry would pay for it again).
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass, replace
from pathlib import Path
from urllib.parse import urlsplit

from storyc.base.diagnostics import Diagnostic, Diagnostics, Severity, Span
from storyc.base.hashing import DigestCache
from storyc.base.reading import open_regular
from storyc.lang.loader import is_inside
from storyc.media import info as mediainfo
from storyc.resolve.model import MAX_BYTES, LocalFile, MediaKind, RemoteFile

EXTENSIONS: dict[str, tuple[str, ...]] = {
    "image": (".jpg", ".jpeg", ".png"),
    "video": (".mp4", ".mov"),
}
_SCHEME = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*:")


def _mb(n: int) -> str:
    return f"{n // (1024 * 1024)} MB"


@dataclass
class _Checked:
    file: LocalFile | None
    problems: tuple[Diagnostic, ...]


def _refused(code: str, message: str, hint: str | None = None) -> _Checked:
    # The span is filled in where the file is named (`FileResolver.source`).
    return _Checked(None, (Diagnostic(code, Severity.ERROR, message, None, hint),))


class FileResolver:
    """Turns written paths into `LocalFile`/`RemoteFile`, with a per-run memo."""

    def __init__(
        self, root: Path, digests: DigestCache, allowed: tuple[str, ...] | None = None
    ) -> None:
        self.root = root
        self.digests = digests
        # real paths of the folders whose files may be used (`Loaded.allowed`)
        self.allowed = allowed or (os.path.realpath(root),)
        self._memo: dict[tuple[str, str, str], _Checked] = {}
        self._probe = getattr(mediainfo, "probe", None)

    def forget(self) -> None:
        """Check every file again when next named (its content may have changed)."""
        self._memo.clear()

    def source(
        self, written: str, base_dir: Path, kind: MediaKind, span: Span, diags: Diagnostics
    ) -> LocalFile | RemoteFile | None:
        text = written.strip()
        if not text:
            diags.error(
                "E130",
                f"empty path where {_a(kind)} {kind} is expected",
                span,
                hint='write a path relative to this file, e.g. "assets/shot.png"',
            )
            return None
        if "\0" in text:
            diags.error("E142", "a path cannot contain a NUL byte", span)
            return None
        if _SCHEME.match(text) and not re.match(r"^[A-Za-z]:[\\/]", text):
            return self._url(text, kind, span, diags)
        abs_path = os.path.normpath(os.path.join(base_dir, text))
        key = (abs_path, kind, written)
        checked = self._memo.get(key)
        if checked is None:
            checked = self._check(written, abs_path, kind)
            self._memo[key] = checked
        for p in checked.problems:
            diags.add(replace(p, span=span))
        return checked.file

    def _url(self, url: str, kind: MediaKind, span: Span, diags: Diagnostics) -> RemoteFile | None:
        try:
            parts = urlsplit(url)
            host = parts.hostname
            parts.port  # noqa: B018 - raises for a port that is not a number in range
        except ValueError as exc:
            diags.error(
                "E136",
                f"malformed URL: {url} ({exc})",
                span,
                hint="check the address: https://host/path/file.png",
            )
            return None
        if any(c.isspace() for c in url):
            diags.error("E136", f"malformed URL: {url} (it contains a space)", span)
            return None
        scheme = parts.scheme.lower()
        if scheme == "http":
            diags.error(
                "E135",
                f"plain http:// URL: {url}",
                span,
                hint="the provider fetches media over https:// only; use the https:// "
                "address or a local file",
            )
            return None
        if scheme != "https" or not host:
            diags.error(
                "E136",
                f"unsupported URL: {url}",
                span,
                hint="media is a local path (relative to this file) or an https:// URL",
            )
            return None
        suffix = Path(parts.path).suffix.lower()
        other = "video" if kind == "image" else "image"
        if suffix in EXTENSIONS[other]:
            diags.error(
                "E131",
                f"{url} looks like {_a(other)} {other} ({suffix}), but "
                f"{_a(kind)} {kind} is expected here",
                span,
                hint=_kind_hint(kind),
            )
            return None
        return RemoteFile(url, kind)

    def _check(self, written: str, abs_path: str, kind: MediaKind) -> _Checked:
        label = Path(os.path.relpath(abs_path, self.root)).as_posix()
        shown = f"`{written}`" + (f" (resolved to {label})" if label != written else "")
        real = os.path.realpath(abs_path)
        if not is_inside(real, self.allowed):
            via = "" if real == abs_path else f" (a link to {real})"
            return _refused(
                "E140",
                f"{shown} is outside the project folder{via}",
                "a paid build uploads every file a scene uses, so files stay inside the "
                "project (links are followed); a folder shared by several projects can be "
                'listed in the project block: shared_folders = ["../shared"]',
            )
        suffix = Path(abs_path).suffix.lower()
        other: MediaKind = "video" if kind == "image" else "image"
        if suffix in EXTENSIONS[other]:
            return _refused(
                "E131",
                f"{shown} is {_a(other)} {other} file, but {_a(kind)} {kind} is expected here",
                _kind_hint(kind),
            )
        if suffix not in EXTENSIONS[kind]:
            allowed = ", ".join(EXTENSIONS[kind])
            what = f"`{suffix}`" if suffix else "no extension"
            return _refused(
                "E133",
                f"unsupported {kind} format for {shown}: {what}",
                f"the model takes {kind}s as {allowed}; convert the file",
            )
        try:
            st = os.stat(abs_path)
        except OSError:
            return _refused(
                "E130",
                f"file not found: `{written}` (resolved to {label})",
                "paths are relative to the .story file that names them",
            )
        if not stat.S_ISREG(st.st_mode):
            return _refused(
                "E137", f"{shown} is not a regular file", "name a media file, not a directory"
            )
        limit = MAX_BYTES[kind]
        if st.st_size > limit:
            return _refused(
                "E134",
                f"{shown} is {st.st_size:,} bytes; {kind}s may be at most "
                f"{_mb(limit)} ({limit:,} bytes)",
                "compress or shrink the file",
            )
        problems: list[Diagnostic] = []
        info = None
        if self._probe is not None:
            try:
                info = self._probe(abs_path)
            except Exception:  # a header reader must never stop a check
                info = None
            if info is None:
                what = (
                    "holds text" if _looks_like_text(abs_path) else "is not one storyc recognises"
                )
                return _refused(
                    "E132",
                    f"{shown} is named like {_a(kind)} {kind}, but its content {what}",
                    f"the file must be {_formats(kind)}: check that it is not damaged or mis-named",
                )
            if info.kind != kind:
                return _refused(
                    "E132",
                    f"{shown} is named like {_a(kind)} {kind} but holds "
                    f"{_a(info.kind)} {info.kind} ({info.format})",
                    "rename or replace the file",
                )
        try:
            digest = self.digests.digest(real, st)
        except OSError as exc:
            return _refused("E137", f"cannot read {shown}: {exc.strerror or type(exc).__name__}")
        return _Checked(LocalFile(label, abs_path, kind, st.st_size, digest, info), tuple(problems))


def _looks_like_text(path: str) -> bool:
    """Whether the first bytes of `path` are text (a common mistake: a saved web page or
    a placeholder file named .png)."""
    try:
        fd, _ = open_regular(path)
    except OSError:
        return False
    try:
        head = os.read(fd, 512)
    except OSError:
        return False
    finally:
        os.close(fd)
    if not head or b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # not just a character cut at the end
            return False
        text = head[: exc.start].decode("utf-8")
    return all(c.isprintable() or c in "\r\n\t" for c in text)


def _formats(kind: str) -> str:
    return "a PNG or JPEG image" if kind == "image" else "an MP4 or MOV video"


def _a(kind: str) -> str:
    return "an" if kind[:1] in "aeiou" else "a"


def _kind_hint(kind: str) -> str:
    if kind == "image":
        return "images are .jpg, .jpeg or .png; a video goes in `video =` or `edit =`"
    return "videos are .mp4 or .mov; an image goes in `start =`, `end =` or `refs =`"
