"""Thumbnails for the board, made once per content and kept in the store.

Stage: review. In: digests of videos in the store (outputs, takes) and local images or
videos (the inputs a scene uses). Out: digests of JPEG thumbnails, recorded in the store
as derived objects of what they show (`thumb:first`, `thumb:middle`, `thumb:last` of a
video, `thumb` of an image), so a second board costs a few record reads per scene and no
ffmpeg at all; `storyc gc` keeps them exactly as long as what they show. I/O: the store,
and ffmpeg (through `storyc.media.ffmpeg`) for what is not there yet, two at a time.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

from storyc.media import ffmpeg as media
from storyc.state.store import Store

PARTS = ("first", "middle", "last")
IMAGE = "thumb"


def part_name(part: str) -> str:
    return f"thumb:{part}"


@dataclass
class ThumbMaker:
    """Looks thumbnails up in the store; makes the missing ones in one batch (`make`)."""

    store: Store
    workers: int = 2
    made: int = 0  # ffmpeg runs this session (for the benchmark and the command's summary)
    failed: dict[str, str] = field(default_factory=dict)  # digest -> one-line reason

    def video(self, digest: str) -> dict[str, str] | None:
        """{part: thumbnail digest} of a stored video, or None if not made yet."""
        out: dict[str, str] = {}
        for part in PARTS:
            found = self.store.lookup_derived(digest, part_name(part))
            if found is None:
                return None
            out[part] = found
        return out

    def image(self, digest: str) -> str | None:
        return self.store.lookup_derived(digest, IMAGE)

    def make(self, videos: Iterable[str], files: Iterable[tuple[str, str]]) -> None:
        """Make what is missing: thumbnails of stored `videos` (digests) and of local
        `files` ((digest, path) of images, videos or store objects). Failures are kept in
        `failed` (the page shows the reason), never raised."""
        todo_v = [d for d in dict.fromkeys(videos) if self.video(d) is None]
        todo_f = [(d, p) for d, p in dict.fromkeys(files) if self.image(d) is None]
        if not todo_v and not todo_f:
            return
        tmp_root = self.store.root / "tmp"
        tmp_root.mkdir(parents=True, exist_ok=True)
        with (
            tempfile.TemporaryDirectory(dir=tmp_root, prefix="thumbs.") as tmp,
            ThreadPoolExecutor(max(1, self.workers)) as pool,
        ):
            jobs = [pool.submit(self._video, d, Path(tmp)) for d in todo_v]
            jobs += [pool.submit(self._file, d, p, Path(tmp)) for d, p in todo_f]
            for j in jobs:
                j.result()

    def _video(self, digest: str, tmp: Path) -> None:
        src = self.store.get(digest)
        if src is None:
            self.failed[digest] = "the video is not in the store"
            return
        outs = tuple(tmp / f"{digest[7:23]}.{p}.jpg" for p in PARTS)
        try:
            media.video_thumbnails(src, outs)  # type: ignore[arg-type]
            # record each only after all three are stored: `video()` sees all or none
            made = [self.store.put_file(o) for o in outs]
            for part, thumb in zip(PARTS, made, strict=True):
                self.store.record_derived(digest, part_name(part), thumb)
            self.made += 1
        except media.MediaError as exc:
            self.failed[digest] = str(exc)
        finally:
            for o in outs:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(o)

    def _file(self, digest: str, path: str, tmp: Path) -> None:
        out = tmp / f"{digest[7:23]}.jpg"
        try:
            media.image_thumbnail(path, out)
            self.store.record_derived(digest, IMAGE, self.store.put_file(out))
            self.made += 1
        except media.MediaError as exc:
            self.failed[digest] = str(exc)
        finally:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(out)
