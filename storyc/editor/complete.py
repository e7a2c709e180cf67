"""Completion: what may be written at a place in a story, from its token stream.

Stage: editor (for the language server). In: a file's text (often half-typed, so not
parsed: the token stream tells where the cursor is), an offset, and the project's
declared names. Out: candidates (label, kind, detail, text to insert), at most
`MAX_ITEMS` of them, and whether there were more. Pure; no I/O.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable
from dataclasses import dataclass

from storyc import targets
from storyc.editor.index import Symbol
from storyc.lang.syntax_errors import KEYWORDS
from storyc.lang.tokens import DECL_TYPES, Tok, tokenize
from storyc.resolve.model import ASPECTS, QUALITIES
from storyc.resolve.values import BACKENDS, ELEMENT_SETTINGS, PROJECT_SETTINGS, SCENE_SETTINGS

FRAME_ATTRS = ("last_frame", "first_frame", "frame")
MAX_ITEMS = 50  # completion items per answer (the editor asks again as the word grows)
SETTING_DOCS = {
    "prompt": "what happens in the shot (a Jinja2 template; `@name` mentions inputs)",
    "start": "the first frame: an image asset, a path/URL, or `scene.last_frame` / "
    "`.first_frame` / `.frame(SECONDS)`",
    "end": "the end frame (needs `start`)",
    "refs": "reference images",
    "elements": "characters in the shot (mentioned ones are added)",
    "video": "a feature reference video: borrow its style",
    "motion": "a feature reference video: borrow its camera motion",
    "edit": "a base video: edit this video itself",
    "keep_sound": "keep the edited video's sound (v1 schema)",
    "quality": '`"std"` or `"pro"`',
    "aspect": '`"16:9"`, `"9:16"` or `"1:1"`',
    "duration": "whole seconds (3 to 10)",
    "watermark": "`true` / `false`",
    "takes": "how many takes to render (≥ 1)",
    "target": "which provider schema the scene compiles for",
    "vars": "scene variables for the prompt template",
    "use": "the style this scene inherits from",
    "backend": '`"preview"` (free, local) or `"inference"` (paid)',
    "base_url": "the provider's address",
    "max_cost": "budget for one build (USD)",
    "jobs": "how many renders run at once",
    "frontal": "the element's frontal image",
    "description": "what the element is, in words",
    "in": "where the scene starts playing in the cut (seconds into its video; default 0)",
    "out": "where the scene stops playing in the cut (seconds; default: its end)",
}

REF_KINDS = {
    "start": ("image", "scene"),
    "end": ("image", "scene"),
    "refs": ("image", "scene"),
    "frontal": ("image",),
    "elements": ("element",),
    "video": ("video", "scene"),
    "motion": ("video", "scene"),
    "edit": ("video", "scene"),
    "use": ("style",),
    "cut": ("scene",),
}
WORD_VALUES: dict[str, tuple[str, ...]] = {
    "watermark": ("true", "false"),
    "keep_sound": ("true", "false"),
}


def string_values(setting: str) -> tuple[str, ...]:
    if setting == "quality":
        return QUALITIES
    if setting == "aspect":
        return ASPECTS
    if setting == "backend":
        return BACKENDS
    if setting == "target":
        try:
            return tuple(targets.names())
        except Exception:
            return ()
    return ()


def block_settings(kind: str) -> tuple[str, ...]:
    if kind == "PROJECT":
        return tuple(s for s in PROJECT_SETTINGS if s != "name")
    if kind == "ELEMENT":
        return ELEMENT_SETTINGS
    if kind == "DEFAULTS":
        return tuple(s for s in SCENE_SETTINGS if s not in ("prompt", "use"))
    if kind in ("SCENE", "STYLE"):
        return SCENE_SETTINGS
    if kind == "TRIM":  # a cut entry's block: `arrival { in = 1, out = 4.5 }`
        return ("in", "out")
    return ()


@dataclass
class Context:
    where: str  # "top", "setting", "value", "attr", "mention", "template", "parent", "none"
    block: str = ""  # the declaration keyword of the enclosing body
    setting: str = ""
    prefix_start: int = 0
    in_string: bool = False
    owner: str = ""  # for "attr": the name before the dot


def context(text: str, offset: int) -> Context:
    toks = tokenize(text).tokens
    i = bisect.bisect_left([t.end for t in toks], offset)
    cur = toks[i] if i < len(toks) else None
    # inside a string (or a string being typed)?
    if (
        cur is not None
        and cur.start < offset
        and (cur.kind in ("STRING", "LONG_STRING") or (cur.kind == "ERROR" and cur.text[:1] == '"'))
    ):
        before = text[cur.start : offset]
        ctx = code_context([t for t in toks[:i] if t.kind != "COMMENT"], text, cur.start)
        m = re.search(r"(?<![\w@.])@([A-Za-z0-9_]*)\Z", before)
        if m is not None:
            return Context("mention", prefix_start=offset - len(m.group(1)))
        if before.rfind("{{") > before.rfind("}}") or before.rfind("{%") > before.rfind("%}"):
            w = re.search(r"[A-Za-z_][A-Za-z0-9_]*\Z", before)
            return Context("template", prefix_start=offset - (len(w.group()) if w else 0))
        if ctx.where == "value":
            q = before.rfind('"') + 1
            return Context("value", ctx.block, ctx.setting, cur.start + q, in_string=True)
        return Context("none")
    code = [t for t in toks[: i + 1] if t.kind != "COMMENT" and t.end <= offset]
    if cur is not None and cur.kind == "COMMENT" and cur.start < offset:
        return Context("none")
    prefix_start = offset
    if code and code[-1].end == offset and (code[-1].kind == "NAME" or code[-1].kind in DECL_TYPES):
        prefix_start = code[-1].start
        code = code[:-1]
    ctx = code_context(code, text, offset)
    ctx.prefix_start = prefix_start
    return ctx


def code_context(code: list[Tok], text: str, offset: int) -> Context:
    stack: list[tuple[str, str]] = []  # (bracket, declaration keyword or setting name)
    decl = ""
    setting = ""
    for n, t in enumerate(code):
        k = t.kind
        if not stack and k in DECL_TYPES:
            decl, setting = k, ""
        elif k == "EQUAL":
            prev = code[n - 1] if n else None
            setting = (
                decl.lower()
                if not stack and decl in ("LET", "CUT")
                else (prev.text if prev else "")
            )
        elif k == "LBRACE":
            owner = decl if not stack else setting
            stack.append(("{", owner))
            setting = ""
        elif k == "LSQB":
            stack.append(("[", setting))
        elif k in ("RBRACE", "RSQB") and stack:
            # a `}` also closes a `[` left open inside it (the file is being typed)
            want = "{" if k == "RBRACE" else "["
            while stack:
                opener, owner = stack.pop()
                if opener == want or want == "[":
                    break
            setting = owner if stack and stack[-1][0] == "[" else setting
    prev = code[-1] if code else None
    if prev is not None and prev.kind == "DOT":
        owner = code[-2].text if len(code) > 1 else ""
        return Context("attr", owner=owner)
    if prev is not None and prev.kind == "COLON" and not stack:
        return Context("parent")
    if stack and stack[-1][0] == "[":
        if prev is not None and prev.kind in ("LSQB", "COMMA"):
            return Context("value", setting=stack[-1][1])
        return Context("none")
    if prev is not None and prev.kind == "EQUAL":
        return Context("value", decl, setting)
    if not stack:
        if prev is None or prev.kind in (
            "RBRACE",
            "STRING",
            "LONG_STRING",
            "RSQB",
            "NUMBER",
            "NAME",
            "RPAR",
        ):
            if prev is not None and prev.kind == "NAME" and prev.end == offset:
                return Context("none")
            return Context("top")
        return Context("none")
    owner = stack[-1][1]
    if prev is not None and (
        prev.kind in ("LBRACE", "COMMA", "SEMICOLON")
        or (
            prev.kind in ("STRING", "LONG_STRING", "NUMBER", "NAME", "RPAR", "RSQB", "RBRACE")
            and "\n" in text[prev.end : offset]
        )
    ):
        block = owner if owner in DECL_TYPES else "TRIM" if owner == "cut" else ""
        return Context("setting", block)
    return Context("none")


Candidate = tuple[
    str, str, str, str
]  # label, kind ("keyword", "setting", a symbol's kind, ...), detail, insert


def candidates(
    text: str, offset: int, symbols: dict[str, Symbol], lets: dict[str, Symbol] | None = None
) -> tuple[int, list[Candidate], bool]:
    """Where the word being completed starts, what may be written there (sorted, at most
    `MAX_ITEMS`), and whether there was more. `lets`: every `let` (one may share its
    name with a declaration in `symbols`)."""
    ctx = context(text, offset)
    typed = text[ctx.prefix_start : offset].lstrip('"')
    found: list[Candidate] = []

    def names(kinds: tuple[str, ...]) -> None:
        pool: Iterable[Symbol] = symbols.values()
        if lets:
            pool = [*(x for x in symbols.values() if x.kind != "let"), *lets.values()]
        for sym in pool:
            if sym.kind in kinds and sym.name.startswith(typed):
                found.append((sym.name, sym.kind, sym.kind, sym.name))

    def words(words: tuple[str, ...], kind: str, detail: str) -> None:
        found.extend((w, kind, SETTING_DOCS.get(w, detail), w) for w in words)

    if ctx.where == "mention":
        names(("image", "video", "element", "scene"))
    elif ctx.where == "template":
        names(("let",))
    elif ctx.where == "top":
        words(KEYWORDS, "keyword", "declaration")
    elif ctx.where == "setting":
        words(block_settings(ctx.block), "setting", "")
    elif ctx.where == "parent":
        names(("style",))
    elif ctx.where == "attr":
        owner = symbols.get(ctx.owner)
        if owner is not None and owner.kind == "scene":
            for a in FRAME_ATTRS:
                found.append((a, "frame", "a frame of the scene", "frame(" if a == "frame" else a))
    elif ctx.where == "value":
        for v in string_values(ctx.setting):
            found.append((v, "value", ctx.setting, v if ctx.in_string else f'"{v}"'))
        if not ctx.in_string:
            words(WORD_VALUES.get(ctx.setting, ()), "constant", ctx.setting)
            names(REF_KINDS.get(ctx.setting, ()))
    # Only what matches what is typed, and not thousands of scenes at once: the editor
    # asks again as the word grows.
    found = sorted(f for f in found if f[0].startswith(typed))
    return ctx.prefix_start, found[:MAX_ITEMS], len(found) > MAX_ITEMS
