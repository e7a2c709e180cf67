"""Golden payloads: every case under tests/cases/payload/ and every example project, for every
built-in target, compiled to the `storyc compile --json` document and compared byte for byte.

A case is a directory with `main.story`; the shared media in `_assets/` is copied in as
`assets/` (committed files, so digests in the goldens are stable). Each case has
`expected.<target-slug>.json` per target (the target forced with `--target`), and a case
whose story chooses targets itself also has `expected.story.json` (targets as written).
`pytest --update-golden` rewrites them.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from conftest import GoldenCheck

from storyc import targets
from storyc.compiler import compile_project

ROOT = Path(__file__).resolve().parent.parent
CASES = ROOT / "tests" / "cases" / "payload"
ASSETS = CASES / "_assets"
EXAMPLES = ROOT / "examples"
GOLDEN_EXAMPLES = ROOT / "tests" / "golden" / "examples"
BUILTIN = ["inference/video-o1", "inference/video-o1@v1"]


def _cases() -> list[str]:
    return sorted(p.name for p in CASES.iterdir() if (p / "main.story").is_file())


def _examples() -> list[str]:
    if not EXAMPLES.is_dir():
        return []
    return sorted(p.name for p in EXAMPLES.iterdir() if (p / "main.story").is_file())


def _slug(name: str) -> str:
    return targets.get(name).slug


def _stage(case: str, tmp: Path) -> Path:
    work = tmp / case
    work.mkdir()
    shutil.copy(CASES / case / "main.story", work / "main.story")
    shutil.copytree(ASSETS, work / "assets")
    return work


def test_there_are_enough_cases() -> None:
    assert len(_cases()) >= 12


@pytest.mark.parametrize("target", BUILTIN)
@pytest.mark.parametrize("case", _cases())
def test_payload_case(case: str, target: str, tmp_path: Path, golden: GoldenCheck) -> None:
    comp = compile_project(_stage(case, tmp_path), target=target)
    errors = [f"{d.code} {d.message}" for d in comp.diagnostics if d.is_error]
    assert not errors, errors
    assert set(comp.requests) == set(comp.project.scenes)  # type: ignore[union-attr]
    golden(CASES / case / f"expected.{_slug(target)}.json", comp.dumps())


@pytest.mark.parametrize(
    "case", [c for c in _cases() if "target" in (CASES / c / "main.story").read_text("utf-8")]
)
def test_payload_case_targets_as_written(case: str, tmp_path: Path, golden: GoldenCheck) -> None:
    comp = compile_project(_stage(case, tmp_path))
    assert not comp.has_errors
    golden(CASES / case / "expected.story.json", comp.dumps())


@pytest.mark.parametrize("target", BUILTIN)
@pytest.mark.parametrize("example", _examples())
def test_example_payloads(example: str, target: str, golden: GoldenCheck) -> None:
    comp = compile_project(EXAMPLES / example, target=target)
    assert not comp.has_errors, [d.message for d in comp.diagnostics if d.is_error]
    golden(GOLDEN_EXAMPLES / f"{example}.{_slug(target)}.json", comp.dumps())


def test_compiling_twice_gives_identical_bytes(tmp_path: Path) -> None:
    work = _stage("scene_outputs", tmp_path)
    for target in BUILTIN:
        assert (
            compile_project(work, target=target).dumps()
            == compile_project(work, target=target).dumps()
        )
