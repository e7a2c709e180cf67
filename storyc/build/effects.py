"""The executor's side effects in one place: store, journal, lock file, readable names.

Stage: execute. In: calls from `storyc.build.executor` (decided takes, finished takes,
journal transitions) and from the planner's `Sources` (keys, the key index). Out:
objects and records in `.storyc/`, rows in the journal, `storyc.lock`, links under
`renders/`. I/O: all of it; nothing here talks to a provider or decides what to render
(that is `storyc.plan.planner`).

Readable names: `renders/<scene>.mp4` is the picked take of the paid render that
matches the scene as it is now, or else of its preview; `renders/<scene>.takeN.mp4`
every take of a scene with several. Previews also always have their own names under
`renders/preview/`, so a preview build never hides a paid clip that is still current.
Each name is a relative symbolic link into the store (replaced atomically), or a copy
where links are not possible.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyc.backends import BackendError, Job, LocalInput
from storyc.base.fsio import Sig, replace_link, settled_sig, stat_sig
from storyc.base.hashing import DigestCache, canonical_json, digest_bytes
from storyc.build import faults
from storyc.build.cache import BuildCache
from storyc.build.outcome import TakeOutcome
from storyc.media import ffmpeg as media
from storyc.media import info as mediainfo
from storyc.plan import keys
from storyc.plan.address import is_local
from storyc.plan.planner import RemoteLookup, ScenePlan, Sources, entry_for, records
from storyc.state.journal import Journal
from storyc.state.lockfile import PREVIEW, LockFile, SceneEntry, TakeEntry
from storyc.state.store import RenderRecord, Store, object_name
from storyc.targets.request import FILE_MARKER, SCENE_MARKER, Request, iter_markers

RENDERS_DIR = "renders"
PREVIEWS_DIR = "preview"  # renders/preview/<scene>.mp4: previews, always
LOCK_SAVE_INTERVAL = 0.5  # seconds between lock file writes during a build


def _frame_what(marker: Mapping[str, Any]) -> str:
    part = str(marker.get("output", "video"))
    if part == "frame":
        return f"frame@{float(marker.get('at') or 0.0):g}"
    return part


class LinkMemo:
    """The readable names (`renders/<scene>.mp4`) a long-lived process (storyc daemon)
    knows to be right, so that a build after an edit does not read 20,000 links back.

    A name's link can only change by replacing the entry (a link is never changed in
    place), which changes its folder's times. So the names of a folder are trusted while
    the folder's signature is the one taken when they were last all read back and found
    as known (`check`, run when the process is idle): signature, then every link, then
    the signature again, equal and settled (storyc.base.fsio.settled_sig) — a change by
    anyone after the first look shows in the second or in the next build's. Any doubt
    means the build reads every link, as without the memo."""

    def __init__(self) -> None:
        # link path -> (the object's folder relative to the link's, its digest), and what
        # the link then points at
        self.known: dict[str, tuple[tuple[str, str], str]] = {}
        self.trusted: dict[str, Sig] = {}  # folder -> its signature when checked
        self._now: dict[str, bool] = {}  # this build: folder -> trusted

    def begin(self) -> None:
        """A build starts: each folder is looked at again, once."""
        self._now = {}

    def right(self, folder: str, path: str, what: tuple[str, str]) -> bool:
        hit = self.known.get(path)
        if hit is None or hit[0] != what:
            return False
        ok = self._now.get(folder)
        if ok is None:
            ok = self._now[folder] = (
                folder in self.trusted and stat_sig(folder) == self.trusted[folder]
            )
        return ok

    def wrote(self, path: str, what: tuple[str, str], target: str) -> None:
        self.known[path] = (what, target)

    def check(self) -> None:
        """Read every known link back (idle time): drop what is not as known, and trust
        each folder whose signature did not move meanwhile and is settled."""
        folders: dict[str, list[str]] = {}
        for path in self.known:
            folders.setdefault(os.path.dirname(path), []).append(path)
        self.trusted = {}
        for folder, paths in folders.items():
            before = stat_sig(folder)
            if before is None:
                for path in paths:
                    del self.known[path]
                continue
            for path in paths:
                try:
                    right = os.readlink(path) == self.known[path][1]
                except OSError:
                    right = False
                if not right:
                    del self.known[path]
            after = stat_sig(folder)
            if after == before and settled_sig(before, time.time_ns()):
                self.trusted[folder] = before


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
        base_url: str | None = None,
        provider: str | None = None,
    ) -> None:
        self.root = root
        self.store = store
        self.journal = journal
        self.lock = lock
        self.digests = digests
        self.backend = backend
        self.target = target
        self.base_url = base_url
        # a provider other than the default: its origin, which every key names
        # (`storyc.plan.address.key_provider`)
        self.provider = provider
        self._frame_locks: dict[tuple[str, str], asyncio.Lock] = {}
        self._lock_dirty = False
        self._lock_saved = 0.0
        self.cache = cache
        self._keys: dict[tuple[str, int, str, tuple[tuple[str, str], ...]], str] = {}
        self._found: dict[str, str | None] = {}
        self._renders_dir = ""  # the folders of readable names, once made
        self._previews_dir = ""
        # set by the session when both the compilation and the lock file come from the cache
        self.lock_is_current = False
        # scene -> (request, upstream, entry) of entries written or found right from that
        # very request object; a long-lived process (storyc daemon) hands the next build
        # the same dict, so after an edit only the edited scenes' entries are made again
        self.verified: dict[str, tuple[Any, dict[str, str], SceneEntry]] = {}
        self._objects_rel = ""
        self.paid = backend != PREVIEW
        self._paid_current: dict[str, str | None] = {}  # preview builds: current paid clips
        self.links: LinkMemo | None = None  # kept by a long-lived process (see LinkMemo)

    # -- what the planner reads ---------------------------------------------------------
    def sources(
        self,
        *,
        live_build: bool = False,
        resubmit_unknown: bool = False,
        remote: RemoteLookup | None = None,
    ) -> Sources:
        """The planner's view of this project, with this build's key cache and key index
        (and, with `remote`, what the team store holds)."""
        return Sources(
            remote=remote,
            lock=self.lock,
            store=self.store,
            backend=self.backend,
            journal=self.journal,
            key=self.key,
            lookup=self.lookup,
            file_duration=self.file_duration,
            live_build=live_build,
            resubmit_unknown=resubmit_unknown,
            provider=self.provider,
        )

    def key(
        self,
        request: Request,
        take: int,
        upstream: Mapping[str, str],
        backend: str | None = None,
        provider: str | None = None,
    ) -> str:
        """`keys.request_key`, computed once per build for each (scene, take, upstream);
        by default for this build's backend and provider."""
        if backend is None:
            backend, provider = self.backend, self.provider
        # the memo (kept by the build cache from build to build) tells providers apart
        who = backend if provider is None else f"{backend} {provider}"
        memo = (request.scene, take, who, tuple(sorted(upstream.items())))
        found = self._keys.get(memo)
        if found is None:
            found = self._keys[memo] = keys.request_key(
                request, backend=backend, take=take, upstream=upstream, provider=provider
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

    def file_duration(self, path: str) -> float | None:
        info = mediainfo.probe(self.root / path)
        return info.duration if info else None

    # -- store ----------------------------------------------------------------------
    def remember(self, key: str, digest: str, scene: str, take: int, out: TakeOutcome) -> None:
        """Enter a finished take in the key index (a render record with what the
        provider said about it)."""
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
                task_id=out.task_id,
                url=out.url,
                duration=out.duration,
                created=_now(),
            )
        )

    def mark_unfetchable(self, key: str, url: str, reason: str) -> None:
        self.store.mark_unfetchable(key, url, reason)

    def object_path(self, digest: str) -> Path:
        path = self.store.get(digest)
        if path is None:
            raise BackendError(f"object {digest[:19]}… is missing from the store")
        return path

    def video_duration(self, digest: str) -> float | None:
        path = self.store.get(digest)
        info = mediainfo.probe(path) if path else None
        return info.duration if info else None

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

    def journal_begin(self, job: Job, estimate: Decimal | None, *, detached: bool = False) -> int:
        body = canonical_json(job.request.body)
        return self._j().begin(
            job.key,
            job.scene,
            job.take,
            job.request.target,
            self.backend,
            estimate,
            body_digest=digest_bytes(body),
            base_url=self.base_url,
            detached=detached,
        )

    def journal_submitting(self, attempt: int, app: str, sent_input: dict[str, Any]) -> None:
        request = canonical_json({"app": app, "input": sent_input}).decode("utf-8")
        self._j().mark_submitting(attempt, request)

    def journal_request(self, attempt: int, app: str, sent_input: dict[str, Any]) -> None:
        request = canonical_json({"app": app, "input": sent_input}).decode("utf-8")
        self._j().set_request(attempt, request)

    def attempt_estimate(self, attempt: int) -> Decimal | None:
        return self._j().get(attempt).estimate if self.journal is not None else None

    def journal_submitted(self, attempt: int, task_id: str) -> None:
        self._j().mark_submitted(attempt, task_id)

    def journal_completed(
        self, attempt: int, digest: str, url: str | None, billed: Decimal | None
    ) -> None:
        self._j().mark_completed(attempt, digest, url, billed)

    def journal_failed(self, attempt: int, error: str, *, refused: bool = False) -> None:
        """Failed on the provider, or (`refused`) turned down with nothing created."""
        self._j().mark_failed(attempt, error, certainly_not_sent=refused)

    def journal_not_sent(self, attempt: int, reason: str) -> None:
        self._j().mark_not_sent(attempt, reason)

    def journal_unknown(self, attempt: int, error: str) -> None:
        """The send was cut short: unknown if it had started, not sent if it had not."""
        att = self._j().get(attempt)
        if att.state == "submitting":  # the journal turns it into `unknown`
            self._j().mark_failed(attempt, error)
        elif att.state == "planned":
            self._j().mark_not_sent(attempt, error)

    def journal_state(self, attempt: int) -> str:
        return self._j().get(attempt).state

    def journal_resolve_unknown(self, attempt: int) -> None:
        self._j().resolve_unknown(attempt, "resend")

    # -- lock file ------------------------------------------------------------------
    def recorded_output(self, scene: str) -> str | None:
        """For scenes not built this time (`--scene`): what the lock file says they are."""
        entry = self.lock.table(self.backend).get(scene)
        t = entry.picked_take() if entry else None
        return t.output if t and t.output and self.store.has(t.output) else None

    def record_scene(self, sp: ScenePlan, takes: Mapping[int, TakeOutcome], picked: int) -> None:
        """Write the scene's entry (what it was rendered from, each take) and its names."""
        scene, request = sp.name, sp.request
        assert request is not None
        table = self.lock.table(self.backend)
        old = table.get(scene)
        seen = self.verified.get(scene)
        if (
            self.lock_is_current
            or seen is not None
            and seen[0] is request
            and seen[2] is old
            and seen[1] == sp.upstream
        ) and (
            old is not None
            and records(
                old,
                [(n, t.key, t.digest) for n, t in sorted(takes.items())],
                picked,
                self.backend,
                self.provider,
            )
        ):
            # the lock file is the one the last build wrote from this same compilation
            # (or this entry was made from this very request): an entry with the same
            # keys and outputs is already exactly right
            self.verified[scene] = (request, dict(sp.upstream), old)
            self.link_renders(sp, takes, picked)
            return
        if self._real_kept(old):
            self.link_renders(sp, takes, picked)
            return
        self._put_entry(sp, self._take_entries(takes), picked)
        self.verified[scene] = (request, dict(sp.upstream), table[scene])
        self.link_renders(sp, takes, picked)
        self._save_soon()

    def record_takes(self, sp: ScenePlan, takes: Mapping[int, TakeOutcome]) -> None:
        """A paid scene some of whose takes failed, or whose fate is unknown: the takes it
        did obtain go into the lock file at once, with what a teammate needs to get each
        clip without paying, beside the takes the entry already holds for these very keys
        (so a take that stays unknown for days does not keep a paid one out of the lock).
        The scene is not complete: its picked take may be missing, so no readable names."""
        if not self.paid or sp.request is None:
            return
        got = self._take_entries({n: t for n, t in takes.items() if t.digest})
        if not got:
            return
        old = self.lock.table(self.backend).get(sp.name)
        if self._real_kept(old):
            return
        have = {t.take for t in got}
        kept = [
            t
            for t in (old.takes if old is not None else ())
            if t.take not in have and t.output and sp.keys.get(t.take) == t.key
        ]
        self._put_entry(sp, sorted([*got, *kept], key=lambda t: t.take), sp.picked)
        self.verified.pop(sp.name, None)
        self._save_soon()

    def _real_kept(self, old: SceneEntry | None) -> bool:
        """A rehearsal (a provider on this machine, the loopback) never replaces the record
        of a render of a real provider: its task ids and URLs are what a teammate fetches
        the paid clips with, while the rehearsal's URLs point at 127.0.0.1. Its own
        outputs stay known by their keys (the store's render records)."""
        return (
            old is not None
            and old.backend == self.backend
            and is_local(self.provider)
            and not is_local(old.provider)
            and any(t.output for t in old.takes)
        )

    def _take_entries(self, takes: Mapping[int, TakeOutcome]) -> list[TakeEntry]:
        return [
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
        ]

    def _put_entry(self, sp: ScenePlan, takes: list[TakeEntry], picked: int) -> None:
        assert sp.request is not None
        entry = entry_for(
            sp.request,
            sp.upstream,
            backend=self.backend,
            provider=self.provider,
            takes=takes,
            picked=picked,
        )
        table = self.lock.table(self.backend)
        if table.get(sp.name) != entry:
            table[sp.name] = entry
            self._lock_dirty = True

    def _save_soon(self) -> None:
        # a crash loses at most the last moments of lock entries: the store's render
        # records still hold the outputs, and the next build writes them again
        if self._lock_dirty and time.monotonic() - self._lock_saved > LOCK_SAVE_INTERVAL:
            self.save_lock()

    def save_lock(self) -> None:
        if self._lock_dirty:
            pause = faults.reach("before-lock")
            if pause:
                time.sleep(pause)
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
    def _dir(self, preview: bool) -> str:
        if not self._renders_dir:
            out = self.root / RENDERS_DIR
            out.mkdir(exist_ok=True)
            self._renders_dir = str(out)
            # renders/ and .storyc/objects/ are fixed relative to each other and to the
            # store: a plain string is enough (a no-op build links 10,000 names)
            self._objects_rel = os.path.relpath(self.store.objects, out)
        if not preview:
            return self._renders_dir
        if not self._previews_dir:
            os.makedirs(f"{self._renders_dir}/{PREVIEWS_DIR}", exist_ok=True)
            self._previews_dir = f"{self._renders_dir}/{PREVIEWS_DIR}"
        return self._previews_dir

    def _link_all(self, folder: str, scene: str, outputs: Mapping[int, str], picked: int) -> None:
        rel = self._objects_rel if folder == self._renders_dir else f"../{self._objects_rel}"
        names = {f"{scene}.mp4": outputs[picked]}
        if len(outputs) > 1:
            names.update({f"{scene}.take{n}.mp4": d for n, d in outputs.items()})
        memo = self.links
        for name, digest in names.items():
            path = f"{folder}/{name}"
            if memo is not None and memo.right(folder, path, (rel, digest)):
                continue
            target = f"{rel}/{object_name(digest)}"
            _link(target, path)
            if memo is not None:
                memo.wrote(path, (rel, digest), target)

    def link_renders(self, sp: ScenePlan, takes: Mapping[int, TakeOutcome], picked: int) -> None:
        outputs = {n: t.digest for n, t in takes.items() if t.digest}
        if picked not in outputs:
            return
        if self.paid:
            self._link_all(self._dir(False), sp.name, outputs, picked)
            return
        self._link_all(self._dir(True), sp.name, outputs, picked)
        paid = self._current_paid(sp)
        if paid is not None:  # the paid clip still matches the scene: it keeps the name
            self._link_all(self._dir(False), sp.name, paid[0], paid[1])
        else:
            self._link_all(self._dir(False), sp.name, outputs, picked)

    def _current_paid(self, sp: ScenePlan) -> tuple[dict[int, str], int] | None:
        """The paid takes of this scene if they were rendered from exactly the scene as
        it is now (keys computed with the paid outputs of the scenes it uses)."""
        request = sp.request
        entry = self.lock.scenes.get(sp.name)
        self._paid_current[sp.name] = None
        if entry is None or request is None:
            return None
        upstream: dict[str, str] = {}
        for up in request.upstream:
            if up not in self._paid_current:  # not built now: as the lock records it
                t = self.lock.scenes[up].picked_take() if up in self.lock.scenes else None
                self._paid_current[up] = t.output if t is not None else None
            digest = self._paid_current[up]
            if digest is None:
                return None
            upstream[up] = digest
        outputs: dict[int, str] = {}
        for t in entry.takes:
            if t.take > max(1, request.takes) or not t.output:
                continue
            if self.key(request, t.take, upstream, entry.backend, entry.provider) != t.key:
                return None
            if not self.store.has(t.output):
                return None
            outputs[t.take] = t.output
        if entry.picked not in outputs:
            return None
        self._paid_current[sp.name] = outputs[entry.picked]
        return outputs, entry.picked


