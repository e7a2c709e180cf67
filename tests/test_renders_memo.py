"""The readable names a long-lived process knows to be right (storyc.build.effects.LinkMemo).

A build in the daemon does not read back every `renders/<scene>.mp4` link (20,000 at
10,000 scenes); yet a name that a user removes or points elsewhere, at any moment — before
the process was idle, or after — is put right by the next build, as a build in a fresh
process would.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from storyc import cli
from storyc.base import warm
from storyc.base.fsio import COARSE_NS, FINE_NS, stat_sig
from storyc.build.effects import LinkMemo

STORY = """project "p" {
  aspect = "16:9"
  backend = "preview"
}
scene a {
  prompt = "a quiet harbour at dawn"
  duration = 5
}
scene b {
  prompt = "gulls over the pier"
  duration = 5
}
scene c {
  prompt = "a boat leaves"
  duration = 5
}
"""


def _settle(folder: Path) -> None:
    """Wait until the folder's last change is settled (storyc.base.fsio.settled_sig): a
    moment where times have sub-second digits, two seconds where they are whole."""
    sig = stat_sig(folder)
    fine = sig is not None and (sig[1] % 1_000_000_000 or sig[3] % 1_000_000_000)
    time.sleep((FINE_NS if fine else COARSE_NS) / 1e9 + 0.03)


def test_a_long_lived_process_puts_back_names_changed_at_any_moment(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    root = tmp_path
    (root / "main.story").write_text(STORY, "utf-8")
    renders = root / "renders"
    warm.enable()
    try:
        assert cli.run(["build", str(root)]) == 0
        want = {n: os.readlink(renders / f"{n}.mp4") for n in "abc"}
        memo = warm.peek(("renders-links", str(root)))
        assert isinstance(memo, LinkMemo)

        # removed after the build, before the process was idle: the idle check reads every
        # link back, and forgets the one that is gone even though the folder is settled
        (renders / "b.mp4").unlink()
        _settle(renders)
        warm.run_later()
        assert memo.trusted and str(renders / "b.mp4") not in memo.known
        assert cli.run(["build", str(root)]) == 0
        assert os.readlink(renders / "b.mp4") == want["b"]

        # checked and settled: the folder is trusted with every name known
        _settle(renders)
        warm.run_later()
        assert str(renders) in memo.trusted
        assert {str(renders / f"{n}.mp4") for n in "abc"} <= memo.known.keys()

        # pointed elsewhere by hand after the check: the folder's times moved, so the next
        # build reads the names back and puts this one right
        (renders / "c.mp4").unlink()
        (renders / "c.mp4").symlink_to(want["a"])
        # a folder changed a moment ago is not trusted, whatever its links read back as: a
        # change within the same clock tick would not show in its times
        memo.check()
        assert str(renders) not in memo.trusted
        assert cli.run(["build", str(root)]) == 0
        assert os.readlink(renders / "c.mp4") == want["c"]

        # and removed while nothing was checked since: the same
        _settle(renders)
        warm.run_later()
        (renders / "a.mp4").unlink()
        assert cli.run(["build", str(root)]) == 0
        assert os.readlink(renders / "a.mp4") == want["a"]
    finally:
        warm.disable()
    capsys.readouterr()
