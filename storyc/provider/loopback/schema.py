"""The `klingai/video-o1` input schemas (v1 and v2) as the loopback provider checks them.

Stage: tooling (the offline provider). In: the `input` object of `POST /apps/run`.
Out: a validated model, or the message a 400 answer carries. No I/O.

Field by field as in provider-facts §2. Stricter than the real app in one way, on
purpose: unknown fields are refused (`extra="forbid"`), so a v1 payload sent to a v2
server (or the reverse) fails loudly instead of being silently ignored. Rules the
real app enforces only at run time (an end frame without a first frame) are not
schema errors here either: the task is accepted and then fails, as upstream.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

APP = "klingai/video-o1"
FileRef = str | dict[str, Any]


def file_uri(value: Any) -> str | None:
    """A file input's URI: the string itself, or `uri`/`url` of an object."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict):
        for key in ("uri", "url"):
            if isinstance(value.get(key), str):
                return str(value[key])
    return None


class _Common(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=False)

    prompt: str = Field(min_length=1)
    image: FileRef | None = None
    end_image: FileRef | None = None
    reference_images: list[FileRef] | None = Field(default=None, max_length=7)
    reference_video: FileRef | None = None
    reference_video_type: str | None = None
    aspect_ratio: Literal["16:9", "9:16", "1:1"] = "16:9"
    duration: int = Field(default=5, ge=3, le=10)
    watermark: bool = False

    @field_validator("image", "end_image", "reference_video")
    @classmethod
    def _one_file(cls, v: Any) -> Any:
        if v is not None and file_uri(v) is None:
            raise ValueError("expected a file URL or an object with `uri`")
        return v

    @field_validator("reference_images")
    @classmethod
    def _many_files(cls, v: Any) -> Any:
        for item in v or []:
            if file_uri(item) is None:
                raise ValueError("expected file URLs or objects with `uri`")
        return v

    def files(self) -> dict[str, str]:
        """Every file input as {field path: uri}."""
        out: dict[str, str] = {}
        for name in ("image", "end_image", "reference_video"):
            uri = file_uri(getattr(self, name))
            if uri:
                out[name] = uri
        for i, item in enumerate(self.reference_images or []):
            uri = file_uri(item)
            if uri:
                out[f"reference_images[{i}]"] = uri
        return out

    @property
    def is_base_edit(self) -> bool:
        return self.reference_video is not None and self.reference_video_type == "base"

    @property
    def keep_sound(self) -> bool:
        return True


class InputV1(_Common):
    keep_original_sound: bool = True
    mode: Literal["std", "pro"] = "pro"

    @property
    def keep_sound(self) -> bool:
        return self.keep_original_sound


class InputV2(_Common):
    resolution: Literal["720p", "1080p"] = "1080p"


SCHEMAS: dict[str, type[_Common]] = {"v1": InputV1, "v2": InputV2}


def _loc(loc: tuple[Any, ...]) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "input"


def validate_input(schema: str, data: Any) -> tuple[_Common | None, str | None]:
    """(model, None) when valid, else (None, a problem `detail` naming each bad field)."""
    if not isinstance(data, dict):
        return None, "input: expected an object"
    try:
        return SCHEMAS[schema].model_validate(data), None
    except ValidationError as exc:
        problems = []
        for err in exc.errors(include_url=False):
            msg = str(err["msg"])
            if err["type"] == "extra_forbidden":
                msg = f"unknown field for schema {schema} of {APP}"
            problems.append(f"{_loc(tuple(err['loc']))}: {msg}")
        return None, "input validation failed: " + "; ".join(problems)
