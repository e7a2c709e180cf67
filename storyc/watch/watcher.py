"""The file watcher: turns saves on disk into debounced batches of changed paths.

Stage: an edge of the build (effects: filesystem notifications, stat). In: the set of
files a project depends on (story files and local assets, absolute paths) and an
`on_change(paths) -> new watched set` callback. Out: calls to that callback, one per
burst of saves. The only module that imports watchfiles.

Why it is shaped this way:

- Editors save by atomic rename (write `.x.tmp`, rename over `x`), which replaces the
  inode, so we watch the *directories* holding the files (non-recursively) and keep
  only events whose path is in the current watched set. A rename shows up as
  "added x" and that is enough.
- watchfiles' own `step` only waits while its set of distinct (change, path) pairs
  grows, so five quick writes to one file can arrive as two batches. We debounce on
  top: a batch is delivered once nothing has happened for `debounce_ms`
  (`rust_timeout` + `yield_on_timeout` tell us about the quiet), or after `max_wait_ms`
  of continuous activity so a file written in a loop still gets checked.
- The watched set changes as the story changes (a new include, a new asset folder).
  When the set of directories changes, the notifier is restarted; a stat snapshot of
  every watched file, compared after the restart, catches saves made in between.
- storyc's own writes (`.storyc/`, `renders/`, `storyc.lock`) are never in the set,
  and are filtered out explicitly as well, so a build never triggers a rebuild.
- A watched folder can be deleted and made again (`git checkout`, an asset tool that
  rewrites its folder). The notifier's watch on the old folder dies with it, so the
  identity (inode) of every watched folder is kept: a batch that touches a folder, or
  finds one gone or replaced, re-plans the folders and restarts the notifier, and the
  snapshot catches what was written in between. Without this, watch went deaf to that
  folder while saying everything was up to date.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from watchfiles import Change, watch

from storyc.base.fsio import Sig, stat_sig

OnChange = Callable[[frozenset[Path]], Iterable[Path] | None]
StatSig = Sig | None  # storyc.base.fsio.stat_sig; None when missing
UNKNOWN: StatSig = (-1, -1, -1, -1)  # never equal to a real stat

# Paths under the project root that storyc itself writes.
OWN_OUTPUTS = (".storyc", "renders", "storyc.lock")


def _inode(path: Path) -> int | None:
    try:
        return os.stat(path).st_ino
    except OSError:
        return None


def existing_ancestor(path: Path) -> Path:
    """The nearest directory at or above `path.parent` that exists."""
    d = path.parent
    while not d.is_dir() and d != d.parent:
        d = d.parent
    return d


class Watcher:
    """Watches a changing set of files; calls `on_change` once per burst of saves.

    `run()` blocks until `stop_event` is set (checked every few milliseconds by
    watchfiles) and returns. Ctrl-C raises KeyboardInterrupt out of `run()`.
    `on_change` runs on the calling thread; while it runs, new events are buffered
    by the notifier and delivered afterwards.
    """

    def __init__(
        self,
        root: Path,
        on_change: OnChange,
        *,
        debounce_ms: int = 80,
        max_wait_ms: int = 1500,
        stop_event: threading.Event | None = None,
        force_polling: bool | None = None,
    ) -> None:
        self.root = Path(root).resolve()
        self.on_change = on_change
        self.debounce_ms = max(10, int(debounce_ms))
        self.max_wait_ms = max(self.debounce_ms, int(max_wait_ms))
        self.stop_event = stop_event or threading.Event()
        self.force_polling = force_polling
        self._ignored = tuple(self.root / p for p in OWN_OUTPUTS)
        self.watched: frozenset[Path] = frozenset()
        self._snapshot: dict[Path, StatSig] = {}
        self._dirs: frozenset[Path] = frozenset()
        self._dir_ids: dict[Path, int | None] = {}
        self._missing_parents: frozenset[Path] = frozenset()
        self.batches = 0  # deliveries to on_change, for tests and the benchmark
        self.restarts = 0
        self.ready = threading.Event()  # set once the notifier is listening

    # -- the watched set -------------------------------------------------------

    def is_ignored(self, path: Path) -> bool:
        return any(path == p or p in path.parents for p in self._ignored)

    def set_watched(
        self, paths: Iterable[Path], *, keep_snapshot: bool = False, new_unknown: bool = False
    ) -> None:
        """Replace the watched set. With `keep_snapshot`, files already known keep their
        old stat, so `changed_since_snapshot` still reports saves made meanwhile. With
        `new_unknown`, files new to the set count as changed at the next notifier start:
        they may have been written after the callback read them and before their folder
        was watched."""
        files = {Path(os.path.abspath(p)) for p in paths}
        # A file that is a link changes where its target is: that folder's events are the
        # ones that tell (the link's own folder hears nothing when the target is saved).
        files |= {Path(os.path.realpath(p)) for p in files if os.path.islink(p)}
        before = self.watched
        self.watched = frozenset(p for p in files if not self.is_ignored(p))
        old = self._snapshot if keep_snapshot else {}
        self._snapshot = {
            p: old[p] if p in old else UNKNOWN if new_unknown and p not in before else stat_sig(p)
            for p in self.watched
        }
        dirs: set[Path] = set()
        missing_parents: set[Path] = set()
        for p in self.watched:
            d = existing_ancestor(p)
            dirs.add(d)
            if d != p.parent:
                # A missing folder on the way: its creation must wake us so that we
                # can start watching inside it.
                q = p.parent
                while q != d:
                    missing_parents.add(q)
                    q = q.parent
        self._dirs = frozenset(dirs)
        self._dir_ids = {d: _inode(d) for d in dirs}
        self._missing_parents = frozenset(missing_parents)

    def _relevant(self, path: Path) -> bool:
        return path in self.watched or path in self._missing_parents or path in self._dirs

    def folders_changed(self) -> bool:
        """Whether a watched folder is gone or was replaced since it was planned."""
        return any(_inode(d) != ino for d, ino in self._dir_ids.items())

    def _filter(self, change: Change, raw: str) -> bool:
        path = Path(raw)
        return not self.is_ignored(path) and self._relevant(path)

    def changed_since_snapshot(self) -> frozenset[Path]:
        return frozenset(p for p, sig in self._snapshot.items() if stat_sig(p) != sig)

    # -- the loop ----------------------------------------------------------------

    def _deliver(self, paths: frozenset[Path]) -> None:
        self.batches += 1
        # What was delivered is stat'ed before the callback reads it: a save made while the
        # callback runs then differs from the snapshot, so a notifier restarted afterwards
        # (its event died with the old one) still finds it. Stat'ed after, the snapshot
        # would already hold that save and nothing would ever deliver it.
        seen = {p: stat_sig(p) for p in paths if p in self._snapshot}
        new = self.on_change(paths)
        self._snapshot.update(seen)  # only what was delivered: a big set is not re-stat'ed
        files = None if new is None else {Path(os.path.abspath(p)) for p in new}
        if files is not None and files != self.watched:
            # files already known keep what the snapshot says of them (a change not yet
            # delivered stays a change); files new to the set are read at the next start
            self.set_watched(files, keep_snapshot=True, new_unknown=True)

    def run(self, initial: Iterable[Path], *, since_ns: int | None = None) -> None:
        """Watch `initial` (and what `on_change` returns) until stopped. `since_ns`: when
        the caller last read the files; one modified after it is delivered at once."""
        self.set_watched(initial)
        if since_ns is not None:
            for p, sig in self._snapshot.items():
                if sig is not None and sig[1] >= since_ns:
                    self._snapshot[p] = UNKNOWN
        while not self.stop_event.is_set():
            self._listen(self._dirs)
            if not self.stop_event.is_set():
                self.restarts += 1  # the directory set changed: a new notifier

    def _listen(self, dirs: frozenset[Path]) -> None:
        """Run one notifier over `dirs` until stopped or until the directory set changes."""
        pending: set[Path] = set()
        first = 0.0
        # The notifier itself waits `step` for quiet before handing a batch over; the rest of
        # the debounce is waited here (rust_timeout), so the total quiet time is the debounce.
        # The notifier looks every `step`, so a batch reaches us up to two steps after its
        # last event and the quiet ends up to a step late: 5 ms keeps that within ~10 ms of
        # the debounce (10 ms cost ~10-20 ms) for a few hundred wake-ups a second, each a
        # check of the stop event.
        step = max(5, min(10, self.debounce_ms // 16))
        quiet = max(step, self.debounce_ms - step)
        if not dirs:
            # Nothing to watch (an empty project): idle until stopped or told otherwise.
            self.ready.set()
            while not self.stop_event.wait(0.05):
                if self._dirs != dirs:
                    return
            return
        gen = watch(
            *sorted(dirs),
            watch_filter=self._filter,
            debounce=self.max_wait_ms,
            step=step,
            stop_event=self.stop_event,
            rust_timeout=quiet,
            yield_on_timeout=True,
            recursive=False,
            force_polling=self.force_polling,
            raise_interrupt=True,
        )
        try:
            self.ready.set()
            started = False
            for changes in gen:
                now = time.monotonic()
                if not started:
                    # The notifier is listening now; a save made before it started (while
                    # the previous one was torn down, or before the first) shows in stat.
                    started = True
                    if any(q.is_dir() for q in self._missing_parents):
                        # A folder it waits for was made before it listened (`mkdir -p`
                        # while it started): that event is lost, so plan the folders again
                        # now, or a save inside would never be heard.
                        self.set_watched(self.watched, keep_snapshot=True)
                        return
                    gap = self.changed_since_snapshot()
                    if gap and not pending:
                        first = now
                    pending.update(gap)
                if changes:
                    if not pending:
                        first = now
                    pending.update(Path(p) for _, p in changes)
                    if (now - first) * 1000 < self.max_wait_ms:
                        continue
                if not pending:
                    continue
                batch, pending = pending, set()
                if batch & self._missing_parents:
                    # A folder we were waiting for appeared: restart the notifier with it;
                    # the kept snapshot shows what was written inside meanwhile.
                    self.set_watched(self.watched, keep_snapshot=True)
                    return
                files = frozenset(batch & self.watched)
                if files:
                    self._deliver(files)
                if self._dirs != dirs:
                    return
                if batch & self._dirs or self.folders_changed():
                    # A watched folder was deleted, moved or made again: its watch is dead.
                    # Plan the folders again (a missing one is waited for from its parent).
                    self.set_watched(self.watched, keep_snapshot=True)
                    return
        finally:
            gen.close()
