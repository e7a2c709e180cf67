"""What `storyc watch` shows: one structured event at a time, drawn three ways.

Stage: the outermost edge of watch mode (effects: writes to a stream). In: events,
plain dicts with an `"event"` name (the same dicts `--json` prints, one per line, and
tests read). Out: text on a stream — rich on a terminal (the screen is redrawn so the
newest diagnostics replace the old ones), plain lines otherwise, or JSON lines.

Events (every one has "event" and "time", seconds since the session started):

    watching    project, files (watched count), backend, budget
    change      files (project-relative paths that changed)
    diagnostics errors, warnings, items (diagnostics as JSON), text (rendered)
    kept        reason: the story has errors, the last good plan stays in place
    plan        render (scenes that need rendering), new (scenes that did not need it
                before), done (no longer needing it), cost, delta, currency, ms, parses
    waiting     reason "consent" | "budget" | "failed" (uses a scene whose render failed);
                scenes, cost, left: what a render would take
    build       scenes, cost: a render starts
    progress    scene, state, detail: the executor's per-scene progress
    note        text: a remark from the executor
    built       rendered, failed, cached, spent: a render finished
    error       message: something outside the story went wrong (stays running)
    stopped     interrupted, during_build: Ctrl-C (during a render: exit 130)
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable
from typing import Any, TextIO

Event = dict[str, Any]
Emit = Callable[[Event], None]


def _money(x: float) -> str:
    return f"${x:,.2f}"


def _names(names: list[str], limit: int = 8) -> str:
    if len(names) <= limit:
        return ", ".join(names)
    return ", ".join(names[:limit]) + f", … ({len(names) - limit} more)"


def describe(ev: Event) -> str | None:
    """One event as plain text (no colour). None for events with nothing to say."""
    kind = ev["event"]
    if kind == "watching":
        budget = ev.get("budget") or "renders automatically"
        return (
            f"watching {ev['files']} file(s) of {ev['project']} "
            f"(backend {ev['backend']}: {budget}); Ctrl-C to stop"
        )
    if kind == "change":
        return "── changed: " + _names(ev["files"])
    if kind == "diagnostics":
        if not ev["items"]:
            return "ok: no errors, no warnings"
        return str(ev["text"])
    if kind == "kept":
        return f"kept the last good state ({ev['reason']}); waiting for the next save"
    if kind == "plan":
        if not ev["render"]:
            head = "plan: everything is up to date"
        else:
            price = "free" if ev.get("free") else f"{_money(ev['cost'])} estimated"
            head = f"plan: {len(ev['render'])} scene(s) to render ({price}): {_names(ev['render'])}"
        extra = []
        if ev["new"]:
            extra.append(f"now needs rendering: {_names(ev['new'])}")
        if ev["done"]:
            extra.append(f"no longer needs rendering: {_names(ev['done'])}")
        delta = ev["delta"]
        if delta and not ev.get("free"):
            extra.append(f"cost {'+' if delta > 0 else '−'}{_money(abs(delta))}")
        extra.append(f"{ev['ms']:.0f} ms")
        return head + "\n  " + "; ".join(extra)
    if kind == "waiting":
        if ev["reason"] == "failed":
            return (
                f"not rendering {_names(ev['scenes'])}: a scene it uses failed to render "
                "in this session; change that scene (or run storyc build) to try again"
            )
        if ev["reason"] == "budget":
            return (
                f"not rendering: {_money(ev['cost'])} needed, "
                f"{_money(ev['left'])} left of the session budget (--max-cost)"
            )
        return (
            f"not rendering: {_money(ev['cost'])} on a paid backend; "
            "restart with --yes or --max-cost AMOUNT to render while watching"
        )
    if kind == "build":
        price = "free" if ev.get("free") else f"{_money(ev['cost'])} estimated"
        return f"rendering {_names(ev['scenes'])} ({price})"
    if kind == "relink":
        return f"recording {_names(ev['scenes'])}: back to renders already made (nothing to render)"
    if kind == "built":
        parts = [f"rendered {len(ev['rendered'])}"]
        if ev["failed"]:
            parts.append(f"failed: {_names(ev['failed'])}")
        if not ev.get("free"):
            parts.append(f"spent this session {_money(ev['spent'])}")
        return "; ".join(parts)
    if kind == "board":
        return f"board: {ev['path']} ({ev['ms']:.0f} ms)"
    if kind == "progress":
        return f"  {ev['scene']}: {ev['state']}" + (f" ({ev['detail']})" if ev["detail"] else "")
    if kind == "note":
        return f"  {ev['text']}"
    if kind == "error":
        return f"error: {ev['message']}"
    if kind == "stopped":
        if ev.get("during_build"):
            return (
                "stopped during a render: nothing new was sent; requests already sent "
                "are recorded and re-attached by the next build"
            )
        return "stopped"
    return None


class _Lines:
    """Whole lines, one writer at a time: events come from the watcher thread and the
    builder thread, and `print` writes the text and the newline separately."""

    def __init__(self, out: TextIO | None) -> None:
        self.out = out or sys.stdout
        self._lock = threading.Lock()

    def write(self, text: str) -> None:
        with self._lock:
            self.out.write(text + "\n")
            self.out.flush()


class PlainView(_Lines):
    """Plain lines, for pipes and logs."""

    def __call__(self, ev: Event) -> None:
        text = describe(ev)
        if text is not None:
            self.write(text)


class JsonView(_Lines):
    """One JSON object per line, for tools."""

    def __call__(self, ev: Event) -> None:
        self.write(json.dumps(ev, ensure_ascii=False, default=str))


class RichView:
    """A terminal: each change redraws the screen, so old diagnostics disappear."""

    STYLES = {
        "kept": "yellow",
        "waiting": "yellow",
        "error": "bold red",
        "build": "cyan",
        "built": "green",
        "relink": "green",
        "change": "dim",
        "watching": "bold",
    }

    def __init__(self, console: Any = None) -> None:
        from rich.console import Console

        from storyc.base.terminal import rich_options

        self.console = (
            console if console is not None else Console(highlight=False, **rich_options())
        )
        self.header = ""
        self._lock = threading.Lock()

    def __call__(self, ev: Event) -> None:
        with self._lock:
            self._draw(ev)

    def _draw(self, ev: Event) -> None:
        kind = ev["event"]
        text = describe(ev)
        if kind == "watching":
            self.header = text or ""
        if kind == "change":
            self.console.clear()
            self.console.print(self.header, style="bold", markup=False, highlight=False)
        if text is None:
            return
        style = self.STYLES.get(kind)
        if kind == "diagnostics":
            style = "red" if ev["errors"] else ("yellow" if ev["warnings"] else "green")
        self.console.print(text, style=style, markup=False, highlight=False)


def make_view(mode: str, out: TextIO | None = None) -> Emit:
    """`mode`: "json", "plain", or "auto" (rich on a terminal, plain otherwise)."""
    if mode == "json":
        return JsonView(out)
    stream = out or sys.stdout
    if mode == "auto" and stream.isatty():
        return RichView()
    return PlainView(stream)
