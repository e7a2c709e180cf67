"""`storyc watch` end to end: the real watcher, compiler and planner on real files.

Each test runs a session in a thread with a stop event, edits files the way people
and editors do, and reads the session's structured events (never screen text), each
wait bounded so a broken watcher fails instead of hanging. The paid backend without
consent is used where only checking and planning matter: it plans, never renders,
and needs no key. One test renders with the free preview backend.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from storyc.media import ffmpeg as media
from storyc.watch.session import WatchSession
from storyc.watch.wiring import make_wiring

WAIT = 20.0

MAIN = """project "night" {
  aspect = "16:9"
}
image market = "assets/market.png"
scene arrival {
  prompt = "A night market, lanterns swaying @market"
  duration = 5
}
scene stall {
  prompt = "Close on a noodle stall, steam rising"
  duration = 5
}
"""

Event = dict[str, Any]


class Live:
    def __init__(
        self,
        root: Path,
        backend: str,
        *,
        max_cost: Decimal | None = None,
        yes: bool = False,
        debounce_ms: int = 60,
        board: bool = False,
    ) -> None:
        self.root = root
        self.q: queue.Queue[Event] = queue.Queue()
        self.log: list[Event] = []
        self.wiring = make_wiring(
            root, backend=backend, target=None, jobs=2, max_cost=max_cost, yes=yes, board=board
        )
        self.session = WatchSession(
            self.wiring.root,
            self.wiring,
            self.q.put,
            debounce_ms=debounce_ms,
            max_cost=max_cost,
            yes=yes,
        )
        self.stop = threading.Event()
        self.ready = threading.Event()
        self.result: list[object] = []
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.result.append(self.session.run(self.stop, ready=self.ready))
        except BaseException as exc:
            self.result.append(exc)

    def next(self, kind: str, match: Callable[[Event], bool] = lambda e: True) -> Event:
        end = time.monotonic() + WAIT
        while (left := end - time.monotonic()) > 0:
            try:
                ev = self.q.get(timeout=left)
            except queue.Empty:
                break
            self.log.append(ev)
            if ev["event"] == kind and match(ev):
                return ev
        raise AssertionError(f"no {kind!r} event; saw {[e['event'] for e in self.log]}")

    def quiet(self, seconds: float = 0.8) -> list[Event]:
        """Events that arrive within `seconds` (to prove that nothing happens)."""
        out = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                out.append(self.q.get(timeout=left))
            except queue.Empty:
                break
        self.log.extend(out)
        return out


@pytest.fixture
def project(tmp_path: Path) -> Path:
    root = tmp_path / "film"
    (root / "assets").mkdir(parents=True)
    media.make_test_image(root / "assets" / "market.png", 640, 480, seed=1)
    (root / "main.story").write_text(MAIN, "utf-8")
    return root


@pytest.fixture
def live(project: Path) -> Iterator[Callable[[str], Live]]:
    started: list[Live] = []

    def start(backend: str = "inference", debounce_ms: int = 60, board: bool = False) -> Live:
        lv = Live(project, backend, debounce_ms=debounce_ms, board=board)
        started.append(lv)
        lv.thread.start()
        assert lv.ready.wait(WAIT), "the session did not start"
        lv.next("watching")
        time.sleep(0.1)  # let the notifier register its directories
        return lv

    yield start
    for lv in started:
        lv.stop.set()
        lv.thread.join(WAIT)
        assert not lv.thread.is_alive(), "the session did not stop on its stop event"
        assert lv.result and not isinstance(lv.result[0], BaseException), lv.result


def save(path: Path, text: str) -> None:
    """Save like an editor that writes a temp file and renames it over the original."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, "utf-8")
    os.replace(tmp, path)


