"""Resolver helpers: which settings exist where, and reading plain values from syntax.

Stage: part of the resolver (`storyc.resolve.resolver`). In: `storyc.lang.ast` values. Out: Python
values (str, int, float, bool, list, dict) or a located diagnostic (E102-E106, E116)
when the value has the wrong type, is out of range or not one of the allowed words.
No I/O.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from storyc.base.diagnostics import Diagnostics
from storyc.lang import ast

BACKENDS = ("preview", "inference")

# Settings a scene (and a style or `defaults`, which scenes inherit from) may have.
SCENE_SETTINGS = (
    "prompt",
    "start",
    "end",
    "refs",
    "elements",
    "video",
    "motion",
    "edit",
    "keep_sound",
    "quality",
    "aspect",
    "duration",
    "watermark",
    "takes",
    "target",
    "app",
    "vars",
    "use",
)
# Scene settings the project block may give defaults for.
PROJECT_DEFAULTS = (
    "quality",
    "aspect",
    "duration",
    "watermark",
    "takes",
    "target",
    "app",
    "keep_sound",
)
PROJECT_SETTINGS = (
    ("name",)
    + PROJECT_DEFAULTS
    + (
        "backend",
        "base_url",
        "max_cost",
        "jobs",
        "shared_folders",
        "remote",
        "webhook",
    )
)
ELEMENT_SETTINGS = ("frontal", "refs", "description")
VIDEO_SLOT = ("video", "motion", "edit")
# A cut entry's trim: `arrival { in = 1, out = 4.5 }` (seconds of the scene's video).
CUT_ENTRY_SETTINGS = ("in", "out")

_UNSET: Any = object()


def describe(value: ast.Value) -> str:
    """How a value is shown in messages: `"5s"` (a string), `5.5` (a number), ..."""
    if isinstance(value, ast.Str):
        text = value.value if len(value.value) <= 30 else value.value[:27] + "..."
        return f'"{text}" (a string)'
    if isinstance(value, ast.Num):
        return f"{_short(value.text)} (a number)"
    if isinstance(value, ast.Ref):
        if value.attr is None and value.name in ("true", "false"):
            return f"{value.name} (a boolean)"
        return f"`{value.name}{'.' + value.attr if value.attr else ''}` (a name)"
    if isinstance(value, ast.ListV):
        return "a list"
    return "a { ... } block"


def did_you_mean(name: str, choices: Sequence[str]) -> str | None:
    close = difflib.get_close_matches(name, list(choices), n=1, cutoff=0.6)
    return f"did you mean `{close[0]}`?" if close else None


def check_settings(
    settings: list[ast.Setting], allowed: Sequence[str], where: str, diags: Diagnostics
) -> dict[str, ast.Setting]:
    """Known settings of one block by name; unknown (E102) and repeated (E103) ones reported."""
    out: dict[str, ast.Setting] = {}
    for s in settings:
        if s.name not in allowed:
            hint = did_you_mean(s.name, allowed) or ("settings here: " + ", ".join(allowed))
            diags.error("E102", f"unknown setting `{s.name}` in {where}", s.name_span, hint=hint)
            continue
        first = out.get(s.name)
        if first is not None:
            diags.error(
                "E103",
                f"`{s.name}` is set twice in {where}",
                s.name_span,
                hint="remove one of them",
                notes=(("first set here", first.name_span),),
            )
            continue
        out[s.name] = s
    return out


def _type_error(diags: Diagnostics, s: ast.Setting, wanted: str, example: str) -> Any:
    diags.error(
        "E104",
        f"`{s.name}` must be {wanted}, found {describe(s.value)}",
        s.value.span,
        hint=f"for example: {s.name} = {example}",
    )
    return _UNSET


def as_str(s: ast.Setting, diags: Diagnostics) -> Any:
    if isinstance(s.value, ast.Str):
        return s.value.value
    return _type_error(diags, s, "a string in double quotes", '"..."')


def as_bool(s: ast.Setting, diags: Diagnostics) -> Any:
    v = s.value
    if isinstance(v, ast.Ref) and v.attr is None and v.name in ("true", "false"):
        return v.name == "true"
    return _type_error(diags, s, "true or false", "true")


def as_int(
    s: ast.Setting,
    diags: Diagnostics,
    minimum: int | None = None,
    what: str = "a whole number",
    maximum: int | None = None,
    code: str = "E106",
    why: str = "",
    suggest: int | None = None,
) -> Any:
    """A whole number in [minimum, maximum]. Out of range is `code` (E106 unless the range
    is a rule of the model, e.g. E204 for durations); `why` ends the hint."""
    v = s.value
    if not isinstance(v, ast.Num) or not isinstance(v.value, int):
        example = str(int(v.value)) if isinstance(v, ast.Num) else "5"
        if isinstance(v, ast.Str) and v.value.strip().rstrip("s").strip().isdigit():
            example = v.value.strip().rstrip("s").strip()
        if minimum is not None and maximum is not None and example.lstrip("-").isdigit():
            example = str(min(max(int(example), minimum), maximum))
        return _type_error(diags, s, what, example)
    low = minimum is not None and v.value < minimum
    high = maximum is not None and v.value > maximum
    if low or high:
        if minimum is not None and maximum is not None:
            wanted = f"from {minimum} to {maximum}"
        elif low:
            wanted = f"at least {minimum}"
        else:
            wanted = f"at most {maximum}"
        closest = suggest if suggest is not None else minimum if low else maximum
        diags.error(
            code,
            f"`{s.name}` must be {wanted}, found {_short(v.text)}",
            v.span,
            hint=f"for example: {s.name} = {closest}" + (f" ({why})" if why else ""),
        )
        return _UNSET
    return v.value


def _short(text: str) -> str:
    return text if len(text) <= 30 else text[:27] + "..."


def as_number(s: ast.Setting, diags: Diagnostics, minimum: float | None = None) -> Any:
    v = s.value
    if not isinstance(v, ast.Num):
        return _type_error(diags, s, "a number", "12.5")
    if minimum is not None and v.value < minimum:
        diags.error(
            "E106", f"`{s.name}` must be at least {minimum:g}, found {_short(v.text)}", v.span
        )
        return _UNSET
    return v.value


def as_enum(s: ast.Setting, diags: Diagnostics, choices: Sequence[str]) -> Any:
    listed = " or ".join(f'"{c}"' for c in choices)
    v = s.value
    if not isinstance(v, ast.Str):
        if isinstance(v, ast.Ref) and v.attr is None and v.name in choices:
            return _type_error(diags, s, f"one of {listed} (in double quotes)", f'"{v.name}"')
        return _type_error(diags, s, f"one of {listed}", f'"{choices[0]}"')
    if v.value in choices:
        return v.value
    hint = did_you_mean(v.value, choices) or f"use one of {listed}"
    diags.error("E105", f'`{s.name}` must be {listed}, found "{v.value}"', v.span, hint=hint)
    return _UNSET


def as_target(s: ast.Setting, diags: Diagnostics, known: Sequence[str] | None) -> Any:
    value = as_str(s, diags)
    if value is _UNSET or known is None or value in known:
        return value
    hint = did_you_mean(value, known) or ("targets: " + ", ".join(known))
    diags.error("E116", f'unknown target "{value}"', s.value.span, hint=hint)
    return _UNSET


_APP = re.compile(r"[a-z0-9][a-z0-9._-]*/[a-z0-9][a-z0-9._-]*(@[A-Za-z0-9._-]{1,64})?")


def as_app(s: ast.Setting, diags: Diagnostics) -> Any:
    """An app reference, `namespace/name` or pinned: `namespace/name@version`."""
    value = as_str(s, diags)
    if value is _UNSET or _APP.fullmatch(value):
        return value
    diags.error(
        "E300",
        f'`app` is not an app reference: "{value}"',
        s.value.span,
        hint='write the app and, to pin it, its version: app = "klingai/video-o1@VERSION"',
    )
    return _UNSET


def as_base_url(s: ast.Setting, diags: Diagnostics) -> Any:
    value = as_str(s, diags)
    if value is _UNSET:
        return value
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises for a port that is not a number in range
        host = parts.hostname
    except ValueError as exc:
        diags.error(
            "E136",
            f'`base_url` is a malformed URL: "{value}" ({exc})',
            s.value.span,
            hint='for example: base_url = "https://api.inference.sh"',
        )
        return _UNSET
    if any(c.isspace() for c in value):
        diags.error("E136", f'`base_url` contains a space: "{value}"', s.value.span)
        return _UNSET
    if parts.scheme == "https" and host:
        return value.rstrip("/")
    if parts.scheme == "http" and host in ("127.0.0.1", "localhost", "::1"):
        return value.rstrip("/")
    if parts.scheme == "http":
        diags.error(
            "E135",
            f'`base_url` uses plain http: "{value}"',
            s.value.span,
            hint="use https://, or http://127.0.0.1:PORT for a local provider",
        )
    else:
        diags.error(
            "E136",
            f'`base_url` is not an https:// URL: "{value}"',
            s.value.span,
            hint='for example: base_url = "https://api.inference.sh"',
        )
    return _UNSET


# Query words that would put a credential in the story (storyc.remote.config parses the rest).
_REMOTE_SECRETS = ("key", "secret", "token", "password", "credential", "signature")


def as_remote(s: ast.Setting, diags: Diagnostics) -> Any:
    """The team store's URL (`s3://bucket/prefix`), never with a credential in it."""
    value = as_str(s, diags)
    if value is _UNSET:
        return value
    try:
        parts = urlsplit(value)
        user = parts.username
    except ValueError:
        parts, user = None, None
    # credentials first: the E340 message quotes the value, this one never does
    names = [k.lower() for k, _ in parse_qsl(parts.query)] if parts is not None else []
    if user is not None or any(w in k for k in names for w in _REMOTE_SECRETS):
        diags.error(
            "E341",
            "`remote` holds a credential: credentials never go in a story",
            s.value.span,
            hint="remove it; storyc reads AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY "
            "(or AWS_PROFILE) from the environment",
        )
        return _UNSET
    if parts is None or parts.scheme != "s3" or not parts.netloc:
        diags.error(
            "E340",
            f'`remote` is not an s3:// URL: "{value}"',
            s.value.span,
            hint='for example: remote = "s3://my-team-bucket/my-film"',
        )
        return _UNSET
    return value


