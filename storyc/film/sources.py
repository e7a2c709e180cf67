"""Which video stands in for each scene of a cut: its render, its preview, or a slate.

Stage: film. In: the scenes' picked outputs for the backend being built, the requests
(to find previews by their keys), the store, the lock file. Out: a `ClipSource` per scene.
I/O: reads render records and verifies objects in the store; nothing is written.

The cut always plays: a scene with no output for the backend asked for appears as its
preview, when one is in the store (a paid cut before every scene is paid for), or else as a
slate that names the scene and says why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

from storyc.plan import keys
from storyc.state.lockfile import LockFile
from storyc.state.store import Store
from storyc.targets.request import Request

Kind = Literal["render", "preview", "slate"]


@dataclass(frozen=True)
class ClipSource:
    scene: str
    kind: Kind
    digest: str | None  # the video's object (None for a slate)
    why: str = ""  # for a preview or slate: what is missing

    def identity(self) -> list[str]:
        """What the cut's key holds of this clip: the video, or what the slate says."""
        return [self.kind, self.digest or self.why]


def preview_outputs(
    requests: Mapping[str, Request], order: Sequence[str], store: Store, lock: LockFile
) -> dict[str, str]:
    """Scene -> the output of its preview render in the store, for the requests as they
    are now (keys with backend "preview", upstream previews chained in order)."""
    found: dict[str, str] = {}
    for scene in order:
        req = requests.get(scene)
        if req is None or any(u not in found for u in req.upstream):
            continue
        entry = lock.previews.get(scene)  # previews have their own tables
        take = entry.picked if entry is not None else 1
        take = take if 1 <= take <= max(1, req.takes) else 1
        upstream = {u: found[u] for u in req.upstream}
        rec = store.lookup_render(
            keys.request_key(req, backend="preview", take=take, upstream=upstream)
        )
        if rec is not None and store.has(rec.output):
            found[scene] = rec.output
    return found


def choose(
    scenes: Sequence[str],
    picked: Mapping[str, str],
    *,
    backend: str,
    previews: Mapping[str, str],
    why: Mapping[str, str],
) -> dict[str, ClipSource]:
    """For each scene: `picked` (outputs for `backend`), else its preview, else a slate
    saying `why[scene]` (or that it has no render yet)."""
    out: dict[str, ClipSource] = {}
    for scene in scenes:
        digest = picked.get(scene)
        reason = why.get(scene) or "no render yet"
        if digest is not None:
            out[scene] = ClipSource(scene, "render", digest)
        elif backend != "preview" and scene in previews:
            out[scene] = ClipSource(scene, "preview", previews[scene], f"no {backend} render")
        else:
            out[scene] = ClipSource(scene, "slate", None, reason)
    return out
