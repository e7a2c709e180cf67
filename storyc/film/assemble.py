"""A cut's MP4: the clips joined by stream copy, or normalised once and then joined.

Stage: film. In: a `CutSpec`, a `ClipSource` per scene, the store. Out: the cut's object in
the store, a record keyed by what made it, and `renders/<cut>.mp4` linked to it; a
`CutOutcome` that says what happened. I/O: ffmpeg (through `storyc.media.edit`), the store,
`renders/`.

Content-addressed like scenes: the key is the digest of the cut's definition (clips, trims,
crossfades, aspect), the identity of every clip's video (or what its slate says) and
`FILM_VERSION` (the assembly settings: encoders, sound format). A second build finds the
record and assembles nothing; another take or a re-rendered scene changes only the keys of
the cuts that use it. Every intermediate is cached in the store too, by what made it:
a clip's facts, its normalised form, each crossfade.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Literal

from storyc.base.fsio import replace_link
from storyc.base.hashing import canonical_json, digest_bytes
from storyc.film.sources import ClipSource
from storyc.film.spec import CutSpec
from storyc.film.timeline import place, total_frames
from storyc.media import edit
from storyc.media.ffmpeg import MediaError
from storyc.state.store import RenderRecord, Store

# The assembly settings: bump when anything that changes the output bytes changes
# (encoders, their settings, the sound format, the timeline rules).
FILM_VERSION = 2
RENDERS_DIR = "renders"
DEFAULT_FPS = Fraction(24)
SLATE_HEIGHT = 360
MAX_HEIGHT = 2160
RATIOS = {"16:9": Fraction(16, 9), "9:16": Fraction(9, 16), "1:1": Fraction(1)}

State = Literal["assembled", "up to date", "skipped", "failed"]
Method = Literal["stream copy", "normalised", ""]


@dataclass
class CutOutcome:
    name: str
    state: State
    path: str = ""  # renders/<cut>.mp4, project-relative
    digest: str | None = None
    seconds: float | None = None
    frames: int | None = None
    method: Method = ""
    sources: list[ClipSource] = field(default_factory=list)
    error: str = ""
    clamped: list[str] = field(default_factory=list)  # scenes whose out point was past the end

    @property
    def stand_ins(self) -> list[ClipSource]:
        return [s for s in self.sources if s.kind != "render"]


def cut_key(spec: CutSpec, sources: Sequence[ClipSource]) -> str:
    return digest_bytes(
        canonical_json(
            {
                "film": FILM_VERSION,
                "cut": spec.definition(),
                "clips": [s.identity() for s in sources],
            }
        )
    )


class Assembler:
    """Assembles cuts of one project into its store; `jobs` ffmpeg processes at once."""

    def __init__(self, root: Path, store: Store, *, jobs: int = 2) -> None:
        self.root = root
        self.store = store
        self.jobs = max(1, jobs)
        self.tmp = store.root / "tmp"

    # -- the store ------------------------------------------------------------------------
    def _put(self, write: Callable[[str], None], suffix: str) -> str:
        self.tmp.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix="film-", suffix=suffix, dir=self.tmp)
        os.close(fd)
        try:
            write(tmp)
            return self.store.put_file(tmp)
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _derived(self, source: str, what: str, make: Callable[[str], None], suffix: str) -> str:
        found = self.store.lookup_derived(source, what)
        if found is None:
            found = self._put(make, suffix)
            self.store.record_derived(source, what, found)
        return found

    def _path(self, digest: str) -> str:
        path = self.store.get(digest)
        if path is None:
            raise MediaError(f"object {digest[:19]}… is missing from the store")
        return str(path)

    def facts(self, digest: str) -> edit.ClipFacts:
        """A stored video's facts, read once and kept in the store."""
        return self.facts_of([digest])[digest]

    def facts_of(self, digests: Sequence[str]) -> dict[str, edit.ClipFacts]:
        """Facts of stored videos: those kept in the store, the others read in one go."""
        what = "film/facts/1"
        found: dict[str, edit.ClipFacts] = {}
        for digest in dict.fromkeys(digests):
            kept = self.store.lookup_derived(digest, what)
            if kept is not None:
                try:
                    raw = json.loads(Path(self._path(kept)).read_bytes())
                    facts = edit.ClipFacts.from_json(raw)
                except (OSError, ValueError):
                    facts = None
                if facts is not None:
                    found[digest] = facts
        todo = [d for d in dict.fromkeys(digests) if d not in found]
        if todo:
            chunks = [todo[i :: self.jobs] for i in range(min(self.jobs, len(todo)))]
            with ThreadPoolExecutor(len(chunks)) as pool:
                read = pool.map(lambda c: edit.clips_facts([self._path(d) for d in c]), chunks)
                for chunk, facts_list in zip(chunks, read, strict=True):
                    for digest, facts in zip(chunk, facts_list, strict=True):
                        blob = self.store.put_bytes(canonical_json(facts.to_json()))
                        self.store.record_derived(digest, what, blob)
                        found[digest] = facts
        return found

    def link(self, name: str, digest: str) -> str:
        out = self.root / RENDERS_DIR
        out.mkdir(exist_ok=True)
        rel = os.path.relpath(self.store.object_file(digest), out)
        replace_link(rel, str(out / f"{name}.mp4"))
        return f"{RENDERS_DIR}/{name}.mp4"

    # -- a cut ----------------------------------------------------------------------------
    def assemble(self, spec: CutSpec, sources: Mapping[str, ClipSource]) -> CutOutcome:
        clips = [sources[c.scene] for c in spec.clips]
        outcome = CutOutcome(spec.name, "skipped", sources=clips)
        if spec.errors:
            outcome.error = "the cut has errors (" + ", ".join(spec.errors[:3]) + ")"
            return outcome
        if not spec.clips:
            outcome.error = "the cut is empty"
            return outcome
        key = cut_key(spec, clips)
        rec = self.store.lookup_render(key)
        if rec is not None and self.store.has(rec.output):
            outcome.state = "up to date"
            outcome.digest = rec.output
            outcome.seconds = rec.duration
            outcome.path = self.link(spec.name, rec.output)
            return outcome
        try:
            digest, seconds, frames, method, clamped = self._make(spec, clips)
        except MediaError as exc:
            outcome.state = "failed"
            outcome.error = str(exc)
            return outcome
        self.store.record_render(
            RenderRecord(
                key=key,
                output=digest,
                scene=f"cut:{spec.name}",
                take=0,
                backend="film",
                task_id=None,
                url=None,
                duration=seconds,
                created=time.time(),
            )
        )
        outcome.state = "assembled"
        outcome.digest = digest
        outcome.seconds = seconds
        outcome.frames = frames
        outcome.method = method
        outcome.clamped = clamped
        outcome.path = self.link(spec.name, digest)
        return outcome

    def _facts_of(self, clips: Sequence[ClipSource]) -> dict[str, edit.ClipFacts]:
        return self.facts_of([c.digest for c in clips if c.digest is not None])

    def _make(
        self, spec: CutSpec, clips: Sequence[ClipSource]
    ) -> tuple[str, float, int, Method, list[str]]:
        facts = self._facts_of(clips)
        if _copyable(spec, clips, facts):
            return (*self._copy(clips, facts), "stream copy", [])
        return self._normalised(spec, clips, facts)

    def _copy(
        self, clips: Sequence[ClipSource], facts: Mapping[str, edit.ClipFacts]
    ) -> tuple[str, float, int]:
        first = facts[str(clips[0].digest)]
        fps = Fraction(first.video.fps)
        pieces = []
        sounds = []
        elapsed = Fraction(0)
        boundary = 0
        audio = first.audio
        for c in clips:
            f = facts[str(c.digest)]
            path = self._path(str(c.digest))
            pieces.append(edit.Piece(path, f.video.frames))
            elapsed += Fraction(f.video.frames) / fps
            if audio is not None:
                # sample-exact at every join: each clip's sound ends where its pictures do
                end = round(elapsed * audio.rate)
                sounds.append(edit.Sound(path, end - boundary))
                boundary = end
        frames = sum(p.frames for p in pieces)

        def write(tmp: str) -> None:
            sound = None
            if sounds and audio is not None:
                sound = f"{tmp}.sound.m4a"
                rate, layout = audio.rate, audio.layout or edit.AUDIO_LAYOUT
                edit.encode_sound(sound, sounds, rate=rate, layout=layout)
            try:
                edit.join(tmp, pieces, sound, fps=fps, stream_id=first.video.stream_id)
            finally:
                if sound is not None:
                    Path(sound).unlink(missing_ok=True)

        return self._put(write, ".mp4"), float(elapsed), frames

    def _normalised(
        self, spec: CutSpec, clips: Sequence[ClipSource], facts: Mapping[str, edit.ClipFacts]
    ) -> tuple[str, float, int, Method, list[str]]:
        width, height, fps = frame_settings(spec, clips, facts)
        lengths = [
            Fraction(facts[c.digest].video.duration) if c.digest is not None else None
            for c in clips
        ]
        placed = place(spec.clips, lengths, fps)
        fade_out = [placed[i + 1].fade if i + 1 < len(placed) else 0 for i in range(len(placed))]
        size = f"{width}x{height}@{fps.numerator}/{fps.denominator}"

        def normal(i: int) -> str:
            p, c = placed[i], clips[i]
            keyframes = sorted({p.fade, p.frames - fade_out[i]} - {0, p.frames})
            what = f"film/normal/{FILM_VERSION}/{size}/{p.start}/{p.frames}/{keyframes}"
            if c.digest is None:
                text = (c.scene, c.why)
                source = digest_bytes(canonical_json(["slate", *text]))

                def slate(tmp: str) -> None:
                    edit.normalise(
                        None,
                        tmp,
                        frames=p.frames,
                        width=width,
                        height=height,
                        fps=fps,
                        slate=text,
                        keyframes=keyframes,
                    )

                return self._derived(source, what, slate, ".mov")
            src = self._path(c.digest)

            def make(tmp: str) -> None:
                edit.normalise(
                    src,
                    tmp,
                    frames=p.frames,
                    width=width,
                    height=height,
                    fps=fps,
                    start=float(p.start),
                    keyframes=keyframes,
                    audio=False,
                )

            return self._derived(c.digest, what, make, ".mov")

        # the sound, made from the clips themselves while their pictures are normalised
        sounds = [
            edit.Sound(
                self._path(c.digest) if c.digest and facts[c.digest].audio else None,
                edit.samples_for(p.frames, fps),
                edit.samples_for(p.fade, fps),
                float(p.start),
            )
            for c, p in zip(clips, placed, strict=True)
        ]
        self.tmp.mkdir(parents=True, exist_ok=True)
        sound = str(self.tmp / f"film-{os.getpid()}-{os.urandom(4).hex()}.m4a")
        with ThreadPoolExecutor(1) as side:
            made = side.submit(edit.encode_sound, sound, sounds)
            try:
                with ThreadPoolExecutor(self.jobs) as pool:
                    normals = list(pool.map(normal, range(len(placed))))
                made.result()
            except BaseException:
                Path(sound).unlink(missing_ok=True)
                raise

        def fade(i: int) -> str | None:
            p = placed[i]
            if i == 0 or p.fade == 0:
                return None
            a, b = normals[i - 1], normals[i]
            a_frames = placed[i - 1].frames

            def make(tmp: str) -> None:
                edit.crossfade(self._path(a), a_frames, self._path(b), p.fade, tmp, fps=fps)

            return self._derived(a, f"film/xfade/{FILM_VERSION}/{b}/{p.fade}", make, ".mov")

        with ThreadPoolExecutor(self.jobs) as pool:
            fades = list(pool.map(fade, range(len(placed))))

        pieces: list[edit.Piece] = []
        for i, p in enumerate(placed):
            path = self._path(normals[i])
            x = fades[i]
            if x is not None:
                pieces.append(edit.Piece(self._path(x), p.fade))
            body = p.frames - p.fade - fade_out[i]
            if body > 0:
                pieces.append(edit.Piece(path, body, p.fade, body == p.frames))
        frames = total_frames(placed)

        def write(tmp: str) -> None:
            stream_id = self.facts(normals[0]).video.stream_id
            edit.join(tmp, pieces, sound, fps=fps, stream_id=stream_id)

        clamped = [p.scene for p in placed if p.clamped]
        try:
            digest = self._put(write, ".mp4")
        finally:
            Path(sound).unlink(missing_ok=True)
        return (
            digest,
            float(Fraction(frames) / fps),
            frames,
            "normalised",
            clamped,
        )