def webhook_problem(value: str) -> str | None:
    """Why `value` cannot be the URL the provider calls when a task ends (None: it can).
    The provider must reach it: https://, or plain http only to this machine (the loopback
    provider). A credential in it would end up in the story or in logs: never."""
    try:
        parts = urlsplit(value)
        user, host = parts.username, parts.hostname
    except ValueError:
        return f'not a URL: "{value[:60]}"'
    if user is not None or parts.password is not None:
        return "a webhook URL cannot hold a user name or password"
    if parts.scheme == "https" and host:
        return None
    if parts.scheme == "http" and host in ("127.0.0.1", "localhost", "::1"):
        return None
    # only where it points: a path or query may carry a token, never repeated in a message
    shown = f"{parts.scheme}://{parts.netloc}" if parts.scheme else value.split("/")[0][:40]
    return f"not an https:// URL: {shown}/…"


def as_webhook(s: ast.Setting, diags: Diagnostics) -> Any:
    value = as_str(s, diags)
    if value is _UNSET:
        return value
    problem = webhook_problem(value)
    if problem is None:
        return value
    code = "E401" if "user name" in problem else "E400"
    diags.error(
        code,
        f"`webhook`: {problem}",
        s.value.span,
        hint="the address `storyc webhook serve` is reachable at, for example "
        'webhook = "https://ci.example.com/storyc"; or set STORYC_WEBHOOK',
    )
    return _UNSET


def to_python(value: ast.Value, diags: Diagnostics, what: str) -> Any:
    """A `let` or `vars` value as plain data for templates."""
    if isinstance(value, ast.Str | ast.Num):
        return value.value
    if isinstance(value, ast.Ref):
        if value.attr is None and value.name in ("true", "false"):
            return value.name == "true"
        diags.error(
            "E104",
            f"{what} must be a string, number, boolean, list or block, found {describe(value)}",
            value.span,
            hint='text goes in double quotes, e.g. "35mm film"',
        )
        return _UNSET
    if isinstance(value, ast.ListV):
        items = [to_python(v, diags, what) for v in value.items]
        return [v for v in items if v is not _UNSET]
    out: dict[str, Any] = {}
    for s in value.settings:
        v = to_python(s.value, diags, what)
        if v is not _UNSET:
            out[s.name] = v
    return out


def is_unset(value: object) -> bool:
    return value is _UNSET


def unset() -> Any:
    return _UNSET
