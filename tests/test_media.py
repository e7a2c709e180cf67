"""storyc.media.ffmpeg with the real ffmpeg: test media, probe_video, extract_frame, render_preview.

Media here is tiny and short so the whole file runs in a few seconds.
"""

from __future__ import annotations

import hashlib
import importlib.util
import struct
from pathlib import Path
from typing import Any

import pytest

from storyc.media import caption
from storyc.media import ffmpeg as media
from storyc.media.info import orientation, probe

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


@pytest.fixture(scope="module")
def src(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("media")
    out = {
        "first": d / "first.png",
        "end": d / "end.jpg",
        "ref": d / "ref.png",
        "clip": d / "clip.mp4",
        "silent": d / "silent.mp4",
    }
    media.make_test_image(out["first"], 320, 180, seed=2)
    media.make_test_image(out["end"], 200, 300, seed=4)
    media.make_test_image(out["ref"], 120, 120, seed=3)
    media.make_test_video(
        out["clip"], width=160, height=96, duration=1.5, fps=12, audio=True, seed=1
    )
    media.make_test_video(out["silent"], width=96, height=160, duration=1.0, fps=10, seed=5)
    return out


def _sha(p: Path) -> str:
    return hashlib.sha256(p.read_bytes()).hexdigest()


def test_make_test_media_sizes_and_determinism(src: dict[str, Path], tmp_path: Path) -> None:
    assert probe(src["end"]) is not None and probe(src["end"]).width == 200  # type: ignore[union-attr]
    again = tmp_path / "again.png"
    media.make_test_image(again, 320, 180, seed=2)
    assert _sha(again) == _sha(src["first"])
    media.make_test_image(again, 320, 180, seed=7)
    assert _sha(again) != _sha(src["first"])
    info = probe(src["clip"])
    assert info is not None and info.has_audio and info.fps == 12.0
    assert info.duration == pytest.approx(1.5, abs=0.1)
    with pytest.raises(media.MediaError, match="suffix"):
        media.make_test_image(tmp_path / "x.bmp", 10, 10)
    with pytest.raises(media.MediaError, match="does not exist"):
        media.make_test_image(tmp_path / "no" / "x.png", 10, 10)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["again.png"]  # no temp files left


def test_probe_video(src: dict[str, Path], tmp_path: Path) -> None:
    info = media.probe_video(src["clip"])
    assert (info.kind, info.format, info.width, info.height) == ("video", "mp4", 160, 96)
    assert info.has_audio is True and info.fps == 12.0
    assert media.probe_video(src["silent"]).has_audio is False
    img = media.probe_video(src["end"])
    assert (img.kind, img.format, img.width, img.height) == ("image", "jpeg", 200, 300)
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all")
    with pytest.raises(media.MediaError) as e:
        media.probe_video(junk)
    assert "\n" not in str(e.value) and "junk.mp4" in str(e.value)
    with pytest.raises(media.MediaError, match="no such file"):
        media.probe_video(tmp_path / "missing.mp4")


def test_extract_frames(src: dict[str, Path], tmp_path: Path) -> None:
    first, last, at = tmp_path / "f.png", tmp_path / "l.png", tmp_path / "a.png"
    media.extract_frame(src["clip"], first, at="first")
    media.extract_frame(src["clip"], last, at="last")
    media.extract_frame(src["clip"], at, at=1.5 - 1 / 12)  # the time of the last frame
    for p in (first, last, at):
        info = probe(p)
        assert info is not None and (info.format, info.width, info.height) == ("png", 160, 96)
    assert _sha(first) != _sha(last)
    assert _sha(last) == _sha(at)  # "last" is the real last frame
    portrait = tmp_path / "p.png"
    media.extract_frame(src["silent"], portrait, at="last")
    assert probe(portrait).height == 160  # type: ignore[union-attr]


def test_extract_frame_errors(src: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "x.png"
    with pytest.raises(media.MediaError, match="no output"):
        media.extract_frame(src["clip"], out, at=30.0)
    with pytest.raises(media.MediaError, match="'at' must be"):
        media.extract_frame(src["clip"], out, at=-1.0)
    with pytest.raises(media.MediaError, match="no such file"):
        media.extract_frame(tmp_path / "none.mp4", out, at="first")
    assert not out.exists() and list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    "aspect,size", [("16:9", (640, 360)), ("9:16", (360, 640)), ("1:1", (360, 360))]
)
def test_frame_size(aspect: str, size: tuple[int, int]) -> None:
    assert caption.frame_size(aspect, 360) == size


def _check(path: Path, w: int, h: int, duration: float, fps: int) -> None:
    info = probe(path)
    assert info is not None and info.kind == "video"
    assert (info.width, info.height) == (w, h)
    assert info.duration == pytest.approx(duration, abs=1 / fps + 1e-6)
    assert info.fps == fps


def test_preview_text_only_is_deterministic(tmp_path: Path) -> None:
    a, b = tmp_path / "a.mp4", tmp_path / "b.mp4"
    for p in (a, b):
        media.render_preview(
            p, duration=1.0, aspect="16:9", caption="A red kite over hills", height=72, fps=12
        )
    _check(a, 128, 72, 1.0, 12)
    assert _sha(a) == _sha(b)
    assert probe(a).has_audio is False  # type: ignore[union-attr]
    media.render_preview(
        b, duration=1.0, aspect="16:9", caption="Another prompt", height=72, fps=12
    )
    assert _sha(a) != _sha(b)  # the background colour comes from the caption


def test_preview_first_end_refs_style(src: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "fe.mp4"
    media.render_preview(
        out,
        duration=1.25,
        aspect="9:16",
        caption="zoom",
        height=64,
        fps=12,
        first_frame=str(src["first"]),
        end_frame=str(src["end"]),
        style_video=str(src["silent"]),
    )
    _check(out, 64, 114, 1.25, 12)
    first, last = tmp_path / "1.png", tmp_path / "2.png"
    media.extract_frame(out, first, at="first")
    media.extract_frame(out, last, at="last")
    assert _sha(first) != _sha(last)
    refs = tmp_path / "refs.mp4"
    media.render_preview(
        refs,
        duration=0.5,
        aspect="1:1",
        caption="",
        height=96,
        fps=10,
        reference_images=[str(src["ref"]), str(src["end"])],
    )
    _check(refs, 96, 96, 0.5, 10)


def test_preview_base_video_keeps_sound(src: dict[str, Path], tmp_path: Path) -> None:
    kept, muted = tmp_path / "k.mp4", tmp_path / "m.mp4"
    media.render_preview(
        kept,
        duration=1.5,
        aspect="16:9",
        caption="edit",
        height=72,
        fps=12,
        base_video=str(src["clip"]),
        keep_sound=True,
    )
    media.render_preview(
        muted,
        duration=1.5,
        aspect="16:9",
        caption="edit",
        height=72,
        fps=12,
        base_video=str(src["clip"]),
    )
    _check(kept, 128, 72, 1.5, 12)
    assert probe(kept).has_audio is True  # type: ignore[union-attr]
    assert probe(muted).has_audio is False  # type: ignore[union-attr]
    # The base video is really used: its frames differ from a text-only preview's.
    plain = tmp_path / "p.mp4"
    media.render_preview(plain, duration=1.5, aspect="16:9", caption="edit", height=72, fps=12)
    frames = []
    for p in (muted, plain):
        f = tmp_path / f"{p.stem}.png"
        media.extract_frame(p, f, at="first")
        frames.append(_sha(f))
    assert frames[0] != frames[1]


def test_preview_bad_input(src: dict[str, Path], tmp_path: Path) -> None:
    out = tmp_path / "bad.mp4"
    with pytest.raises(media.MediaError, match="aspect"):
        media.render_preview(out, duration=1, aspect="wide", caption="x")
    with pytest.raises(media.MediaError, match="duration"):
        media.render_preview(out, duration=0, aspect="16:9", caption="x")
    with pytest.raises(media.MediaError, match="does not exist"):
        media.render_preview(
            out, duration=1, aspect="16:9", caption="x", first_frame=str(tmp_path / "nope.png")
        )
    junk = tmp_path / "junk.png"
    junk.write_bytes(b"garbage")
    with pytest.raises(media.MediaError, match="junk.png is not an image"):
        media.render_preview(
            out, duration=1, aspect="16:9", caption="x", height=64, first_frame=str(junk)
        )
    with pytest.raises(media.MediaError, match="is not a video"):
        media.render_preview(
            out, duration=1, aspect="16:9", caption="x", height=64, base_video=str(src["ref"])
        )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.png"]


def test_caption_wrap_by_pixels() -> None:
    # 8 px per Latin character, 16 per CJK one; lines never wider than asked
    lines = caption.wrap("word " * 100, 160)
    assert len(lines) == 25 and all(caption.text_width(x) <= 160 for x in lines)
    assert lines[0] == "word word word word"
    # accents, dashes and quotes are kept as written (NFC), never turned into "?"
    assert caption.wrap("cafe\u0301 \u2014 \u201cok\u201d", 400) == [
        "caf\u00e9 \u2014 \u201cok\u201d"
    ]
    # CJK breaks between characters, a word wider than the line is cut, not dropped
    assert caption.wrap("\u591c\u5e02\u306e\u63d0\u706f", 48) == [
        "\u591c\u5e02\u306e",
        "\u63d0\u706f",
    ]
    assert caption.wrap("x" * 30, 80) == ["x" * 10, "x" * 10, "x" * 10]
    assert caption.text_width("a\u0301") == 8  # a combining mark adds no width
    for ch in "\u00e9\u03a9\u0416\u591c\ud55c":
        assert caption.font().has(ch), ch


def test_caption_layout_pages_long_prompts() -> None:
    short = caption.layout_caption("A walk at dusk", 640, 360, seconds=5)
    assert short.pages == (("A walk at dusk",),) and short.scale == 1
    long = caption.layout_caption("word " * 500, 640, 360, seconds=5)
    text = " ".join(" ".join(p) for p in long.pages)
    assert text == " ".join(["word"] * 500)  # nothing cut
    assert len(long.pages) > 1 and max(len(p) for p in long.pages) <= 6
    portrait = caption.layout_caption("word " * 30, 360, 640, seconds=5)
    assert len(portrait.pages) == 1 and len(portrait.pages[0]) <= 5
    assert caption.layout_caption("  ", 640, 360, seconds=5).pages == ()
    png = caption.caption_band_png(long, 640, 0)
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    assert png[16:24] == (640).to_bytes(4, "big") + long.band_height.to_bytes(4, "big")


def _make_media_module() -> object:
    spec = importlib.util.spec_from_file_location("make_media", EXAMPLES / "make_media.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_example_media_regenerate_byte_for_byte(tmp_path: Path) -> None:
    # Golden files elsewhere hold these files' digests: the generator must not drift.
    mm: Any = _make_media_module()
    for rel, w, h, seed in mm.IMAGES:
        out = tmp_path / Path(rel).name
        media.make_test_image(out, w, h, seed=seed)
        assert _sha(out) == _sha(EXAMPLES / rel), rel
    # x264's bytes differ between ffmpeg builds (imageio-ffmpeg releases, CPUs), so the
    # video is compared by what a player sees: size, frame count, duration, streams.
    rel, w, h, secs, audio, seed = next(v for v in mm.VIDEOS if "orbit" in v[0])
    out = tmp_path / "orbit.mp4"
    media.make_test_video(out, width=w, height=h, duration=secs, audio=audio, seed=seed)
    made, kept = media.probe_video(out), media.probe_video(EXAMPLES / rel)
    assert (made.width, made.height, made.fps, made.has_audio) == (
        kept.width,
        kept.height,
        kept.fps,
        kept.has_audio,
    )
    assert made.duration == pytest.approx(kept.duration, abs=0.05)


def _with_orientation(jpg: bytes, value: int) -> bytes:
    tiff = (
        b"MM\0*"
        + struct.pack(">IH", 8, 1)
        + struct.pack(">HHIHH", 0x0112, 3, 1, value, 0)
        + struct.pack(">I", 0)
    )
    app1 = b"Exif\0\0" + tiff
    return jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:]


def test_exif_turned_photos_are_shown_upright(src: dict[str, Path], tmp_path: Path) -> None:
    plain, turned = tmp_path / "plain.jpg", tmp_path / "turned.jpg"
    plain.write_bytes(_with_orientation(src["end"].read_bytes(), 1))
    turned.write_bytes(_with_orientation(src["end"].read_bytes(), 6))
    assert orientation(turned) == 6 and orientation(plain) == 1
    assert orientation(src["first"]) == 1  # a PNG
    assert caption.upright(str(turned)) == "transpose=1,"
    frames = []
    for img in (plain, turned):
        out = tmp_path / f"{img.stem}.mp4"
        media.render_preview(
            out, duration=0.5, aspect="9:16", caption="", height=64, fps=10, first_frame=str(img)
        )
        png = tmp_path / f"{img.stem}.png"
        media.extract_frame(out, png, at="first")
        frames.append(_sha(png))
    assert frames[0] != frames[1]
