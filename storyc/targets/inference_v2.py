"""Target "inference/video-o1": the current (v2) input schema of inference.sh `klingai/video-o1`.

Stage: lower. In: a resolved scene. Out: a `Request` with the v2 body. No I/O.

v2 differs from v1: `resolution` (720p|1080p) replaces `mode` (std|pro), there is no
`keep_original_sound`, and prompts reference inputs as `@image_N` / `@video_1`, with
reference images numbered from 1 whether or not a first frame is set.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from storyc.base.diagnostics import Diagnostics
from storyc.resolve.model import Project
from storyc.targets import register
from storyc.targets.inference import InferenceTarget, InputBase, Lowering

RESOLUTION = {"std": "720p", "pro": "1080p"}


class InputV2(InputBase):
    """The v2 `input` object, fields in the schema's order."""

    resolution: Literal["720p", "1080p"] | None = None
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = None
    duration: int | None = Field(default=None, ge=3, le=10)
    watermark: bool | None = None


class InferenceV2(InferenceTarget):
    name = "inference/video-o1"
    schema = "v2"
    description = "inference.sh klingai/video-o1, current schema (resolution, @image_N)"
    frames_numbered = False
    input_model = InputV2

    def image_placeholder(self, n: int) -> str:
        return f"@image_{n}"

    def video_placeholder(self) -> str:
        return "@video_1"

    def extra_fields(self, low: Lowering, project: Project, diags: Diagnostics) -> dict[str, Any]:
        video = low.scene.video
        if video is not None and video.keep_sound is not None:
            diags.warning(
                "W233",
                f"keep_sound is not supported by {self.name} and is dropped",
                video.keep_sound.span,
                hint='use target "inference/video-o1@v1" to control the sound',
            )
            low.notes.append("keep_sound dropped: the v2 schema has no keep_original_sound")
        return {}

    def quality_fields(self, low: Lowering) -> dict[str, Any]:
        quality = low.scene.quality.value
        low.notes.append(f"quality {quality} → resolution {RESOLUTION[quality]}")
        return {"resolution": RESOLUTION[quality]}


register(InferenceV2())
