"""Compiled requests: one scene lowered for one target, ready to key, price and send.

Stage: output of a target's `lower` (see storyc/targets), input of the planner and
executor. Pure data.

`body` is exactly the JSON the provider's `POST /apps/run` takes,
`{"app": ..., "input": {...}}`, except that file slots hold markers the executor
replaces at build time:

- a local file:            {"$file": "assets/mei.png", "digest": "sha256:..."}
- another scene's output:  {"$scene": "arrival", "output": "last_frame"}
                           ("output" is "video", "first_frame", "last_frame" or
                            "frame", the last with "at": seconds)
- an https:// URL:         the URL string itself (passed through, never uploaded)
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field, fields
from functools import cached_property
from operator import attrgetter
from typing import Any, Literal

FILE_MARKER = "$file"
SCENE_MARKER = "$scene"


def is_file_marker(value: object) -> bool:
    return isinstance(value, dict) and FILE_MARKER in value


def is_scene_marker(value: object) -> bool:
    return isinstance(value, dict) and SCENE_MARKER in value


def iter_markers(value: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield (json-path, marker) for every file or scene marker inside `value`."""
    if isinstance(value, dict):
        if FILE_MARKER in value or SCENE_MARKER in value:
            yield path, value
            return
        for k in sorted(value):
            yield from iter_markers(value[k], f"{path}.{k}" if path else k)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from iter_markers(v, f"{path}[{i}]")


@dataclass(frozen=True)
class Request:
    scene: str
    target: str  # target name as registered, e.g. "inference/video-o1"
    schema: str  # target-specific schema label, e.g. "v2"
    app: str  # e.g. "klingai/video-o1"
    body: dict[str, Any]  # {"app": app, "input": {...}} with markers for files
    takes: int
    upstream: tuple[str, ...]  # scenes whose outputs the body uses
    # Facts the planner needs for pricing, independent of the target's field names:
    quality: Literal["std", "pro"]
    duration: int | None  # seconds; None for base editing (length of the input video)
    has_video_input: bool
    mode: str  # "text-to-video", "image-to-video", "start-end-frame", "reference", "edit"
    base_video: dict[str, Any] | None = None  # the marker of the edited video (base mode)
    notes: tuple[str, ...] = field(default=())  # lowering notes shown by `compile`
    # The prompt as the writer wrote it (templated, `@names` not yet placeholders): what a
    # preview's caption shows. Never sent; part of a preview's key only (storyc.plan.keys).
    prompt_as_written: str = ""

    @property
    def input(self) -> dict[str, Any]:
        inp: dict[str, Any] = self.body["input"]
        return inp

    @property
    def prompt(self) -> str:
        return str(self.body["input"].get("prompt", ""))

    def canonical(self) -> str:
        """Every field, in declaration order, as compact JSON (the body's fields in their
        order: the provider's schema order): what `fingerprint` digests, and how
        `storyc.compiler.state` stores a request."""
        return _COMPACT.encode(_VALUES(self))  # tuples are written as JSON arrays too

    @cached_property
    def fingerprint(self) -> str:
        """A digest of everything in the request (the same request from the same storyc
        has the same one): memos of what is computed from a request (render keys) stay
        valid across compilations. Computed once; `storyc.compiler.state` stores it."""
        raw = self.canonical().encode("utf-8", "surrogatepass")
        return "sha256:" + hashlib.sha256(raw).hexdigest()


_FIELDS = tuple(f.name for f in fields(Request))  # in declaration order, as `canonical` writes
_VALUES = attrgetter(*_FIELDS)  # every field's value, as one tuple, in that order
_COMPACT = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False)  # made once, not per call
