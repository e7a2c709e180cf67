"""Watch session rules: consent, budget, never submitting twice, keeping the last good state.

These drive `WatchSession` step by step (refresh / build_pending) over a tiny pipeline
made of real files: `scenes.txt` holds `name: prompt` lines, a scene's key is the digest
of its line, and "rendering" writes the key into `done.txt`. The build can be held open
with an event, to edit a scene while it renders. The real compiler and executor are
exercised by tests/test_watch_live.py.
"""

from __future__ import annotations

import hashlib
import threading
from decimal import Decimal
from pathlib import Path
from typing import Any

from storyc.watch.session import BuildReport, Compiled, PlanView, WatchSession, Wiring

PRICE = Decimal("0.56")


class TinyPipeline:
    def __init__(self, root: Path, *, paid: bool) -> None:
        self.root = root
        self.paid = paid
        self.builds: list[list[tuple[str, str]]] = []
        self.gate: threading.Event | None = None
        self.started = threading.Event()
        self.fail: set[str] = set()
        self.relink: dict[str, str] = {}  # what the plan says a build records for free

    def compile(self) -> Compiled:
        text = (self.root / "scenes.txt").read_text("utf-8")
        scenes: dict[str, str] = {}
        diags: list[dict[str, Any]] = []
        for n, line in enumerate(text.splitlines(), 1):
            if ":" not in line:
                diags.append({"code": "E001", "severity": "error", "message": f"line {n}"})
                continue
            name, _ = line.split(":", 1)
            scenes[name.strip()] = hashlib.sha256(line.encode()).hexdigest()
        return Compiled(
            scenes,
            not diags,
            diags,
            "\n".join(d["message"] for d in diags),
            len(diags),
            0,
            {self.root / "scenes.txt"},
        )

    def done(self) -> set[str]:
        path = self.root / "done.txt"
        return set(path.read_text().split()) if path.exists() else set()

    def plan(self, comp: dict[str, str]) -> PlanView:
        done = self.done()
        render = {s: k for s, k in comp.items() if k not in done}
        view = PlanView(render, {s: PRICE if self.paid else Decimal(0) for s in render}, self.paid)
        view.relink = dict(self.relink)
        return view

    def build(self, comp: dict[str, str], scenes: list[str]) -> BuildReport:
        self.builds.append([(s, comp[s]) for s in scenes])
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(10)
        ok = [s for s in scenes if s not in self.fail]
        with (self.root / "done.txt").open("a") as f:
            for s in ok:
                f.write(comp[s] + "\n")
        spent = (
            PRICE * len([s for s in scenes if s not in self.relink]) if self.paid else Decimal(0)
        )
        return BuildReport(ok, [s for s in scenes if s in self.fail], spent)

    def wiring(self) -> Wiring:
        return Wiring(
            self.root, self.compile, self.plan, self.build, "inference" if self.paid else "preview"
        )


def session(
    tmp_path: Path, *, paid: bool = False, **kw: Any
) -> tuple[WatchSession, TinyPipeline, list[dict[str, Any]]]:
    (tmp_path / "scenes.txt").write_text("a: one\nb: two\n")
    pipe = TinyPipeline(tmp_path, paid=paid)
    events: list[dict[str, Any]] = []
    return WatchSession(tmp_path, pipe.wiring(), events.append, **kw), pipe, events


