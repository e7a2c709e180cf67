"""Golden rendered diagnostics for stories that break model rules or target limits.

Each directory under tests/cases/diag_rules/ holds a `main.story` and `expected.txt`: the
text `storyc check` prints to stderr. Good media comes from tests/cases/payload/_assets;
media that breaks the provider's limits (too small, too long, too few fps...) is made
with ffmpeg once per session. `pytest --update-golden` rewrites the expected files.
"""

from __future__ import annotations

import hashlib
import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from conftest import GoldenCheck

from storyc.base.diagnostics import render_all
from storyc.compiler import compile_project
from storyc.media import ffmpeg as media

ROOT = Path(__file__).resolve().parent
CASES = ROOT / "cases" / "diag_rules"
ASSETS = ROOT / "cases" / "payload" / "_assets"
CODE = re.compile(r"\[([EW][0-9]{3})\]")


def _cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "main.story").is_file())


# What the bad media is made of: a change here makes it again (the cache is keyed by it).
BAD_MEDIA: tuple[tuple[str, str, dict[str, Any]], ...] = (
    ("image", "tiny.png", {"width": 200, "height": 200, "seed": 1}),
    ("image", "banner.png", {"width": 1000, "height": 300, "seed": 2}),
    ("video", "long.mp4", {"width": 720, "height": 720, "duration": 11.0, "fps": 24}),
    ("video", "lowres.mp4", {"width": 640, "height": 360, "duration": 3.0, "fps": 15}),
)


@pytest.fixture(scope="module")
def bad_media(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Made with ffmpeg once per checkout, in pytest's cache (the 11 s video takes seconds to
    encode, and mutation testing runs these tests once per mutant); without the cache
    plugin, once per session."""
    key = hashlib.sha256(repr(BAD_MEDIA).encode()).hexdigest()[:16]
    cache = getattr(request.config, "cache", None)
    d = cache.mkdir(f"bad_media_{key}") if cache is not None else tmp_path_factory.mktemp("bad")
    if not (d / "done").exists():
        for kind, name, args in BAD_MEDIA:
            if kind == "image":
                media.make_test_image(d / name, args["width"], args["height"], seed=args["seed"])
            else:
                media.make_test_video(d / name, **args)
        (d / "done").touch()  # last: a run killed while making them makes them again
    return d


def test_enough_distinct_rule_codes() -> None:
    codes: set[str] = set()
    for case in _cases():
        expected = CASES / case / "expected.txt"
        if expected.exists():
            codes.update(c for c in CODE.findall(expected.read_text("utf-8")) if c[1] == "2")
    assert len(codes) >= 12, sorted(codes)


@pytest.mark.parametrize("case", _cases())
def test_rule_diagnostics(case: str, tmp_path: Path, bad_media: Path, golden: GoldenCheck) -> None:
    work = tmp_path / case
    work.mkdir()
    shutil.copy(CASES / case / "main.story", work / "main.story")
    shutil.copytree(ASSETS, work / "assets")
    for f in bad_media.glob("*.*"):
        shutil.copy(f, work / "assets" / f.name)
    comp = compile_project(work)
    text = render_all(comp.diagnostics, comp.sources) + "\n"
    # The project name lists the codes the case is about; each must be reported.
    title = (CASES / case / "main.story").read_text("utf-8").splitlines()[0]
    for code in re.findall(r"[EW]2[0-9]{2}", title):
        assert f"[{code}]" in text, f"{case}: expected {code}"
    golden(CASES / case / "expected.txt", text)
