"""Files and rendered outputs of the loopback provider.

Stage: tooling (the offline provider). In: uploaded bytes, and validated task inputs.
Out: stored files by id, and real MP4 outputs of the requested duration and aspect
ratio, made by `storyc.media.ffmpeg` (the only module that runs ffmpeg). I/O: writes under
the provider's scratch directory; renders in worker threads, two at a time.

Like the model, the loopback gives a different video each time the same input is sent:
the n-th task with an identical input (in this server's life) gets look n — another
camera move, other colours, "output n" in its tag (`render_preview`'s `variant`) — so the
takes of a scene differ and choosing one can be rehearsed. The same sequence of tasks
always gives the same videos.

Outputs are cached: the key is (duration, aspect, caption, input files, look) normally,
and only (duration, aspect) with `fast_outputs`, so a benchmark of 500 tasks renders one
video. Concurrent tasks with the same key share one render.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from storyc.media import ffmpeg as media
from storyc.media import info as mediainfo

OUTPUT_HEIGHT = 180  # small outputs: the loopback stands in for the model, fast is what matters
_RATIOS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}


@dataclass
class StoredFile:
    id: str
    filename: str
    content_type: str
    declared_size: int
    path: Path
    complete: bool = False


def _probe(path: Path | None) -> mediainfo.MediaInfo | None:
    return mediainfo.probe(path) if path is not None else None  # probe never raises


def nearest_aspect(info: mediainfo.MediaInfo | None) -> str | None:
    if info is None or not info.width or not info.height:
        return None
    ratio = info.width / info.height
    return min(_RATIOS, key=lambda a: abs(_RATIOS[a] - ratio))


class MediaShelf:
    """Uploaded files and rendered outputs under `root`."""

    def __init__(self, root: Path, *, fast_outputs: bool = False, renders: int = 2) -> None:
        self.root = root
        self.fast_outputs = fast_outputs
        (root / "files").mkdir(parents=True, exist_ok=True)
        (root / "outputs").mkdir(parents=True, exist_ok=True)
        self.files: dict[str, StoredFile] = {}
        self._renders: dict[str, asyncio.Future[Path]] = {}
        self._slots = threading.Semaphore(renders)
        self.render_count = 0
        self._sent: dict[str, int] = {}  # input digest -> tasks seen with that input

    def new_file(self, file_id: str, filename: str, content_type: str, size: int) -> StoredFile:
        safe = "".join(c for c in filename if c.isalnum() or c in "._-") or "file"
        entry = StoredFile(file_id, safe, content_type, size, self.root / "files" / file_id)
        self.files[file_id] = entry
        return entry

    def local_path(self, uri: str, base_url: str) -> Path | None:
        """The stored file behind a URI this server handed out, or None."""
        prefix = f"{base_url}/files/"
        if not uri.startswith(prefix):
            return None
        entry = self.files.get(uri[len(prefix) :].split("/", 1)[0])
        return entry.path if entry is not None and entry.complete else None

    def output_path(self, name: str) -> Path | None:
        if not name.endswith(".mp4") or "/" in name or name.startswith("."):
            return None
        path = self.root / "outputs" / name
        return path if path.is_file() else None

    def look(self, args: dict[str, Any]) -> dict[str, Any]:
        """`args` with the look of this task: the n-th task with the same input gets
        variant n - 1. Called once per task, in the order the tasks arrive."""
        ident = hashlib.sha256(json.dumps(args, sort_keys=True, default=str).encode()).hexdigest()
        n = self._sent[ident] = self._sent.get(ident, 0) + 1
        return {**args, "variant": n - 1, "title": f"output {n}", "badge": "LOOPBACK"}

    async def render(self, args: dict[str, Any]) -> str:
        """Render (or reuse) the output for `args`; returns its file name under outputs/."""
        keyed = (
            {"duration": args["duration"], "aspect": args["aspect"]} if self.fast_outputs else args
        )
        key = hashlib.sha256(json.dumps(keyed, sort_keys=True, default=str).encode()).hexdigest()
        name = f"{key[:32]}.mp4"
        pending = self._renders.get(key)
        if pending is None:
            pending = asyncio.get_running_loop().create_future()
            self._renders[key] = pending
            out = self.root / "outputs" / name
            try:
                await asyncio.to_thread(self._render_slot, out, args)
            except BaseException as exc:
                del self._renders[key]
                pending.set_exception(exc)
                pending.exception()
                raise
            self.render_count += 1  # on the loop: two render threads would race on +=
            pending.set_result(out)
        await asyncio.shield(pending)
        return name

    def _render_slot(self, out: Path, args: dict[str, Any]) -> None:
        with self._slots:  # two cores: more parallel ffmpeg would only thrash
            media.render_preview(out, **args)

    def render_args(self, model: Any, base_url: str) -> dict[str, Any]:
        """Arguments for the renderer from a validated input (see provider-facts §2)."""
        first = self.local_path_of(model.image, base_url)
        end = self.local_path_of(model.end_image, base_url)
        video = self.local_path_of(model.reference_video, base_url)
        aspect = model.aspect_ratio
        if first is not None:  # the app ignores aspect_ratio with a first frame
            aspect = nearest_aspect(_probe(first)) or aspect
        duration = float(model.duration)
        base = video if model.is_base_edit else None
        if model.is_base_edit:
            info = _probe(video)  # one header read for both length and shape
            duration = (info.duration if info is not None else None) or duration
            aspect = nearest_aspect(info) or aspect
        refs = [self.local_path_of(r, base_url) for r in model.reference_images or []]
        args: dict[str, Any] = {
            "duration": duration,
            "aspect": aspect,
            "caption": model.prompt,
            "height": OUTPUT_HEIGHT,
        }
        if first is not None:
            args["first_frame"] = str(first)
        if end is not None:
            args["end_frame"] = str(end)
        if any(refs):
            args["reference_images"] = tuple(str(r) for r in refs if r is not None)
        if base is not None:
            args["base_video"] = str(base)
            args["keep_sound"] = model.keep_sound
        elif video is not None:
            args["style_video"] = str(video)
        return args

    def local_path_of(self, ref: Any, base_url: str) -> Path | None:
        from storyc.provider.loopback.schema import file_uri

        uri = file_uri(ref) if ref is not None else None
        return self.local_path(uri, base_url) if uri else None
