"""What a cut is, as plain data that survives the build cache: clips, trims, crossfades.

Stage: film (pure). In: a resolved `Project`. Out: `CutSpec` per cut, in declaration order,
small and picklable (the build keeps them beside the requests). No I/O.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from storyc.base.diagnostics import Diagnostic
from storyc.check.graph import scene_length
from storyc.resolve.model import Cut, Project

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


def _aspect(project: Project, cut: Cut) -> str:
    """The aspect most of the cut's scenes ask for (the project's, unless they differ)."""
    counts = Counter(
        a.value
        for c in cut.clips
        if (s := project.scenes.get(c.scene)) is not None and (a := s.aspect) is not None
    )
    return counts.most_common(1)[0][0] if counts else DEFAULT_ASPECT


def _errors_in(cut: Cut, diagnostics: Iterable[Diagnostic]) -> tuple[str, ...]:
    ext = cut.extent
    if ext is None:
        return ()
    return tuple(
        f"{d.span}: {d.code}"
        for d in diagnostics
        if d.is_error
        and d.span is not None
        and d.span.file == ext.file
        and ext.start <= d.span.start <= ext.end
    )


def cut_specs(project: Project, diagnostics: Iterable[Diagnostic] = ()) -> dict[str, CutSpec]:
    """Every cut of the project, with the errors reported inside its declaration."""
    diags = list(diagnostics)
    out: dict[str, CutSpec] = {}
    for name, cut in project.cuts.items():
        clips = tuple(
            ClipSpec(
                c.scene,
                c.start.value if c.start is not None else None,
                c.end.value if c.end is not None else None,
                c.transition.length if c.transition is not None and i > 0 else 0.0,
                scene_length(project, c.scene),
            )
            for i, c in enumerate(cut.clips)
        )
        out[name] = CutSpec(name, clips, _aspect(project, cut), _errors_in(cut, diags))
    return out
