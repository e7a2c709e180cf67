"""Uploads and downloads over real sockets: each digest once per build and across builds,
re-upload when the remembered URI is refused, no key on the PUT, resumable downloads.
"""

from __future__ import annotations

import asyncio
import io
import json
from pathlib import Path
from typing import Any

import pytest

from storyc.base.hashing import digest_file
from storyc.media import ffmpeg as media
from storyc.provider import errors as E
from storyc.provider import loopback
from storyc.provider.client import ProviderClient
from storyc.provider.task import Status
from storyc.provider.transfer import submit_with_files
from storyc.provider.uploads import UploadRegistry

APP = "klingai/video-o1"


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def client(srv: loopback.LoopbackServer, registry: UploadRegistry | None = None) -> ProviderClient:
    async def no_wait(_: float) -> None:
        await asyncio.sleep(0)

    return ProviderClient(api_key=srv.api_key, base_url=srv.url, uploads=registry, sleep=no_wait)


@pytest.fixture
def frame(tmp_path: Path) -> Path:
    path = tmp_path / "assets" / "frame.png"
    path.parent.mkdir()
    media.make_test_image(path, 640, 360)  # tasks that use it render from it
    return path


@pytest.fixture
def blob(tmp_path: Path) -> Path:
    path = tmp_path / "blob.png"
    # Any bytes do for transfers; 3 MiB so they stream in several chunks.
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * (3 * 4096))
    return path


def marker_input(frame: Path) -> dict[str, Any]:
    return {
        "prompt": "she turns",
        "duration": 5,
        "image": {"$file": "assets/frame.png", "digest": digest_file(frame)[0]},
        "reference_images": [{"$file": "assets/frame.png", "digest": digest_file(frame)[0]}],
    }


def test_upload_streams_without_auth_header_and_serves_the_bytes(blob: Path) -> None:
    with loopback.serve() as srv:

        async def go() -> tuple[str, bytes]:
            async with client(srv) as c:
                uri = await c.upload(blob, digest=digest_file(blob)[0])
                buf = io.BytesIO()
                await c.download(uri, buf)
                return uri, buf.getvalue()

        uri, data = run(go())
    assert uri.startswith(srv.url + "/files/") and data == blob.read_bytes()
    assert srv.upload_puts == [
        {
            "file_id": srv.upload_puts[0]["file_id"],
            "size": len(data),
            "auth_header": False,
            "content_type": "image/png",
        }
    ]


def test_same_digest_uploaded_once_within_a_build(frame: Path, tmp_path: Path) -> None:
    with loopback.serve() as srv:

        async def go() -> list[Any]:
            async with client(srv) as c:
                d = digest_file(frame)[0]
                uris = await asyncio.gather(*(c.upload(frame, digest=d) for _ in range(8)))
                task = await submit_with_files(c, APP, marker_input(frame), root=tmp_path)
                return [*uris, task]

        *uris, task = run(go())
    assert len(set(uris)) == 1 and len(srv.upload_puts) == 1
    assert task.input["image"] == uris[0] == task.input["reference_images"][0]


def test_registry_remembers_across_builds_and_reuploads_when_refused(
    frame: Path, tmp_path: Path
) -> None:
    reg_path = tmp_path / ".storyc" / "uploads.json"
    with loopback.serve(port=0) as srv:
        first = run(_build(srv, UploadRegistry(reg_path), frame, tmp_path))
        assert len(srv.upload_puts) == 1
        second = run(_build(srv, UploadRegistry(reg_path), frame, tmp_path))
        assert len(srv.upload_puts) == 1  # the next build reused the remembered URI
        assert first.input["image"] == second.input["image"]
    saved = json.loads(reg_path.read_text())
    assert list(saved["hosts"]) == [srv.url]
    # A new provider does not know the remembered URI (files expired): it answers 400,
    # the client forgets the URI, uploads again and resubmits once.
    with loopback.serve() as fresh:
        # Same provider as far as the registry knows, but its files are gone.
        reg_path.write_text(reg_path.read_text().replace(srv.url, fresh.url))
        third = run(_build(fresh, UploadRegistry(reg_path), frame, tmp_path))
        assert len(fresh.upload_puts) == 1 and len(fresh.submissions) == 1
        assert fresh.faults.counts["submit"] == 2  # the refused one created nothing
    assert third.status == Status.COMPLETED and third.input["image"] != first.input["image"]