def _now() -> float:
    return time.time()


def link_picked(
    root: Path, store: Store, scene: str, digest: str, *, preview: bool, keep_main: bool = False
) -> bool:
    """Point the readable name of a scene at a stored output (a pick); False if the
    object is gone. A preview pick names `renders/preview/<scene>.mp4`, and also
    `renders/<scene>.mp4` unless `keep_main` (that name shows a paid clip)."""
    path = store.get(digest)
    if path is None:
        return False
    out = root / RENDERS_DIR
    out.mkdir(exist_ok=True)
    if preview:
        folder = out / PREVIEWS_DIR
        folder.mkdir(exist_ok=True)
        _link(os.path.relpath(path, folder), str(folder / f"{scene}.mp4"))
    if not keep_main:
        _link(os.path.relpath(path, out), str(out / f"{scene}.mp4"))
    return True


def shows(root: Path, store: Store, scene: str, entry: SceneEntry | None) -> bool:
    """Whether `renders/<scene>.mp4` shows one of the takes of `entry`."""
    if entry is None:
        return False
    try:
        shown = os.path.realpath(root / RENDERS_DIR / f"{scene}.mp4")
    except OSError:
        return False
    return any(
        t.output and os.path.realpath(store.object_path(t.output)) == shown for t in entry.takes
    )


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
