"""Review mode: what changed since a git revision, scene by scene.

Stage: review. In: the project root, a git revision, the current compilation and plan,
the store. Out: a `Since` — per scene whose request changed, the field-level changes, the
old and new prompt, and the old picked output when the store still has it. I/O: runs
`git` (rev-parse, archive) and reads the project as of the revision from a temporary
folder; compiles and plans it (no rendering, nothing written to the project).

The old project is compiled from the revision's own files (stories and tracked assets),
and planned against this machine's store with the revision's `storyc.lock`: so the old
thumbnails appear whenever a build of that revision ever ran here (a CI job that built
the base branch first, a writer who built before editing). Scenes whose old version does
not compile (an asset that git does not track, say) fall back to what the revision's lock
file recorded.
"""

from __future__ import annotations

import io
import re
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from storyc.plan.planner import Plan, entry_for, explain, make_plan
from storyc.state.lockfile import LockFile, LockFileError, SceneEntry
from storyc.state.store import Store

if TYPE_CHECKING:
    from storyc.compiler import Compilation


class SinceError(Exception):
    """The revision cannot be read (not a git repository, unknown revision): one line.
    `exit_code` is 2 for a revision that does not exist, 3 for no git or no repository."""

    def __init__(self, message: str, exit_code: int = 3) -> None:
        super().__init__(message)
        self.exit_code = exit_code


@dataclass
class SceneChange:
    kind: str  # "new", "changed", "upstream" (only what it starts from changed)
    changes: list[str] = field(default_factory=list)  # readable, field by field
    old_prompt: str = ""
    new_prompt: str = ""
    old_output: str | None = None  # the old picked take's video, if the store has it


@dataclass
class Since:
    rev: str  # as the user wrote it
    commit: str  # the full hash it names
    changes: dict[str, SceneChange]
    removed: list[str]


def _git(cwd: Path, *args: str, binary: bool = False) -> Any:
    try:
        done = subprocess.run(
            ["git", *args], cwd=cwd, capture_output=True, timeout=120, check=False
        )
    except FileNotFoundError:
        raise SinceError("git is not installed; --since needs it") from None
    except subprocess.TimeoutExpired:
        raise SinceError(f"git {args[0]} took longer than 120 s") from None
    if done.returncode != 0:
        err = done.stderr.decode("utf-8", "replace").strip().splitlines()
        raise SinceError(err[-1] if err else f"git {args[0]} failed")
    return done.stdout if binary else done.stdout.decode("utf-8", "replace").strip()


def _checkout(root: Path, rev: str, into: Path) -> tuple[str, Path]:
    """Extract the project folder as of `rev` under `into`; (commit, old project folder)."""
    if rev.startswith("-"):
        raise SinceError(f"not a revision: {rev!r}", 2)
    top = Path(_git(root, "rev-parse", "--show-toplevel"))
    try:
        commit = _git(root, "rev-parse", "--verify", "--quiet", f"{rev}^{{commit}}")
    except SinceError:
        commit = ""
    if not re.fullmatch(r"[0-9a-f]{40,64}", commit or ""):
        raise SinceError(f"unknown revision {rev!r}", 2)
    rel = root.resolve().relative_to(top.resolve()).as_posix()
    spec = [rel] if rel != "." else []
    try:
        data = _git(top, "archive", "--format=tar", commit, "--", *spec, binary=True)
    except SinceError as exc:
        if "did not match any files" in str(exc) or "pathspec" in str(exc):
            data = b""  # the project did not exist at that revision
        else:
            raise
    if data:
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            tar.extractall(into, filter="data")
    old = into / rel if rel != "." else into
    old.mkdir(parents=True, exist_ok=True)
    return commit, old


def _entry(comp: Compilation, plan: Plan, name: str, lock: LockFile) -> SceneEntry | None:
    """The old request of `name` in the lock file's terms (what `explain` compares)."""
    req = comp.requests.get(name)
    if req is None:
        return lock.table(plan.backend).get(name)
    sp = plan.scenes.get(name)
    return entry_for(req, sp.upstream if sp else {}, backend=plan.backend, provider=plan.provider)


def changes_since(
    root: Path, rev: str, comp: Compilation, plan: Plan, store: Store, *, target: str | None
) -> Since:
    """What changed in every scene of `comp` since `rev`. Raises SinceError."""
    from storyc.compiler import compile_project

    with tempfile.TemporaryDirectory(prefix="storyc-since-") as tmp:
        commit, old_root = _checkout(root, rev, Path(tmp))
        has_story = any(old_root.glob("*.story"))
        old_comp = compile_project(old_root, target=target) if has_story else None
        try:
            old_lock = LockFile.load(LockFile.path_for(old_root))
        except LockFileError:
            old_lock = LockFile()
    old_plan = (
        make_plan(
            old_comp, lock=old_lock, store=store, backend=plan.backend, provider=plan.provider
        )
        if old_comp is not None and old_comp.project is not None
        else None
    )
    old_scenes = dict(old_comp.project.scenes) if old_comp and old_comp.project else {}
    old_entries = old_lock.table(plan.backend)  # paid renders or previews
    new_scenes = dict(comp.project.scenes) if comp.project else {}
    out: dict[str, SceneChange] = {}
    for name in plan.order:
        req = comp.requests.get(name)
        new_written = new_scenes[name].prompt if name in new_scenes else ""
        if name not in old_scenes and name not in old_entries:
            out[name] = SceneChange("new", ["new scene"], "", new_written)
            continue
        old_written = old_scenes[name].prompt if name in old_scenes else ""
        entry = (
            _entry(old_comp, old_plan, name, old_lock)
            if old_comp is not None and old_plan is not None
            else old_entries.get(name)
        )
        old_output = None
        if old_plan is not None and name in old_plan.scenes:
            old_output = old_plan.scenes[name].output
        if old_output is None and name in old_entries:
            t = old_entries[name].picked_take()
            old_output = t.output if t and t.output else None
        if old_output is not None and not store.has(old_output):
            old_output = None
        if req is None or entry is None:
            if old_written != new_written:
                out[name] = SceneChange(
                    "changed", ["prompt changed"], old_written, new_written, old_output
                )
            continue
        sp = plan.scenes[name]
        found = [
            c
            for c in explain(entry, req, plan.backend, sp.upstream, plan.provider)
            if c.kind not in ("backend", "provider", "takes")
        ]
        if not found and old_written == new_written:
            continue
        direct = [c for c in found if c.kind != "upstream"]
        messages = [c.message for c in found] or ["prompt as written changed"]
        out[name] = SceneChange(
            "changed" if direct or old_written != new_written else "upstream",
            messages,
            old_written or entry.prompt,
            new_written or req.prompt,
            old_output,
        )
    gone = [n for n in [*old_scenes, *old_entries] if n not in new_scenes]
    return Since(rev, commit, out, list(dict.fromkeys(gone)))
