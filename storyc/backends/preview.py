"""The preview backend: a real MP4 animatic per scene, made locally with ffmpeg, free.

Stage: execute. In: a `Job` whose markers are resolved to local files. Out: the
animatic's digest in the store. I/O: runs ffmpeg through `storyc.media.ffmpeg` (in a worker
thread, so several scenes render at once) and writes into the store.

What the animatic shows is decided by `storyc.media.ffmpeg.render_preview`; this module only
maps the provider's input fields onto it, the same way the provider's app picks its
mode: `image` is the first frame, `end_image` the end frame, `reference_images` the
strip of thumbnails, `reference_video` the edited video when its type is `base` and a
style reference otherwise. The caption is the prompt as the writer wrote it (`@mei`, not
`@image_1`), the tag names the scene and the take, and each take moves differently (see
`render_preview`'s `variant`). Rendering is deterministic, so the "task id" is simply the
output digest.

Every animatic carries its caption and tag burned in, but a chained shot must start from
the picture, not from the previous shot's caption: the same ffmpeg run writes the clip's
first and last frames clean, and they are recorded in the store as the video's derived
`first_frame` and `last_frame` — exactly where the executor looks before extracting a
frame itself (`ProjectIO.frame`).
"""

from __future__ import annotations

import asyncio
import os
import tempfile
from typing import Any

from storyc.backends.protocol import (
    BackendError,
    BackendOptions,
    FetchFailed,
    Finished,
    Job,
    LocalInput,
    NotSent,
    RequestCallback,
    SendGuard,
    StatusCallback,
)
from storyc.media import ffmpeg as media
from storyc.media import info as mediainfo

ASPECTS = {"16:9": 16 / 9, "9:16": 9 / 16, "1:1": 1.0}
DEFAULT_DURATION = 5.0


def _nearest_aspect(width: int | None, height: int | None) -> str:
    if not width or not height:
        return "16:9"
    ratio = width / height
    return min(ASPECTS, key=lambda a: abs(ASPECTS[a] - ratio))


def _one(job: Job, path: str) -> LocalInput | None:
    return job.inputs.get(path)


def preview_arguments(job: Job) -> dict[str, Any]:
    """The keyword arguments for `media.render_preview` (without the output path)."""
    inp = job.request.input
    first = _one(job, "image")
    end = _one(job, "end_image")
    refs = [
        job.inputs[p].path
        for p in sorted(job.inputs, key=_list_order)
        if p.startswith("reference_images[")
    ]
    video = _one(job, "reference_video")
    is_base = video is not None and inp.get("reference_video_type") == "base"
    aspect = inp.get("aspect_ratio")
    if aspect not in ASPECTS:
        info = mediainfo.probe(first.path) if first else None
        aspect = _nearest_aspect(info.width if info else None, info.height if info else None)
    duration: float = float(job.request.duration or inp.get("duration") or DEFAULT_DURATION)
    if is_base and video is not None:
        info = mediainfo.probe(video.path)
        if info is not None and info.duration:
            duration = float(info.duration)
    return {
        "duration": duration,
        "aspect": aspect,
        "caption": job.request.prompt_as_written or job.request.prompt,
        "title": job.scene if job.request.takes <= 1 else f"{job.scene} · take {job.take}",
        "variant": max(0, job.take - 1),
        "first_frame": first.path if first else None,
        "end_frame": end.path if end else None,
        "reference_images": tuple(refs),
        "base_video": video.path if is_base and video else None,
        "style_video": video.path if video is not None and not is_base else None,
        # v1 says it explicitly; v2 dropped the field and the provider keeps the sound
        "keep_sound": bool(inp.get("keep_original_sound", True)) if is_base else False,
    }


def _list_order(path: str) -> tuple[int, str]:
    if "[" in path and path.endswith("]"):
        try:
            return int(path[path.rindex("[") + 1 : -1]), path
        except ValueError:
            pass
    return 0, path


class PreviewBackend:
    name = "preview"
    paid = False

    def __init__(self, options: BackendOptions) -> None:
        self.options = options
        self.store = options.store
        self.tmp_dir = options.root / ".storyc" / "tmp"
        self._durations: dict[str, float] = {}

    async def open(self) -> None:
        self.tmp_dir.mkdir(parents=True, exist_ok=True)

    async def close(self) -> None:
        return None

    def _render(self, job: Job) -> tuple[str, float]:
        args = preview_arguments(job)
        with tempfile.TemporaryDirectory(prefix=f"{job.scene[:40]}.", dir=self.tmp_dir) as tmp:
            out = os.path.join(tmp, "preview.mp4")
            clean = media.CleanFrames(os.path.join(tmp, "first.png"), os.path.join(tmp, "last.png"))
            try:
                media.render_preview(out, clean=clean, **args)
                digest = self.store.put_file(out)
                # the video first, then its clean frames: a frame record never names a
                # video that is not in the store
                for what, path in (("first_frame", clean.first), ("last_frame", clean.last)):
                    self.store.record_derived(digest, what, self.store.put_file(path))
            except media.MediaError as exc:
                raise BackendError(f"preview render failed: {exc}") from None
        return digest, float(args["duration"])

    async def prepare(self, job: Job) -> None:
        return None  # inputs are local files already

    async def submit(
        self,
        job: Job,
        prepared: Any = None,
        *,
        may_send: SendGuard | None = None,
        on_send: RequestCallback | None = None,
    ) -> str:
        if may_send is not None and not may_send():
            raise NotSent("not started: the build was stopped")
        if on_send is not None:
            on_send(job.request.input)
        digest, duration = await asyncio.to_thread(self._render, job)
        self._durations[digest] = duration
        return f"preview:{digest}"

    async def follow(
        self, job: Job, task_id: str, on_status: StatusCallback, *, wait: bool = True
    ) -> Finished:
        digest = task_id.removeprefix("preview:")
        return Finished(
            digest=digest, task_id=None, url=None, billed=None, duration=self._durations.get(digest)
        )

    async def refetch(self, url: str, expected: str) -> str:
        raise FetchFailed(
            "previews have no URL to fetch; rendering one again is free", permanent=True
        )
