"""The no-op fast path: a cached compilation, lock file and keys give the same answers as
compiling from scratch, and any change to a story file, an asset or the lock file is seen."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from test_build_support import (
    STORY_TAKES,
    build,
    edit_story,
    make_project,
    rendered,
    summary,
)

from storyc.media import ffmpeg as media
from storyc.provider import loopback
from storyc.state.lockfile import LockFile


def _age(root: Path) -> None:
    """Make every file look old, as between two real builds (the cache ignores files
    modified within the last second: they could still change unseen)."""
    past = time.time() - 60
    for p in root.rglob("*"):
        if ".storyc" not in p.parts and p.is_file() and not p.is_symlink():
            os.utime(p, (past, past))


def test_cached_builds_see_every_change(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    root = make_project(tmp_path / "p")
    with loopback.serve(latency=0.02, fast_outputs=False) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        paid = ("--backend", "inference", "--yes")
        _age(root)
        code, _, err = build(root, *paid)
        assert code == 0, err
        assert (root / ".storyc" / "build-cache.json").exists()
        lock_before = (root / "storyc.lock").read_bytes()
        for _ in range(2):  # served from the cache: nothing renders, nothing is rewritten
            code, events, _ = build(root, *paid)
            assert code == 0 and rendered(events) == []
            assert summary(events)["cached_compilation"] is True
        assert (root / "storyc.lock").read_bytes() == lock_before

        edit_story(root, "at dusk", "at dawn")
        _age(root)
        code, events, _ = build(root, *paid)
        assert sorted(rendered(events)) == ["arrival", "lanterns", "rain"]
        assert summary(events)["cached_compilation"] is False

        # an asset with new content (same size, old mtime) is a change too
        media.make_test_image(root / "assets" / "market.png", 640, 360, seed=9)
        _age(root)
        code, events, _ = build(root, *paid)
        assert sorted(rendered(events)) == ["arrival", "lanterns", "rain"]
        assert len(server.submissions) == STORY_TAKES + 6

        # the lock file changed behind the cache's back (a pick): seen, and kept
        lock = LockFile.load(root / "storyc.lock")
        lock.scenes["other"].picked = 2
        lock.save(root / "storyc.lock")
        code, events, _ = build(root, *paid)
        assert code == 0 and rendered(events) == []
        assert LockFile.load(root / "storyc.lock").scenes["other"].picked == 2

        # a damaged cache is a miss, never an error
        (root / ".storyc" / "build-cache.json").write_bytes(b"not json {")
        code, events, _ = build(root, *paid)
        assert code == 0 and rendered(events) == []


def test_a_hand_edited_cache_never_links_another_scenes_video(tmp_path: Path) -> None:
    """Issue 8 (trusted caches): the cache maps render keys to outputs; an entry edited by
    hand (two scenes' outputs swapped, the file otherwise well-formed) must be a miss, not
    a link from one scene to another's video."""
    import hashlib
    import json

    root = make_project(tmp_path / "p")
    _age(root)
    code, _, err = build(root)
    assert code == 0, err
    videos = {p.name: p.read_bytes() for p in (root / "renders").glob("*.mp4")}
    assert len(set(videos.values())) >= 2
    path = root / ".storyc" / "build-cache.json"
    head, _, body = path.read_bytes().partition(b"\n")
    assert head == hashlib.sha256(body).hexdigest().encode()  # the checksum of the body
    doc = json.loads(body)
    renders = doc["renders"]
    assert len(set(renders.values())) >= 2
    outputs = list(renders.values())
    doc["renders"] = dict(zip(renders, outputs[1:] + outputs[:1], strict=True))  # rotated
    path.write_bytes(head + b"\n" + json.dumps(doc).encode())
    (root / "main.story").touch()  # past the fast path, which reads no cache
    code, events, err = build(root)
    assert code == 0, err
    assert rendered(events) == []
    assert {p.name: p.read_bytes() for p in (root / "renders").glob("*.mp4")} == videos
