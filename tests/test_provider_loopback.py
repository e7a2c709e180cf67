"""The loopback provider itself, spoken to with plain httpx over real sockets: envelope,
problem+json, SSE form, keep-alive, validation, outputs that are real videos of the
requested shape, deterministic fault schedules, and `storyc provider serve`.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from procs import Child

from storyc.media import ffmpeg as media
from storyc.media import info as mediainfo
from storyc.provider import loopback
from storyc.provider.loopback.faults import FaultPlan, FaultSpecError, parse_fault

APP = "klingai/video-o1"


def api(srv: loopback.LoopbackServer) -> httpx.Client:
    return httpx.Client(
        base_url=srv.url, headers={"Authorization": f"Bearer {srv.api_key}"}, timeout=30
    )


def wait_done(c: httpx.Client, task_id: str) -> dict[str, Any]:
    for _ in range(3000):
        task = c.get(f"/tasks/{task_id}").json()["data"]
        if task["status"] in (10, 11, 12, 13):
            return task
        time.sleep(0.01)
    raise AssertionError("task never finished")


def upload(c: httpx.Client, path: Path, ctype: str) -> str:
    spec = {"uri": "", "filename": path.name, "content_type": ctype, "size": path.stat().st_size}
    entry = c.post("/files", json={"files": [spec]}).json()["data"][0]
    put = httpx.put(entry["upload_url"], content=path.read_bytes(), headers={"Content-Type": ctype})
    assert put.status_code == 200
    return str(entry["uri"])


def test_envelope_status_and_problem_json() -> None:
    with loopback.serve() as srv, api(srv) as c:
        r = c.post("/apps/run", json={"app": APP, "input": {"prompt": "hi"}})
        assert r.status_code == 200 and r.json()["messages"] == []
        task = r.json()["data"]
        assert set(task) >= {
            "id",
            "status",
            "input",
            "output",
            "error",
            "created_at",
            "updated_at",
            "session_id",
            "logs",
            "events",
        }
        st = c.get(f"/tasks/{task['id']}/status").json()["data"]
        assert set(st) == {"id", "status", "updated_at"}
        unauth = httpx.get(f"{srv.url}/tasks/{task['id']}")
        assert unauth.status_code == 401
        assert unauth.headers["content-type"] == "application/problem+json"
        assert unauth.json()["type"].endswith("/unauthorized")
        missing = c.post("/apps/run", json={"app": "someone/else", "input": {}})
        assert missing.status_code == 404 and "not found" in missing.json()["detail"]
        assert c.get("/tasks/nope").status_code == 404
        assert c.post("/apps/run", content=b"{").status_code == 400


@pytest.mark.parametrize(
    "schema,payload,field",
    [
        ("v2", {"prompt": "x", "mode": "pro"}, "mode"),
        ("v2", {"prompt": "x", "duration": 2}, "duration"),
        ("v2", {"prompt": "x", "aspect_ratio": "4:3"}, "aspect_ratio"),
        (
            "v2",
            {"prompt": "x", "reference_images": ["https://a.test/i.png"] * 8},
            "reference_images",
        ),
        ("v1", {"prompt": "x", "resolution": "720p"}, "resolution"),
        ("v1", {"duration": 5}, "prompt"),
        ("v2", {"prompt": "x", "image": 42}, "image"),
    ],
)
def test_schema_validation_names_the_field(
    schema: str, payload: dict[str, Any], field: str
) -> None:
    with loopback.serve(schema=schema) as srv, api(srv) as c:
        r = c.post("/apps/run", json={"app": APP, "input": payload})
    assert r.status_code == 400 and r.json()["detail"].count(field) >= 1
    assert srv.submissions == []


def test_unknown_own_file_is_400_and_end_frame_alone_fails_like_the_app() -> None:
    with loopback.serve() as srv, api(srv) as c:
        ghost = f"{srv.url}/files/0123/ghost.png"
        r = c.post("/apps/run", json={"app": APP, "input": {"prompt": "x", "image": ghost}})
        assert r.status_code == 400 and ghost in r.json()["detail"]
        r = c.post(
            "/apps/run",
            json={"app": APP, "input": {"prompt": "x", "end_image": "https://cdn.test/end.png"}},
        )
        task = wait_done(c, r.json()["data"]["id"])
    assert task["status"] == 11 and task["error"] == "end_image requires image"


def test_sse_form_and_heartbeats() -> None:
    with loopback.serve(latency=0.6, heartbeat=0.05) as srv, api(srv) as c:
        task = c.post("/apps/run", json={"app": APP, "input": {"prompt": "x"}}).json()["data"]
        with c.stream(
            "GET", f"/tasks/{task['id']}/stream", headers={"Accept": "text/event-stream"}
        ) as r:
            assert r.headers["content-type"] == "text/event-stream"
            lines = [ln for ln in r.iter_lines() if ln]
    events = [json.loads(ln[5:]) for ln in lines if ln.startswith("data:")]
    assert any(ln.startswith(": heartbeat") for ln in lines)
    statuses = [e["data"]["status"] for e in events]
    assert statuses[0] == 2 and statuses[-1] == 10 and 9 in statuses
    assert events[-1]["data"]["output"]["video"].endswith(".mp4")


def test_keep_alive_reuses_one_connection() -> None:
    with loopback.serve() as srv, api(srv) as c:
        task = c.post("/apps/run", json={"app": APP, "input": {"prompt": "x"}}).json()["data"]
        for _ in range(20):
            assert c.get(f"/tasks/{task['id']}/status").status_code == 200
        assert srv.http.connections == 1


@pytest.mark.parametrize(
    "aspect,size", [("16:9", (320, 180)), ("9:16", (180, 320)), ("1:1", (180, 180))]
)
def test_outputs_are_videos_of_the_requested_shape(
    aspect: str, size: tuple[int, int], tmp_path: Path
) -> None:
    with loopback.serve() as srv, api(srv) as c:
        r = c.post(
            "/apps/run",
            json={"app": APP, "input": {"prompt": "x", "duration": 3, "aspect_ratio": aspect}},
        )
        task = wait_done(c, r.json()["data"]["id"])
        data = httpx.get(task["output"]["video"]).content
    info = _probe_bytes(data, tmp_path)
    assert info.kind == "video" and info.duration == pytest.approx(3.0, abs=0.1)
    assert (info.width, info.height) == size


def test_base_edit_output_lasts_as_long_as_the_input_video(tmp_path: Path) -> None:
    src = tmp_path / "take.mp4"
    media.make_test_video(src, width=320, height=180, duration=4.0)
    with loopback.serve() as srv, api(srv) as c:
        uri = upload(c, src, "video/mp4")
        r = c.post(
            "/apps/run",
            json={
                "app": APP,
                "input": {
                    "prompt": "make it night",
                    "duration": 10,
                    "reference_video": uri,
                    "reference_video_type": "base",
                },
            },
        )
        task = wait_done(c, r.json()["data"]["id"])
        data = httpx.get(task["output"]["video"]).content
    assert _probe_bytes(data, tmp_path).duration == pytest.approx(4.0, abs=0.1)


def _probe_bytes(data: bytes, tmp: Path) -> Any:
    path = tmp / "output.mp4"
    path.write_bytes(data)
    info = mediainfo.probe(path)
    assert info is not None
    return info


def test_fault_specs_and_deterministic_schedules() -> None:
    f = parse_fault("submit:drop:nth=3+5")
    assert (f.endpoint, f.kind, f.nth) == ("submit", "drop", frozenset({3, 5}))
    assert parse_fault("status:503").p == 1.0
    assert parse_fault("task:429:retry_after=2:times=1").retry_after == 2.0
    for bad in [
        "submit",
        "nowhere:500",
        "submit:explode",
        "submit:500:p=2",
        "submit:500:x=1",
        "submit:500:nth=a",
    ]:
        with pytest.raises(FaultSpecError):
            parse_fault(bad)
    plan = FaultPlan([parse_fault("submit:drop:nth=3")])
    assert [plan.pick("submit") is not None for _ in range(5)] == [False, False, True, False, False]

    def draws(seed: int) -> list[bool]:
        p = FaultPlan([parse_fault("status:500:p=0.3")], seed=seed)
        return [p.pick("status") is not None for _ in range(200)]

    assert draws(7) == draws(7) != draws(8)
    assert 30 < sum(draws(7)) < 90
    limited = FaultPlan([parse_fault("task:500:times=2")])
    assert sum(limited.pick("task") is not None for _ in range(10)) == 2


def test_cli_serve_prints_url_and_key_and_stops_on_sigterm() -> None:
    proc = Child(
        [
            sys.executable,
            "-m",
            "storyc",
            "provider",
            "serve",
            "--latency",
            "0",
            "--schema",
            "v1",
            "--key",
            "inf_cli_test",
        ],
    )
    try:
        lines = [proc.readline(timeout=60) for _ in range(3)]
        url = lines[1].strip().split("=", 1)[1]
        assert lines[1].startswith("export INFERENCE_BASE_URL=http://127.0.0.1:")
        assert lines[2].strip() == "export INFERENCE_API_KEY=inf_cli_test"
        r = httpx.post(
            f"{url}/apps/run",
            headers={"Authorization": "Bearer inf_cli_test"},
            json={"app": APP, "input": {"prompt": "x", "resolution": "720p"}},
        )
        assert r.status_code == 400  # schema v1 was selected: no `resolution` there
    finally:
        proc.send_signal(signal.SIGTERM)
        code, _, _ = proc.finish(timeout=30)
    assert code == 0


def test_cli_rejects_bad_fault_spec() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "storyc", "provider", "serve", "--fault", "submit:explode"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "unknown fault 'explode'" in r.stderr
    assert "Traceback" not in r.stderr


def test_cli_rejects_a_port_out_of_range() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "storyc", "provider", "serve", "--port", "70000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2 and "--port must be 0-65535" in r.stderr
    assert "internal error" not in r.stderr