async def _build(srv: loopback.LoopbackServer, reg: UploadRegistry, frame: Path, root: Path) -> Any:
    async with client(srv, reg) as c:
        task = await submit_with_files(c, APP, marker_input(frame), root=root, scene="s1")
        return await c.follow(task.id, poll_interval=0.01)


def test_expired_entry_is_uploaded_again(blob: Path, tmp_path: Path) -> None:
    now = [1_000_000.0]
    reg = UploadRegistry(tmp_path / "u.json", max_age=3600, wall_clock=lambda: now[0])
    with loopback.serve() as srv:

        async def up() -> str:
            async with client(srv, reg) as c:
                return await c.upload(blob, digest="sha256:f")

        a = run(up())
        now[0] += 1800
        b = run(up())
        now[0] += 3601
        c = run(up())
    assert a == b != c and len(srv.upload_puts) == 2


def test_corrupt_registry_is_an_empty_cache(tmp_path: Path) -> None:
    path = tmp_path / "uploads.json"
    path.write_text("{not json")
    reg = UploadRegistry(path)
    assert len(reg) == 0
    reg.remember("http://x", "sha256:a", "http://x/files/1", 3)
    assert UploadRegistry(path).get("http://x/", "sha256:a") == "http://x/files/1"
    assert [p.name for p in tmp_path.iterdir()] == ["uploads.json"]  # no temp files left


def test_missing_local_file_is_a_clear_upload_error(tmp_path: Path) -> None:
    with loopback.serve() as srv, pytest.raises(E.UploadError, match="nope.png"):
        run(_up_missing(srv, tmp_path / "nope.png"))


async def _up_missing(srv: loopback.LoopbackServer, path: Path) -> str:
    async with client(srv) as c:
        return await c.upload(path, digest="sha256:0")


@pytest.mark.parametrize(
    "fault",
    [
        "download:truncate:nth=1",
        "download:truncate:nth=1+2",
        "download:500:nth=1",
        "download:drop:nth=1",
    ],
)
def test_download_survives_truncation_and_errors(fault: str, blob: Path) -> None:
    with loopback.serve() as srv:

        async def go() -> tuple[int, bytes]:
            async with client(srv) as c:
                uri = await c.upload(blob, digest="sha256:x")
                srv.add_fault(fault)
                buf = io.BytesIO(b"old content that must be replaced")
                buf.seek(0)
                n = await c.download(uri, buf)
                return n, buf.getvalue()

        n, data = run(go())
    assert data == blob.read_bytes() and n == len(data)
    assert any(kind in fault for _, _, kind in srv.faults.fired)


def test_slow_download_completes(blob: Path) -> None:
    with loopback.serve(faults=["download:slow:seconds=0.01"]) as srv:

        async def go() -> bytes:
            async with client(srv) as c:
                uri = await c.upload(blob, digest="sha256:y")
                buf = io.BytesIO()
                await c.download(uri, buf)
                return buf.getvalue()

        assert run(go()) == blob.read_bytes()


def test_download_gives_up_when_always_truncated(blob: Path) -> None:
    with loopback.serve() as srv:

        async def go() -> None:
            async with client(srv) as c:
                uri = await c.upload(blob, digest="sha256:z")
                srv.add_fault("download:truncate")
                await c.download(uri, io.BytesIO())

        with pytest.raises(E.DownloadError, match="incomplete"):
            run(go())


def test_a_file_changed_since_it_was_hashed_is_never_remembered_under_that_digest(
    blob: Path, tmp_path: Path
) -> None:
    """The asset is saved again between being hashed (its digest is in the key and the
    lock) and being sent: the provider would hold other bytes than the digest says. The
    bytes are hashed as they are sent; a mismatch is an upload error and the registry
    never maps the old digest to the new bytes (it would, for days, hand every scene
    that sends the old picture the new one)."""
    digest = digest_file(blob)[0]
    data = bytearray(blob.read_bytes())
    data[-1] ^= 0xFF  # same size, other bytes
    blob.write_bytes(bytes(data))
    registry = UploadRegistry(tmp_path / "uploads.json")
    with loopback.serve() as srv:

        async def go() -> None:
            async with client(srv, registry) as c:
                await c.upload(blob, digest=digest)

        with pytest.raises(E.UploadError, match="changed while it was being uploaded"):
            run(go())
    assert registry.get(srv.url, digest) is None
    assert registry.get(srv.url, digest_file(blob)[0]) is None
