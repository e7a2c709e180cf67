"""One board, start to finish: plan, (review) changes since a revision, thumbnails, page.

Stage: review. In: the project root and its compilation (the command compiles; watch
hands in the compilation it already has), the backend, optionally a git revision. Out:
`renders/board.html` and a `Made` summary. I/O: reads `storyc.lock`, the store and (review
mode) git; writes thumbnails into the store and the page under `renders/`. Never renders a
scene and never takes the project lock: it only looks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from storyc.plan.address import key_provider
from storyc.plan.planner import make_plan
from storyc.review.board import Board, BoardInputs, collect, write_board
from storyc.review.page import render_page
from storyc.review.thumbs import ThumbMaker
from storyc.state.lockfile import LockFile
from storyc.state.store import Store

if TYPE_CHECKING:
    from storyc.compiler import Compilation
    from storyc.review.since import Since


@dataclass
class Made:
    path: Path
    board: Board
    thumbnails_made: int  # ffmpeg runs this time (0 from a warm store)
    seconds: float


def make_board(
    root: Path,
    comp: Compilation,
    *,
    backend: str,
    lock: LockFile | None = None,
    since_rev: str | None = None,
    target: str | None = None,
    workers: int = 2,
    base_url: str | None = None,
) -> Made:
    """Write `renders/board.html` for `comp` (`base_url`: the `--base-url` flag, if any).
    Raises LockFileError (unreadable lock file) and, with `since_rev`,
    storyc.review.since.SinceError."""
    t0 = time.perf_counter()
    lock = lock if lock is not None else LockFile.load(LockFile.path_for(root))
    with Store.for_project(root) as store:
        setting = comp.summary.settings.get("base_url") if comp.summary is not None else None
        provider = key_provider(backend, base_url, setting)
        plan = make_plan(comp, lock=lock, store=store, backend=backend, provider=provider)
        since: Since | None = None
        if since_rev is not None:
            from storyc.review.since import changes_since

            since = changes_since(root, since_rev, comp, plan, store, target=target)
        thumbs = ThumbMaker(store, workers=workers)
        board = collect(BoardInputs(comp, plan, lock, store, root, since), thumbs=thumbs)
        path = write_board(render_page(board), root)
    return Made(path, board, thumbs.made, time.perf_counter() - t0)
