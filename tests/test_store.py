"""The content-addressed store: atomic writes, verified reads, records, gc."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storyc.base.hashing import digest_bytes
from storyc.state.gc import collect
from storyc.state.store import RenderRecord, Store, StoreError, object_name


def _files(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def test_put_and_get(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    d = store.put_bytes(b"video bytes")
    assert d == digest_bytes(b"video bytes")
    p = store.get(d)
    assert p is not None and p.read_bytes() == b"video bytes"
    assert p.parent.name == d[7:9] and p.name == d[9:]
    assert store.object_file(d) == str(p) == f"{store.objects}/{object_name(d)}"
    with pytest.raises(ValueError, match="not a sha256 digest"):
        object_name("sha256:nothex")
    src = tmp_path / "x.mp4"
    src.write_bytes(b"z" * 3_000_000)
    assert store.put_file(src) == digest_bytes(src.read_bytes())


def test_failed_download_leaves_nothing(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    with pytest.raises(ConnectionError), store.writer() as w:
        w.write(b"partial")
        raise ConnectionError("connection reset")
    assert _files(tmp_path) == []
    with pytest.raises(StoreError), store.writer(expected=digest_bytes(b"other")) as w:
        w.write(b"wrong bytes")
    assert _files(tmp_path) == []
    with store.writer(expected=digest_bytes(b"right")) as w:
        w.write(b"ri")
        w.write(b"ght")
    assert w.digest == digest_bytes(b"right") and store.has(w.digest)


def test_corrupt_object_is_a_miss(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    d = store.put_bytes(b"good")
    store.save()
    p = store.object_path(d)
    os.chmod(p, 0o644)
    p.write_bytes(b"evil")  # a new mtime: the remembered verification no longer applies
    fresh = Store(tmp_path / ".storyc")
    assert fresh.get(d) is None and not p.exists()
    assert fresh.get(digest_bytes(b"never")) is None


def test_verification_is_remembered(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    d = store.put_bytes(b"a" * 100_000)
    store.save()
    again = Store(tmp_path / ".storyc")
    assert again.has(d) and again.bytes_verified == 0
    (tmp_path / ".storyc" / "verified.json").write_text("garbage")
    third = Store(tmp_path / ".storyc")
    assert third.has(d) and third.bytes_verified == 100_000


def test_render_and_derived_records(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    out = store.put_bytes(b"video")
    key = digest_bytes(b"key")
    rec = RenderRecord(key, out, "intro", 1, "preview", None, None, 5.0, time.time())
    store.record_render(rec)
    assert store.lookup_render(key) == rec
    assert store.lookup_render(digest_bytes(b"other")) is None
    frame = store.put_bytes(b"png")
    store.record_derived(out, "last_frame", frame)
    assert store.lookup_derived(out, "last_frame") == frame
    assert store.lookup_derived(out, "first_frame") is None
    store.remove(frame)
    assert store.lookup_derived(out, "last_frame") is None
    assert store.unfetchable(key, "https://cdn.test/x") is None
    store.mark_unfetchable(key, "https://cdn.test/x", "expired (HTTP 404)")
    assert store.unfetchable(key, "https://cdn.test/x") == "expired (HTTP 404)"
    assert store.unfetchable(key, "https://cdn.test/y") is None  # another URL: worth a try


def test_gc_keeps_referenced_and_recent(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    locked = store.put_bytes(b"in the lock file")
    recent = store.put_bytes(b"recent render")
    old = store.put_bytes(b"old render")
    stray = store.put_bytes(b"nothing uses me")
    frame = store.put_bytes(b"frame of locked")
    store.record_derived(locked, "last_frame", frame)
    now = time.time()
    store.record_render(
        RenderRecord(digest_bytes(b"k1"), recent, "a", 1, "preview", None, None, 5.0, now)
    )
    store.record_render(
        RenderRecord(digest_bytes(b"k2"), old, "a", 1, "preview", None, None, 5.0, now - 90 * 86400)
    )
    dry = collect(store, {locked}, keep_days=30, dry_run=True)
    assert sorted(d for d, _ in dry.objects) == sorted([old, stray]) and store.has(old)
    rep = collect(store, {locked}, keep_days=30)
    assert rep.bytes == len(b"old render") + len(b"nothing uses me")
    assert all(store.has(d) for d in (locked, recent, frame))
    assert not store.has(old) and not store.has(stray)
    assert store.lookup_render(digest_bytes(b"k2")) is None
    assert store.lookup_render(digest_bytes(b"k1")) is not None


def test_object_rewritten_with_its_old_mtime_is_still_caught(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    d = store.put_bytes(b"good")
    store.save()
    p = store.object_path(d)
    st = p.stat()
    os.chmod(p, 0o644)
    p.write_bytes(b"evil")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))  # same size, mtime and inode
    assert Store(tmp_path / ".storyc").get(d) is None


def test_gc_treats_a_damaged_render_time_as_expired(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    out = store.put_bytes(b"render with a hand-edited time")
    key = digest_bytes(b"k3")
    store.record_render(RenderRecord(key, out, "a", 1, "preview", None, None, 5.0, "yesterday"))  # type: ignore[arg-type]
    rep = collect(store, set(), keep_days=30)
    assert [d for d, _ in rep.objects] == [out] and store.lookup_render(key) is None
