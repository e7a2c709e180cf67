"""Where each clip of a cut sits, to the frame: trims and crossfades in pictures.

Stage: film (pure). In: a `CutSpec`, each clip's length and the cut's frame rate. Out:
`Placed` clips (in point, pictures played, crossfade pictures) and the running time. No I/O.

A crossfade of `d` frames overlaps the last `d` pictures of one clip with the first `d` of
the next, so the cut lasts the sum of its clips' pictures less every crossfade.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from fractions import Fraction

from storyc.film.spec import ClipSpec, CutSpec

# An out point up to this far past a clip's end is rounding (containers round lengths).
SLACK_FRAMES = 2


@dataclass(frozen=True)
class Placed:
    scene: str
    start: Fraction  # in point, seconds of the clip's video
    frames: int  # pictures played, crossfades included
    fade: int  # pictures shared with the clip before (a crossfade into this one)
    at: int  # the cut's frame where this clip's first picture shows
    clamped: bool = False  # the out point was past the clip's end: played to its end

    @property
    def body(self) -> int:
        """Pictures shown by this clip alone (before any crossfade out of it is taken)."""
        return self.frames - self.fade


def place(
    clips: Sequence[ClipSpec], lengths: Sequence[Fraction | None], fps: Fraction
) -> list[Placed]:
    """Each clip in the cut's frames. `lengths[i]`: clip i's length in seconds (None:
    unknown; the story's own length is used, else the out point, else 5 s)."""
    out: list[Placed] = []
    at = 0
    for clip, length in zip(clips, lengths, strict=True):
        if length is None:
            known = clip.length if clip.length is not None else clip.end
            length = Fraction(known if known is not None else 5.0)
        start = Fraction(clip.start or 0.0)
        end = Fraction(clip.end) if clip.end is not None else length
        clamped = end > length + SLACK_FRAMES / fps
        end = min(end, length)
        frames = max(1, round((end - start) * fps))
        fade = round(Fraction(clip.fade) * fps) if out else 0
        fade = min(fade, frames, out[-1].frames if out else 0)
        at = at - fade
        out.append(Placed(clip.scene, start, frames, fade, at, clamped))
        at += frames
    return out


def total_frames(placed: Sequence[Placed]) -> int:
    return sum(p.frames - p.fade for p in placed)


def running_time(spec: CutSpec) -> float | None:
    """The cut's length in seconds from the story alone (None when a length is unknown)."""
    total = 0.0
    for clip in spec.clips:
        end = clip.end if clip.end is not None else clip.length
        if end is None:
            return None
        total += end - (clip.start or 0.0) - clip.fade
    return total
