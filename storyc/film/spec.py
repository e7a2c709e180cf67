"""What a cut is, as plain data that survives the build cache: clips, trims, crossfades.

Stage: film (pure). In: a resolved `Project`. Out: `CutSpec` per cut, in declaration order,
small and picklable (the build keeps them beside the requests). No I/O.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storyc.base.diagnostics import Diagnostic
from storyc.compiler import cut_facts
from storyc.resolve.model import Project

DEFAULT_ASPECT = "16:9"


@dataclass(frozen=True)
class ClipSpec:
    scene: str
    start: float | None  # `in`, seconds of the scene's video
    end: float | None  # `out`
    fade: float  # crossfade from the clip before into this one, seconds (0: a cut)
    length: float | None  # the scene's length as the story tells it (slates use it)

    def definition(self) -> list[Any]:
        return [self.scene, self.start, self.end, self.fade]


@dataclass(frozen=True)
class CutSpec:
    name: str
    clips: tuple[ClipSpec, ...]
    aspect: str  # the cut's frame when clips must be normalised: "16:9", "9:16", "1:1"
    errors: tuple[str, ...] = ()  # located errors inside the declaration: not assembled

    @property
    def scenes(self) -> tuple[str, ...]:
        seen: dict[str, None] = {}
        for c in self.clips:
            seen.setdefault(c.scene, None)
        return tuple(seen)

    def definition(self) -> dict[str, Any]:
        """What the cut's key is made of, besides its clips' videos and the settings."""
        return {"clips": [c.definition() for c in self.clips], "aspect": self.aspect}


def _errors_in(extent: list[Any] | None, diagnostics: Iterable[Diagnostic]) -> tuple[str, ...]:
    if extent is None:
        return ()
    file, start, end = extent
    return tuple(
        f"{d.span}: {d.code}"
        for d in diagnostics
        if d.is_error
        and d.span is not None
        and d.span.file == file
        and start <= d.span.start <= end
    )


def cut_specs(project: Project, diagnostics: Iterable[Diagnostic] = ()) -> dict[str, CutSpec]:
    """Every cut of the project, with the errors reported inside its declaration."""
    return specs_of(cut_facts(project), diagnostics)


def specs_of(facts: dict[str, Any], diagnostics: Iterable[Diagnostic] = ()) -> dict[str, CutSpec]:
    """`cut_specs` from a compilation's `cut_facts()` (what the compiled state keeps, so a
    build need not build the model)."""
    diags = list(diagnostics)
    out: dict[str, CutSpec] = {}
    for name, fact in facts.items():
        clips = tuple(ClipSpec(*clip) for clip in fact["clips"])
        aspect = fact["aspect"] or DEFAULT_ASPECT
        out[name] = CutSpec(name, clips, aspect, _errors_in(fact["extent"], diags))
    return out
