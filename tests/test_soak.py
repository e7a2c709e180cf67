"""Soak: a build against a provider that misbehaves on 20 % of calls (rate limits, 5xx,
truncated downloads, tasks that fail) still ends with every scene correct."""

from __future__ import annotations

from pathlib import Path

import pytest
from test_build_support import STORY, STORY_TAKES, build, make_project

from storyc.base.hashing import digest_file
from storyc.media import info as mediainfo
from storyc.provider import loopback
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

TRANSIENT = [
    # one of each kind the test checks for, at a fixed call: the random draws below depend
    # on the order calls arrive in, which a loaded machine changes (truncate once did not
    # fire at all)
    "download:truncate:nth=2",
    "status:503:nth=2:retry_after=0",
    "task:500:nth=3",
    "submit:503:p=0.2:retry_after=0",
    "submit:429:p=0.2:retry_after=0",
    "submit:fail:p=0.2",
    "task:500:p=0.2",
    "status:503:p=0.2:retry_after=0",
    "files:500:p=0.2",
    "upload:500:p=0.2",
    "download:truncate:p=0.2",
]


EXTRA = 8
SOAK_STORY = STORY + "".join(
    f'scene extra{i} {{ prompt = "Extra shot number {i}"  duration = 5  aspect = "1:1" }}\n'
    for i in range(EXTRA)
)
TAKES = STORY_TAKES + EXTRA


def test_soak_with_transient_faults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p", SOAK_STORY)
    with loopback.serve(latency=0.05, fast_outputs=True, faults=list(TRANSIENT), seed=7) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        codes = []
        for _ in range(4):  # a scene whose retries ran out is rendered by the next build
            code, events, err = build(root, "--backend", "inference", "--yes", "--retries", "4")
            codes.append(code)
            if code == 0:
                break
            assert code == 1, err  # failures are reported, never unknown fates here
        assert codes[-1] == 0, codes
        fired = {kind for _, _, kind in server.faults.fired}
        submissions = len(server.submissions)

    assert {"503", "500", "truncate"} <= fired, fired  # the faults really happened
    lock = LockFile.load(root / "storyc.lock")
    store = Store.for_project(root)
    assert sum(len(s.takes) for s in lock.scenes.values()) == TAKES
    for name, scene in lock.scenes.items():
        for take in scene.takes:
            assert take.output is not None
            path = store.get(take.output)
            assert path is not None and digest_file(path)[0] == take.output
            info = mediainfo.probe(path)
            assert info is not None and info.kind == "video", name
            assert info.duration is not None and abs(info.duration - 5.0) < 0.2, (name, info)
    # only failed tasks were paid for again
    failed_tasks = sum(1 for _, _, kind in server.faults.fired if kind == "fail")
    assert submissions <= TAKES + failed_tasks
