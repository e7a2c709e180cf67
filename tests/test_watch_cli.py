"""`storyc watch` as a process: exit codes, JSON events, Ctrl-C."""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

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


def storyc(*args: str, cwd: Path, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "storyc", *args],
        cwd=cwd,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, **(env or {})},
    )


def test_no_project_is_an_environment_error(tmp_path: Path) -> None:
    p = storyc("watch", str(tmp_path), cwd=tmp_path)
    out, err = p.communicate(timeout=WAIT)
    assert p.returncode == 3
    assert "no storyc project" in err and "Traceback" not in err


def test_paid_rendering_needs_a_key(tmp_path: Path) -> None:
    (tmp_path / "main.story").write_text(
        STORY.replace('image market = "assets/market.png"\n', "").replace(" @market", ""), "utf-8"
    )
    env = {k: v for k, v in os.environ.items() if k != "INFERENCE_API_KEY"}
    p = subprocess.Popen(
        [sys.executable, "-m", "storyc", "watch", "--backend", "inference", "--max-cost", "2"],
        cwd=tmp_path,
        text=True,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    out, err = p.communicate(timeout=WAIT)
    assert p.returncode == 3
    assert "INFERENCE_API_KEY" in err and "Traceback" not in err


def test_json_events_and_ctrl_c(tmp_path: Path) -> None:
    (tmp_path / "assets").mkdir()
    media.make_test_image(tmp_path / "assets" / "market.png", 640, 480)
    (tmp_path / "main.story").write_text(STORY, "utf-8")
    p = storyc("watch", "--json", "--backend", "inference", cwd=tmp_path)
    lines: queue.Queue[str] = queue.Queue()
    assert p.stdout is not None
    reader = threading.Thread(target=lambda: [lines.put(x) for x in p.stdout], daemon=True)
    reader.start()
    try:
        events = []
        while not events or events[-1]["event"] != "waiting":
            events.append(json.loads(lines.get(timeout=WAIT)))
        kinds = [e["event"] for e in events]
        assert kinds[:4] == ["diagnostics", "plan", "watching", "waiting"], kinds
        assert events[1]["render"] == ["arrival"] and events[1]["cost"] > 0
        (tmp_path / "main.story").write_text(STORY.replace("night", "rainy night"), "utf-8")
        while events[-1]["event"] != "plan":
            events.append(json.loads(lines.get(timeout=WAIT)))
        p.send_signal(signal.SIGINT)
        p.wait(timeout=WAIT)
        reader.join(WAIT)
        while not lines.empty():
            events.append(json.loads(lines.get_nowait()))
    finally:
        if p.poll() is None:
            p.kill()
    assert p.returncode == 0, "Ctrl-C between renders is a clean stop"
    assert events[-1] == {
        **events[-1],
        "event": "stopped",
        "interrupted": True,
        "during_build": False,
    }
    assert p.stderr is not None and "Traceback" not in p.stderr.read()