def test_edit_a_prompt_shows_the_plan_change(project: Path, live) -> None:
    lv = live()
    first = [e for e in lv.log if e["event"] == "plan"]
    assert first and first[0]["render"] == ["arrival", "stall"], lv.log
    save(project / "main.story", MAIN.replace("steam rising", "steam curling"))
    lv.next("change", lambda e: e["files"] == ["main.story"])
    diag = lv.next("diagnostics")
    assert diag["errors"] == 0
    plan = lv.next("plan")
    # Both still need rendering (nothing was rendered), the total is unchanged.
    assert plan["render"] == ["arrival", "stall"] and plan["delta"] == 0.0
    save(project / "main.story", MAIN.replace("  duration = 5\n}\n", "  duration = 10\n}\n"))
    plan = lv.next("plan")
    assert plan["delta"] > 0, "a longer scene costs more"
    waits = [e for e in lv.log if e["event"] == "waiting"]
    assert waits and waits[0]["reason"] == "consent"
    assert not any(e["event"] == "build" for e in lv.log), "never renders without consent"


def test_touching_an_asset_rechecks(project: Path, live) -> None:
    lv = live()
    media.make_test_image(project / "assets" / "market.png", 640, 480, seed=2)
    change = lv.next("change")
    assert change["files"] == ["assets/market.png"]
    lv.next("plan")


def test_syntax_error_keeps_last_good_state_until_fixed(project: Path, live) -> None:
    lv = live()
    save(project / "main.story", MAIN.replace("scene stall {", "scene stall {{"))
    diag = lv.next("diagnostics")
    assert diag["errors"] >= 1 and diag["items"][0]["code"].startswith("E0")
    lv.next("kept")
    good = lv.session.good
    assert good is not None and good.ok
    save(project / "main.story", MAIN)
    diag = lv.next("diagnostics")
    assert diag["errors"] == 0
    lv.next("plan")
    assert lv.session.good is not good


def test_added_include_is_watched(project: Path, live) -> None:
    lv = live()
    cast = project / "parts" / "cast.story"
    # The include names a file in a folder that does not exist yet: an error, watched.
    save(project / "main.story", MAIN + 'include "parts/cast.story"\n')
    diag = lv.next("diagnostics")
    assert any(d["code"] == "E012" for d in diag["items"])
    cast.parent.mkdir()
    cast.write_text('scene finale {\n  prompt = "Lanterns go out one by one"\n}\n', "utf-8")
    plan = lv.next("plan", lambda e: "finale" in e["render"])
    assert plan["new"] == ["finale"]
    save(cast, 'scene finale {\n  prompt = "Lanterns go out, one by one"\n  duration = 10\n}\n')
    change = lv.next("change")
    assert change["files"] == ["parts/cast.story"]
    plan = lv.next("plan")
    assert plan["delta"] > 0


def test_burst_of_saves_is_one_recompile_parsing_one_file(project: Path, live) -> None:
    (project / "cast.story").write_text('let mood = "warm"\n', "utf-8")
    save(project / "main.story", MAIN + 'include "cast.story"\n')
    lv = live(debounce_ms=400)  # generous: a loaded machine may stretch the 10 ms pauses
    refreshes = lv.session.refreshes
    parses = lv.wiring.parses()
    for i in range(6):
        save(project / "cast.story", f'let mood = "warm {i}"\n')
        time.sleep(0.01)
    lv.next("plan")
    lv.quiet(0.5)
    assert lv.session.refreshes == refreshes + 1
    assert lv.wiring.parses() == parses + 1, "only the saved file is parsed again"


def test_preview_renders_on_save_and_its_own_writes_do_not_retrigger(project: Path, live) -> None:
    (project / "main.story").write_text(MAIN.split("scene stall")[0], "utf-8")
    lv = live("preview")
    built = lv.next("built")
    assert built["rendered"] == ["arrival"] and built["failed"] == []
    assert (project / "renders" / "arrival.mp4").exists()
    assert (project / "storyc.lock").exists()
    after = lv.quiet(1.0)
    assert not any(e["event"] in ("change", "build") for e in after), after
    save(project / "main.story", MAIN.split("scene stall")[0].replace("swaying", "still"))
    plan = lv.next("plan", lambda e: e["render"] == ["arrival"])
    assert plan["new"] == ["arrival"]
    built = lv.next("built")
    assert built["rendered"] == ["arrival"]
    # Reverting the edit renders nothing: the old output is still in the store.
    save(project / "main.story", MAIN.split("scene stall")[0])
    plan = lv.next("plan", lambda e: e.get("done") == ["arrival"] or e["render"] == [])
    assert plan["render"] == []


