"""Target "inference/video-o1@v1": the original (seed page) input schema of `klingai/video-o1`.

Stage: lower. In: a resolved scene. Out: a `Request` with the v1 body. No I/O.

v1 has `mode` (std|pro) for quality and `keep_original_sound`, and prompts reference
inputs as `<<<image_N>>>` / `<<<video_1>>>`. Images are numbered by position in the list
the v1 app builds: [first frame?, end frame?, reference images...]. v1 also knows
`<<<element_N>>>`, but the app has no elements field, so storyc sends elements as
reference images and mentions them by their frontal image's number.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from storyc.base.diagnostics import Diagnostics
from storyc.resolve.model import Project
from storyc.targets import register
from storyc.targets.inference import InferenceTarget, InputBase, Lowering


class InputV1(InputBase):
    """The v1 `input` object, fields in the schema's order."""

    keep_original_sound: bool | None = None
    mode: Literal["std", "pro"] | None = None
    aspect_ratio: Literal["16:9", "9:16", "1:1"] | None = None
    duration: int | None = Field(default=None, ge=3, le=10)
    watermark: bool | None = None


class InferenceV1(InferenceTarget):
    name = "inference/video-o1@v1"
    schema = "v1"
    description = "inference.sh klingai/video-o1, original schema (mode, <<<image_N>>>)"
    frames_numbered = True
    input_model = InputV1

    def image_placeholder(self, n: int) -> str:
        return f"<<<image_{n}>>>"

    def video_placeholder(self) -> str:
        return "<<<video_1>>>"

    def extra_fields(self, low: Lowering, project: Project, diags: Diagnostics) -> dict[str, Any]:
        video = low.scene.video
        # keep_original_sound only means something with a reference video; the model
        # guarantees keep_sound is attached to one, so send it whenever the story set it.
        if video is not None and video.keep_sound is not None:
            return {"keep_original_sound": bool(video.keep_sound.value)}
        return {}

    def quality_fields(self, low: Lowering) -> dict[str, Any]:
        return {"mode": low.scene.quality.value}


register(InferenceV1())
