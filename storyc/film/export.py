"""A cut handed to an editor: numbered clip files and the timeline as OTIO, EDL, FCP XML.

Stage: film (`storyc export`). In: a `CutSpec`, its `ClipSource`s, its assembled video, the
store. Out: in the folder asked for, real files (never links) named in cut order
(`01_arrival.mp4`, …), the assembled cut (`<cut>.mp4`), `<cut>.otio` built with
OpenTimelineIO, and what its adapter packages write (`<cut>.edl`, `<cut>.xml` for Final Cut
Pro 7 / Premiere / Resolve, `<cut>.fcpxml` for Final Cut Pro X). I/O: copies objects out of
the store; ffmpeg (slates) through `storyc.media.edit`; writes the folder.

The timeline: one video track and one audio track (the same files: a clip's sound is in
its file). Each clip references its exported file with the whole file as its available
range, so the editor has every frame as a handle; its source range is its trim. A
crossfade of d frames is an OTIO dissolve starting at the cut (in offset 0, out offset d):
the outgoing clip's source range ends d frames before its out point and the dissolve plays
those d frames over the first d of the next clip, so the timeline lasts exactly as long as
the assembled cut.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

from storyc.film.assemble import Assembler, frame_settings
from storyc.film.sources import ClipSource
from storyc.film.spec import CutSpec
from storyc.film.timeline import Placed, place
from storyc.media import edit

# (adapter name, file suffix, what it is for)
ADAPTERS = (
    ("cmx_3600", ".edl", "CMX 3600 EDL"),
    ("fcp_xml", ".xml", "Final Cut Pro 7 XML (Premiere, Resolve)"),
    ("fcpx_xml", ".fcpxml", "Final Cut Pro X XML"),
)


class ExportError(Exception):
    """The export cannot be made (one line, for the user)."""


@dataclass
class ExportedClip:
    scene: str
    file: str  # name inside the export folder
    kind: str  # "render", "preview", "slate"
    rate: Fraction  # the file's frame rate
    available: tuple[int, int]  # (first frame, frames) of the whole file
    source: tuple[int, int]  # (first frame, frames) shown on the timeline
    transition_in: int = 0  # frames of dissolve from the clip before (out offset)


@dataclass
class ExportResult:
    folder: str
    clips: list[ExportedClip] = field(default_factory=list)
    files: list[str] = field(default_factory=list)  # every file written, in order
    skipped: list[str] = field(default_factory=list)  # formats not written, and why


def _copy(src: str, dst: Path) -> None:
    """A real copy (never a link), whole or absent."""
    tmp = dst.with_name(f".{dst.name}.{os.getpid()}.tmp")
    try:
        shutil.copyfile(src, tmp)
        os.replace(tmp, dst)
    finally:
        tmp.unlink(missing_ok=True)


def _otio() -> Any:
    try:
        import opentimelineio
    except ImportError:
        raise ExportError(
            "export needs OpenTimelineIO: pip install 'storyc[film]' (opentimelineio and "
            "its EDL and FCP XML adapters)"
        ) from None
    return opentimelineio


def export_cut(
    assembler: Assembler,
    spec: CutSpec,
    sources: Mapping[str, ClipSource],
    cut_digest: str | None,
    folder: Path,
    *,
    say: Callable[[str], None] = print,
) -> ExportResult:
    otio = _otio()
    if not spec.clips:
        raise ExportError(f"cut {spec.name} is empty")
    folder.mkdir(parents=True, exist_ok=True)
    clips = [sources[c.scene] for c in spec.clips]
    facts = {
        c.digest: assembler.facts(c.digest) for c in clips if c.digest is not None
    }  # fmt: skip
    width, height, fps = frame_settings(spec, clips, facts)
    lengths = [Fraction(facts[c.digest].video.duration) if c.digest else None for c in clips]
    placed = place(spec.clips, lengths, fps)
    result = ExportResult(str(folder))
    digits = max(2, len(str(len(clips))))
    for i, (src, p) in enumerate(zip(clips, placed, strict=True), start=1):
        name = f"{i:0{digits}d}_{src.scene}.mp4"
        dst = folder / name
        if src.digest is not None:
            _copy(assembler._path(src.digest), dst)
            v = facts[src.digest].video
            rate = Fraction(v.fps)
            total = v.frames
        else:
            # a slate as long as the scene is meant to be, so the edit keeps its timing
            total = p.frames + round(p.start * fps)
            edit.normalise(
                None,
                dst,
                frames=total,
                width=width,
                height=height,
                fps=fps,
                slate=(src.scene, src.why),
            )
            rate = fps
        result.files.append(name)
        result.clips.append(_exported(src, name, p, rate, fps, total))
    fade_out = [placed[i + 1].fade for i in range(len(placed) - 1)] + [0]
    for i, clip in enumerate(result.clips):
        first, frames = clip.source
        clip.source = (first, frames - _in_rate(fade_out[i], clip.rate, fps))
        clip.transition_in = _in_rate(placed[i].fade, clip.rate, fps) if i else 0
    if cut_digest is not None:
        _copy(assembler._path(cut_digest), folder / f"{spec.name}.mp4")
        result.files.append(f"{spec.name}.mp4")
    timeline = timeline_of(otio, spec.name, result.clips, folder, fps)
    otio_name = f"{spec.name}.otio"
    otio.adapters.write_to_file(timeline, str(folder / otio_name))
    result.files.append(otio_name)
    available = set(otio.adapters.available_adapter_names())
    for adapter, suffix, what in ADAPTERS:
        name = f"{spec.name}{suffix}"
        if adapter not in available:
            result.skipped.append(f"{name}: the {what} adapter is not installed")
            continue
        tl = timeline
        if adapter == "cmx_3600":  # an EDL carries one video track
            tl = timeline_of(otio, spec.name, result.clips, folder, fps, audio=False)
        try:
            otio.adapters.write_to_file(tl, str(folder / name), adapter_name=adapter)
        except Exception as exc:  # noqa: BLE001 - an adapter's failure is one skipped format
            line = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            result.skipped.append(f"{name}: the {what} adapter failed: {line}")
            continue
        result.files.append(name)
    for note in result.skipped:
        say(f"warning: {note}")
    return result


def _in_rate(frames: int, rate: Fraction, fps: Fraction) -> int:
    return frames if rate == fps else round(Fraction(frames) / fps * rate)


def _exported(
    src: ClipSource, name: str, p: Placed, rate: Fraction, fps: Fraction, total: int
) -> ExportedClip:
    first = round(p.start * rate)
    frames = _in_rate(p.frames, rate, fps)
    return ExportedClip(
        src.scene, name, src.kind, rate, (0, total), (first, min(frames, total - first))
    )


def timeline_of(
    otio: Any,
    name: str,
    clips: Sequence[ExportedClip],
    folder: Path,
    fps: Fraction,
    *,
    audio: bool = True,
) -> Any:
    """The OTIO timeline of exported clips (see the module's docstring)."""

    def rt(value: int, rate: Fraction) -> Any:
        return otio.opentime.RationalTime(value, float(rate))

    tr = otio.opentime.TimeRange
    timeline = otio.schema.Timeline(name=name, global_start_time=rt(0, fps))
    kinds = [otio.schema.TrackKind.Video] + ([otio.schema.TrackKind.Audio] if audio else [])
    for kind in kinds:
        track = otio.schema.Track(name="V1" if kind == otio.schema.TrackKind.Video else "A1")
        track.kind = kind
        for clip in clips:
            if clip.transition_in:
                track.append(
                    otio.schema.Transition(
                        name="crossfade",
                        transition_type=otio.schema.TransitionTypes.SMPTE_Dissolve,
                        in_offset=rt(0, clip.rate),
                        out_offset=rt(clip.transition_in, clip.rate),
                    )
                )
            ref = otio.schema.ExternalReference(
                target_url=(folder / clip.file).resolve().as_uri(),
                available_range=tr(rt(clip.available[0], clip.rate), rt(clip.available[1], clip.rate)),
            )  # fmt: skip
            track.append(
                otio.schema.Clip(
                    name=clip.scene,
                    media_reference=ref,
                    source_range=tr(rt(clip.source[0], clip.rate), rt(clip.source[1], clip.rate)),
                    metadata={"storyc": {"scene": clip.scene, "source": clip.kind}},
                )
            )
        timeline.tracks.append(track)
    return timeline
