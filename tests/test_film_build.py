"""`storyc build` assembles every cut, `storyc plan` shows them, `storyc export` hands one
to an editor: end to end, with real renders (preview, and the loopback provider over real
sockets for a paid cut) and every video checked by decoding it."""

from __future__ import annotations

import contextlib
import io
import os
from pathlib import Path
from typing import Any

import opentimelineio as otio
import pytest
from test_build_support import build, edit_story, make_project

from storyc.cli import main
from storyc.media import edit
from storyc.provider import loopback

STORY = """\
project "Film" { aspect = "16:9" }
image market "assets/market.png"
scene a { prompt = "A walk through the market at dusk"  duration = 5 }
scene b { start = market  prompt = "Into the market"  duration = 5 }
scene c { prompt = "A wide shot of the harbour"  duration = 5 }
cut final = [a, b { in = 1, out = 4 }, crossfade(0.5), c]
cut short = [c, a]
"""
FPS = 24


def cuts(events: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {e["cut"]: e for e in events if e["event"] == "cut"}


def frames(root: Path, name: str) -> int:
    return edit.decode_counts(root / "renders" / f"{name}.mp4").frames


def run(*argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return code, out.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = make_project(tmp_path_factory.mktemp("film") / "p", STORY)
    code, events, err = build(root)
    assert code == 0, err
    got = cuts(events)
    assert {n: (e["state"], e["method"]) for n, e in got.items()} == {
        "final": ("assembled", "normalised"),
        "short": ("assembled", "stream copy"),
    }
    return root


def test_every_cut_lasts_the_sum_of_its_parts(built: Path) -> None:
    a, b, c = (frames(built, s) for s in "abc")
    assert b >= 4 * FPS  # long enough for the trim
    final = edit.decode_counts(built / "renders" / "final.mp4")
    # a whole, b from 1 s to 4 s, c crossfading in over 0.5 s
    assert final.frames == a + 3 * FPS + c - FPS // 2
    # previews have no sound: the normalised cut has one track of silence all along
    assert final.audio_streams == 1 and final.samples == final.frames * 2000
    assert max(edit.loudness(built / "renders" / "final.mp4", window=0.1)) < 0.01
    short = edit.decode_counts(built / "renders" / "short.mp4")
    assert (short.frames, short.audio_streams) == (c + a, 0)
    assert os.path.islink(built / "renders" / "final.mp4")


def test_a_second_build_assembles_nothing_and_an_edit_only_the_cuts_it_touches(
    built: Path,
) -> None:
    code, events, _ = build(built)
    assert code == 0
    assert {n: e["state"] for n, e in cuts(events).items()} == {
        "final": "up to date",
        "short": "up to date",
    }
    # b is only in `final`
    edit_story(built, "Into the market", "Into the busy market")
    try:
        code, events, _ = build(built)
        assert code == 0
        assert {n: e["state"] for n, e in cuts(events).items()} == {
            "final": "assembled",
            "short": "up to date",
        }
    finally:
        edit_story(built, "Into the busy market", "Into the market")
    # back to the old b: its old cut is still in the store
    code, events, _ = build(built)
    assert cuts(events)["final"]["state"] == "up to date"


def test_build_cut_builds_that_cut_and_its_scenes(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    code, events, err = build(root, "--cut", "short")
    assert code == 0, err
    assert list(cuts(events)) == ["short"]
    built_scenes = {e["scene"] for e in events if e["event"] == "scene"}
    assert built_scenes == {"a", "c"}
    assert not (root / "renders" / "final.mp4").exists()
    code, _, err = build(root, "--cut", "nope")
    assert code == 2 and "no cut named 'nope' (cuts: final, short)" in err


def test_a_scene_that_cannot_render_is_a_slate_and_the_build_says_so(tmp_path: Path) -> None:
    story = STORY.replace(
        "cut short = [c, a]",
        'image gone "assets/gone.png"\n'
        'scene d { start = gone  prompt = "Lost footage"  duration = 5 }\n'
        "cut short = [c, d, a]",
    )
    root = make_project(tmp_path / "p", story)
    code, events, err = build(root, "--cut", "short")
    assert code == 1  # the story has an error (the missing image)...
    assert "warning[W381]: cut short: scene d is shown as a slate" in err
    got = cuts(events)["short"]  # ...and the cut still plays, with a slate in d's place
    assert got["state"] == "assembled" and got["stand_ins"] == {"d": "slate"}
    assert frames(root, "short") == frames(root, "c") + 5 * FPS + frames(root, "a")


def test_a_scene_blocked_now_says_the_cut_shows_its_last_render(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    code, _, err = build(root, "--cut", "short")
    assert code == 0, err
    before = (root / "renders" / "short.mp4").read_bytes()
    # a's render is in the lock; now the story breaks it (an unknown name in its prompt)
    edit_story(root, "A walk through the market at dusk", "A walk through {{ nope }}")
    code, events, err = build(root, "--cut", "short")
    assert code == 1
    assert (
        "warning[W383]: scene a is blocked now; the cuts show its last render, made before "
        "the story changed"
    ) in err
    assert cuts(events)["short"]["state"] == "up to date"
    assert (root / "renders" / "short.mp4").read_bytes() == before


def test_a_paid_cut_shows_the_preview_of_a_scene_not_paid_for_yet(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    story = STORY.replace("cut final = [a, b { in = 1, out = 4 }, crossfade(0.5), c]\n", "")
    root = make_project(tmp_path / "p", story)
    assert build(root)[0] == 0  # previews of every scene
    with loopback.serve(latency=0.05, fast_outputs=True, faults=["submit:fail:nth=1"]) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, "--backend", "inference", "--yes", "--retries", "0")
    failed = [e["scene"] for e in events if e["event"] == "scene" and e["state"] == "failed"]
    assert code == 1 and len(failed) == 1, err
    assert f"warning[W380]: cut short: scene {failed[0]} has no inference render" in err
    got = cuts(events)["short"]
    assert got["state"] == "assembled" and got["stand_ins"] == {failed[0]: "preview"}
    assert got["method"] == "normalised"  # loopback renders and previews differ in size
    counts = edit.decode_counts(root / "renders" / "short.mp4")
    assert counts.frames == round(got["seconds"] * FPS) and counts.frames >= 2 * 5 * FPS - 2


def test_plan_shows_each_cut(built: Path) -> None:
    code, out, _ = run("plan", str(built))
    assert code == 0
    assert "cut final: 3 scenes, 12.5 s" in out
    assert "  a, b [1-4 s], crossfade(0.5), c" in out
    assert "cut short: 2 scenes, 10 s" in out
    edit_story(built, "A wide shot", "A long wide shot")
    try:
        code, out, _ = run("plan", str(built))
        assert "missing: c (will render)" in out
    finally:
        edit_story(built, "A long wide shot", "A wide shot")


def test_export_writes_real_files_in_cut_order_and_a_timeline_that_matches(
    built: Path, tmp_path: Path
) -> None:
    dest = tmp_path / "handoff"
    code, out, err = run("export", "final", str(built), "--to", str(dest))
    assert code == 0, err
    names = sorted(p.name for p in dest.iterdir())
    assert names == [
        "01_a.mp4",
        "02_b.mp4",
        "03_c.mp4",
        "final.edl",
        "final.fcpxml",
        "final.mp4",
        "final.otio",
        "final.xml",
    ]
    assert not any(p.is_symlink() for p in dest.iterdir())
    for scene in "abc":
        # the whole render, byte for byte: the editor gets every frame as a handle
        exported = (dest / f"0{'abc'.index(scene) + 1}_{scene}.mp4").read_bytes()
        assert exported == (built / "renders" / f"{scene}.mp4").read_bytes()
    a, b, c = (frames(built, s) for s in "abc")
    timeline = otio.adapters.read_from_file(str(dest / "final.otio"))
    assert [t.kind for t in timeline.tracks] == ["Video", "Audio"]
    for track in timeline.tracks:
        items = list(track)
        kinds = [type(i).__name__ for i in items]
        assert kinds == ["Clip", "Clip", "Transition", "Clip"]
        ca, cb, fade, cc = items
        tr = otio.opentime.TimeRange
        rt = otio.opentime.RationalTime
        assert ca.source_range == tr(rt(0, FPS), rt(a, FPS))
        # b from 1 s to 4 s; the dissolve plays its last 0.5 s over the start of c
        assert cb.source_range == tr(rt(FPS, FPS), rt(3 * FPS - FPS // 2, FPS))
        assert (fade.in_offset, fade.out_offset) == (rt(0, FPS), rt(FPS // 2, FPS))
        assert cc.source_range == tr(rt(0, FPS), rt(c, FPS))
        for clip, n, total in ((ca, 1, a), (cb, 2, b), (cc, 3, c)):
            ref = clip.media_reference
            assert ref.target_url == (dest / f"0{n}_{clip.name}.mp4").resolve().as_uri()
            assert ref.available_range == tr(rt(0, FPS), rt(total, FPS))
        assert track.duration() == rt(frames(built, "final"), FPS)
    edl = (dest / "final.edl").read_text()
    assert "D 012" in edl and "02_b.mp4" in edl
    assert "pathurl" in (dest / "final.xml").read_text()
    assert edit.decode_counts(dest / "final.mp4").frames == frames(built, "final")
    code, _, err = run("export", "nope", str(built), "--to", str(dest))
    assert code == 2 and "no cut named 'nope'" in err


def test_gc_keeps_the_cut_its_name_points_at(tmp_path: Path) -> None:
    root = make_project(tmp_path / "p", STORY)
    assert build(root, "--cut", "short")[0] == 0
    code, _, err = run("gc", str(root), "--keep-days", "0")
    assert code == 0, err
    assert (root / "renders" / "short.mp4").resolve().is_file()


def test_picking_another_take_reassembles_only_the_cuts_that_use_it(tmp_path: Path) -> None:
    story = STORY.replace("duration = 5 }\nscene c", "duration = 5  takes = 2 }\nscene c", 1)
    story = story.replace(
        "cut final = [a, b { in = 1, out = 4 }, crossfade(0.5), c]", "cut final = [b, c]"
    )
    assert "takes = 2" in story
    root = make_project(tmp_path / "p", story)  # b has two takes and is only in `final`
    code, events, err = build(root)
    assert code == 0, err
    before = (root / "renders" / "final.mp4").resolve()
    code, _, err = run("pick", "b", "2", str(root))
    assert code == 0, err
    code, events, _ = build(root)
    assert code == 0
    assert {n: e["state"] for n, e in cuts(events).items()} == {
        "final": "assembled",
        "short": "up to date",
    }
    assert (root / "renders" / "final.mp4").resolve() != before


def test_watch_assembles_the_cuts_after_each_build(tmp_path: Path) -> None:
    import json
    import signal

    from test_watch_cli import storyc

    root = make_project(tmp_path / "p", STORY)
    notes: list[str] = []
    with storyc("watch", "--json", cwd=root) as p:
        while not any(n.startswith("cut short: assembled") for n in notes):
            event = json.loads(p.readline(timeout=120))
            if event["event"] == "note":
                notes.append(event["text"])
        p.send_signal(signal.SIGINT)
        p.finish(timeout=60)
    assert any(n.startswith("cut final: assembled: renders/final.mp4") for n in notes), notes
    assert frames(root, "short") == frames(root, "c") + frames(root, "a")
