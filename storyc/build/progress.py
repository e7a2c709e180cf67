"""Build progress: per-scene state and elapsed time, for people and for tools.

Stage: execute (the view). In: events from the executor and the build command
(`scene(name, state, detail)`, `note(text)`, `result(text)`, `event(...)`). Out: a
live table on a terminal (rich), one plain line per change otherwise, or one JSON
object per line with `--json`. I/O: writes to the given stream, and results to stdout.

What goes where (docs/cli.md): the plan and the summary are the build's *results*
(`result`: stdout); progress and notes go to the progress stream (stderr, a live table
on a terminal); with `--json` everything is an event on stdout.

JSON events (one per line, keys sorted): `{"event": "scene", "scene", "state",
"detail", "elapsed"}`, `{"event": "note", "text"}`, `{"event": "plan", ...}`,
`{"event": "summary", ...}`. Nothing secret is ever passed in, so nothing secret can
come out.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

FINAL_STATES = frozenset(
    {
        "done",
        "reused",
        "running",
        "deferred",
        "failed",
        "blocked",
        "unknown",
        "over-budget",
        "stopped",
    }
)


QUIET_STATES = frozenset({"reused", "waiting"})  # plain lines skip these; the summary counts


class Reporter:
    """Plain lines: `[  1.2s] arrival: rendering`. Base class of the other views."""

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.t0 = clock()
        self.started: dict[str, float] = {}
        self.states: dict[str, tuple[str, str]] = {}

    def elapsed(self, scene: str | None = None) -> float:
        now = self.clock()
        return now - (self.started.get(scene, self.t0) if scene else self.t0)

    def scene(self, scene: str, state: str, detail: str = "") -> None:
        if scene not in self.started and state not in ("waiting", "pending"):
            self.started[scene] = self.clock()
        self.states[scene] = (state, detail)
        self._scene(scene, state, detail)

    def _scene(self, scene: str, state: str, detail: str) -> None:
        if state in QUIET_STATES:
            return  # a no-op build of 10,000 scenes should not print 10,000 lines
        extra = f" ({detail})" if detail else ""
        self._line(f"[{self.elapsed():6.1f}s] {scene}: {state}{extra}")

    def note(self, text: str) -> None:
        self._line(text)

    def result(self, text: str) -> None:
        """A line of the build's result (the plan, the summary): stdout."""
        print(text, file=sys.stdout, flush=True)

    def event(self, name: str, **data: Any) -> None:
        """Structured facts (the plan, the summary); plain views print them elsewhere."""

    def _line(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close(self) -> None:
        return None


class JsonReporter(Reporter):
    _flushed = 0.0
    _pending: list[str] | None = None

    def _scene(self, scene: str, state: str, detail: str) -> None:
        self._emit(
            {
                "event": "scene",
                "scene": scene,
                "state": state,
                "detail": detail,
                "elapsed": round(self.elapsed(scene), 3),
            },
            urgent=state not in QUIET_STATES,
        )

    def note(self, text: str) -> None:
        self._emit({"event": "note", "text": text})

    def result(self, text: str) -> None:
        return None  # the `plan` and `summary` events carry the results

    def event(self, name: str, **data: Any) -> None:
        self._emit({"event": name, **data})

    def _emit(self, obj: dict[str, Any], urgent: bool = True) -> None:
        if self._pending is None:
            self._pending = []
        self._pending.append(json.dumps(obj, sort_keys=True, default=str) + "\n")
        # write what a tool waits for at once; batch the flood of a no-op build
        now = self.clock()
        if urgent or now - self._flushed > 0.1:
            self._write()
            self._flushed = now

    def _write(self) -> None:
        if self._pending:
            self.stream.write("".join(self._pending))
            self._pending = []
        self.stream.flush()

    def close(self) -> None:
        self._write()


class LiveReporter(Reporter):
    """A rich live table on a terminal: one row per scene, its state and elapsed time."""

    def __init__(
        self, stream: TextIO | None = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        super().__init__(stream, clock)
        from rich.console import Console
        from rich.live import Live

        from storyc.base.terminal import rich_options

        self.console = Console(file=self.stream, **rich_options())
        self.live = Live(
            self._table(),
            console=self.console,
            refresh_per_second=4,
            transient=False,
            get_renderable=self._table,
        )
        self.live.start()

    def _table(self) -> Any:
        from rich.table import Table
        from rich.text import Text

        table = Table(box=None, show_header=True, header_style="bold")
        table.add_column("scene")
        table.add_column("state")
        table.add_column("time", justify="right")
        table.add_column("")
        colours = {
            "done": "green",
            "reused": "dim",
            "failed": "red",
            "unknown": "yellow",
            "over-budget": "yellow",
            "blocked": "red",
            "stopped": "yellow",
        }
        for scene, (state, detail) in list(self.states.items())[-40:]:
            t = f"{self.elapsed(scene):.1f}s" if state not in FINAL_STATES else ""
            colour = colours.get(state, "cyan")
            table.add_row(Text(scene), Text(state, style=colour), t, Text(detail[:60]))
        return table

    def _scene(self, scene: str, state: str, detail: str) -> None:
        self.live.refresh()

    def note(self, text: str) -> None:
        self.console.print(text, markup=False, highlight=False)

    def result(self, text: str) -> None:
        if sys.stdout.isatty():  # the same terminal: above the live table, not through it
            self.console.print(text, markup=False, highlight=False)
        else:
            print(text, file=sys.stdout, flush=True)

    def close(self) -> None:
        self.live.stop()


def make_reporter(*, json_mode: bool, stream: TextIO | None = None) -> Reporter:
    """`--json` → JSON lines on stdout; a terminal → live table; otherwise plain lines."""
    if json_mode:
        return JsonReporter(stream if stream is not None else sys.stdout)
    out = stream if stream is not None else sys.stderr
    if out.isatty():
        return LiveReporter(out)
    return Reporter(out)