def test_an_edit_undone_records_the_render_it_brings_back(project: Path, live) -> None:
    """Undoing an edit brings a scene back to a render in the store: watch rendered
    nothing, and `storyc.lock` and `renders/<scene>.mp4` went on naming the undone
    edit's render until the next `storyc build`."""
    from storyc.state.lockfile import LockFile

    def recorded() -> tuple[str | None, str]:
        entry = LockFile.load(LockFile.path_for(project)).table("preview")["arrival"]
        return entry.takes[0].output, os.path.realpath(project / "renders" / "arrival.mp4")

    one = MAIN.split("scene stall")[0]
    (project / "main.story").write_text(one, "utf-8")
    lv = live("preview")
    assert lv.next("built")["rendered"] == ["arrival"]
    first = recorded()
    save(project / "main.story", one.replace("swaying", "still"))
    assert lv.next("built")["rendered"] == ["arrival"]
    edited = recorded()
    assert edited[0] != first[0] and edited[1] != first[1]
    save(project / "main.story", one)  # undone
    assert lv.next("relink")["scenes"] == ["arrival"]
    assert lv.next("built")["rendered"] == []  # recorded, nothing rendered
    assert recorded() == first
    after = lv.quiet(1.0)
    assert not any(e["event"] in ("relink", "build") for e in after), after


