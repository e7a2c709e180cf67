"""Files a story names: they stay inside the project, they are what their slot needs by
content, and no path can make storyc hang, fill memory or print "internal error"."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from storyc.compiler import compile_project
from storyc.media import ffmpeg as media


def _project(root: Path, story: str) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "main.story").write_text('project "Files" { aspect = "16:9" }\n' + story)
    return root


def _codes(root: Path) -> list[str]:
    return [d.code for d in compile_project(root).diagnostics]


def _errors(root: Path) -> dict[str, str]:
    return {d.code: d.message for d in compile_project(root).diagnostics if d.is_error}


@pytest.fixture(scope="module")
def png(tmp_path_factory: pytest.TempPathFactory) -> Path:
    p = tmp_path_factory.mktemp("media") / "frame.png"
    media.make_test_image(p, 640, 360)
    return p


def _scene(path: str) -> str:
    return f'image pic "{path}"\nscene a {{ start = pic  prompt = "@pic at dawn"  duration = 5 }}\n'


def test_a_file_outside_the_project_is_an_error(tmp_path: Path, png: Path) -> None:
    outside = tmp_path / "secret.png"
    outside.write_bytes(png.read_bytes())
    root = _project(tmp_path / "film", _scene("../secret.png"))
    errors = _errors(root)
    assert "E140" in errors and "outside the project folder" in errors["E140"]
    comp = compile_project(root)
    assert comp.requests == {}  # nothing that a build could upload


def test_an_absolute_path_outside_is_an_error(tmp_path: Path, png: Path) -> None:
    root = _project(tmp_path / "film", _scene(str(png)))
    assert "E140" in _errors(root)


def test_a_link_that_points_out_of_the_project_is_an_error(tmp_path: Path, png: Path) -> None:
    root = _project(tmp_path / "film", _scene("assets/frame.png"))
    (root / "assets").mkdir()
    (root / "assets" / "frame.png").symlink_to(png)
    errors = _errors(root)
    assert "E140" in errors and "a link to" in errors["E140"]
    # a link inside the project is fine
    inside = root / "library" / "frame.png"
    inside.parent.mkdir()
    inside.write_bytes(png.read_bytes())
    (root / "assets" / "frame.png").unlink()
    (root / "assets" / "frame.png").symlink_to(inside)
    assert not _errors(root)


def test_shared_folders_are_an_explicit_opt_in(tmp_path: Path, png: Path) -> None:
    shared = tmp_path / "brand"
    shared.mkdir()
    (shared / "logo.png").write_bytes(png.read_bytes())
    (shared / "cast.story").write_text('image extra "logo.png"\n')
    root = _project(tmp_path / "film", _scene("../brand/logo.png"))
    assert "E140" in _errors(root)
    story = 'include "../brand/cast.story"\n' + _scene("../brand/logo.png")
    root = _project(tmp_path / "film", story)
    assert "E017" in _errors(root)
    (root / "main.story").write_text(
        'project "Files" { aspect = "16:9"  shared_folders = ["../brand"] }\n' + story
    )
    assert not _errors(root)
    comp = compile_project(root)
    assert "a" in comp.requests


@pytest.mark.parametrize(
    ("value", "message"),
    [('["../nowhere"]', "does not exist"), ("[5]", "paths in quotes"), ('["/"]', "root")],
)
def test_bad_shared_folders_are_reported(tmp_path: Path, value: str, message: str) -> None:
    root = tmp_path / "film"
    root.mkdir()
    (root / "main.story").write_text(
        f'project "Files" {{ aspect = "16:9"  shared_folders = {value} }}\n'
        'scene a { prompt = "x"  duration = 5 }\n'
    )
    errors = _errors(root)
    assert "E141" in errors and message in errors["E141"]


def test_an_include_outside_the_project_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "other.story").write_text('scene b { prompt = "y"  duration = 5 }\n')
    root = _project(tmp_path / "film", 'include "../other.story"\n')
    assert "E017" in _errors(root)


def test_a_png_that_is_text_is_an_error_not_a_warning(tmp_path: Path) -> None:
    root = _project(tmp_path / "film", _scene("assets/frame.png"))
    (root / "assets").mkdir()
    (root / "assets" / "frame.png").write_text("<html>not found</html>\n")
    diags = compile_project(root).diagnostics
    (diag,) = [d for d in diags if d.code == "E132"]
    assert diag.is_error and "holds text" in diag.message
    assert "W130" not in [d.code for d in diags]
    assert compile_project(root).requests == {}


def test_a_png_that_is_noise_is_an_error(tmp_path: Path) -> None:
    root = _project(tmp_path / "film", _scene("assets/frame.png"))
    (root / "assets").mkdir()
    (root / "assets" / "frame.png").write_bytes(bytes(range(256)) * 4)
    assert "E132" in _errors(root)


@pytest.mark.timeout(60)
def test_include_of_a_fifo_does_not_hang(tmp_path: Path) -> None:
    root = _project(tmp_path / "film", 'include "pipe.story"\n')
    os.mkfifo(root / "pipe.story")
    errors = _errors(root)
    assert "E016" in errors and "FIFO" in errors["E016"]


@pytest.mark.timeout(60)
def test_a_media_fifo_does_not_hang(tmp_path: Path) -> None:
    root = _project(tmp_path / "film", _scene("assets/frame.png"))
    (root / "assets").mkdir()
    os.mkfifo(root / "assets" / "frame.png")
    assert "E137" in _errors(root)


@pytest.mark.timeout(60)
def test_include_of_dev_zero_is_refused_unread(tmp_path: Path) -> None:
    root = tmp_path / "film"
    root.mkdir()
    (root / "main.story").write_text(
        'project "Files" { shared_folders = ["/dev"] }\ninclude "/dev/zero"\n'
    )
    errors = _errors(root)
    assert "E016" in errors and "device" in errors["E016"]


@pytest.mark.timeout(60)
def test_a_3_gb_story_file_is_refused_unread(tmp_path: Path) -> None:
    root = _project(tmp_path / "film", 'include "huge.story"\n')
    with open(root / "huge.story", "wb") as f:
        f.truncate(3 * 1024**3)  # sparse: no disk used, and never read
    errors = _errors(root)
    assert "E016" in errors and "16 MB" in errors["E016"]


@pytest.mark.parametrize(
    "written", ["https://[oops/a.png", "https://host:port/a.png", "https://a b.com/x.png"]
)
def test_malformed_urls_are_located_errors(tmp_path: Path, written: str) -> None:
    root = _project(tmp_path / "film", _scene(written))
    comp = compile_project(root)
    (diag,) = [d for d in comp.diagnostics if d.code == "E136"]
    assert diag.span is not None and diag.span.line == 2


@pytest.mark.parametrize("url", ["http://[1]", "https://[::1", "https://x:99999"])
def test_a_malformed_base_url_is_a_located_error(tmp_path: Path, url: str) -> None:
    root = tmp_path / "film"
    root.mkdir()
    (root / "main.story").write_text(
        f'project "U" {{ base_url = "{url}" }}\nscene a {{ prompt = "x" duration = 5 aspect = "1:1" }}\n'
    )
    comp = compile_project(root)
    (diag,) = [d for d in comp.diagnostics if d.code == "E136"]
    assert diag.span is not None and (diag.span.line, diag.span.col) == (1, 26)


def test_a_nul_byte_in_paths_is_a_located_error(tmp_path: Path) -> None:
    root = _project(tmp_path / "film", 'include "a\x00b.story"\n' + _scene("x\x00y.png"))
    comp = compile_project(root)
    assert not comp.requests
    assert all(d.span is not None for d in comp.diagnostics if d.is_error)
    assert "E001" in [d.code for d in comp.diagnostics]


def test_names_too_long_for_the_file_system_are_located_errors(tmp_path: Path) -> None:
    # found by the long fuzz run: a shared folder of 3,000 characters crashed the resolver
    long = "w" * 3000
    root = tmp_path / "film"
    root.mkdir()
    (root / "main.story").write_text(
        f'project "L" {{ shared_folders = ["{long}"] }}\n'
        f'scene a {{ start = "{long}.png" prompt = "x" duration = 5 }}\n'
    )
    assert "E141" in _errors(root)
    (root / "main.story").write_text(f'project "L" {{ aspect = "1:1" }}\n{_scene(long + ".png")}')
    assert "E130" in _errors(root)
    (root / "main.story").write_text(f'include "{long}.story"\n')
    assert "E012" in _errors(root)
