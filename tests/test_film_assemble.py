"""Cuts assembled from real clips with real ffmpeg, checked by decoding the result.

Each test clip opens with a flash (3 white frames) and, when it has sound, a beep over
exactly those frames; the rest is dark and silent. In the assembled cut every join must
show the flash and start the beep at the same moment (sync), every clip must keep its
pictures (the cut lasts the sum of its parts, to the frame) and a clip without sound must
be silence in a cut that has sound.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import pytest

from storyc.film.assemble import Assembler
from storyc.film.sources import ClipSource
from storyc.film.spec import ClipSpec, CutSpec
from storyc.media import edit
from storyc.media import ffmpeg as media
from storyc.state.store import Store

FPS = 24
FLASH = 3  # frames


def make_clip(
    path: Path, *, frames: int, size: str = "320x180", sound: bool = True, aac_rate: int = 48000
) -> None:
    secs = frames / FPS
    inputs = [
        "-f",
        "lavfi",
        "-i",
        f"color=c=0x202020:s={size}:r={FPS}:d={secs},"
        f"drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(n,{FLASH})',format=yuv420p",
    ]
    audio = ["-an"]
    if sound:
        beep = FLASH / FPS
        inputs += [
            "-f",
            "lavfi",
            "-i",
            f"sine=frequency=1000:sample_rate={aac_rate}:d={secs},"
            f"volume='if(lt(t,{beep}),0.8,0)':eval=frame",
        ]
        audio = ["-c:a", "aac", "-b:a", "64k", "-ac", "1"]
    media.write_atomically(
        path,
        lambda tmp: [
            *inputs,
            "-frames:v",
            str(frames),
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-threads",
            "1",
            "-g",
            str(FPS),
            *audio,
            tmp,
        ],
        "test clip",
    )


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("clips")
    specs = {
        "a": {"frames": 48},
        "b": {"frames": 36},
        "c": {"frames": 60},
        "silent": {"frames": 30, "sound": False},
        "wide": {"frames": 42, "size": "640x240"},
    }
    out = {}
    for name, kw in specs.items():
        out[name] = d / f"{name}.mp4"
        make_clip(out[name], **kw)  # type: ignore[arg-type]
    return out


def _store(tmp: Path, clips: dict[str, Path]) -> tuple[Assembler, dict[str, str]]:
    store = Store.for_project(tmp)
    digests = {n: store.put_file(p) for n, p in clips.items()}
    (tmp / "renders").mkdir(exist_ok=True)
    return Assembler(tmp, store), digests


def _spec(name: str, *clips: ClipSpec, aspect: str = "16:9") -> CutSpec:
    return CutSpec(name, tuple(clips), aspect)


def clip(scene: str, start: float | None = None, end: float | None = None, fade: float = 0.0):  # type: ignore[no-untyped-def]
    return ClipSpec(scene, start, end, fade, None)


def _sources(digests: dict[str, str], *names: str) -> dict[str, ClipSource]:
    return {n: ClipSource(n, "render", digests[n]) for n in names}


def _flash_frames(path: Path) -> list[int]:
    """Frames where a flash starts."""
    lum = edit.luma(path)
    return [i for i, v in enumerate(lum) if v > 120 and (i == 0 or lum[i - 1] <= 120)]


def _beep_starts(path: Path, window: float) -> list[float]:
    """Seconds where a beep starts (windows of `window` seconds)."""
    lev = edit.loudness(path, window=window)
    return [i * window for i, v in enumerate(lev) if v > 0.02 and (i == 0 or lev[i - 1] <= 0.02)]


def test_same_clips_join_by_stream_copy_in_sync_to_the_frame(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    asm, dg = _store(tmp_path, clips)
    spec = _spec("film", clip("a"), clip("b"), clip("c"), clip("a"))
    out = asm.assemble(spec, _sources(dg, "a", "b", "c"))
    assert out.state == "assembled" and out.method == "stream copy", out
    video = tmp_path / out.path
    counts = edit.decode_counts(video)
    frames = 48 + 36 + 60 + 48
    assert (counts.frames, counts.video_streams, counts.audio_streams) == (frames, 1, 1)
    assert counts.video_seconds == pytest.approx(frames / FPS)
    # the sound lasts exactly as long as the pictures (sample-exact joins)
    assert counts.samples == frames * 48000 // FPS
    starts = [0, 48, 84, 144]
    assert _flash_frames(video) == starts
    beeps = _beep_starts(video, 1 / 200)
    assert len(beeps) == 4
    for frame, beep in zip(starts, beeps, strict=True):
        assert abs(beep - frame / FPS) <= 0.011, (frame, beep)


def test_mixed_clips_are_normalised_with_silence_where_a_clip_has_none(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    asm, dg = _store(tmp_path, clips)
    spec = _spec("mixed", clip("a"), clip("silent"), clip("wide"), clip("b"))
    out = asm.assemble(spec, _sources(dg, "a", "silent", "wide", "b"))
    assert out.state == "assembled" and out.method == "normalised", out
    video = tmp_path / out.path
    counts = edit.decode_counts(video)
    frames = 48 + 30 + 42 + 36
    assert counts.frames == frames and counts.audio_streams == 1
    assert counts.samples == frames * 2000  # 48 kHz at 24 fps
    facts = edit.clip_facts(video)
    # a 16:9 frame that shows the widest clip (640x240) at its own size
    assert (facts.video.width, facts.video.height) == (640, 360)
    assert facts.audio is not None and facts.audio.layout == "stereo"
    starts = [0, 48, 78, 120]
    assert _flash_frames(video) == starts
    beeps = _beep_starts(video, 1 / 200)
    # three clips have sound (a, wide, b); the silent one adds none
    assert len(beeps) == 3
    for frame, beep in zip([0, 78, 120], beeps, strict=True):
        assert abs(beep - frame / FPS) <= 0.011, (frame, beep)
    lev = edit.loudness(video, window=1 / FPS)
    assert max(lev[48:78]) < 0.01  # the clip without sound is silence


def test_trims_and_a_crossfade_keep_the_arithmetic_and_the_sync(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    asm, dg = _store(tmp_path, clips)
    # a: 0.5 s .. 2 s (36 frames, its flash cut away); c crossfades in over 0.5 s
    spec = _spec(
        "trimmed",
        clip("b"),
        clip("a", start=0.5, end=2.0),
        clip("c", fade=0.5),
        clip("b", end=1.0),
    )
    out = asm.assemble(spec, _sources(dg, "a", "b", "c"))
    assert out.state == "assembled" and out.method == "normalised", out
    video = tmp_path / out.path
    counts = edit.decode_counts(video)
    frames = 36 + 36 + 60 + 24 - 12
    assert counts.frames == frames == out.frames
    assert counts.samples == frames * 2000
    assert out.seconds == pytest.approx(frames / FPS)
    # b's flash at 0; a's flash was trimmed away; c starts dissolving in at 36 + 36 - 12,
    # its flash faint under a's pictures; the second b follows c at 36 + 36 + 60 - 12
    lum = edit.luma(video)
    assert lum[0] > 200 and lum[36] < 100
    assert lum[60] + 5 < lum[61] and lum[61] + 5 < lum[62] < 120
    assert _flash_frames(video) == [0, 36 + 36 + 60 - 12]
    beeps = _beep_starts(video, 1 / 200)
    assert abs(beeps[-1] - (36 + 36 + 60 - 12) / FPS) <= 0.011


def test_a_second_assembly_does_nothing_and_one_new_clip_redoes_only_its_part(
    tmp_path: Path, clips: dict[str, Path]
) -> None:
    asm, dg = _store(tmp_path, clips)
    spec = _spec("film", clip("a"), clip("silent"), clip("b", fade=0.25))
    first = asm.assemble(spec, _sources(dg, "a", "silent", "b"))
    assert first.state == "assembled"
    objects = {d for d, _ in asm.store.iter_objects()}
    derived = {p for p, _ in asm.store.iter_derived()}
    again = asm.assemble(spec, _sources(dg, "a", "silent", "b"))
    assert again.state == "up to date" and again.digest == first.digest
    assert {d for d, _ in asm.store.iter_objects()} == objects
    # another take of `b`: its facts, its normalised form and the crossfade into it are
    # made, and the cut; a's and silent's normalised clips are reused
    sources = _sources(dg, "a", "silent") | {"b": ClipSource("b", "render", dg["c"])}
    third = asm.assemble(spec, sources)
    assert third.state == "assembled" and third.digest != first.digest
    made = [r for p, r in asm.store.iter_derived() if p not in derived]
    assert sorted(str(r["what"]).split("/")[1] for r in made if r) == ["facts", "normal", "xfade"]
    assert edit.decode_counts(tmp_path / third.path).frames == 48 + 30 + 60 - 6


def test_slates_stand_in_for_missing_scenes(tmp_path: Path, clips: dict[str, Path]) -> None:
    asm, dg = _store(tmp_path, clips)
    spec = CutSpec(
        "film",
        (clip("a"), ClipSpec("gone", None, None, 0.0, 5.0), clip("b")),
        "16:9",
    )
    sources = _sources(dg, "a", "b") | {"gone": ClipSource("gone", "slate", None, "no render yet")}
    out = asm.assemble(spec, sources)
    assert out.state == "assembled" and [s.scene for s in out.stand_ins] == ["gone"]
    counts = edit.decode_counts(tmp_path / out.path)
    assert counts.frames == 48 + 120 + 36


def test_facts_of_a_clip(clips: dict[str, Path]) -> None:
    f = edit.clip_facts(clips["a"])
    assert (f.video.codec, f.video.width, f.video.height, f.video.frames) == ("h264", 320, 180, 48)
    assert Fraction(f.video.fps) == FPS and f.video.seconds == pytest.approx(2.0)
    assert f.audio is not None and f.audio.rate == 48000
    assert edit.clip_facts(clips["silent"]).audio is None
    assert edit.ClipFacts.from_json(f.to_json()) == f
    assert edit.ClipFacts.from_json({"video": {"codec": 1}}) is None


def test_facts_from_the_headers_are_what_ffmpeg_reads_from_the_packets(
    clips: dict[str, Path], tmp_path: Path
) -> None:
    for path in clips.values():
        assert edit._from_headers(path) == edit._facts_batch([path])[0], path.name
    # a file the header reader does not take whole (PCM in MOV) is read by ffmpeg instead
    mov = tmp_path / "n.mov"
    edit.normalise(clips["a"], mov, frames=24, width=320, height=180, fps=Fraction(FPS))
    assert edit._from_headers(mov) is None
    assert edit.clip_facts(mov).video.frames == 24


def test_a_long_cut_makes_its_sound_in_groups_still_sample_exact(
    tmp_path: Path, clips: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(edit, "_SOUND_INPUTS", 2)  # as a cut of hundreds of clips would
    asm, dg = _store(tmp_path, clips)
    spec = _spec("long", clip("a"), clip("b"), clip("c"), clip("a"), clip("b"))
    out = asm.assemble(spec, _sources(dg, "a", "b", "c"))
    assert out.method == "stream copy"
    video = tmp_path / out.path
    frames = 48 + 36 + 60 + 48 + 36
    counts = edit.decode_counts(video)
    assert (counts.frames, counts.samples) == (frames, frames * 2000)
    starts = [0, 48, 84, 144, 192]
    assert _flash_frames(video) == starts
    beeps = _beep_starts(video, 1 / 200)
    assert [round(b * FPS) for b in beeps] == starts
