"""Every example in the docs is checked, and every diagnostic code is documented.

Story examples are fenced code blocks in docs/*.md and README.md:

    ```story                  a complete entry file: must compile with no errors
    ```story expect=E123      must report that code (an example of a mistake)
    ```story file=cast.story  not compiled on its own: written beside the next examples of
                              the same page, so they can `include` it

Media paths an example mentions (".png", ".jpg", ".jpeg", ".mp4", ".mov") are created as
small valid files before compiling, so examples read naturally.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from storyc.compiler import compile_project
from storyc.media import ffmpeg as media

ROOT = Path(__file__).resolve().parent.parent
DOCS = sorted((ROOT / "docs").glob("*.md")) + [ROOT / "README.md"]
FENCE = re.compile(r"^```story([^\n]*)\n(.*?)^```\s*$", re.M | re.S)
MEDIA = re.compile(r"[\"']([^\"'\s]+\.(?:png|jpe?g|mp4|mov))[\"']", re.I)


def _blocks() -> list[tuple[Path, int, str, dict[str, str]]]:
    out = []
    for doc in DOCS:
        text = doc.read_text("utf-8")
        for m in FENCE.finditer(text):
            attrs = dict(a.split("=", 1) for a in m.group(1).split() if "=" in a)
            line = text.count("\n", 0, m.start()) + 1
            out.append((doc, line, m.group(2), attrs))
    return out


BLOCKS = _blocks()
_media_cache: dict[str, Path] = {}


def _make_media(rel: str, where: Path, tmp_root: Path) -> None:
    target = where / rel
    if target.exists() or rel.startswith(("http://", "https://")):
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    suffix = target.suffix.lower()
    cached = _media_cache.get(suffix)
    if cached is None or not cached.exists():
        cached = tmp_root / f"_media{suffix}"
        if suffix in (".mp4", ".mov"):
            media.make_test_video(cached, width=1280, height=720, duration=5.0, audio=True)
        else:
            media.make_test_image(cached, 640, 480)
        _media_cache[suffix] = cached
    target.write_bytes(cached.read_bytes())


def test_docs_have_story_examples() -> None:
    assert any(attrs.get("file") is None for _, _, _, attrs in BLOCKS)


@pytest.mark.parametrize(
    "doc,line,body,attrs",
    [b for b in BLOCKS if "file" not in b[3]],
    ids=[f"{b[0].name}:{b[1]}" for b in BLOCKS if "file" not in b[3]],
)
def test_doc_example(
    doc: Path, line: int, body: str, attrs: dict[str, str], tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("doc")
    # Auxiliary files of the same page that come before this example.
    for d, ln, b, a in BLOCKS:
        if d == doc and "file" in a and ln < line:
            (work / a["file"]).write_text(b, "utf-8")
            for rel in MEDIA.findall(b):
                _make_media(rel, work, tmp_path_factory.getbasetemp())
    (work / "main.story").write_text(body, "utf-8")
    for rel in MEDIA.findall(body):
        _make_media(rel, work, tmp_path_factory.getbasetemp())
    comp = compile_project(work)
    codes = [d.code for d in comp.diagnostics]
    where = f"{doc.name}:{line}"
    if "expect" in attrs:
        assert attrs["expect"] in codes, f"{where}: expected {attrs['expect']}, got {codes}"
    else:
        errors = [f"{d.code} {d.message}" for d in comp.diagnostics if d.is_error]
        assert not errors, f"{where}: example does not compile: {errors}"


CODE = re.compile(r"[\"']([EW][0-9]{3})[\"']")


def test_every_diagnostic_code_is_documented() -> None:
    used: set[str] = set()
    for py in (ROOT / "storyc").rglob("*.py"):
        used.update(CODE.findall(py.read_text("utf-8")))
    assert used, "no diagnostic codes found in storyc/"
    doc = (ROOT / "docs" / "diagnostics.md").read_text("utf-8")
    documented = set(re.findall(r"\b([EW][0-9]{3})\b", doc))
    missing = sorted(used - documented)
    assert not missing, f"codes used but not documented in docs/diagnostics.md: {missing}"