def test_a_rehearsal_brought_back_beside_a_real_entry_is_asked_once(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rehearsal's render in the store, and a real render's entry in `storyc.lock` (a
    teammate's): watch asks a build to record the rehearsal's, the build keeps the real
    entry (as it must), and watch does not ask again after every build of its own."""
    import dataclasses
    import subprocess
    import sys

    from storyc.provider import loopback
    from storyc.state.lockfile import LockFile

    one = MAIN.split("scene stall")[0]
    (project / "main.story").write_text(one, "utf-8")
    with loopback.serve(latency=0.1, fast_outputs=True) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        p = subprocess.run(
            [sys.executable, "-m", "storyc", "build", str(project), "--backend", "inference"]
            + ["--yes"],
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert p.returncode == 0, p.stderr
        path = LockFile.path_for(project)
        lock = LockFile.load(path)
        entry = lock.scenes["arrival"]
        real = dataclasses.replace(
            entry,
            provider=None,  # inference.sh's own
            takes=[
                dataclasses.replace(
                    t, key="sha256:" + "1" * 64, output="sha256:" + "2" * 64, url="https://x.test/v"
                )
                for t in entry.takes
            ],
        )
        lock.scenes["arrival"] = real
        lock.save(path)
        sent = len(server.submissions)
        lv = Live(project, "inference", yes=True)
        lv.thread.start()
        try:
            assert lv.ready.wait(WAIT)
            assert lv.next("relink")["scenes"] == ["arrival"]
            assert lv.next("built")["rendered"] == []
            after = lv.quiet(2.0)
            assert not any(e["event"] in ("relink", "build") for e in after), after
        finally:
            lv.stop.set()
            lv.thread.join(WAIT)
        assert LockFile.load(path).scenes["arrival"] == real  # the real entry kept
        assert len(server.submissions) == sent  # nothing sent


def test_board_is_rewritten_after_each_build(project: Path, live) -> None:
    (project / "main.story").write_text(MAIN.split("scene stall")[0], "utf-8")
    lv = live("preview", board=True)
    lv.next("built")
    ev = lv.next("board")
    page = project / "renders" / "board.html"
    assert ev["path"] == "renders/board.html" and "lanterns swaying" in page.read_text("utf-8")
    # writing the page and its pictures is not a change to the project
    after = lv.quiet(1.0)
    assert not any(e["event"] in ("change", "build") for e in after), after
    save(project / "main.story", MAIN.split("scene stall")[0].replace("swaying", "still"))
    lv.next("built")
    lv.next("board")
    text = page.read_text("utf-8")
    assert "lanterns still" in text and "lanterns swaying" not in text


def _prompts(server: object) -> list[str]:
    return [s["input"]["prompt"] for s in server.submissions]  # type: ignore[attr-defined]


def test_paid_backend_renders_within_the_session_budget_only(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storyc.provider import loopback

    with loopback.serve(latency=0.3) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        first = make_wiring(
            project, backend="inference", target=None, jobs=2, max_cost=None, yes=False
        )
        budget = sum(c or 0 for c in first.plan(first.compile().comp).costs.values())
        lv = Live(project, "inference", max_cost=budget)  # exactly enough for the first build
        lv.thread.start()
        try:
            assert lv.ready.wait(WAIT)
            built = lv.next("built")
            assert sorted(built["rendered"]) == ["arrival", "stall"]
            assert len(server.submissions) == 2
            time.sleep(0.1)
            # Edit `stall` while nothing renders: over budget now, so it waits, unsent.
            save(project / "main.story", MAIN.replace("steam rising", "steam curling"))
            wait = lv.next("waiting")
            assert wait["reason"] == "budget" and wait["scenes"] == ["stall"]
            assert wait["left"] == 0.0
            assert len(server.submissions) == 2
        finally:
            lv.stop.set()
            lv.thread.join(WAIT)


def test_edit_while_a_paid_render_runs_is_queued_not_resent(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from storyc.provider import loopback

    (project / "main.story").write_text(MAIN.split("scene stall")[0], "utf-8")
    with loopback.serve(latency=1.5) as server:
        for k, v in server.env.items():
            monkeypatch.setenv(k, v)
        lv = Live(project, "inference", yes=True)
        lv.thread.start()
        try:
            assert lv.ready.wait(WAIT)
            lv.next("progress", lambda e: e["state"] == "submitting")
            save(project / "main.story", MAIN.split("scene stall")[0].replace("swaying", "still"))
            plan = lv.next("plan", lambda e: e["rendering"] == ["arrival"])
            assert plan["render"] == ["arrival"]
            lv.next("built")
            second = lv.next("built")
            assert second["rendered"] == ["arrival"]
            prompts = _prompts(server)
            assert len(prompts) == 2 and prompts[0] != prompts[1], prompts
            lv.quiet(0.5)
            assert len(server.submissions) == 2, "the first version was never sent again"
        finally:
            lv.stop.set()
            lv.thread.join(WAIT)


def test_missing_asset_is_noticed_when_it_appears(project: Path, live) -> None:
    lv = live()
    lantern = project / "assets" / "props" / "lantern.png"
    save(
        project / "main.story",
        MAIN.replace(
            'image market = "assets/market.png"',
            'image market = "assets/market.png"\nimage lantern = "assets/props/lantern.png"',
        ),
    )
    diag = lv.next("diagnostics")
    assert diag["errors"] >= 1, "the story names an image that does not exist yet"
    lv.next("kept")
    lantern.parent.mkdir()
    media.make_test_image(lantern, 640, 480, seed=5)
    # The new folder may be seen before the file inside it: a check in between still
    # reports the file missing; the file's arrival brings the next one.
    lv.next("diagnostics", lambda e: e["errors"] == 0)
    lv.next("plan")


def test_an_edit_of_base_url_is_built_for_the_provider_it_now_names(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Watch read the story's `base_url` once, when it started: after the story named
    another provider, it went on sending (and paying) the first one."""
    from storyc.provider import loopback

    one_scene = MAIN.split("scene stall")[0]
    with loopback.serve(latency=0.1) as first, loopback.serve(latency=0.1) as second:
        monkeypatch.setenv("INFERENCE_API_KEY", first.api_key)
        monkeypatch.delenv("INFERENCE_BASE_URL", raising=False)
        named = one_scene.replace('aspect = "16:9"', f'aspect = "16:9"\n  base_url = "{first.url}"')
        (project / "main.story").write_text(named, "utf-8")
        lv = Live(project, "inference", yes=True)
        lv.thread.start()
        try:
            assert lv.ready.wait(WAIT)
            assert lv.next("built")["rendered"] == ["arrival"]
            assert (len(first.submissions), len(second.submissions)) == (1, 0)
            save(project / "main.story", named.replace(first.url, second.url))
            plan = lv.next("plan", lambda e: e["render"] == ["arrival"])
            assert plan["render"] == ["arrival"]  # another provider: it renders there
            assert lv.next("built")["rendered"] == ["arrival"]
            assert (len(first.submissions), len(second.submissions)) == (1, 1)
        finally:
            lv.stop.set()
            lv.thread.join(WAIT)
