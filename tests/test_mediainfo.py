"""Header probing (storyc.media.info.probe) on real files: examples, generated files of each
format, files whose moov comes after mdat, and every kind of broken input."""

from __future__ import annotations

import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storyc.media import ffmpeg as media
from storyc.media.info import MediaInfo, probe

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"

# path, kind, width, height, duration, has_audio
EXPECTED = [
    ("night-market/assets/market.jpg", "jpeg", 1280, 720, None, None),
    ("night-market/assets/mei.png", "png", 600, 900, None, None),
    ("night-market/assets/mei_side.png", "png", 600, 900, None, None),
    ("night-market/assets/lantern.jpg", "jpeg", 800, 800, None, None),
    ("night-market/assets/alley.mp4", "mp4", 1280, 720, 5.0, True),
    ("product-ad/assets/bottle_closed.jpg", "jpeg", 720, 1280, None, None),
    ("product-ad/assets/bottle_open.jpg", "jpeg", 720, 1280, None, None),
    ("product-ad/assets/studio.jpg", "jpeg", 1024, 1024, None, None),
    ("product-ad/assets/orbit.mp4", "mp4", 720, 1280, 4.0, False),
    ("short-film/cast/ava.png", "png", 600, 900, None, None),
    ("short-film/cast/ava_back.png", "png", 600, 900, None, None),
    ("short-film/cast/robot.png", "png", 800, 800, None, None),
    ("short-film/assets/street.mp4", "mp4", 1280, 720, 5.0, True),
    ("explainer/assets/diagram.png", "png", 1280, 720, None, None),
]


@pytest.mark.parametrize("rel,fmt,w,h,dur,audio", EXPECTED, ids=[e[0] for e in EXPECTED])
def test_example_media(
    rel: str, fmt: str, w: int, h: int, dur: float | None, audio: bool | None
) -> None:
    path = EXAMPLES / rel
    assert path.stat().st_size <= 200 * 1024
    info = probe(path)
    assert info is not None
    assert (info.format, info.width, info.height) == (fmt, w, h)
    if dur is None:
        assert info.kind == "image"
        assert 1 / 2.5 <= w / h <= 2.5 and min(w, h) >= 300
    else:
        assert info.kind == "video"
        assert info.duration == pytest.approx(dur, abs=0.05)
        assert info.fps == 24.0
        assert info.has_audio is audio
        assert 720 <= min(w, h) <= 2160


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("probe")
    out = {}
    for i, suffix in enumerate((".png", ".jpg", ".webp", ".gif")):
        out[suffix] = d / f"img{suffix}"
        media.make_test_image(out[suffix], 90 + i, 60 + i, seed=i)
    out[".mp4"] = d / "a.mp4"
    media.make_test_video(out[".mp4"], width=96, height=64, duration=1.0, fps=12, audio=True)
    out[".mov"] = d / "b.mov"
    media.make_test_video(out[".mov"], width=64, height=96, duration=0.5, fps=30, seed=3)
    return out


@pytest.mark.parametrize(
    "suffix,fmt,w,h",
    [
        (".png", "png", 90, 60),
        (".jpg", "jpeg", 91, 61),
        (".webp", "webp", 92, 62),
        (".gif", "gif", 93, 63),
    ],
)
def test_generated_images(files: dict[str, Path], suffix: str, fmt: str, w: int, h: int) -> None:
    assert probe(files[suffix]) == MediaInfo(kind="image", format=fmt, width=w, height=h)


def test_generated_videos_agree_with_ffmpeg(files: dict[str, Path]) -> None:
    mp4, mov = probe(files[".mp4"]), probe(files[".mov"])
    assert mp4 == MediaInfo(
        kind="video", format="mp4", width=96, height=64, duration=1.0, fps=12.0, has_audio=True
    )
    assert mov is not None and mov.format == "mov" and mov.has_audio is False
    assert (mov.width, mov.height, mov.fps) == (64, 96, 30.0)
    for path, info in ((files[".mp4"], mp4), (files[".mov"], mov)):
        ff = media.probe_video(path)
        assert (ff.kind, ff.format, ff.width, ff.height, ff.has_audio) == (
            info.kind,
            info.format,
            info.width,
            info.height,
            info.has_audio,
        )
        assert ff.duration == pytest.approx(info.duration, abs=0.05)


