"""Regenerate every example media file, deterministically, with storyc.media.ffmpeg.

Run from anywhere: `python examples/make_media.py [OUTPUT_ROOT]` (default: beside this
script). Each file is written atomically and checked: size limit (200 KB, small enough to commit) and the facts its story relies on.
Re-running gives the same bytes (bit-exact ffmpeg output, no metadata).
"""

from __future__ import annotations

import sys
from pathlib import Path

from storyc.media import ffmpeg as media
from storyc.media.info import probe

HERE = Path(__file__).resolve().parent
MAX_BYTES = 200 * 1024

# (path, width, height, seed) — the seed picks the look (see media._pattern).
IMAGES = [
    ("night-market/assets/market.jpg", 1280, 720, 2),
    ("night-market/assets/mei.png", 600, 900, 0),
    ("night-market/assets/mei_side.png", 600, 900, 6),
    ("night-market/assets/lantern.jpg", 800, 800, 5),
    ("product-ad/assets/bottle_closed.jpg", 720, 1280, 4),
    ("product-ad/assets/bottle_open.jpg", 720, 1280, 10),
    ("product-ad/assets/studio.jpg", 1024, 1024, 7),
    ("short-film/cast/ava.png", 600, 900, 1),
    ("short-film/cast/ava_back.png", 600, 900, 11),
    ("short-film/cast/robot.png", 800, 800, 3),
    ("explainer/assets/diagram.png", 1280, 720, 13),
]
# (path, width, height, seconds, audio, seed)
VIDEOS = [
    ("night-market/assets/alley.mp4", 1280, 720, 5.0, True, 0),
    ("product-ad/assets/orbit.mp4", 720, 1280, 4.0, False, 5),
    ("short-film/assets/street.mp4", 1280, 720, 5.0, True, 2),
]


def _check(path: Path, width: int, height: int, *, video: bool) -> str | None:
    size = path.stat().st_size
    if size > MAX_BYTES:
        return f"{path}: {size} bytes, over the {MAX_BYTES} byte limit"
    info = probe(path)
    if info is None or (info.width, info.height) != (width, height):
        return f"{path}: header says {info}, expected {width}x{height}"
    if (info.kind == "video") != video:
        return f"{path}: expected a {'video' if video else 'image'}"
    return None


def main(root: Path = HERE) -> int:
    problems: list[str] = []
    for rel, w, h, seed in IMAGES:
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        media.make_test_image(out, w, h, seed=seed)
        problems.append(_check(out, w, h, video=False) or "")
        print(f"{rel:40} {out.stat().st_size:>7} bytes")
    for rel, w, h, secs, audio, seed in VIDEOS:
        out = root / rel
        out.parent.mkdir(parents=True, exist_ok=True)
        media.make_test_video(out, width=w, height=h, duration=secs, fps=24, audio=audio, seed=seed)
        problems.append(_check(out, w, h, video=True) or "")
        print(f"{rel:40} {out.stat().st_size:>7} bytes")
    problems = [p for p in problems if p]
    for p in problems:
        print("problem:", p, file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    try:
        sys.exit(main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE))
    except media.MediaError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(1)
