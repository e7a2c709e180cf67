"""Which scenes must not be built because the story has errors in or around them.

Stage: plan. In: a `Compilation` (its project, diagnostics and source texts). Out:
scene → the reason it is blocked. Pure; no I/O.

The compiler may still lower a scene whose resolution failed in part — a missing
asset file is reported and the asset left out — and rendering that request would pay
for a different video than the one written. So the planner blocks such scenes, using
the source text to tell which declaration each error belongs to.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from storyc.compiler import Compilation

_DECL = re.compile(r"^\s*(image|video|element|scene|style|cut|let|project|defaults|include)\b"
                   r"(?:\s+([A-Za-z_]\w*))?")
_STRINGS = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"')
_COMMENTS = re.compile(r"#[^\n]*|//[^\n]*|/\*[\s\S]*?\*/")


def _references(body: str) -> set[str]:
    """Names a declaration's body refers to: bare words outside strings and comments
    (not after a dot: `arrival.last_frame` refers to `arrival`), and `@name` mentions."""
    mentions = set(re.findall(r"@([A-Za-z_]\w*)", body))
    code = _COMMENTS.sub("", _STRINGS.sub('""', body))
    return mentions | set(re.findall(r"(?<![\w.])([A-Za-z_]\w*)", code))


def _declarations(text: str) -> list[tuple[int, str, str]]:
    """(line, kind, name) of each top-level declaration, found by its first line.

    `video = x` inside a scene is a setting, not a declaration: declarations of named
    things need a name right after the keyword."""
    out = []
    for i, line in enumerate(text.splitlines(), 1):
        m = _DECL.match(line)
        if m is None:
            continue
        kind, name = m.group(1), m.group(2) or ""
        if kind in ("image", "video", "element", "scene", "style", "cut", "let") and not name:
            continue
        out.append((i, "asset" if kind in ("image", "video") else kind, name))
    return out


def scene_errors(comp: Compilation) -> dict[str, str]:
    """Scenes that must not be built because of an error: scene → why.

    The compiler may still lower a scene whose resolution failed in part (a missing
    asset file is reported and the asset left out); rendering that would pay for the
    wrong video, so the plan blocks it. An error belongs to the declaration it falls in
    (the nearest declaration line above it). An error in a scene blocks that scene; one
    in an asset or element blocks every scene (and element) that names it; one in a
    cut blocks nothing; any other (project, style, defaults, let, include, or outside
    every declaration) blocks every scene, since it may change any of them.
    """
    if comp.project is None or not any(d.is_error for d in comp.diagnostics):
        return {}
    regions: dict[tuple[str, str], str] = {}  # (kind, name) -> its source text
    owners: dict[str, list[tuple[int, str, str]]] = {}
    for file, text in comp.sources.texts.items():
        decls = _declarations(text)
        owners[file] = decls
        lines = text.splitlines()
        for i, (line, kind, name) in enumerate(decls):
            end = decls[i + 1][0] - 1 if i + 1 < len(decls) else len(lines)
            regions[(kind, name)] = "\n".join(lines[line - 1:end])
    owned: dict[tuple[str, str], str] = {}
    everywhere: str | None = None
    for d in comp.diagnostics:
        if not d.is_error:
            continue
        owner = None
        if d.span is not None:
            for line, kind, name in owners.get(d.span.file, []):
                if line <= d.span.line:
                    owner = (kind, name)
        what = f"{d.code} {d.message}" + (f" ({d.span})" if d.span else "")
        if owner is None or owner[0] not in ("scene", "asset", "element", "cut"):
            everywhere = everywhere or what
        elif owner not in owned:
            owned[owner] = what
    if everywhere is not None:
        return {n: f"the story has an error outside any scene: {everywhere}"
                for n in comp.project.scenes}

    refs: dict[tuple[str, str], set[str]] = {k: _references(r.split("\n", 1)[-1])
                                             for k, r in regions.items()}

    bad = {n: m for (k, n), m in owned.items() if k == "asset"}
    for kind, name in regions:
        if kind == "element" and ("element", name) not in owned:
            hit = next((a for a in bad if a in refs[(kind, name)]), None)
            if hit is not None:
                owned[("element", name)] = f"uses asset `{hit}`: {bad[hit]}"
    bad.update({n: m for (k, n), m in owned.items() if k == "element"})
    out = {n: f"error: {m}" for (k, n), m in owned.items() if k == "scene"}
    for name in comp.project.scenes:
        used = refs.get(("scene", name), set())
        if name in out or not used:
            continue
        hit = next((a for a in bad if a in used), None)
        if hit is not None:
            out[name] = f"uses `{hit}`, which has an error: {bad[hit]}"
    return out