def _boxes(data: bytes) -> list[bytes]:
    out, pos = [], 0
    while pos < len(data):
        size = struct.unpack_from(">I", data, pos)[0]
        out.append(data[pos : pos + size])
        pos += size
    return out


def test_moov_after_a_huge_mdat_is_found_without_reading_mdat(
    files: dict[str, Path], tmp_path: Path
) -> None:
    boxes = {b[4:8]: b for b in _boxes(files[".mp4"].read_bytes())}
    path = tmp_path / "late.mp4"
    big = 3 << 30  # a sparse 3 GiB mdat (64-bit size): reading it would take seconds
    with open(path, "wb") as f:
        f.write(boxes[b"ftyp"])
        f.write(struct.pack(">I4sQ", 1, b"mdat", big))
        f.seek(big - 16, 1)
        f.write(boxes[b"moov"])
    info = probe(path)
    assert info is not None and (info.width, info.height, info.has_audio) == (96, 64, True)


def test_broken_files_give_none(files: dict[str, Path], tmp_path: Path) -> None:
    bad = tmp_path / "bad"
    assert probe(tmp_path / "missing.png") is None
    assert probe(tmp_path) is None  # a directory
    for content in (
        b"",
        b"hello world, not media",
        b"\x89PNG\r\n\x1a\n",
        b"\xff\xd8\xff",
        b"RIFF\x00\x00\x00\x00WEBPVP8 ",
        b"GIF89a",
        b"\x00\x00\x00\x08ftyp",
    ):
        bad.write_bytes(content)
        assert probe(bad) is None, content
    for suffix in (".png", ".jpg", ".webp", ".gif", ".mp4", ".mov"):
        data = files[suffix].read_bytes()
        cut = set(range(min(len(data), 64))) | {len(data) // 2, len(data) - 1}
        for n in sorted(cut):
            bad.write_bytes(data[:n])
            probe(bad)  # must not raise; a prefix may still hold a whole header


def test_mp4_cut_inside_moov_gives_none(files: dict[str, Path], tmp_path: Path) -> None:
    data = files[".mp4"].read_bytes()
    boxes = _boxes(data)
    moov_end = sum(len(b) for b in boxes[: [b[4:8] for b in boxes].index(b"moov") + 1])
    bad = tmp_path / "cut.mp4"
    bad.write_bytes(data[: moov_end - 10])
    assert probe(bad) is None


@settings(
    max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    prefix=st.sampled_from(
        [
            b"",
            b"\x89PNG\r\n\x1a\n",
            b"\xff\xd8",
            b"RIFF\0\0\0\0WEBP",
            b"GIF89a",
            b"\x00\x00\x00\x18ftypisom",
            b"\x00\x00\x00\x01moov",
        ]
    ),
    body=st.binary(max_size=300),
)
def test_random_bytes_never_raise(tmp_path: Path, prefix: bytes, body: bytes) -> None:
    p = tmp_path / "random.bin"
    p.write_bytes(prefix + body)
    info = probe(p)  # the point: no exception, whatever the bytes
    assert info is None or info.kind in ("image", "video")


def test_quarter_turns_report_the_shown_size(files: dict[str, Path], tmp_path: Path) -> None:
    # A phone video: coded 96x64 with a display matrix turning it 90 degrees.
    rot = tmp_path / "rot.mp4"
    subprocess.run(
        [
            media.ffmpeg_exe(),
            "-v",
            "error",
            "-display_rotation",
            "90",
            "-i",
            str(files[".mp4"]),
            "-c",
            "copy",
            str(rot),
        ],
        check=True,
        timeout=60,
    )
    info = probe(rot)
    assert info is not None and (info.width, info.height) == (64, 96)
    assert (media.probe_video(rot).width, media.probe_video(rot).height) == (64, 96)
    # A phone photo: EXIF orientation 6 (turned 90 degrees clockwise).
    tiff = (
        b"II*\0"
        + struct.pack("<IH", 8, 1)
        + struct.pack("<HHIHH", 0x0112, 3, 1, 6, 0)
        + struct.pack("<I", 0)
    )
    app1 = b"Exif\0\0" + tiff
    jpg = files[".jpg"].read_bytes()
    turned = tmp_path / "turned.jpg"
    turned.write_bytes(jpg[:2] + b"\xff\xe1" + struct.pack(">H", len(app1) + 2) + app1 + jpg[2:])
    assert probe(turned) == MediaInfo(kind="image", format="jpeg", width=61, height=91)
