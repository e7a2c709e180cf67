"""Hover texts: what the language server shows over a name.

Stage: editor (for the language server). In: the project's last check (`ProjectState`),
and the name, declaration or use under the cursor. Out: Markdown lines: a scene's mode,
target, duration, paid estimate, build state and prompt as sent; an asset's facts; what
an `@mention` is sent as. I/O: reads storyc.lock and the store for the build state.
"""

from __future__ import annotations

from typing import Any

from storyc.editor.index import Symbol, Use
from storyc.editor.project import ProjectState
from storyc.plan import pricing
from storyc.resolve.model import LocalFile, Project, RemoteFile


def asset_text(project: Project | None, name: str) -> list[str]:
    asset = project.assets.get(name) if project else None
    if asset is None:
        return []
    src = asset.source
    if isinstance(src, RemoteFile):
        return [f"`{src.url}` (fetched by the provider)"]
    assert isinstance(src, LocalFile)
    parts = [f"`{src.path}`", _size(src.size)]
    info = src.media
    if info is not None:
        parts.append(info.format)
        if info.width and info.height:
            parts.append(f"{info.width}×{info.height}")
        if info.duration is not None:
            parts.append(f"{info.duration:g} s")
        if info.fps:
            parts.append(f"{info.fps:g} fps")
        if info.has_audio is not None:
            parts.append("with sound" if info.has_audio else "no sound")
    return [" · ".join(parts)]


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return str(n)


def scene_plan(state: ProjectState, name: str) -> tuple[str, Any]:
    """(backend, the scene's plan) — up to date, will render and why, waiting, blocked —
    or (backend, why it cannot be told). Only the scene and the scenes it uses are
    planned (a scene's plan depends on nothing else); plans last until the next check."""
    comp = state.comp
    if comp is None or comp.project is None:
        return "preview", "unknown (the project does not compile)"
    setting = comp.project.settings.get("backend")
    backend = str(getattr(setting, "value", None) or "preview")
    hit = state.plans.get(name)
    if hit is not None:
        return backend, hit
    from storyc.plan.address import key_provider
    from storyc.plan.planner import make_plan
    from storyc.state.lockfile import LockFile, LockFileError
    from storyc.state.store import Store

    closure: set[str] = set()
    todo = [name]
    while todo:
        n = todo.pop()
        if n not in closure:
            closure.add(n)
            req = comp.requests.get(n)
            todo.extend(req.upstream if req is not None else ())
    order = [n for n in comp.order if n in closure]
    order += sorted(closure - set(order))
    try:
        if state.build_state is None:
            lock = LockFile.load(LockFile.path_for(state.root))
            state.build_state = (lock, Store.for_project(state.root))
        lock, store = state.build_state
        sub = comp.narrowed(order, comp.requests)
        where = getattr(comp.project.settings.get("base_url"), "value", None)
        provider = key_provider(backend, None, where)
        plan = make_plan(sub, lock=lock, store=store, backend=backend, provider=provider)
        state.plans.update(plan.scenes)
    except (LockFileError, OSError) as exc:
        return backend, f"unknown ({exc})"
    return backend, state.plans.get(name, "unknown")


