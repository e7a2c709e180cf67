"""The executor's side effects in one place: store, journal, lock file, readable names.

Stage: execute. In: calls from `storyc.build.executor` (keys, digests, journal transitions,
finished takes). Out: objects and records in `.storyc/`, rows in the journal,
`storyc.lock`, links under `renders/`. I/O: all of it; nothing here talks to a
provider or decides what to render.

Readable names: `renders/<scene>.mp4` is the picked take and `renders/<scene>.takeN.mp4`
every take of a scene with several; each is a relative symbolic link into the store
(replaced atomically), or a copy where links are not possible.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyc.backends import BackendError, Finished, Job, LocalInput
from storyc.base.fsio import replace_link
from storyc.base.hashing import DigestCache, canonical_json, digest_bytes
from storyc.build.cache import BuildCache
from storyc.media import ffmpeg as media
from storyc.media import info as mediainfo
from storyc.plan import keys
from storyc.state.journal import Journal
from storyc.state.lockfile import LockFile, SceneEntry, TakeEntry
from storyc.state.store import RenderRecord, Store, object_name
from storyc.targets.request import FILE_MARKER, SCENE_MARKER, Request, iter_markers

RENDERS_DIR = "renders"
LOCK_SAVE_INTERVAL = 0.5  # seconds between lock file writes during a build


def _frame_what(marker: Mapping[str, Any]) -> str:
    part = str(marker.get("output", "video"))
    if part == "frame":
        return f"frame@{float(marker.get('at') or 0.0):g}"
    return part


class ProjectIO:
    def __init__(
        self,
        root: Path,
        store: Store,
        journal: Journal | None,
        lock: LockFile,
        digests: DigestCache,
        *,
        backend: str,
        target: str | None = None,
        cache: BuildCache | None = None,
    ) -> None:
        self.root = root
        self.store = store
        self.journal = journal
        self.lock = lock
        self.digests = digests
        self.backend = backend
        self.target = target
        self._frame_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._lock_dirty = False
        self._lock_saved = 0.0
        self.cache = cache
        self._keys: dict[tuple[str, int, str, tuple[tuple[str, str], ...]], str] = {}
        self._found: dict[str, str | None] = {}
        self._renders_dir = False
        # set by the session when both the compilation and the lock file come from the cache
        self.lock_is_current = False
        self._objects_rel = ""
        self.paid = backend != "preview"

    # -- store ----------------------------------------------------------------------
    def key(self, request: Request, take: int, upstream: Mapping[str, str]) -> str:
        """`keys.request_key`, computed once per build for each (scene, take, upstream)."""
        memo = (request.scene, take, self.backend, tuple(sorted(upstream.items())))
        found = self._keys.get(memo)
        if found is None:
            found = self._keys[memo] = keys.request_key(
                request, backend=self.backend, take=take, upstream=upstream
            )
        return found

    def use_known_keys(self, known: dict[Any, str]) -> None:
        """Keys computed by the last build from this very compilation (see BuildCache)."""
        known.update(self._keys)
        self._keys = known

    def lookup(self, key: str) -> str | None:
        """The output of a finished render of `key`, if its object is still present."""
        if key in self._found:
            return self._found[key]
        digest = self.cache.renders.get(key) if self.cache is not None else None
        if digest is None:
            rec = self.store.lookup_render(key)
            digest = rec.output if rec is not None else None
        if digest is not None and not self.store.has(digest):
            digest = None
        if digest is not None and self.cache is not None:
            self.cache.remember_render(key, digest)
        self._found[key] = digest
        return digest

    def remember(
        self, key: str, digest: str, job: Job | None = None, fin: Finished | None = None
    ) -> None:
        scene, take = (job.scene, job.take) if job else ("", 0)
        self._found[key] = digest
        if self.cache is not None:
            self.cache.remember_render(key, digest)
        self.store.record_render(
            RenderRecord(
                key=key,
                output=digest,
                scene=scene,
                take=take,
                backend=self.backend,
                task_id=fin.task_id if fin else None,
                url=fin.url if fin else None,
                duration=fin.duration if fin else None,
                created=_now(),
            )
        )

    def object_path(self, digest: str) -> Path:
        path = self.store.get(digest)
        if path is None:
            raise BackendError(f"object {digest[:19]}… is missing from the store")
        return path

    def video_duration(self, digest: str) -> float | None:
        path = self.store.get(digest)
        info = mediainfo.probe(path) if path else None
        return info.duration if info else None

    def base_duration(
        self, marker: Mapping[str, Any], durations: Mapping[str, float | None]
    ) -> float | None:
        if FILE_MARKER in marker:
            info = mediainfo.probe(self.root / str(marker[FILE_MARKER]))
            return info.duration if info else None
        if SCENE_MARKER in marker:
            return durations.get(str(marker[SCENE_MARKER]))
        return None

    async def frame(self, video: str, what: str) -> str:
        """The digest of a frame of a stored video ("first_frame", "last_frame",
        "frame@2.5"), extracted once with ffmpeg and remembered by the store."""
        lock = self._frame_locks.setdefault((video, what), asyncio.Lock())
        async with lock:
            found = self.store.lookup_derived(video, what)
            if found is not None:
                return found
            src = self.object_path(video)
            at: Any = {"first_frame": "first", "last_frame": "last"}.get(what)
            if at is None:
                at = float(what.split("@", 1)[1])
            tmp_dir = self.store.root / "tmp"
            tmp_dir.mkdir(parents=True, exist_ok=True)
            tmp = tmp_dir / f"{video[7:23]}.{what}.{os.getpid()}.png"
            try:
                await asyncio.to_thread(media.extract_frame, src, tmp, at=at)
                digest = self.store.put_file(tmp)
            except media.MediaError as exc:
                raise BackendError(f"cannot extract {what} of an upstream video: {exc}") from None
            finally:
                tmp.unlink(missing_ok=True)
            self.store.record_derived(video, what, digest)
            return digest

    # -- journal --------------------------------------------------------------------
    def _j(self) -> Journal:
        assert self.journal is not None
        return self.journal

    def journal_begin(self, job: Job, estimate: Decimal | None) -> int:
        body = canonical_json(job.request.body)
        return self._j().begin(
            job.key,
            job.scene,
            job.take,
            job.request.target,
            self.backend,
            estimate,
            body_digest=digest_bytes(body),
        )

    def journal_submitting(self, attempt: int) -> None:
        self._j().mark_submitting(attempt)

    def journal_submitted(self, attempt: int, task_id: str) -> None:
        self._j().mark_submitted(attempt, task_id)

    def journal_completed(self, attempt: int, fin: Finished) -> None:
        self._j().mark_completed(attempt, fin.digest, fin.url, fin.billed)

    def journal_failed(self, attempt: int, error: str, *, not_sent: bool = False) -> None:
        self._j().mark_failed(attempt, error, certainly_not_sent=not_sent)

    def journal_unknown(self, attempt: int, error: str) -> None:
        att = self._j().get(attempt)
        if att.state == "submitting":  # the journal turns it into `unknown`
            self._j().mark_failed(attempt, error)

    def journal_attempts(self, key: str) -> list[dict[str, Any]]:
        if self.journal is None:
            return []
        return [
            {
                "id": a.id,
                "state": a.state,
                "task_id": a.task_id,
                "url": a.url,
                "output": a.output,
                "estimate": a.estimate,
                "billed": a.billed,
            }
            for a in self.journal.attempts(key)
        ]

    def journal_resolve_unknown(self, attempt: int) -> None:
        self._j().resolve_unknown(attempt, "resend")

    # -- lock file ------------------------------------------------------------------
    def locked_take(self, scene: str, take: int, key: str) -> TakeEntry | None:
        entry = self.lock.scenes.get(scene)
        t = entry.take(take) if entry else None
        return t if t is not None and t.key == key else None

    def locked_url(self, scene: str, take: int, key: str) -> str | None:
        t = self.locked_take(scene, take, key)
        url = t.url if t else None
        return url if url and url.startswith(("http://", "https://")) else None

    def locked_picked_digest(self, scene: str) -> str | None:
        """For scenes not built this time (`--scene`): what the lock file says they are."""
        entry = self.lock.scenes.get(scene)
        t = entry.picked_take() if entry else None
        return t.output if t and t.output and self.store.has(t.output) else None

    def picked_take(self, scene: str, takes: int) -> int:
        entry = self.lock.scenes.get(scene)
        picked = entry.picked if entry else 1
        return picked if 1 <= picked <= takes else 1

    def record_scene(
        self,
        scene: str,
        request: Request,
        upstream: dict[str, str],
        takes: Mapping[int, Any],
        picked: int,
    ) -> None:
        old = self.lock.scenes.get(scene)
        if (
            self.lock_is_current
            and old is not None
            and old.picked == picked
            and old.backend == self.backend
            and [(t.take, t.key, t.output) for t in old.takes]
            == [(n, t.key, t.digest) for n, t in sorted(takes.items())]
        ):
            # the lock file is the one the last build wrote from this same compilation:
            # an entry with the same keys and outputs is already exactly right
            self.link_renders(scene, takes, picked)
            return
        material = keys.key_inputs(request, upstream)
        entry = SceneEntry(
            name=scene,
            backend=self.backend,
            target=request.target,
            schema=request.schema,
            app=request.app,
            prompt=material["prompt"],
            inputs=material["inputs"],
            settings=material["settings"],
            picked=picked,
            takes=[
                TakeEntry(
                    take=n,
                    key=t.key,
                    output=t.digest,
                    task_id=t.task_id,
                    url=t.url,
                    duration=t.duration,
                    cost=Decimal(0) if not self.paid else t.cost,
                )
                for n, t in sorted(takes.items())
            ],
        )
        if self.lock.scenes.get(scene) != entry:
            self.lock.scenes[scene] = entry
            self._lock_dirty = True
        self.link_renders(scene, takes, picked)
        # a crash loses at most the last moments of lock entries: the store's render
        # records still hold the outputs, and the next build writes them again
        if self._lock_dirty and time.monotonic() - self._lock_saved > LOCK_SAVE_INTERVAL:
            self.save_lock()

    def save_lock(self) -> None:
        if self._lock_dirty:
            path = LockFile.path_for(self.root)
            self.lock.save(path)
            self._lock_dirty = False
            self._lock_saved = time.monotonic()
            if self.cache is not None:
                self.cache.store_lockfile(path, self.lock)

    def flush(self) -> None:
        self.save_lock()
        self.store.save()
        self.digests.save()

    # -- readable names ---------------------------------------------------------------
    def link_renders(self, scene: str, takes: Mapping[int, Any], picked: int) -> None:
        out = self.root / RENDERS_DIR
        if not self._renders_dir:
            out.mkdir(exist_ok=True)
            self._renders_dir = True
            # renders/ and .storyc/objects/ are fixed relative to each other and to the
            # store: a plain string is enough (a no-op build links 10,000 names)
            self._objects_rel = os.path.relpath(self.store.objects, out)
        names = {f"{scene}.mp4": takes[picked].digest}
        if len(takes) > 1:
            names.update({f"{scene}.take{n}.mp4": t.digest for n, t in takes.items()})
        out_s = str(out)
        for name, digest in names.items():
            _link(f"{self._objects_rel}/{object_name(digest)}", f"{out_s}/{name}")


def _now() -> float:
    return time.time()


def link_picked(root: Path, store: Store, scene: str, digest: str) -> bool:
    """Point renders/<scene>.mp4 at a stored output; False if the object is gone."""
    path = store.get(digest)
    if path is None:
        return False
    out = root / RENDERS_DIR
    out.mkdir(exist_ok=True)
    _link(os.path.relpath(path, out), str(out / f"{scene}.mp4"))
    return True


def _link(rel: str, name: str) -> None:
    """Point `name` at `rel` (relative to its folder), atomically replacing what was there."""
    replace_link(rel, name)


async def resolve_inputs(
    io: ProjectIO, request: Request, picked: Mapping[str, str]
) -> dict[str, LocalInput]:
    """Every marker of the request as a local file: assets (checked against the digest
    the compiler saw) and upstream outputs or their frames (from the store)."""
    out: dict[str, LocalInput] = {}
    for path, marker in iter_markers(request.input):
        kind = "video" if path.startswith("reference_video") else "image"
        if FILE_MARKER in marker:
            rel = str(marker[FILE_MARKER])
            abs_path = str(io.root / rel)
            try:
                digest = io.digests.digest(abs_path)
            except OSError:
                raise BackendError(f"{rel} is missing") from None
            if digest != marker["digest"]:
                raise BackendError(f"{rel} changed during the build; run storyc build again")
            out[path] = LocalInput(abs_path, digest, kind)
        elif SCENE_MARKER in marker:
            up = str(marker[SCENE_MARKER])
            video = picked.get(up)
            if video is None:
                raise BackendError(f"the output of scene {up!r} is not available")
            what = _frame_what(marker)
            digest = video if what == "video" else await io.frame(video, what)
            out[path] = LocalInput(str(io.object_path(digest)), digest, kind)
    return out
