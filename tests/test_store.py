"""The content-addressed store: atomic writes, verified reads, records, gc."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storyc.base.hashing import canonical_json, digest_bytes
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


def _record(store: Store, key: str, edits: dict[str, object] | None = None) -> Path:
    """A render record written as storyc writes it, then edited by hand (`edits`)."""
    import json

    out = store.put_bytes(b"out")
    store.record_render(RenderRecord(key, out, "a", 1, "preview", "t1", None, 5.0, 1e9))
    path = Path(store._record_path("renders", key))
    if edits:
        path.write_text(json.dumps({**json.loads(path.read_bytes()), **edits}))
    return path


@pytest.mark.parametrize(
    "fields",
    [
        {"scene": 3},
        {"backend": None},
        {"take": True},
        {"take": "1"},
        {"take": 1.0},
        {"task_id": 7},
        {"url": ["x"]},
        {"duration": -1.0},
        {"duration": "5"},
        {"created": True},
        {"created": "now"},
        {"output": "sha256:nothex"},
        {"key": digest_bytes(b"another key")},
    ],
)
def test_a_hand_edited_or_damaged_record_is_a_miss(
    tmp_path: Path, fields: dict[str, object]
) -> None:
    """Any edit breaks the checksum; a record older than checksums has none, and then each
    field is checked by type."""
    store = Store(tmp_path / ".storyc")
    key = digest_bytes(b"k")
    _record(store, key, fields)
    assert store.lookup_render(key) is None
    path = _record(store, key, {**fields, "sum": None})
    import json

    raw = json.loads(path.read_text())
    del raw["sum"]
    path.write_text(json.dumps(raw))
    assert store.lookup_render(key) is None
    if "key" not in fields:  # a record filed under another key is sound, just not this key's
        assert [rec for _, rec in store.iter_renders()] == [None]


def test_records_without_a_checksum_are_read_and_with_a_wrong_one_are_not(tmp_path: Path) -> None:
    import json

    store = Store(tmp_path / ".storyc")
    key = digest_bytes(b"k")
    path = _record(store, key)
    raw = json.loads(path.read_bytes())
    assert raw["sum"] == digest_bytes(canonical_json({k: v for k, v in raw.items() if k != "sum"}))
    good = store.lookup_render(key)
    assert good is not None and (good.take, good.task_id, good.duration, good.created) == (
        1,
        "t1",
        5.0,
        1e9,
    )
    del raw["sum"]
    path.write_text(json.dumps(raw))
    assert store.lookup_render(key) == good  # written before records had a checksum
    path.write_text(json.dumps({**raw, "take": 2, "sum": good.key}))
    assert store.lookup_render(key) is None
    path.write_text(json.dumps({**raw, "sum": {"not": "comparable"}, "x": float("nan")}))
    assert store.lookup_render(key) is None
    path.write_text(
        json.dumps({**raw, "duration": None, "url": "https://cdn.test/v", "created": 5})
    )
    rec = store.lookup_render(key)
    assert rec is not None and rec.duration is None and rec.url == "https://cdn.test/v"
    assert rec.created == 5.0 and isinstance(rec.created, float)
    path.write_text("[1, 2]")
    assert store.lookup_render(key) is None


def test_objects_are_read_only_and_streamed_in_with_their_size(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    with store.writer() as w:
        assert w.write(b"abc") == 3 and w.write(b"de") == 2
        assert w.digest is None  # not published yet
    assert w.size == 5 and w.digest == digest_bytes(b"abcde")
    path = store.object_path(w.digest)
    assert path.stat().st_mode & 0o777 == 0o444
    assert list((store.objects / "incoming").iterdir()) == []


def test_verified_index_is_written_only_when_it_changed(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    index = tmp_path / ".storyc" / "verified.json"
    store.save()
    assert not index.exists()
    d = store.put_bytes(b"x")
    with store:
        pass
    import json

    assert json.loads(index.read_text()) == {d: list(store._verified[d])}
    before = index.stat().st_mtime_ns
    index.write_text(index.read_text())  # same content, a new time: would change if rewritten
    after = index.stat().st_mtime_ns
    again = Store(tmp_path / ".storyc")
    assert again.has(d)
    again.save()
    assert index.stat().st_mtime_ns == after and after >= before
    # a corrupt object found and removed: the index forgets it
    os.chmod(store.object_path(d), 0o644)
    store.object_path(d).write_bytes(b"y")
    third = Store(tmp_path / ".storyc")
    assert not third.has(d)
    third.save()
    assert json.loads(index.read_text()) == {}


@pytest.mark.parametrize("junk", ['{"sha256:x": 5}', '{"a": [1, "b"]}', "[1]", '{"a": [[1]]}'])
def test_a_junk_verified_index_only_costs_hashing(tmp_path: Path, junk: str) -> None:
    store = Store(tmp_path / ".storyc")
    d = store.put_bytes(b"x" * 1000)
    (tmp_path / ".storyc" / "verified.json").write_text(junk)
    again = Store(tmp_path / ".storyc")
    assert again.has(d) and again.bytes_verified == 1000


def test_adopted_objects_and_what_the_next_process_trusts(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    tmp = store.incoming("dl-1")
    assert tmp == store.objects / "incoming" / ".tmp-dl-1"
    tmp.write_bytes(b"pulled")
    d = digest_bytes(b"pulled")
    assert store.adopt(tmp, d, durable=False) == store.object_path(d) and not tmp.exists()
    assert store.has(d) and store.bytes_verified == 0  # trusted by this process
    store.save()
    nxt = Store(tmp_path / ".storyc")
    assert nxt.has(d) and nxt.bytes_verified == len(b"pulled")  # hashed again
    tmp = store.incoming("dl-2")
    tmp.write_bytes(b"paid")
    d2 = digest_bytes(b"paid")
    store.adopt(tmp, d2)
    store.save()
    nxt = Store(tmp_path / ".storyc")
    assert nxt.has(d2) and nxt.bytes_verified == 0


def test_iter_objects_lists_objects_only(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    assert list(store.iter_objects()) == []
    a, b = store.put_bytes(b"a"), store.put_bytes(b"b")
    (store.objects / "incoming" / ".tmp-x").write_bytes(b"partial")
    (store.objects / "zz").write_bytes(b"a file where a shard would be")
    (store.objects / a[7:9] / "not-hex").write_bytes(b"junk")
    assert list(store.iter_objects()) == sorted(
        [(a, store.object_path(a)), (b, store.object_path(b))]
    )


def test_stale_temps_are_old_temp_files_anywhere_in_the_store(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    old, new = time.time() - 7200, time.time()
    made = []
    for base in ("objects/incoming", "renders/ab", "derived/cd", "elsewhere"):
        d = tmp_path / ".storyc" / base
        d.mkdir(parents=True)
        for name, t in ((".tmp-old", old), (".tmp-new", new), ("old-but-not-temp", old)):
            (d / name).write_bytes(b"x")
            os.utime(d / name, (t, t))
        made.append(d / ".tmp-old")
    assert sorted(store.stale_temps()) == sorted(made[:3])
    assert len(store.stale_temps(older_than=-60)) == 6


def test_remove_forgets_the_verification(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    d = store.put_bytes(b"x")
    store.save()
    fresh = Store(tmp_path / ".storyc")
    fresh.remove(d)
    assert not store.object_path(d).exists()
    fresh.save()
    import json

    assert json.loads((tmp_path / ".storyc" / "verified.json").read_text()) == {}
    fresh.remove(d)  # twice: nothing to do


def test_iter_renders_skips_temps_and_reports_damage(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    assert list(store.iter_renders()) == []
    key = digest_bytes(b"k")
    path = _record(store, key)
    (path.parent / ".tmp-abc").write_text("{}")
    bad = path.parent / ("0" * 62)
    bad.write_text("not json")
    found = list(store.iter_renders())
    assert [p for p, _ in found] == sorted([path, bad])
    assert {p: r is None for p, r in found} == {path: False, bad: True}


def test_derived_records_are_checked_like_render_records(tmp_path: Path) -> None:
    import json

    store = Store(tmp_path / ".storyc")
    assert list(store.iter_derived()) == []
    src, frame = store.put_bytes(b"video"), store.put_bytes(b"frame")
    store.record_derived(src, "frame@2.5", frame)
    assert store.lookup_derived(src, "frame@2.5") == frame
    assert store.lookup_derived(src, "frame@2.4") is None
    [(path, raw)] = list(store.iter_derived())
    assert raw == {
        "source": src,
        "what": "frame@2.5",
        "result": frame,
        "sum": digest_bytes(canonical_json({"source": src, "what": "frame@2.5", "result": frame})),
    }
    (path.parent / ".tmp-x").write_text("{}")
    assert len(list(store.iter_derived())) == 1
    for edit in ({"result": src}, {"source": frame}, {"what": "last_frame"}, {"result": 5}):
        path.write_text(json.dumps({**raw, **edit}))
        assert store.lookup_derived(src, "frame@2.5") is None, edit
    no_sum = {k: v for k, v in raw.items() if k != "sum"}
    for result in (5, "sha256:nothex"):
        path.write_text(json.dumps({**no_sum, "result": result}))
        assert store.lookup_derived(src, "frame@2.5") is None, result
    path.write_text(json.dumps(no_sum))
    assert store.lookup_derived(src, "frame@2.5") == frame


def test_unfetchable_urls_are_remembered_per_key_and_url(tmp_path: Path) -> None:
    import json

    store = Store(tmp_path / ".storyc")
    k1, k2 = digest_bytes(b"k1"), digest_bytes(b"k2")
    store.mark_unfetchable(k1, "https://cdn.test/x", "other bytes")
    assert store.unfetchable(k2, "https://cdn.test/x") is None
    path = Path(store._record_path("unfetchable", k1))
    raw = json.loads(path.read_text())
    assert raw["key"] == k1 and raw["urls"] == {"https://cdn.test/x": "other bytes"}
    assert abs(raw["at"] - time.time()) < 3600
    # a second dead URL of the same output is added, the first one kept
    store.mark_unfetchable(k1, "https://cdn.test/y", "expired (HTTP 410)")
    assert store.unfetchable(k1, "https://cdn.test/x") == "other bytes"
    assert store.unfetchable(k1, "https://cdn.test/y") == "expired (HTTP 410)"
    assert store.unfetchable(k1, "https://cdn.test/z") is None
    raw = json.loads(path.read_text())
    assert list(raw["urls"]) == ["https://cdn.test/x", "https://cdn.test/y"]
    # marked again: the newest reason
    store.mark_unfetchable(k1, "https://cdn.test/x", "expired (HTTP 404)")
    assert store.unfetchable(k1, "https://cdn.test/x") == "expired (HTTP 404)"
    assert store.unfetchable(k1, "https://cdn.test/y") == "expired (HTTP 410)"
    path.write_text(json.dumps({**raw, "urls": {"https://cdn.test/x": None, "7": 7}}))
    assert store.unfetchable(k1, "https://cdn.test/x") == "it could not be fetched"
    path.write_text(json.dumps({**raw, "key": k2}))
    assert store.unfetchable(k1, "https://cdn.test/x") is None
    path.write_text(json.dumps({**raw, "urls": ["https://cdn.test/x"]}))
    assert store.unfetchable(k1, "https://cdn.test/x") is None
    # the one-URL form an earlier storyc wrote is read, and kept when another URL is added
    old = {"key": k1, "url": "https://cdn.test/old", "reason": "expired (HTTP 403)", "at": 1.0}
    path.write_text(json.dumps(old))
    assert store.unfetchable(k1, "https://cdn.test/old") == "expired (HTTP 403)"
    path.write_text(json.dumps({**old, "reason": None}))
    assert store.unfetchable(k1, "https://cdn.test/old") == "it could not be fetched"
    path.write_text(json.dumps({**old, "url": 3}))
    assert store.unfetchable(k1, "https://cdn.test/old") is None
    path.write_text(json.dumps(old))
    store.mark_unfetchable(k1, "https://cdn.test/new", "other bytes")
    assert store.unfetchable(k1, "https://cdn.test/old") == "expired (HTTP 403)"
    assert store.unfetchable(k1, "https://cdn.test/new") == "other bytes"


def test_put_file_with_an_expected_digest_stores_only_those_bytes(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    src = tmp_path / "x.mp4"
    src.write_bytes(b"other bytes")
    with pytest.raises(StoreError, match="expected"):
        store.put_file(src, expected=digest_bytes(b"wanted bytes"))
    assert list(store.iter_objects()) == []
    assert store.put_file(src, expected=digest_bytes(b"other bytes")) == digest_bytes(
        b"other bytes"
    )


def test_iter_objects_skips_a_stray_file_before_the_shards(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    d = store.put_bytes(b"a")
    (store.objects / "00").write_bytes(b"a file with a shard's name")  # sorts first
    assert list(store.iter_objects()) == [(d, store.object_path(d))]


def test_temp_files_are_stale_after_an_hour(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    temp = store.incoming("dl")
    temp.write_bytes(b"x")
    t = time.time() - 3600.5
    os.utime(temp, (t, t))
    assert store.stale_temps() == [temp]


def test_derived_records_of_one_object_are_kept_apart(tmp_path: Path) -> None:
    import json

    store = Store(tmp_path / ".storyc")
    src = store.put_bytes(b"video")
    first, last = store.put_bytes(b"first"), store.put_bytes(b"last")
    other = store.put_bytes(b"another video")
    store.record_derived(src, "first_frame", first)
    store.record_derived(src, "last_frame", last)
    assert store.lookup_derived(src, "first_frame") == first
    assert store.lookup_derived(src, "last_frame") == last
    # a record (from before checksums) found under another object's name is not its own
    path = Path(store._record_path("derived", store._derived_id(other, "last_frame")))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"source": src, "what": "last_frame", "result": last}))
    assert store.lookup_derived(other, "last_frame") is None


def test_store_of_a_project_is_its_storyc_folder(tmp_path: Path) -> None:
    assert Store.for_project(tmp_path).root == tmp_path / ".storyc"
    assert Store.for_project(str(tmp_path)).objects == tmp_path / ".storyc" / "objects"


def test_render_durations_from_zero_up_are_read(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    out = store.put_bytes(b"v")
    for i, duration in enumerate((0.0, 0.5, 0)):
        key = digest_bytes(f"k{i}".encode())
        store.record_render(RenderRecord(key, out, "a", 1, "preview", None, None, duration, 1.0))
        rec = store.lookup_render(key)
        assert rec is not None and rec.duration == duration


def test_hashing_is_counted_and_done_once_per_object(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    a, b = store.put_bytes(b"a" * 10), store.put_bytes(b"b" * 20)
    fresh = Store(tmp_path / ".storyc")  # nothing saved: every object is hashed on first use
    assert fresh.has(a) and fresh.has(b) and fresh.bytes_verified == 30
    assert fresh.get(a) is not None and fresh.has(b) and fresh.bytes_verified == 30
    fresh.save()
    import json

    assert sorted(json.loads((tmp_path / ".storyc" / "verified.json").read_text())) == sorted(
        [a, b]
    )


def test_save_writes_the_index_once(tmp_path: Path) -> None:
    store = Store(tmp_path / ".storyc")
    store.put_bytes(b"x")
    store.save()
    index = tmp_path / ".storyc" / "verified.json"
    index.write_text("{}")  # what a second save would overwrite
    store.save()
    assert index.read_text() == "{}"


def test_a_corrupt_object_never_verified_is_a_miss(tmp_path: Path) -> None:
    first = Store(tmp_path / ".storyc")
    d = first.put_bytes(b"good")  # verified in that process only: not saved
    p = first.object_path(d)
    os.chmod(p, 0o644)
    p.write_bytes(b"evil")
    second = Store(tmp_path / ".storyc")
    assert second.get(d) is None and not p.exists()


def test_adopt_a_file_written_outside_into_a_new_store(tmp_path: Path) -> None:
    src = tmp_path / "download.part"
    src.write_bytes(b"resumed download")
    store = Store(tmp_path / "fresh" / ".storyc")  # no objects folder yet
    d = digest_bytes(b"resumed download")
    assert store.adopt(src, d) == store.object_path(d) and store.has(d)
