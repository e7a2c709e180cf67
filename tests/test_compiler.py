"""The compiler façade: determinism, scene selection, target override, caches, extra targets."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from storyc import targets
from storyc.base.diagnostics import Diagnostics
from storyc.compiler import compile_project
from storyc.lang.loader import ParseCache
from storyc.resolve.model import Project, Scene
from storyc.targets.request import Request

ASSETS = Path(__file__).resolve().parent / "cases" / "payload" / "_assets"

STORY = """\
project "Compiler" {
  aspect = "16:9"
}

image door "assets/door.png"
element mei { frontal = "assets/mei.png" }

scene arrival {
  prompt   = "@mei arrives at dusk"
  elements = [mei]
  duration = 5
}

scene inside {
  start    = arrival.last_frame
  prompt   = "she steps inside"
  duration = 5
}

scene door_shot {
  start    = door
  prompt   = "the door closes"
  duration = 5
}

cut final = [arrival, inside, door_shot]
"""


def project_dir(tmp_path: Path, story: str = STORY) -> Path:
    work = tmp_path / "film"
    work.mkdir()
    (work / "main.story").write_text(story, "utf-8")
    shutil.copytree(ASSETS, work / "assets")
    return work


def test_compiles_every_scene_in_dependency_order(tmp_path: Path) -> None:
    comp = compile_project(project_dir(tmp_path))
    assert not comp.has_errors
    assert comp.order == ["arrival", "inside", "door_shot"]
    assert list(comp.requests) == comp.order
    assert comp.requests["inside"].upstream == ("arrival",)
    assert comp.graph is not None and comp.graph.upstream("inside") == ["arrival"]
    doc = json.loads(comp.dumps())
    assert doc["scenes"]["inside"]["body"]["input"]["image"] == {
        "$scene": "arrival",
        "output": "last_frame",
    }


def test_compiling_twice_gives_identical_bytes(tmp_path: Path) -> None:
    work = project_dir(tmp_path)
    first = compile_project(work).dumps()
    assert compile_project(work).dumps() == first
    assert compile_project(work, parse_cache=ParseCache()).dumps() == first


def test_scene_selection_and_unknown_scene(tmp_path: Path) -> None:
    work = project_dir(tmp_path)
    comp = compile_project(work, scenes=["door_shot", "inside"])
    assert comp.order == ["inside", "door_shot"] and set(comp.requests) == {"inside", "door_shot"}
    bad = compile_project(work, scenes=["nope"])
    assert [d.code for d in bad.diagnostics if d.is_error] == ["E246"]


def test_target_override(tmp_path: Path) -> None:
    comp = compile_project(project_dir(tmp_path), target="inference/video-o1@v1")
    assert {r.schema for r in comp.requests.values()} == {"v1"}
    assert comp.requests["arrival"].prompt == "<<<image_1>>> arrives at dusk"


def test_scene_with_errors_gets_no_request(tmp_path: Path) -> None:
    story = STORY.replace(
        'prompt   = "she steps inside"\n  duration = 5',
        'prompt   = "she steps inside"\n  duration = 7',
    )
    comp = compile_project(project_dir(tmp_path, story))
    assert [d.code for d in comp.diagnostics if d.is_error] == ["E205"]
    assert "inside" not in comp.requests and "door_shot" in comp.requests


def test_scene_behind_a_scene_with_errors_is_blocked(tmp_path: Path) -> None:
    story = STORY.replace(
        'prompt   = "@mei arrives at dusk"\n  elements = [mei]\n  duration = 5',
        'prompt   = "@mei arrives at dusk"\n  elements = [mei]\n  duration = 11',
    )
    work = project_dir(tmp_path, story)
    comp = compile_project(work)
    assert [d.code for d in comp.diagnostics if d.is_error] == ["E204"]
    assert list(comp.requests) == ["door_shot"] and comp.blocked == {"inside": "arrival"}
    # asking for `inside` alone: its upstream still has the error, so it is still blocked
    # (it used to compile and show a payload that no build could send), and the error
    # that blocks it is shown
    alone = compile_project(work, scenes=["inside"])
    assert list(alone.requests) == [] and alone.blocked == {"inside": "arrival"}
    assert [d.code for d in alone.diagnostics if d.is_error] == ["E204"]


def test_cycle_leaves_its_scenes_uncompiled(tmp_path: Path) -> None:
    story = STORY.replace(
        'prompt   = "@mei arrives at dusk"',
        'prompt   = "@mei arrives at dusk"\n  end = inside.last_frame\n  start = door',
    )
    comp = compile_project(project_dir(tmp_path, story))
    assert "E240" in [d.code for d in comp.diagnostics]
    assert comp.order == ["door_shot"] and list(comp.requests) == ["door_shot"]


def test_no_project_is_not_found(tmp_path: Path) -> None:
    comp = compile_project(tmp_path)
    assert comp.found is False and comp.project is None and comp.has_errors


def test_parse_cache_is_reused(tmp_path: Path) -> None:
    work = project_dir(tmp_path)
    cache = ParseCache()
    compile_project(work, parse_cache=cache)
    n = cache.parses
    compile_project(work, parse_cache=cache)
    assert cache.parses == n


class _Echo(targets.Target):
    name = "test/echo"
    schema = "e1"
    app = "echo/video"

    def lower(self, scene: Scene, project: Project, diags: Diagnostics) -> Request | None:
        body = {
            "app": self.app,
            "input": {"text": scene.prompt, "elements": [e.name for e in scene.elements]},
        }
        return Request(
            scene.name,
            self.name,
            self.schema,
            self.app,
            body,
            int(scene.takes.value),
            scene.upstream(),
            scene.quality.value,
            5,
            False,
            "text-to-video",
        )


@pytest.fixture
def echo_target() -> object:
    t = targets.register(_Echo())
    yield t
    targets.unregister(t.name)


def test_a_registered_extra_target_compiles_from_a_story(
    tmp_path: Path, echo_target: object
) -> None:
    story = STORY.replace("scene arrival {", 'scene arrival {\n  target = "test/echo"')
    comp = compile_project(project_dir(tmp_path, story))
    assert not comp.has_errors, [d.message for d in comp.diagnostics]
    req = comp.requests["arrival"]
    assert req.body == {
        "app": "echo/video",
        "input": {"text": "@mei arrives at dusk", "elements": ["mei"]},
    }
    assert comp.requests["inside"].schema == "v2"


def test_line_layout_is_the_same_document(tmp_path: Path) -> None:
    """`storyc compile --json` writes one scene per line; it must parse to the same data."""
    work = tmp_path / "w"
    shutil.copytree(
        Path(__file__).resolve().parent.parent / "examples" / "night-market",
        work,
        ignore=shutil.ignore_patterns(".storyc", "renders", "storyc.lock"),
    )
    comp = compile_project(work)
    assert json.loads(comp.dumps_lines()) == json.loads(comp.dumps())
    assert comp.dumps_lines().count("\n") == 8 + len(comp.requests) + len(comp.diagnostics)
