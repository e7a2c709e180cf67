"""`storyc watch` must not go deaf when a watched folder is deleted and made again.

The real notifier on real files (the harness of test_watch_core). Before the fix, the
notifier kept its watch on the deleted folder, so saves into the new folder of the same name
were never delivered, while watch said everything was up to date.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

from test_watch_core import make  # noqa: F401 - the fixture


def _settle() -> None:
    time.sleep(0.3)  # let the notifier restart on its new folders (not a timing assertion)


def test_a_folder_deleted_and_made_again_is_still_watched(tmp_path: Path, make) -> None:  # noqa: F811
    story = tmp_path / "main.story"
    story.write_text("a")
    asset = tmp_path / "assets" / "mei.png"
    asset.parent.mkdir()
    asset.write_bytes(b"1")
    h = make([story, asset])
    shutil.rmtree(asset.parent)
    assert asset in h.get()
    _settle()
    asset.parent.mkdir()
    asset.write_bytes(b"2")
    assert asset in h.get()
    _settle()
    asset.write_bytes(b"3")  # and later saves too: the new folder is watched
    assert h.get() == {asset}


def test_a_folder_replaced_by_rename_is_still_watched(tmp_path: Path, make) -> None:  # noqa: F811
    story = tmp_path / "main.story"
    story.write_text("a")
    cast = tmp_path / "cast" / "cast.story"
    cast.parent.mkdir()
    cast.write_text("x")
    h = make([story, cast])
    # what a checkout or an asset tool does: build the new folder beside, swap it in
    fresh = tmp_path / "cast.new"
    fresh.mkdir()
    (fresh / "cast.story").write_text("y")
    os.rename(cast.parent, tmp_path / "cast.old")
    os.rename(fresh, cast.parent)
    assert cast in h.get()
    _settle()
    cast.write_text("z")
    assert cast in h.get()


def test_an_empty_watched_folder_deleted_and_made_again(tmp_path: Path, make) -> None:  # noqa: F811
    # the file is missing (a story names it before it exists): no file event when the
    # folder goes, only the folder's own
    story = tmp_path / "main.story"
    story.write_text("a")
    asset = tmp_path / "assets" / "later.png"
    asset.parent.mkdir()
    h = make([story, asset])
    asset.parent.rmdir()
    _settle()
    asset.parent.mkdir()
    _settle()
    asset.write_bytes(b"png")
    assert asset in h.get()
