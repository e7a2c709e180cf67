"""Resolver helpers: assemble one `Scene` — prompt template, @mentions, inputs, settings.

Stage: part of the resolver (`storyc.resolve.resolver`), called by `SceneResolver.scene` with the
scene's effective settings. Out: `storyc.resolve.model.Scene`; diagnostics E115, E120-E125,
W102. No I/O.

Mentions are found in the *rendered* prompt. Their spans point at the `@name` in the
source when it can be found there (exactly when the prompt is not a template), else at
the whole prompt string.
"""

from __future__ import annotations

import difflib
from typing import TYPE_CHECKING, Any

from storyc.base.diagnostics import Span
from storyc.lang import ast
from storyc.lang.parser import CONTROL, long_layout
from storyc.resolve.context import KIND_WORDS, LineIndex
from storyc.resolve.model import (
    DEFAULT_TARGET,
    ElementUse,
    Input,
    Mention,
    Scene,
    Setting,
    VideoInput,
)
from storyc.resolve.templating import Problem
from storyc.resolve.values import VIDEO_SLOT, describe

if TYPE_CHECKING:
    from storyc.lang.loader import LoadedFile
    from storyc.resolve.scene import Layered, SceneResolver


def source_offset(node: ast.Str, text: str, offset: int) -> int | None:
    """Offset in the file `text` of character `offset` of the string's value, if exact."""
    if not node.long:
        return node.content_start + offset if node.content_start >= 0 else None
    base = node.span.start + 3
    skip, lines, cut = long_layout(text[base : node.span.end - 3])
    base += skip
    value = node.value
    li = value.count("\n", 0, offset)
    if li >= len(lines):
        return None
    col = offset - (value.rfind("\n", 0, offset) + 1)
    pos = base + sum(len(lines[j]) + 1 for j in range(li))
    if lines[li].strip():
        pos += cut
    return pos + col


def _problem_span(p: Problem, node: ast.Str | None, fallback: Span, index: LineIndex) -> Span:
    if node is None:
        return fallback
    text = index.text
    if p.offset is not None:
        at = source_offset(node, text, p.offset)
        if at is not None:
            return index.span(at, at + p.length)
    if p.line is not None and node.long:
        lines = node.value.split("\n")
        if 1 <= p.line <= len(lines):
            start = sum(len(ln) + 1 for ln in lines[: p.line - 1])
            a = source_offset(node, text, start)
            b = source_offset(node, text, start + len(lines[p.line - 1]))
            if a is not None and b is not None and b > a:
                return index.span(a, b)
    return node.span


