"""Preview frames read as a storyboard, checked on the decoded pixels of real renders.

Text is checked by rendering: the bright pixels of the caption band (or tag) in a decoded
frame are compared with a reference rendering of the expected text, and with one of the
text the bug would show (`@image_1`, `?` for accents); no OCR, nothing read from the code.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from frames import (
    band_reference,
    black_png,
    bright,
    bright_over_black,
    frame_count,
    gray_frame,
    gray_image,
    iou,
    mean_abs_diff,
)

from storyc.media import caption
from storyc.media import ffmpeg as media

W, H = 640, 360


def _band_match(video: Path, n: int, text: str, seconds: float, page: int = 0) -> float:
    bh, ref = band_reference(text, W, H, seconds, page)
    got = bright(gray_frame(video, n), W, (0, H - bh, W, H))
    return iou(got, ref)


def test_caption_is_the_text_as_written_in_any_script(tmp_path: Path) -> None:
    black = black_png(tmp_path / "black.png", W, H)
    text = "@mei walks past the café — Ελληνικά, Кириллица, 夜市の提灯"
    out = tmp_path / "p.mp4"
    media.render_preview(
        out, duration=1, aspect="16:9", caption=text, first_frame=str(black), fps=12
    )
    right = _band_match(out, 6, text, 1.0)
    placeholder = _band_match(out, 6, text.replace("@mei", "@image_1"), 1.0)
    ascii_only = _band_match(out, 6, "@mei walks past the caf? - ????????, ?????????, ????", 1.0)
    assert right > 0.75, right
    assert right - placeholder > 0.2 and right - ascii_only > 0.3, (right, placeholder, ascii_only)


def test_tag_names_scene_and_take(tmp_path: Path) -> None:
    black = black_png(tmp_path / "black.png", W, H)
    out = tmp_path / "p.mp4"
    media.render_preview(
        out,
        duration=1,
        aspect="16:9",
        caption="",
        first_frame=str(black),
        fps=12,
        title="lanterns · take 2",
    )
    gray = gray_frame(out, 0)

    def match(title: str) -> float:
        png, tw, th = caption.tag_png("PREVIEW", title, 1)
        _, _, ref = bright_over_black(png)
        return iou(bright(gray, W, (6, 6, 6 + tw, 6 + th)), ref)

    assert match("lanterns · take 2") > 0.75
    assert match("lanterns · take 2") - match("lanterns · take 1") > 0.03
    assert match("lanterns · take 2") - match("arrival · take 2") > 0.2


def test_a_long_caption_is_paged_not_cut(tmp_path: Path) -> None:
    black = black_png(tmp_path / "black.png", W, H)
    words = [f"w{i}" for i in range(160)]
    text = " ".join(words)
    layout = caption.layout_caption(text, W, H, seconds=3)
    assert len(layout.pages) >= 2
    out = tmp_path / "p.mp4"
    media.render_preview(
        out, duration=3, aspect="16:9", caption=text, first_frame=str(black), fps=12
    )
    frames = 36
    for page in range(len(layout.pages)):
        first = page * frames // len(layout.pages)
        assert _band_match(out, first + 1, text, 3, page) > 0.7, page
    # and the last page really is the end of the text
    assert layout.pages[-1][-1].endswith("w159")


@pytest.mark.parametrize(
    "mode", ["text", "first", "first+end", "references", "edit", "style", "odd-length"]
)
def test_every_clip_is_exactly_duration_times_fps_frames(tmp_path: Path, mode: str) -> None:
    img = tmp_path / "a.png"
    media.make_test_image(img, 400, 300, seed=5)
    vid = tmp_path / "v.mp4"
    if mode in ("edit", "style"):
        media.make_test_video(vid, width=320, height=180, duration=1.5, fps=24, seed=2)
    kwargs: dict[str, object] = {
        "text": {},
        "first": {"first_frame": str(img)},
        "first+end": {"first_frame": str(img), "end_frame": str(img)},
        "references": {"reference_images": (str(img), str(img))},
        "edit": {"base_video": str(vid)},
        "style": {"style_video": str(vid)},
        "odd-length": {"first_frame": str(img)},
    }[mode]
    duration = 3.7 if mode == "odd-length" else 2.0
    out = tmp_path / "p.mp4"
    media.render_preview(out, duration=duration, aspect="16:9", caption="x", **kwargs)  # type: ignore[arg-type]
    assert frame_count(out) == round(duration * 24)
    info = media.probe_video(out)
    assert info.fps == 24 and (info.width, info.height) == (W, H)


@pytest.mark.parametrize("mode", ["text", "first"])
def test_takes_differ_visibly_and_deterministically(tmp_path: Path, mode: str) -> None:
    img = tmp_path / "a.png"
    media.make_test_image(img, 640, 360, seed=1)
    extra = {"first_frame": str(img)} if mode == "first" else {}

    def render(variant: int, name: str) -> Path:
        out = tmp_path / name
        media.render_preview(
            out, duration=1, aspect="16:9", caption="", fps=12, variant=variant, **extra
        )
        return out

    a, b, a2 = render(0, "a.mp4"), render(1, "b.mp4"), render(0, "a2.mp4")
    assert a.read_bytes() == a2.read_bytes()  # the same take always looks the same
    # the last frames differ over the whole picture, not in a corner
    assert mean_abs_diff(gray_frame(a, 11), gray_frame(b, 11)) > 8


def test_clean_frames_have_no_caption_and_no_tag(tmp_path: Path) -> None:
    img = tmp_path / "a.png"
    media.make_test_image(img, 640, 360, seed=1)
    out = tmp_path / "p.mp4"
    clean = media.CleanFrames(tmp_path / "first.png", tmp_path / "last.png")
    text = "A long caption that fills the band at the bottom of the frame " * 2
    media.render_preview(
        out,
        duration=1,
        aspect="16:9",
        caption=text,
        first_frame=str(img),
        fps=12,
        title="arrival",
        clean=clean,
    )
    for path, n in ((clean.first, 0), (clean.last, 11)):
        still, shown = gray_image(path), gray_frame(out, n)
        bh, ref = band_reference(text, W, H, 1.0)
        band = (0, H - bh, W, H)
        assert iou(bright(shown, W, band), ref) > 0.6  # the video has its caption
        assert iou(bright(still, W, band), ref) < 0.2  # the clean frame has none
        # above the band and right of the tag, the same picture
        mid = [still[y * W + x] for y in range(60, H - bh - 4) for x in range(0, W)]
        vid = [shown[y * W + x] for y in range(60, H - bh - 4) for x in range(0, W)]
        assert mean_abs_diff(bytes(mid), bytes(vid)) < 4
        # and the tag's corner is the picture too, not the red badge
        corner = bytes(still[y * W + x] for y in range(6, 20) for x in range(6, 60))
        tagged = bytes(shown[y * W + x] for y in range(6, 20) for x in range(6, 60))
        assert mean_abs_diff(corner, tagged) > 10
