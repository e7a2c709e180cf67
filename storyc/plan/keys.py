"""Render keys: one content digest per scene and take, and the inputs behind it.

Stage: plan. In: a lowered `Request`, the backend name, the take number, and the
digests of the upstream outputs the request uses. Out: the key material (a dict),
its digest `"sha256:…"`, and a readable summary of the inputs (`key_inputs`) that the
lock file keeps so `storyc why` can explain a change field by field. Pure; no I/O.

The material is canonical JSON (sorted keys, no whitespace, UTF-8, `ensure_ascii`
off) of: the key-schema version, the backend, the target and its schema label, the
app, the request's input with every file replaced by its content digest and every
scene output by the digest of that scene's picked video, and the take number.
Comments, formatting, declaration order, renaming a file without changing its bytes,
and edits to unrelated scenes therefore never change a key; any change to what the
model would receive always does. The backend is part of it so that a free preview
animatic can never stand in for a paid render. A render made by a provider other than
inference.sh (the loopback provider of a rehearsal, say) also names that provider's
origin (`provider`), so it never stands in for a real one; renders of the default
provider name none, so their keys are what they always were. A preview's key also holds
what only the preview shows: the scene's name and the prompt as written (its tag and
caption), so that a renamed scene or mention gets a preview that says so; paid keys
never hold them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from storyc.base.hashing import canonical_json, digest_bytes
from storyc.targets.request import FILE_MARKER, SCENE_MARKER, Request, iter_markers

# Bump when the meaning of the material changes; every key changes with it.
KEY_SCHEMA = 1
PREVIEW = "preview"  # the backend whose pictures show the scene's name and written prompt
DEFAULT_PROVIDER = "the default provider"  # how `why` names the provider no key names


class UpstreamUnknown(LookupError):
    """The request uses the output of a scene that has no output yet."""

    def __init__(self, scene: str) -> None:
        super().__init__(f"the output of scene {scene!r} is not known yet")
        self.scene = scene


def _replace(value: Any, upstream: Mapping[str, str]) -> Any:
    if isinstance(value, dict):
        if FILE_MARKER in value:
            return value["digest"]
        if SCENE_MARKER in value:
            scene = value[SCENE_MARKER]
            if scene not in upstream:
                raise UpstreamUnknown(scene)
            out: dict[str, Any] = {
                "upstream": upstream[scene],
                "output": value.get("output", "video"),
            }
            if value.get("at") is not None:
                out["at"] = value["at"]
            return out
        return {k: _replace(v, upstream) for k, v in value.items()}
    if isinstance(value, list):
        return [_replace(v, upstream) for v in value]
    return value


def key_material(
    request: Request,
    *,
    backend: str,
    take: int,
    upstream: Mapping[str, str],
    provider: str | None = None,
) -> dict[str, Any]:
    """The dict whose canonical JSON is hashed. `provider`: the origin of a provider other
    than the default one (`storyc.plan.address.key_provider`). Raises
    `UpstreamUnknown`."""
    if take < 1:
        raise ValueError("takes are numbered from 1")
    material = {
        "key_schema": KEY_SCHEMA,
        "backend": backend,
        "target": request.target,
        "schema": request.schema,
        "app": request.app,
        "input": _replace(request.input, upstream),
        "take": take,
    }
    if provider is not None and backend != PREVIEW:
        material["provider"] = provider
    if backend == PREVIEW:
        material["shown"] = {"scene": request.scene, "caption": request.prompt_as_written}
    return material


def request_key(
    request: Request,
    *,
    backend: str,
    take: int,
    upstream: Mapping[str, str],
    provider: str | None = None,
) -> str:
    material = key_material(
        request, backend=backend, take=take, upstream=upstream, provider=provider
    )
    return digest_bytes(canonical_json(material))


def scene_keys(
    request: Request,
    *,
    backend: str,
    upstream: Mapping[str, str],
    provider: str | None = None,
) -> dict[int, str]:
    """Keys of every take of the scene, 1-based."""
    return {
        t: request_key(request, backend=backend, take=t, upstream=upstream, provider=provider)
        for t in range(1, max(1, request.takes) + 1)
    }


def _top_field(path: str) -> str:
    return path.split(".", 1)[0].split("[", 1)[0]


def key_inputs(request: Request, upstream: Mapping[str, str]) -> dict[str, Any]:
    """What `why` compares: the prompt, each media input, and the other settings.

    `inputs` maps the JSON path of each file slot ("image", "reference_images[1]") to
    {"path", "digest"} for a local file or {"scene", "output", ["at"], ["upstream"]}
    for another scene's output. `settings` holds every other input field except None
    values (the lock file's TOML has no null). Never holds absolute paths.
    """
    inputs: dict[str, dict[str, Any]] = {}
    media_fields: set[str] = set()
    for path, marker in iter_markers(request.input):
        media_fields.add(_top_field(path))
        if FILE_MARKER in marker:
            inputs[path] = {"path": str(marker[FILE_MARKER]), "digest": str(marker["digest"])}
        else:
            scene = str(marker[SCENE_MARKER])
            entry: dict[str, Any] = {"scene": scene, "output": str(marker.get("output", "video"))}
            if marker.get("at") is not None:
                entry["at"] = marker["at"]
            if scene in upstream:
                entry["upstream"] = upstream[scene]
            inputs[path] = entry
    for name in media_fields:
        value = request.input.get(name)
        if isinstance(value, list):  # URLs mixed with files in one list slot
            for i, item in enumerate(value):
                if isinstance(item, str):
                    inputs[f"{name}[{i}]"] = {"url": item}
    settings = {
        k: v
        for k, v in sorted(request.input.items())
        if k != "prompt" and k not in media_fields and v is not None
    }
    return {"prompt": request.prompt, "inputs": inputs, "settings": settings}
