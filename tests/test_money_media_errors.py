"""A file the provider cannot take (E213-E219: too small, wrong shape, wrong length ...)
is an error in the story, and a scene with an error is never built: neither the scene
that sends the file (through an asset or written in the scene), nor what uses its output.
The media limits used to be checked after the compiler had decided which scenes errors
block, so `storyc plan` priced such a scene and a paid build sent it."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build_support import build, final_states, make_project

from storyc.media import ffmpeg as media
from storyc.provider import loopback

STORY = """\
project "Small" { quality = "std"  aspect = "16:9" }
image hero "assets/hero.png"
scene a { start = hero  prompt = "Shot a"  duration = 5 }
scene inline { start = "assets/hero.png"  prompt = "Shot inline"  duration = 5 }
scene after { start = a.last_frame  prompt = "After a"  duration = 5 }
scene fine { prompt = "Shot fine"  duration = 5 }
"""


def test_a_scene_sending_an_unusable_file_is_blocked_and_not_paid_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = make_project(tmp_path / "p", STORY)
    media.make_test_image(root / "assets" / "hero.png", 320, 180, seed=4)  # < 300 px: E213
    with loopback.serve(latency=0.05, fast_outputs=True) as srv:
        for k, v in srv.env.items():
            monkeypatch.setenv(k, v)
        code, events, err = build(root, "--backend", "inference", "--yes")
        assert "E213" in err and code == 1
        states = final_states(events)
        assert states == {"a": "blocked", "inline": "blocked", "after": "blocked", "fine": "done"}
        assert [s["input"]["prompt"] for s in srv.submissions] == ["Shot fine"]
        media.make_test_image(root / "assets" / "hero.png", 640, 360, seed=4)  # fixed
        code, events, err = build(root, "--backend", "inference", "--yes")
        assert code == 0, err
        assert len(srv.submissions) == 4
