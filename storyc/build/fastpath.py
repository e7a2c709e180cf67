"""The no-op fast path of `storyc build`: answer "nothing to do" from a signature of stats.

Stage: execute (before the compiler and the executor are even imported). In: the
parsed command line, the environment and `.storyc/noop.json`, the "clean state"
that the last build recorded when it ended with every selected scene reused and
nothing failed, unknown or in flight. Out: the same report that build printed (the
same JSON events, with `fast_path: true` in the summary) and exit code 0 — or None,
and the normal path runs. I/O: stats files, reads the record (`.storyc/noop.json`, plain
JSON: a damaged or planted record is a miss and runs nothing); `record` writes it
(atomically) and `forget` deletes it.

The record holds (size, mtime_ns, inode, ctime_ns) of every story file, local asset,
storyc's own code files and package folders, `storyc.lock`, every store object the
selected scenes' takes point at, the `renders/` folder (a link there is replaced, never
edited, so any change to a link changes the folder) and, for paid builds, the journal;
the names of the story files project discovery saw; and the options that decide the
result (path, target, scenes, backend, base URL, `INFERENCE_BASE_URL`, storyc and
Python versions). Never the API key. Any difference, a missing file or a damaged
record means the normal path. A file changed (ctime) after the build started, or less
than `RACY_S` before, might not be what the build read, or could change again within
the same timestamp unseen: such a state is not recorded.
Every normal build forgets the record first, so a build in progress (or one that
stopped half-way) never leaves a stale "clean" behind.

Only modules the command line has already loaded are imported here, and json (no typing;
the JSON lines are written at record time; no compiler, pydantic, lark, jinja2, httpx or
asyncio): start-up is most of a no-op build.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
from typing import Any

from storyc import __version__
from storyc.base.fsio import atomic_write, stat_sig

RECORD_NAME = "noop.json"
FORMAT = 3  # 3: JSON (2 and 1 were marshal)
RACY_S = 1.0
DISABLE_ENV = "STORYC_NO_FASTPATH"  # set to anything to always take the normal path
KEY_ENV = "INFERENCE_API_KEY"
BASE_URL_ENV = "INFERENCE_BASE_URL"
_PKG = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

Stat = tuple[str, int, int, int, int]
Record = dict[str, Any]  # str -> the JSON values described in `record`


def options(args: argparse.Namespace) -> list[object]:
    """What on the command line and in the environment decides a build's result (as it
    reads back from JSON)."""
    return [
        FORMAT,
        __version__,
        sys.version,
        os.path.realpath(args.path),
        args.target,
        list(args.scenes) if args.scenes else None,
        list(getattr(args, "cuts", None) or ()),
        args.backend,
        args.base_url,
        bool(args.resubmit_unknown),
        os.environ.get(BASE_URL_ENV, ""),
    ]


def _root(path: str) -> str | None:
    if os.path.isdir(path):
        return path
    if os.path.isfile(path):
        return os.path.dirname(path)
    return None


def discovery(arg: str) -> list[str]:
    """The top-level story files of a project directory (what discovery looks at)."""
    if not os.path.isdir(arg):
        return []
    return sorted(n for n in os.listdir(arg) if n.endswith(".story"))


def stat_of(path: str) -> Stat | None:
    """What says a file or folder changed (ctime too: no tool can set it back); None if
    it is gone. Also the build cache's signature of its inputs."""
    sig = stat_sig(path)
    return None if sig is None else (path, *sig)


def code_paths() -> list[str]:
    """storyc's modules and grammar, and their folders (a new module changes its folder)."""
    out = []
    for parent in (_PKG, os.path.join(os.path.dirname(_PKG), "grammar")):
        for folder, dirs, files in os.walk(parent):
            dirs[:] = [d for d in dirs if d != "__pycache__"]
            out.append(folder)
            out += [os.path.join(folder, f) for f in files if f.endswith((".py", ".lark"))]
    return sorted(out)


def record_path(root: str) -> str:
    return os.path.join(root, ".storyc", RECORD_NAME)


def forget(root: str) -> None:
    """Called by every normal build before it changes anything."""
    with contextlib.suppress(OSError):
        os.unlink(record_path(root))


def record(
    root: str, args: argparse.Namespace, paths: list[str], report: Record, started: float
) -> bool:
    """Remember this clean state; False when it cannot be trusted (changed during the
    build or racy, or a file is missing). `started`: `time.time()` before the build read
    anything."""
    stats = []
    for p in sorted(set(paths)):
        s = stat_of(p)
        if s is None:
            return False
        stats.append(s)
    # ctime, which no tool can set back: a file changed after the build read it (even
    # with its old mtime restored) or too close to it to be told apart is not trusted
    newest = max((max(s[2], s[4]) for s in stats), default=0) / 1e9
    if newest > started - RACY_S:
        return False
    data = {
        "options": options(args),
        "discovery": discovery(os.path.realpath(args.path)),
        "stats": stats,
        **report,
    }
    try:
        atomic_write(record_path(root), json.dumps(data).encode("utf-8"), durable=False)
    except (OSError, ValueError, TypeError):
        return False
    return True


def load(args: argparse.Namespace) -> Record | None:
    """The record, if it describes this command and every stat still matches."""
    if os.environ.get(DISABLE_ENV):
        return None
    arg = os.path.realpath(args.path)
    root = _root(arg)
    if root is None:
        return None
    try:
        with open(record_path(root), "rb") as f:
            data = json.loads(f.read())
    except (OSError, ValueError, RecursionError):
        return None
    try:
        if data["options"] != options(args) or data["discovery"] != discovery(arg):
            return None
        if data["backend"] != "preview" and not os.environ.get(KEY_ENV):
            return None  # the normal path explains that a key is needed
        if not all(isinstance(data[k], str) for k in ("diagnostics", "json", "build_line")):
            return None
        if not all(isinstance(x, str) for x in data["plan_lines"] + data["scenes"]):
            return None
        for p, size, mtime, ino, ctime in data["stats"]:
            if not isinstance(p, str):
                return None
            st = os.stat(p)
            if (
                st.st_size != size
                or st.st_mtime_ns != mtime
                or st.st_ino != ino
                or st.st_ctime_ns != ctime
            ):
                return None
    except (OSError, KeyError, TypeError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def try_fast(args: argparse.Namespace) -> int | None:
    """Print the clean build's report and return 0, or None for the normal path."""
    data = load(args)
    if data is None:
        return None
    if data["diagnostics"]:  # warnings are shown on every build, as the normal path does
        print(data["diagnostics"], file=sys.stderr)
    if args.json:
        sys.stdout.write(data["json"])
        sys.stdout.flush()
        return 0
    from storyc.build.progress import make_reporter

    rep = make_reporter(json_mode=False)
    try:
        for line in data["plan_lines"]:
            rep.result(line)
        for scene in data["scenes"]:
            rep.scene(scene, "reused", "reused")
        rep.result(data["build_line"])
    finally:
        rep.close()
    return 0
