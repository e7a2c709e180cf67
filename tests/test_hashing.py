"""DigestCache: stat-keyed hits, misses on change, racy files, corrupt cache, threads."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import pytest

from storyc.base.hashing import DigestCache, digest_bytes, digest_file, is_digest


def _old(path: Path) -> None:
    """Age a file past the racy window, as any asset edited more than a moment ago is."""
    t = time.time() - 10
    os.utime(path, (t, t))


def test_digest_matches_hashlib(tmp_path: Path) -> None:
    p = tmp_path / "a.bin"
    data = os.urandom(3 * (1 << 20) + 17)
    p.write_bytes(data)
    d, n = digest_file(p)
    assert d == "sha256:" + hashlib.sha256(data).hexdigest() == digest_bytes(data)
    assert n == len(data) and is_digest(d)
    assert not is_digest("sha256:xyz") and not is_digest(None)


def test_second_lookup_reads_nothing_and_persists(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(b"x" * 5000)
    _old(p)
    cache = DigestCache(tmp_path / "digests.json")
    d1 = cache.digest(str(p))
    assert cache.bytes_read == 5000
    assert cache.digest(str(p)) == d1 and cache.bytes_read == 5000
    cache.save()
    again = DigestCache(tmp_path / "digests.json")
    assert again.digest(str(p)) == d1 and again.bytes_read == 0


def test_change_is_seen(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(b"one")
    _old(p)
    cache = DigestCache()
    d1 = cache.digest(str(p))
    p.write_bytes(b"two")  # same size, new mtime
    assert cache.digest(str(p)) != d1


def test_racy_file_is_not_remembered(tmp_path: Path) -> None:
    p = tmp_path / "a.png"
    p.write_bytes(b"one")
    cache = DigestCache()
    d1 = cache.digest(str(p))
    # Rewritten within the same timestamp tick: same size, maybe the same mtime.
    st = os.stat(p)
    p.write_bytes(b"two")
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert cache.digest(str(p)) == digest_bytes(b"two") != d1


def test_corrupt_cache_is_a_miss(tmp_path: Path) -> None:
    (tmp_path / "digests.json").write_text("{not json", "utf-8")
    p = tmp_path / "a"
    p.write_bytes(b"abc")
    cache = DigestCache(tmp_path / "digests.json")
    assert cache.digest(str(p)) == digest_bytes(b"abc")
    (tmp_path / "digests.json").write_text('{"version":1,"entries":{"x":[1,2]}}', "utf-8")
    assert DigestCache(tmp_path / "digests.json").digest(str(p)) == digest_bytes(b"abc")
    for other_shape in ("[]", '{"version":1,"entries":[1]}'):  # valid JSON, wrong shape
        (tmp_path / "digests.json").write_text(other_shape, "utf-8")
        assert DigestCache(tmp_path / "digests.json").digest(str(p)) == digest_bytes(b"abc")


def test_digest_many_threads(tmp_path: Path) -> None:
    paths = []
    for i in range(12):
        p = tmp_path / f"f{i}"
        p.write_bytes(bytes([i]) * (100_000 + i))
        _old(p)
        paths.append(str(p))
    cache = DigestCache()
    out = cache.digest_many(paths, workers=4)
    assert out == {p: digest_file(p)[0] for p in paths}
    read = cache.bytes_read
    assert cache.digest_many(paths, workers=4) == out and cache.bytes_read == read


def test_file_changing_while_read_is_read_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import storyc.base.hashing as hashing

    p = tmp_path / "a.mp4"
    p.write_bytes(b"first version")
    _old(p)
    real = hashing.digest_file
    calls = []

    def racing(path: str) -> tuple[str, int]:
        out = real(path)
        if not calls:  # an editor saves while we hash
            p.write_bytes(b"second version!")
            _old(p)
        calls.append(path)
        return out

    monkeypatch.setattr(hashing, "digest_file", racing)
    cache = DigestCache()
    assert cache.digest(str(p)) == digest_bytes(b"second version!")
    assert len(calls) == 2