def build_scene(sr: SceneResolver, decl: ast.SceneDecl, f: LoadedFile, layered: Layered) -> Scene:
    r = sr.r
    diags = sr.diags
    name = decl.name
    texts = r.loaded.sources.texts
    eff, video_layer, variables = layered.eff, layered.video_layer, layered.variables
    unresolved: set[str] = {"?"} if layered.uncertain else set()

    # prompt ----------------------------------------------------------------------
    node: ast.Str | None = None
    prompt_span = decl.name_span
    source = ""
    hit = eff.get("prompt")
    if hit is None:
        # A misspelt `prompt` is already an E102 with "did you mean"; say it once.
        if not any(_close_to(s.name, "prompt") for s in decl.settings):
            diags.error(
                "E115",
                f"scene `{name}` has no prompt",
                decl.name_span,
                hint='add prompt = "what happens in the shot" (or inherit one from a style)',
            )
    else:
        s = hit[0]
        prompt_span = s.value.span
        if isinstance(s.value, ast.Str):
            node = s.value
            source = node.value
        else:
            unresolved.add("prompt")
            diags.error(
                "E104",
                f"`prompt` must be a string in double quotes, found {describe(s.value)}",
                s.value.span,
                hint='for example: prompt = "@mei walks through the market"',
            )
    context = {**sr.variables, **variables}
    rendered, problems = sr.render_prompt(source, context)
    file_text = texts.get(prompt_span.file, "")
    line_index: LineIndex | None = None
    if problems:
        unresolved.add("prompt")
    for p in problems:
        if line_index is None:
            line_index = sr.line_index(prompt_span.file, file_text)
        detail = f": {p.detail}" if p.detail else ""
        diags.error(
            p.code,
            f"{p.message} in the prompt of scene `{name}`{detail}",
            _problem_span(p, node, prompt_span, line_index),
            hint=p.hint,
        )
    prompt = rendered if rendered is not None else source
    bad = CONTROL.search(prompt) if rendered is not None and rendered != source else None
    if bad is not None:
        # The source has none (the parser refuses them): a template made it, e.g. from a
        # string escape. The provider would get it, and a terminal would obey it.
        unresolved.add("prompt")
        diags.error(
            "E144",
            f"the prompt of scene `{name}` contains the control character "
            f"U+{ord(bad.group()):04X} once its template is rendered",
            prompt_span,
            hint="remove the escape that makes it (a prompt is plain text; line breaks are fine)",
        )

    # inputs ----------------------------------------------------------------------
    def image(key: str) -> Input | None:
        h = eff.get(key)
        return sr.image_input(h[0].value, h[1].file, key) if h else None

    first_frame = image("start")
    end_frame = image("end")
    for key, got in (("start", first_frame), ("end", end_frame)):
        if key in eff and got is None:
            unresolved.add(key)
    images: list[Input] = []
    refs_span: Span | None = None
    if "refs" in eff:
        s, layer = eff["refs"]
        refs_span = s.value.span
        resolved = sr.image_list(s, layer.file)
        if len(resolved) < _count(s.value):
            unresolved.add("refs")
        for inp in resolved:
            if not any(_same(inp, o) for o in images):
                images.append(inp)
    elements: list[ElementUse] = []
    if "elements" in eff:
        s = eff["elements"][0]
        uses = sr._elements(s)
        if len(uses) < _count(s.value):
            unresolved.add("elements")
        for use in uses:
            if all(e.name != use.name for e in elements):
                elements.append(use)

    video: VideoInput | None = None
    keep_sound = sr.setting(eff, "keep_sound")
    if video_layer is not None:
        keys = [k for k in VIDEO_SLOT if k in video_layer.settings]
        if len(keys) > 1:
            second = video_layer.settings[keys[1]]
            diags.error(
                "E114",
                f"scene `{name}` has more than one reference video (`{keys[0]}` and `{keys[1]}`)",
                second.name_span,
                hint="`video`/`motion` borrow style or motion; `edit` changes the video "
                "itself: keep one",
            )
        s = video_layer.settings[keys[0]]
        vinp = sr.video_input(s.value, video_layer.file, keys[0])
        if vinp is None:
            unresolved.add("video")
        else:
            mode = "base" if keys[0] == "edit" else "feature"
            video = VideoInput(vinp, mode, keep_sound, s.span)  # type: ignore[arg-type]
    if video is None and keep_sound is not None and keep_sound.origin == "scene":
        diags.warning(
            "W102",
            f"`keep_sound` has no effect: scene `{name}` has no video input",
            keep_sound.span,
            hint="use it with `edit = ...` (or `video = ...`)",
        )

    # mentions --------------------------------------------------------------------
    mentions: list[Mention] = []
    counts: dict[str, int] = {}
    inputs = [i for i in (first_frame, end_frame, *images) if i is not None]
    if video is not None:
        inputs.append(video.input)
    # Names the scene's settings refer to, even where that input failed (already reported).
    written = {n for s, _ in eff.values() for n in _ref_names(s.value)}
    if video_layer is not None:
        written.update(n for s in video_layer.settings.values() for n in _ref_names(s.value))
    for m in ast.MENTION.finditer(prompt):
        mname = m.group(1)
        k = counts.get(mname, 0)
        counts[mname] = k + 1
        if line_index is None:
            line_index = sr.line_index(prompt_span.file, file_text)
        mspan = _mention_span(
            node, line_index, prompt, source, m.start(), m.end(), mname, k, prompt_span
        )
        mentions.append(Mention(mname, m.start(), m.end(), mspan))
        if k:
            continue
        named = r.names.get(mname)
        if named is None:
            unresolved.add("@")
            r.unknown(mname, mspan, ("image", "video", "element", "scene"), "@name", code="E123")
            continue
        r.used.add(mname)
        if named.kind == "element":
            if all(e.name != mname for e in elements):
                elements.append(ElementUse(mname, mspan))
        elif named.kind == "image":
            asset = r.assets_by_name.get(mname)
            if asset is not None and not any(i.name == mname for i in inputs):
                inp = Input(asset.source, mname, mspan)
                images.append(inp)
                inputs.append(inp)
        elif named.kind in ("video", "scene"):
            if not any(i.name == mname for i in inputs) and mname not in written:
                if named.kind == "video":
                    hint = f"add `video = {mname}` (style/motion) or `edit = {mname}` (edit it)"
                else:
                    hint = (
                        f"use its output first: `start = {mname}.last_frame`, "
                        f"`refs = [{mname}.last_frame]`, `video = {mname}` or "
                        f"`edit = {mname}`"
                    )
                diags.error(
                    "E124",
                    f"@{mname} is {_word(named.kind)} that is not an input of scene `{name}`",
                    mspan,
                    hint=hint,
                )
        else:
            diags.error(
                "E125",
                f"@{mname} is {_word(named.kind)}; only assets, elements and "
                "scenes can be mentioned",
                mspan,
                hint=f"write the name without @, or mention what `{mname}` stands for",
            )

    def get(key: str) -> Setting[Any] | None:
        return sr.setting(eff, key)

    scalars = {k: get(k) for k in _SCALARS}
    unresolved.update(k for k, v in scalars.items() if v is None and k in eff)
    quality = scalars["quality"] or Setting("std", None, "builtin")
    watermark = scalars["watermark"] or Setting(False, None, "builtin")
    takes = scalars["takes"] or Setting(1, None, "builtin")
    target = scalars["target"] or Setting(DEFAULT_TARGET, None, "builtin")
    return Scene(
        name=name,
        span=decl.name_span,
        prompt=prompt,
        prompt_span=prompt_span,
        mentions=tuple(mentions),
        first_frame=first_frame,
        end_frame=end_frame,
        images=tuple(images),
        elements=tuple(elements),
        video=video,
        quality=quality,
        aspect=scalars["aspect"],
        duration=scalars["duration"],
        watermark=watermark,
        takes=takes,
        target=target,
        variables=variables,
        unresolved=frozenset(unresolved),
        refs_span=refs_span,
        app=get("app"),
    )


