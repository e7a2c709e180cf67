"""Proof that the loopback provider speaks the real protocol: the official `inferencesh`
SDK, pointed at it by base URL, runs complete tasks (file upload included) against it.

If the SDK is content, the loopback speaks what the SDK speaks; and since storyc's own
client passes against the same server, the two agree with each other too.
"""

from __future__ import annotations

from pathlib import Path

import inferencesh
import pytest

from storyc.media import ffmpeg as media
from storyc.provider import loopback


@pytest.fixture
def frame(tmp_path: Path) -> Path:
    path = tmp_path / "frame.png"
    media.make_test_image(path, 480, 270)
    return path


def test_sdk_runs_a_task_with_an_upload(frame: Path) -> None:
    with loopback.serve(schema="v2", latency=0.3) as srv:
        client = inferencesh.Inference(api_key=srv.api_key, base_url=srv.url)
        # A local path in the input: the SDK uploads it (POST /files, then PUT).
        result = client.run(
            {
                "app": "klingai/video-o1@latest",
                "input": {"prompt": "the lamp flickers", "image": str(frame), "duration": 5},
            }
        )
        assert inferencesh.parse_status(result["status"]) == inferencesh.TaskStatus.COMPLETED
        video = result["output"]["video"]
        assert video.startswith(srv.url + "/outputs/") and video.endswith(".mp4")
        assert len(srv.upload_puts) == 1 and srv.upload_puts[0]["auth_header"] is False
        sent = srv.submissions[0]["input"]["image"]
        assert sent.startswith(srv.url + "/files/")  # the SDK put the uri, not the path
        # The SDK's own fetch of the finished task agrees.
        again = client.get_task(result["id"]).data
        assert again["output"]["video"] == video


def test_sdk_stream_with_string_statuses_and_failure() -> None:
    with loopback.serve(latency=0.2, status_form="string", faults=["submit:fail:nth=2"]) as srv:
        client = inferencesh.Inference(api_key=srv.api_key, base_url=srv.url)
        body = {"app": "klingai/video-o1", "input": {"prompt": "rain", "duration": 5}}
        updates = list(client.run(body, stream=True))
        assert updates[-1]["status"] == "completed"
        with pytest.raises(RuntimeError, match="generation failed"):
            client.run(body)
    assert [s["outcome"] for s in srv.submissions] == ["completed", "failed"]


def test_sdk_sees_problem_json_errors() -> None:
    with loopback.serve(schema="v1") as srv:
        client = inferencesh.Inference(api_key=srv.api_key, base_url=srv.url)
        with pytest.raises(inferencesh.APIError) as info:
            client.run({"app": "klingai/video-o1", "input": {"prompt": "x", "duration": 11}})
        assert info.value.status_code == 400 and "duration" in str(info.value)
        bad = inferencesh.Inference(api_key="inf_wrong", base_url=srv.url)
        with pytest.raises(inferencesh.APIError) as info:
            bad.get_task("nope")
        assert info.value.status_code == 401
    assert srv.submissions == []