def scene_hover(state: ProjectState, name: str) -> list[str]:
    comp = state.comp
    if comp is None or comp.project is None or name not in comp.project.scenes:
        return []
    scene = comp.project.scenes[name]
    req = comp.requests.get(name)
    out = []
    if req is None:
        why = comp.broken.get(name) or (
            f"it uses scene `{comp.blocked[name]}`, which cannot be built"
            if name in comp.blocked
            else "see its errors"
        )
        out.append(f"not compiled: {why}")
        out += ["", "**prompt as written**", "```text", scene.prompt, "```"]
        return out
    dur = "length of the edited video" if req.duration is None else f"{req.duration} s"
    takes = f" · {req.takes} takes" if req.takes != 1 else ""
    out.append(f"{req.mode} · `{req.target}` ({req.schema}) · {req.quality} · {dur}{takes}")
    backend, sp = scene_plan(state, name)
    # The paid price, whatever the project's backend (a preview is free); an edit is
    # priced by the length of the video it edits, as the planner prices it.
    from storyc.plan.planner import base_duration

    base = base_duration(comp, req, state.plans)
    paid = pricing.estimate(req, backend="inference", base_duration=base)
    out.append(f"estimated cost: {pricing.format_estimate(paid)} on inference ({paid.reason})")
    if isinstance(sp, str):
        out.append(f"build: {sp}")
    else:
        words = {
            "up-to-date": "up to date",
            "render": "will render",
            "waiting": "will render after " + ", ".join(sp.waiting_on),
            "blocked": f"blocked: {sp.blocked}",
        }
        why = "; ".join(c.message for c in sp.reasons[:2])
        out.append(
            f"build ({backend}): {words.get(sp.status, sp.status)}"
            + (f" — {why}" if why and sp.status != "up-to-date" else "")
        )
    out += ["", "**prompt as sent**", "```text", req.prompt, "```"]
    return out


def mention_hover(state: ProjectState, use: Use) -> list[str]:
    comp = state.comp
    if comp is None or comp.project is None or use.scene is None:
        return []
    scene = comp.project.scenes.get(use.scene)
    req = comp.requests.get(use.scene)
    if scene is None or req is None:
        return []
    sent = lowered_mentions(scene.prompt, [(m.start, m.end) for m in scene.mentions], req.prompt)
    for m, text in zip(scene.mentions, sent, strict=False):
        if m.name == use.name and text is not None:
            return [f"in scene `{use.scene}`, `@{use.name}` is sent as `{text}` (`{req.target}`)"]
    return []


def lowered_mentions(prompt: str, spans: list[tuple[int, int]], sent: str) -> list[str | None]:
    """What each mention of `prompt` became in the lowered prompt `sent`: the text
    between the same literal pieces (None where that cannot be told)."""
    spans = sorted(spans)
    out: list[str | None] = []
    pos_in, pos_out = 0, 0
    for i, (a, b) in enumerate(spans):
        literal = prompt[pos_in:a]
        if not sent.startswith(literal, pos_out):
            return out + [None] * (len(spans) - i)
        pos_out += len(literal)
        nxt = prompt[b : spans[i + 1][0]] if i + 1 < len(spans) else prompt[b:]
        if i + 1 == len(spans):
            end = len(sent) - len(nxt) if sent.endswith(nxt) else -1
        else:
            end = sent.find(nxt, pos_out) if nxt else -1
        if end < pos_out:
            return out + [None] * (len(spans) - i)
        out.append(sent[pos_out:end])
        pos_in, pos_out = b, end
    return out


def symbol_hover(state: ProjectState, sym: Symbol) -> list[str]:
    project = state.comp.project if state.comp else None
    head = f"**{sym.kind}** `{sym.name}`" + (
        f" — {sym.span.file}:{sym.span.line}" if sym.kind != "let" else ""
    )
    lines = [head]
    if sym.kind in ("image", "video"):
        lines += asset_text(project, sym.name)
    elif sym.kind == "scene":
        lines += scene_hover(state, sym.name)
    elif sym.kind == "element" and project and sym.name in project.elements:
        el = project.elements[sym.name]
        if el.description:
            lines.append(el.description)
        lines.append(f"{1 + len(el.refs)} image(s): frontal and {len(el.refs)} more")
    elif sym.kind == "let" and project and sym.name in project.variables:
        lines.append(f"`{project.variables[sym.name]!r}`")
    elif sym.kind == "cut" and project and sym.name in project.cuts:
        cut = project.cuts[sym.name]
        lines.append(" → ".join(n for n, _ in cut.scenes) or "(empty)")
    return lines


def word_at(text: str, offset: int) -> tuple[str, int, int] | None:
    a = offset
    while a > 0 and (text[a - 1].isalnum() or text[a - 1] == "_"):
        a -= 1
    b = offset
    while b < len(text) and (text[b].isalnum() or text[b] == "_"):
        b += 1
    return (text[a:b], a, b) if b > a else None