_SCALARS = ("quality", "aspect", "duration", "watermark", "takes", "target", "keep_sound")


def _count(v: ast.Value) -> int:
    """How many items a list setting wrote (a single value counts as one)."""
    return len(v.items) if isinstance(v, ast.ListV) else 1


def _ref_names(v: ast.Value) -> list[str]:
    if isinstance(v, ast.Ref):
        return [v.name]
    if isinstance(v, ast.ListV):
        return [n for item in v.items for n in _ref_names(item)]
    return []


def _close_to(word: str, target: str) -> bool:
    return word != target and bool(difflib.get_close_matches(word, [target], n=1))


def _same(a: Input, b: Input) -> bool:
    if a.name is not None or b.name is not None:
        return a.name == b.name and a.source == b.source
    return a.source == b.source


def _mention_span(
    node: ast.Str | None,
    lines: LineIndex,
    prompt: str,
    source: str,
    start: int,
    end: int,
    name: str,
    k: int,
    fallback: Span,
) -> Span:
    text = lines.text
    if node is None:
        return fallback
    offset: int | None = None
    if prompt == source:
        offset = start
    else:
        pos = -1
        for _ in range(k + 1):
            pos = source.find("@" + name, pos + 1)
            if pos < 0:
                break
        offset = pos if pos >= 0 else None
    if offset is None:
        return node.span
    a = source_offset(node, text, offset)
    if a is None:
        return node.span
    return lines.span(a, a + (end - start))


def _word(kind: str) -> str:
    return KIND_WORDS[kind]
