"""Task status numbering and the `Task` value the client hands back.

Stage: execute (provider protocol). In: task JSON from inference.sh (full tasks, the
cheap status answer, partial stream updates). Out: `Task` with a normalized integer
status in the current numbering. No I/O.

The provider has used two numberings. Current: ... 7 running, 8 cancelling,
9 uploading, 10 completed, 11 failed, 12 cancelled, 13 rejected. Legacy (old SDKs and
docs): 7 running, 8 uploading, 9 completed, 10 failed, 11 cancelled. An integer is read
in the current numbering unless the caller says `legacy=True`; a string is read by
name, so "completed" means the same in both. Status 9 is *not* terminal.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import IntEnum
from typing import Any


class Status(IntEnum):
    UNKNOWN = 0
    RECEIVED = 1
    QUEUED = 2
    DISPATCHED = 3
    PREPARING = 4
    SERVING = 5
    SETTING_UP = 6
    RUNNING = 7
    CANCELLING = 8
    UPLOADING = 9
    COMPLETED = 10
    FAILED = 11
    CANCELLED = 12
    REJECTED = 13


TERMINAL = frozenset({Status.COMPLETED, Status.FAILED, Status.CANCELLED, Status.REJECTED})

_LEGACY_INTS = {
    7: Status.RUNNING,
    8: Status.UPLOADING,
    9: Status.COMPLETED,
    10: Status.FAILED,
    11: Status.CANCELLED,
}
_ALIASES = {
    "pending": Status.QUEUED,
    "in_progress": Status.RUNNING,
    "processing": Status.RUNNING,
    "succeeded": Status.COMPLETED,
    "success": Status.COMPLETED,
    "done": Status.COMPLETED,
    "error": Status.FAILED,
    "canceled": Status.CANCELLED,
    "canceling": Status.CANCELLING,
}


def parse_status(value: Any, *, legacy: bool = False) -> Status:
    """Normalize an int, digit string or name (any case, `TASK_STATUS_` prefix) to `Status`."""
    if isinstance(value, bool) or value is None:
        return Status.UNKNOWN
    if isinstance(value, str):
        text = value.strip().lower()
        if text.lstrip("-").isdigit():
            return parse_status(int(text), legacy=legacy)
        text = text.removeprefix("task_status_").replace("-", "_").replace(" ", "_")
        try:
            return Status[text.upper()]
        except KeyError:
            return _ALIASES.get(text, Status.UNKNOWN)
    if isinstance(value, int):
        if legacy and value in _LEGACY_INTS:
            return _LEGACY_INTS[value]
        try:
            return Status(value)
        except ValueError:
            return Status.UNKNOWN
    return Status.UNKNOWN


def video_url(output: Any) -> str | None:
    """The output video's URL: `video` as a URL string, or an object with `uri`/`url`."""
    if not isinstance(output, dict):
        return None
    video = output.get("video")
    if isinstance(video, str) and video:
        return video
    if isinstance(video, dict):
        for key in ("uri", "url"):
            value = video.get(key)
            if isinstance(value, str) and value:
                return value
    return None


@dataclass
class Task:
    """One provider task as last seen. `raw` is the merged JSON; `status` is normalized."""

    id: str
    status: Status
    raw: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_json(cls, data: dict[str, Any], *, legacy: bool = False) -> Task:
        return cls(
            str(data.get("id", "")), parse_status(data.get("status"), legacy=legacy), dict(data)
        )

    def merge(
        self, partial: dict[str, Any], fields: list[str] | None = None, *, legacy: bool = False
    ) -> bool:
        """Merge a partial update (only `fields` if given). True when the status changed."""
        keys = fields if fields else list(partial)
        for key in keys:
            if key in partial:
                self.raw[key] = partial[key]
        before = self.status
        if "status" in partial:
            self.status = parse_status(partial["status"], legacy=legacy)
        return self.status != before

    @property
    def terminal(self) -> bool:
        return self.status in TERMINAL

    @property
    def status_name(self) -> str:
        return self.status.name.lower()

    @property
    def output(self) -> dict[str, Any] | None:
        out = self.raw.get("output")
        return out if isinstance(out, dict) else None

    @property
    def error(self) -> str | None:
        err = self.raw.get("error")
        return str(err) if err else None

    @property
    def video_url(self) -> str | None:
        return video_url(self.output)

    @property
    def input(self) -> dict[str, Any] | None:
        value = self.raw.get("input")
        return value if isinstance(value, dict) else None
