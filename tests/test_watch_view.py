"""The three views of watch events: every event kind renders, JSON round-trips."""

from __future__ import annotations

import io
import json

from rich.console import Console

from storyc.watch.view import JsonView, PlainView, RichView, describe

EVENTS = [
    {
        "event": "watching",
        "project": "film",
        "files": 3,
        "backend": "inference",
        "budget": "renders within $5 this session",
    },
    {"event": "change", "files": ["main.story"]},
    {
        "event": "diagnostics",
        "errors": 1,
        "warnings": 0,
        "items": [{"code": "E001"}],
        "text": "main.story:3:1: error[E001]: unexpected `}`",
    },
    {"event": "kept", "reason": "the story has errors"},
    {"event": "diagnostics", "errors": 0, "warnings": 0, "items": [], "text": ""},
    {
        "event": "plan",
        "render": ["a", "b"],
        "new": ["b"],
        "done": [],
        "rendering": ["a"],
        "cost": 1.12,
        "delta": 0.56,
        "currency": "USD",
        "free": False,
        "unknown": [],
        "ms": 3.2,
        "parses": 4,
    },
    {"event": "waiting", "reason": "budget", "cost": 0.56, "left": 0.2, "scenes": ["b"]},
    {"event": "waiting", "reason": "consent", "cost": 0.56, "left": 0.0, "scenes": ["b"]},
    {"event": "waiting", "reason": "failed", "cost": 0.56, "left": 0.0, "scenes": ["c"]},
    {"event": "build", "scenes": ["b"], "cost": 0.56, "free": False},
    {"event": "relink", "scenes": ["c"]},
    {"event": "progress", "scene": "b", "state": "rendering", "detail": ""},
    {"event": "note", "text": "interrupted"},
    {
        "event": "built",
        "rendered": ["b"],
        "failed": [],
        "spent": 0.56,
        "interrupted": False,
        "free": False,
    },
    {"event": "error", "message": "another storyc build is running in this project"},
    {"event": "stopped", "interrupted": True, "during_build": True},
]


def test_plain_lines_say_what_matters() -> None:
    out = io.StringIO()
    view = PlainView(out)
    for ev in EVENTS:
        view(ev)
    text = out.getvalue()
    assert "kept the last good state" in text
    assert "cost +$0.56" in text and "now needs rendering: b" in text
    assert "$0.20 left of the session budget" in text
    assert "restart with --yes or --max-cost" in text
    assert "spent this session $0.56" in text
    assert "recording c: back to renders already made (nothing to render)" in text
    assert all(describe(ev) for ev in EVENTS)


def test_json_lines_round_trip() -> None:
    out = io.StringIO()
    view = JsonView(out)
    for ev in EVENTS:
        view(ev)
    assert [json.loads(line) for line in out.getvalue().splitlines()] == EVENTS


def test_rich_view_redraws_on_change() -> None:
    out = io.StringIO()
    view = RichView(Console(file=out, force_terminal=True, width=100))
    for ev in EVENTS:
        view(ev)
    text = out.getvalue()
    assert "\x1b[2J" in text or "\x1b[H" in text, "the screen is cleared on a change"
    assert "error[E001]" in text