def _copyable(
    spec: CutSpec, clips: Sequence[ClipSource], facts: Mapping[str, edit.ClipFacts]
) -> bool:
    """Stream copy: no slate, no trim, no crossfade, and every clip alike."""
    if any(c.digest is None for c in clips):
        return False
    for clip, src in zip(spec.clips, clips, strict=True):
        if clip.fade or clip.start:
            return False
        if clip.end is not None and clip.end < facts[str(src.digest)].video.seconds - 0.001:
            return False
    signatures = {facts[str(c.digest)].join_signature() for c in clips}
    first = facts[str(clips[0].digest)]
    return len(signatures) == 1 and first.video.stream_id is not None


def frame_settings(
    spec: CutSpec, clips: Sequence[ClipSource], facts: Mapping[str, edit.ClipFacts]
) -> tuple[int, int, Fraction]:
    """The normalised frame: the cut's aspect, just big enough to show the biggest clip
    at its own size (even, at most 2160 high), at the frame rate most clips have (the
    higher on a tie; 24 without clips)."""
    real = [facts[c.digest].video for c in clips if c.digest is not None]
    rates = Counter(Fraction(v.fps) for v in real)
    fps = max(rates, key=lambda r: (rates[r], r)) if rates else DEFAULT_FPS
    ratio = RATIOS.get(spec.aspect, RATIOS["16:9"])
    height = max((max(v.height, round(v.width / ratio)) for v in real), default=SLATE_HEIGHT)
    height = max(2, min(MAX_HEIGHT, height - height % 2))
    width = round(height * ratio)
    return width - width % 2, height, fps