def of(events: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [e for e in events if e["event"] == kind]


def test_preview_renders_automatically_and_only_once(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path)
    s.refresh()
    assert of(events, "plan")[-1]["render"] == ["a", "b"]
    s.build_pending()
    assert [[n for n, _ in b] for b in pipe.builds] == [["a", "b"]]
    after = of(events, "plan")[-1]  # the plan is shown again once the build is done
    assert after["render"] == [] and after["done"] == ["a", "b"]
    s.refresh()
    assert of(events, "plan")[-1]["render"] == []
    assert s.build_pending() is None
    assert len(pipe.builds) == 1


def test_paid_backend_without_consent_renders_nothing(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path, paid=True)
    s.refresh()
    assert s.build_pending() is None
    assert s.build_pending() is None
    assert pipe.builds == []
    waits = of(events, "waiting")
    assert len(waits) == 1, "the consent message is shown once per state"
    assert waits[0]["reason"] == "consent" and waits[0]["cost"] == float(2 * PRICE)


def test_budget_limits_the_session(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path, paid=True, max_cost=Decimal("1.50"))
    s.refresh()
    s.build_pending()  # 2 × 0.56 = 1.12 ≤ 1.50
    assert len(pipe.builds) == 1 and s.spent == 2 * PRICE
    (tmp_path / "scenes.txt").write_text("a: one, changed\nb: two\n")
    s.refresh()
    plan = of(events, "plan")[-1]
    assert plan["new"] == ["a"] and plan["delta"] == float(PRICE)
    assert s.build_pending() is None  # 1.12 + 0.56 > 1.50
    assert len(pipe.builds) == 1
    assert of(events, "waiting")[-1]["reason"] == "budget"
    assert of(events, "waiting")[-1]["left"] == float(Decimal("1.50") - 2 * PRICE)


def test_yes_renders_on_a_paid_backend(tmp_path: Path) -> None:
    s, pipe, _ = session(tmp_path, paid=True, yes=True)
    s.refresh()
    s.build_pending()
    assert len(pipe.builds) == 1


def test_budget_holds_even_with_yes(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path, paid=True, yes=True, max_cost=Decimal("1.00"))
    s.refresh()
    assert s.build_pending() is None  # 1.12 > 1.00
    assert pipe.builds == [] and of(events, "waiting")[-1]["reason"] == "budget"


def test_edit_while_rendering_finishes_then_renders_the_new_version(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path)
    s.refresh()
    pipe.gate = threading.Event()
    worker = threading.Thread(target=s.build_pending)
    worker.start()
    assert pipe.started.wait(10)
    old_a = pipe.builds[0][0][1]
    # Edit `a` while it renders: diagnostics and plan come at once, nothing is resubmitted.
    (tmp_path / "scenes.txt").write_text("a: one, changed\nb: two\n")
    s.refresh()
    plan = of(events, "plan")[-1]
    assert plan["rendering"] == ["a", "b"]
    pipe.gate.set()
    worker.join(10)
    assert s.wake.is_set(), "a finished build looks again for pending work"
    s.build_pending()
    assert len(pipe.builds) == 2
    assert [n for n, _ in pipe.builds[1]] == ["a"], "only the changed scene renders again"
    new_a = pipe.builds[1][0][1]
    assert new_a != old_a and {old_a, new_a} <= pipe.done(), "both versions are kept"
    assert s.build_pending() is None


def test_failed_render_is_not_retried_in_a_loop(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path)
    pipe.fail = {"b"}
    s.refresh()
    s.build_pending()
    assert of(events, "built")[-1]["failed"] == ["b"]
    assert s.build_pending() is None
    assert len(pipe.builds) == 1
    (tmp_path / "scenes.txt").write_text("a: one\nb: two, fixed\n")
    pipe.fail = set()
    s.refresh()
    s.build_pending()
    assert [n for n, _ in pipe.builds[-1]] == ["b"], "a new version of it is tried again"


def test_syntax_error_keeps_the_last_good_state(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path)
    s.refresh()
    good = s.good
    (tmp_path / "scenes.txt").write_text("a one\nb: two\n")
    s.refresh()
    assert of(events, "diagnostics")[-1]["errors"] == 1
    assert events[-1]["event"] == "kept"
    assert s.good is good
    s.build_pending()  # renders the last good state, not the broken one
    assert [n for n, _ in pipe.builds[0]] == ["a", "b"]
    (tmp_path / "scenes.txt").write_text("a: one\nb: two\n")
    s.refresh()
    assert of(events, "diagnostics")[-1]["errors"] == 0
    assert of(events, "plan")[-1]["render"] == []


def test_scene_using_a_failed_one_does_not_resend_it(tmp_path: Path) -> None:
    s, pipe, events = session(tmp_path, paid=True, yes=True)
    pipe.fail = {"a"}
    upstream = {"b": ("a",)}
    plan_fn = pipe.plan

    def plan_with_edges(comp: dict[str, str]) -> PlanView:
        view = plan_fn(comp)
        view.upstream = {k: v for k, v in upstream.items() if k in view.render}
        return view

    s.wiring.plan = plan_with_edges
    (tmp_path / "scenes.txt").write_text("a: one\n")
    s.refresh()
    s.build_pending()
    assert [n for n, _ in pipe.builds[0]] == ["a"]
    # `b` now uses `a`, whose render failed: building `b` would send `a` again.
    (tmp_path / "scenes.txt").write_text("a: one\nb: two\n")
    s.refresh()
    assert s.build_pending() is None
    assert len(pipe.builds) == 1
    held = of(events, "waiting")[-1]
    assert held["reason"] == "failed" and held["scenes"] == ["b"]


def test_a_scene_brought_back_is_recorded_once_per_lock_state(tmp_path: Path) -> None:
    """A build that could not record a scene brought back (a rehearsal never replaces a
    real render's entry) leaves the plan as it was: it is not asked again on every wake,
    only once the lock file changed."""
    s, pipe, events = session(tmp_path)
    s.refresh()
    s.build_pending()
    assert len(pipe.builds) == 1
    pipe.relink = {"a": "key-a@lock-1"}
    s.build_pending()
    assert [[n for n, _ in b] for b in pipe.builds[1:]] == [["a"]]
    assert of(events, "relink")[-1]["scenes"] == ["a"]
    assert s.build_pending() is None and s.build_pending() is None
    assert len(pipe.builds) == 2
    pipe.relink = {"a": "key-a@lock-2"}  # the lock file changed since
    s.build_pending()
    assert len(pipe.builds) == 3


def test_paid_without_consent_records_nothing(tmp_path: Path) -> None:
    s, pipe, _ = session(tmp_path, paid=True)
    pipe.relink = {"a": "key-a@lock-1"}
    s.refresh()
    assert s.build_pending() is None
    assert pipe.builds == []


def test_a_scene_brought_back_never_carries_what_waits_for_the_budget(tmp_path: Path) -> None:
    """Scenes over the budget wait; recording one brought back is free and goes ahead
    alone, never with them."""
    s, pipe, events = session(tmp_path, paid=True, max_cost=Decimal("0.50"))
    line = "c: three"
    (tmp_path / "scenes.txt").write_text(f"a: one\nb: two\n{line}\n")
    (tmp_path / "done.txt").write_text(hashlib.sha256(line.encode()).hexdigest() + "\n")
    pipe.relink = {"c": "key-c@lock-1"}
    s.refresh()
    assert of(events, "plan")[-1]["render"] == ["a", "b"]
    s.build_pending()
    assert of(events, "waiting")[-1]["reason"] == "budget"
    assert [[n for n, _ in b] for b in pipe.builds] == [["c"]]
    assert not of(events, "build")  # nothing to render was built
    assert s.spent == 0
