"""Golden diagnostics of the front end: one bad story per directory in tests/cases/diag/.

Each case is copied to a temporary directory; every media path its stories mention is
created there as a small valid file, except as `setup.json` says:

    {"absent": ["assets/x.png"]}              not created (paths relative to the case)
    {"sparse": {"assets/big.png": 10485761}}  a sparse file of that size (truncate)
    {"swap":   {"assets/x.png": "video"}}     a valid file of the *other* kind

Then load + resolve runs (`frontend_diagnostics`) and the rendered diagnostics are
compared with expected.txt (`pytest --update-golden` rewrites it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from storyc.base.diagnostics import render_all
from storyc.compiler import frontend_diagnostics
from storyc.media import ffmpeg as media

CASES = Path(__file__).resolve().parent / "cases" / "diag"
MEDIA = re.compile(r"[\"']([^\"'\s]+\.(?:png|jpe?g|mp4|mov))[\"']", re.I)
NAMES = sorted(p.name for p in CASES.iterdir() if (p / "main.story").is_file())


@pytest.fixture(scope="module")
def samples(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("samples")
    out = {"image": d / "s.png", "jpg": d / "s.jpg", "video": d / "s.mp4"}
    media.make_test_image(out["image"], 640, 480)
    media.make_test_image(out["jpg"], 640, 480)
    media.make_test_video(out["video"], width=1280, height=720, duration=5.0, audio=True)
    return out


def prepare(case: Path, work: Path, samples: dict[str, Path]) -> Path:
    shutil.copytree(case, work, ignore=shutil.ignore_patterns("expected.txt", "setup.json"))
    setup = json.loads((case / "setup.json").read_text()) if (case / "setup.json").exists() else {}
    absent = set(setup.get("absent", []))
    sparse: dict[str, int] = setup.get("sparse", {})
    swap: dict[str, str] = setup.get("swap", {})
    for story in work.rglob("*.story"):
        for rel in MEDIA.findall(story.read_text("utf-8")):
            if "://" in rel:
                continue
            target = Path(os.path.normpath(story.parent / rel))
            key = target.relative_to(work).as_posix()
            if key in absent or target.exists():
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            if key in sparse:
                with open(target, "wb") as f:
                    f.truncate(sparse[key])
                continue
            kind = "video" if target.suffix.lower() in (".mp4", ".mov") else "image"
            kind = swap.get(key, kind)
            if kind == "video":
                sample = samples["video"]
            else:
                sample = samples["jpg" if target.suffix.lower() in (".jpg", ".jpeg") else "image"]
            shutil.copyfile(sample, target)
    return work


@pytest.mark.parametrize("name", NAMES)
def test_frontend_golden(name: str, tmp_path: Path, samples: dict[str, Path], golden) -> None:
    work = prepare(CASES / name, tmp_path / name, samples)
    diags, sources = frontend_diagnostics(work)
    assert diags.has_errors, "a bad story must report at least one error"
    text = render_all(diags.sorted(), sources) + "\n"
    assert str(tmp_path) not in text, "diagnostics must not show machine paths"
    golden(CASES / name / "expected.txt", text)


def test_at_least_twenty_cases() -> None:
    assert len(NAMES) >= 20
