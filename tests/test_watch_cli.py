"""`storyc watch` as a process: exit codes, JSON events, Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

from procs import Child

from storyc.media import ffmpeg as media

WAIT = 30.0
STORY = """project "p" {
  aspect = "16:9"
}
image market = "assets/market.png"
scene arrival {
  prompt = "A night market @market"
  duration = 5
}
"""


def storyc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> Child:
    return Child(
        [sys.executable, "-m", "storyc", *args], cwd=str(cwd), env={**os.environ, **(env or {})}
    )


def test_no_project_is_an_environment_error(tmp_path: Path) -> None:
    p = storyc("watch", str(tmp_path), cwd=tmp_path)
    code, _, err = p.finish(timeout=WAIT)
    assert code == 3
    assert "no storyc project" in err and "Traceback" not in err


def test_paid_rendering_needs_a_key(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        STORY.replace('image market = "assets/market.png"\n', "").replace(" @market", ""), "utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k != "INFERENCE_API_KEY"}
    p = Child(
        [sys.executable, "-m", "storyc", "watch", "--backend", "inference", "--max-cost", "2"],
        cwd=str(tmp_path),
        env=env,
    )
    code, _, err = p.finish(timeout=WAIT)
    assert code == 3
    assert "INFERENCE_API_KEY" in err and "Traceback" not in err


def test_json_events_and_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    media.make_test_image(tmp_path / "assets" / "market.png", 640, 480)
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    with storyc("watch", "--json", "--backend", "inference", cwd=tmp_path) as p:
        events = []
        while not events or events[-1]["event"] != "waiting":
            events.append(json.loads(p.readline(timeout=WAIT)))
        kinds = [e["event"] for e in events]
        assert kinds[:4] == ["diagnostics", "plan", "watching", "waiting"], kinds
        assert events[1]["render"] == ["arrival"] and events[1]["cost"] > 0
        (tmp_path / "main.story").write_text(STORY.replace("night", "rainy night"), "utf-8")
        while events[-1]["event"] != "plan":
            events.append(json.loads(p.readline(timeout=WAIT)))
        p.send_signal(signal.SIGINT)
        code, rest, err = p.finish(timeout=WAIT)
        events += [json.loads(line) for line in rest.splitlines()]
    assert code == 0, "Ctrl-C between renders is a clean stop"
    assert events[-1] == {
        **events[-1],
        "event": "stopped",
        "interrupted": True,
        "during_build": False,
    }
    assert "Traceback" not in err
