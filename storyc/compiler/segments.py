"""A compilation's diagnostics for one file, built only as far as they are asked for.

Stage: compiler (part of `storyc.compiler.assembly`). In: a snapshot of what points into
one file: the whole-project diagnostics there (loader, shared part, cuts, cycles, media,
selection), and the units (scenes) whose diagnostics do, each with where its declarations
are. Out: the file's diagnostics deduplicated and sorted as `compile_project` would, in
two cuts: `shown` (errors and warnings: what commands print) and `full` (with the notes),
and their counts. Pure; no I/O.

Why two: a project where every scene carries a note (a value taken from the project
block, say) has as many notes as scenes, and nothing prints them unless asked
(`check --notes`). `shown` decodes only errors and warnings; `counts` counts a unit's own
notes without decoding them (a note whose span is in its own scene's declaration cannot
equal another scene's: their spans differ); `full` decodes everything, once, if asked.
A segment is a snapshot: it stays valid after the engine moves on.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from storyc.base.diagnostics import Diagnostic, Diagnostics, Severity
from storyc.check import graph as graph_mod
from storyc.compiler.decls import FileDecls
from storyc.compiler.units import Decoder, Unit

NOSPAN = ""  # the segment of diagnostics without a location (sorted first)
# The whole-project phases, in the order compile_project reports them; the units' own
# phases go between them (see `Segment._gather`).
PHASES = ("loader", "shell", "cuts", "cycles", "cut_lists", "media", "select")


@dataclass
class Contribution:
    """Everything that may put a diagnostic into one file, frozen at one update."""

    label: str
    parts: dict[str, list[Diagnostic]]  # phase -> its diagnostics in this file
    units: list[tuple[Unit, Decoder]]  # declaration order, placed as at that update
    owned: dict[str, set[str]]  # scene -> local files whose limits it reports
    # Whose rules and lowering diagnostics count (see `compile_project`): a chosen scene's
    # all (a broken one's, the rules' only); a scene a chosen one uses, its errors only.
    chosen: set[str]
    needed: set[str]  # the chosen scenes and the scenes they use
    broken: dict[str, str]
    unreached: tuple[FileDecls, list[tuple[str, int]], Any, Any] | None = None  # W245

    def low(self, unit: Unit) -> list[Any]:
        """The rules and lowering diagnostics of `unit` that count."""
        scene = unit.scene
        if unit.low is None or scene not in self.needed:
            return []
        recs = unit.low[: unit.low_rules] if scene in self.broken else unit.low
        return recs if scene in self.chosen else [r for r in recs if r[1] == "error"]


def _own_note(rec: list[Any]) -> bool:
    span = rec[3]
    return rec[1] == "note" and span is not None and span[0] == 0


class Segment:
    def __init__(self, c: Contribution) -> None:
        self.c = c
        self._shown: list[Diagnostic] | None = None
        self._full: list[Diagnostic] | None = None
        self._counts: tuple[int, int, int] | None = None

    def _gather(
        self, keep: Callable[[list[Any]], bool], keep_global: Callable[[Diagnostic], bool]
    ) -> Diagnostics:
        """The file's diagnostics in reporting order: the records `keep` admits (before
        they are decoded) and the whole-project ones `keep_global` admits."""
        c = self.c
        label = c.label
        acc = Diagnostics()

        def phase(name: str) -> None:
            acc.extend(d for d in c.parts.get(name, ()) if keep_global(d))

        def units(records: Callable[[Unit], Iterable[list[Any]]]) -> None:
            for unit, dec in c.units:
                recs = [r for r in records(unit) if keep(r)]
                for r in recs:
                    d = dec.diag(r)
                    if (d.span.file if d.span is not None else NOSPAN) == label:
                        acc.add(d)

        phase("loader")
        phase("shell")
        units(lambda u: u.res)
        phase("cuts")
        units(lambda u: u.graph)
        phase("cycles")
        phase("cut_lists")
        if c.unreached is not None:
            fd, scenes, in_cut, used_up = c.unreached
            notes = Diagnostics()
            spans = {name: fd.name_span(i) for name, i in scenes}
            graph_mod.unreached(spans, in_cut, used_up, notes)  # type: ignore[arg-type]
            acc.extend(d for d in notes if keep_global(d))
        phase("media")
        units(
            lambda u: [
                r for path, recs in u.media if path in c.owned.get(u.scene, ()) for r in recs
            ]
        )
        phase("select")
        units(c.low)
        return acc

    def shown(self) -> list[Diagnostic]:
        """Errors and warnings, sorted (notes are for `storyc check --notes`)."""
        if self._shown is None:
            acc = self._gather(lambda r: r[1] != "note", lambda d: d.severity is not Severity.NOTE)
            self._shown = acc.sorted()
        return self._shown

    def full(self) -> list[Diagnostic]:
        if self._full is None:
            self._full = self._gather(lambda r: True, lambda d: True).sorted()
        return self._full

    def counts(self) -> tuple[int, int, int]:
        if self._counts is None:
            if self._full is not None:
                found = [0, 0, 0]
                for d in self._full:
                    found[("error", "warning", "note").index(d.severity.value)] += 1
                self._counts = (found[0], found[1], found[2])
            else:
                shown = self.shown()
                errors = sum(1 for d in shown if d.is_error)
                self._counts = (errors, len(shown) - errors, self._notes())
        return self._counts

    def _notes(self) -> int:
        """Notes, decoding only those that could equal another (whole-project ones, and
        a unit's notes whose span is outside its own declaration)."""
        c = self.c
        own = 0
        for unit, _ in c.units:
            if unit.label != c.label:
                continue
            for recs in (
                unit.res,
                unit.graph,
                [r for path, rs in unit.media if path in c.owned.get(unit.scene, ()) for r in rs],
                c.low(unit),
            ):
                own += sum(1 for r in recs if _own_note(r))
        other = self._gather(
            lambda r: r[1] == "note" and not _own_note(r), lambda d: d.severity is Severity.NOTE
        )
        return own + len(other)
