"""Media facts read from file headers: kind, dimensions, duration, frame rate.

Stage: used by the resolver (to validate inputs) and by the planner (the real length
of a video to edit). In: a path. Out: `MediaInfo` or None when the header is not
understood. I/O: reads only the bytes of the header it needs, never the whole file.

PNG, JPEG, WebP and GIF images; MP4/MOV (ISO BMFF) videos. Pure Python, no ffmpeg:
checking a 10,000-scene project must not start 10,000 processes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class MediaInfo:
    kind: Literal["image", "video"]
    format: str  # "png", "jpeg", "webp", "gif", "mp4", "mov"
    width: int | None = None
    height: int | None = None
    duration: float | None = None  # seconds, videos only
    fps: float | None = None  # videos only
    has_audio: bool | None = None  # videos only
