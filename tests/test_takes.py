"""Takes through the whole pipeline: previews caption the writer's names and name scene
and take, a chained shot starts from the upstream's clean last frame, the takes of a scene
differ (preview backend and loopback provider), and picking an upstream take renders its
dependents again — and only them."""

from __future__ import annotations

import contextlib
import io
from pathlib import Path

import pytest
from frames import band_reference, bright, gray_frame, gray_image, iou
from test_build_support import build, final_states, make_project, rendered

from storyc.cli import main
from storyc.provider import loopback
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

STORY = """\
project "Takes" { quality = "std"  aspect = "16:9" }
image market "assets/market.png"
scene a { prompt = "@market at dusk, lanterns swaying"  duration = 3  takes = 2 }
scene b { start = a.last_frame  prompt = "A slow push in"  duration = 5 }
scene c { prompt = "An unrelated wide shot of the harbour"  duration = 5 }
"""
W, H = 640, 360


def _pick(root: Path, scene: str, take: int) -> int:
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        return main(["pick", scene, str(take), str(root)])


def _outputs(root: Path) -> dict[str, list[str | None]]:
    """Every scene's take outputs (each test builds with one backend: previews or paid)."""
    lock = LockFile.load(root / "storyc.lock")
    entries = {**lock.previews, **lock.scenes}
    return {n: [t.output for t in e.takes] for n, e in entries.items()}


def test_preview_shows_writers_names_and_chains_from_a_clean_frame(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    code, _, err = build(root)
    assert code == 0, err
    store = Store.for_project(root)
    outs = _outputs(root)
    a1 = store.get(outs["a"][0] or "")
    assert a1 is not None
    # the caption is the prompt as written (@market), not as sent (@image_1)
    gray = gray_frame(a1, 2)
    bh, mine = band_reference("@market at dusk, lanterns swaying", W, H, 3.0)
    _, sent = band_reference("@image_1 at dusk, lanterns swaying", W, H, 3.0)
    band = bright(gray, W, (0, H - bh, W, H))
    assert iou(band, mine) > 0.7 and iou(band, sent) < 0.5
    # b started from a's last frame without a's caption: the frame b was given is the
    # clean one recorded by the preview backend
    clean = store.lookup_derived(outs["a"][0] or "", "last_frame")
    assert clean is not None
    still = gray_image(store.get(clean))  # type: ignore[arg-type]
    assert iou(bright(still, W, (0, H - bh, W, H)), mine) < 0.2
    lock = LockFile.load(root / "storyc.lock")
    assert lock.previews["b"].inputs["image"]["upstream"] == outs["a"][0]


def test_preview_takes_differ_and_picking_renders_dependents_again(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    code, _, err = build(root)
    assert code == 0, err
    outs = _outputs(root)
    assert outs["a"][0] != outs["a"][1]  # two takes, two different videos
    b_before = outs["b"][0]

    said = io.StringIO()
    with contextlib.redirect_stdout(said):
        assert main(["pick", "a", "2", str(root)]) == 0
    assert said.getvalue().endswith("scenes that use a will render again on the next build\n")
    said = io.StringIO()
    with contextlib.redirect_stdout(said):  # the same take again: nothing to render
        assert main(["pick", "a", "2", str(root)]) == 0
    assert said.getvalue().endswith("it was already picked: nothing changes\n")
    code, events, err = build(root)
    assert code == 0, err
    # b starts from a's last frame: another take of a is another start for b
    assert rendered(events) == ["b"]
    assert final_states(events) == {"a": "reused", "b": "done", "c": "reused"}
    after = _outputs(root)
    assert after["b"][0] != b_before
    assert (
        LockFile.load(root / "storyc.lock").previews["b"].inputs["image"]["upstream"]
        == (outs["a"][1])
    )

    # picking take 1 again costs nothing: b's earlier render is still in the store
    assert _pick(root, "a", 1) == 0
    code, events, err = build(root)
    assert code == 0 and rendered(events) == [], err
    assert _outputs(root)["b"][0] == b_before


@pytest.fixture
def server(monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    with loopback.serve(latency=0.05, fast_outputs=False) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        yield srv


def test_loopback_takes_differ_and_picking_renders_dependents_again(
    tmp_path: Path, server: loopback.LoopbackServer
) -> None:
    root = make_project(tmp_path / "p", STORY)
    code, _, err = build(root, "--backend", "inference", "--yes")
    assert code == 0, err
    assert len(server.submissions) == 4  # a ×2, b, c
    outs = _outputs(root)
    # the provider got the same request twice and, like the model, answered differently
    a_inputs = [s["input"] for s in server.submissions if "lanterns" in s["input"]["prompt"]]
    assert len(a_inputs) == 2 and a_inputs[0] == a_inputs[1]
    assert outs["a"][0] != outs["a"][1]

    assert _pick(root, "a", 2) == 0
    code, events, err = build(root, "--backend", "inference", "--yes")
    assert code == 0, err
    assert rendered(events) == ["b"] and len(server.submissions) == 5
    assert _outputs(root)["b"][0] != outs["b"][0]
