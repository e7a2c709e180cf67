"""Golden rendered diagnostics for stories that break model rules or target limits.

Each directory under tests/cases/diag_rules/ holds a `main.story` and `expected.txt`: the
text `storyc check` prints to stderr. Good media comes from tests/cases/payload/_assets;
media that breaks the provider's limits (too small, too long, too few fps...) is made
with ffmpeg once per session. `pytest --update-golden` rewrites the expected files.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

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


@pytest.fixture(scope="module")
def bad_media(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("bad_media")
    media.make_test_image(d / "tiny.png", 200, 200, seed=1)
    media.make_test_image(d / "banner.png", 1000, 300, seed=2)
    media.make_test_video(d / "long.mp4", width=720, height=720, duration=11.0, fps=24)
    media.make_test_video(d / "lowres.mp4", width=640, height=360, duration=3.0, fps=15)
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
    for f in bad_media.iterdir():
        shutil.copy(f, work / "assets" / f.name)
    comp = compile_project(work)
    text = render_all(comp.diagnostics, comp.sources) + "\n"
    # The project name lists the codes the case is about; each must be reported.
    title = (CASES / case / "main.story").read_text("utf-8").splitlines()[0]
    for code in re.findall(r"[EW]2[0-9]{2}", title):
        assert f"[{code}]" in text, f"{case}: expected {code}"
    golden(CASES / case / "expected.txt", text)
