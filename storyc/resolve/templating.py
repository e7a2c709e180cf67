"""Prompt templates: Jinja2 in a sandbox, with fast paths that keep Jinja's meaning.

Stage: used by the resolver to render each scene's prompt. In: template source text
and a variables mapping. Out: `Rendered` (the text, or problems located by offset or
line inside the template). No I/O. Jinja2 is used only here.

Rendering every prompt through Jinja costs hundreds of microseconds per template, so:
  1. a prompt without `{{`, `{%` or `{#` is taken verbatim;
  2. a prompt whose only template syntax is `{{ name }}` or `{{ name.key }}` (over
     strings, numbers, booleans and `{ ... }` blocks) is substituted directly, with
     `str()` exactly as Jinja prints values, and the same "undefined" error;
  3. everything else is compiled once per distinct source (cached) by a
     `SandboxedEnvironment` with `StrictUndefined` and rendered.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta
from jinja2.exceptions import SecurityError
from jinja2.sandbox import SandboxedEnvironment

_SIMPLE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)(?:\.([A-Za-z_][A-Za-z0-9_]*))?\s*\}\}")
_SCALARS = (str, int, float, bool)


@dataclass(frozen=True, slots=True)
class Problem:
    code: str  # E120 syntax, E121 undefined variable, E122 error while rendering
    message: str
    offset: int | None = None  # character offset in the template source
    length: int = 1
    line: int | None = None  # 1-based line in the template when no offset is known
    hint: str | None = None
    detail: str | None = None  # the engine's own words, after the message


@dataclass
class Rendered:
    text: str | None
    problems: list[Problem] = field(default_factory=list)


def has_template_syntax(source: str) -> bool:
    return "{{" in source or "{%" in source or "{#" in source


def _did_you_mean(name: str, known: Mapping[str, object]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1)
    if close:
        return f"did you mean `{close[0]}`?"
    return "define it with `let NAME = ...` or in the scene's `vars { ... }`"


def _undefined(name: str, offset: int | None, known: Mapping[str, object]) -> Problem:
    return Problem(
        "E121",
        f"undefined template variable `{name}`",
        offset,
        len(name),
        hint=_did_you_mean(name, known),
    )


_MAX_REPEAT = 100_000  # characters or items a `*` may build in a prompt


class _PromptEnvironment(SandboxedEnvironment):
    """The sandbox, plus limits on `*` and `**` so a prompt cannot build a gigabyte."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float) and abs(right) > 64:
            raise SecurityError("exponent too large in a prompt template")
        if operator == "*":
            for seq, times in ((left, right), (right, left)):
                if (
                    isinstance(seq, str | list | tuple)
                    and isinstance(times, int)
                    and len(seq) * times > _MAX_REPEAT
                ):
                    raise SecurityError("repetition too large in a prompt template")
        return super().call_binop(context, operator, left, right)


class Templates:
    """Renders prompt templates; one instance caches compiled templates by source."""

    def __init__(self) -> None:
        self.env = _PromptEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        self._compiled: dict[str, Template | Problem] = {}
        self._needs: dict[str, frozenset[str]] = {}
        self.jinja_renders = 0  # how many prompts needed the full engine (for benchmarks)

    def render(self, source: str, variables: Mapping[str, object]) -> Rendered:
        if not has_template_syntax(source):
            return Rendered(source)
        simple = self._render_simple(source, variables)
        if simple is not None:
            return simple
        return self._render_jinja(source, variables)

    def _render_simple(self, source: str, variables: Mapping[str, object]) -> Rendered | None:
        out: list[str] = []
        problems: list[Problem] = []
        pos = 0
        for m in _SIMPLE.finditer(source):
            name, key = m.group(1), m.group(2)
            if name in ("true", "false", "none", "True", "False", "None"):
                return None  # Jinja literals, not variables
            literal = source[pos : m.start()]
            if has_template_syntax(literal):
                return None  # other template syntax is present: let Jinja handle all of it
            out.append(literal)
            pos = m.end()
            if name not in variables:
                problems.append(_undefined(name, m.start(1), variables))
                continue
            value = variables[name]
            if key is not None:
                # Jinja looks up attributes before keys; only plain data keys agree.
                if not isinstance(value, dict) or key not in value or hasattr(value, key):
                    return None
                value = value[key]
            if not isinstance(value, _SCALARS):
                return None
            out.append(str(value))
        rest = source[pos:]
        if has_template_syntax(rest):
            return None
        out.append(rest)
        if problems:
            return Rendered(None, problems)
        return Rendered("".join(out))

    def _compile(self, source: str) -> Template | Problem:
        hit = self._compiled.get(source)
        if hit is not None:
            return hit
        result: Template | Problem
        try:
            parsed = self.env.parse(source)
            self._needs[source] = frozenset(meta.find_undeclared_variables(parsed))
            result = self.env.from_string(parsed)  # the tree, not the text: parse once
        except TemplateSyntaxError as exc:
            result = Problem(
                "E120",
                "template syntax error",
                line=exc.lineno,
                detail=exc.message,
                hint="see the Jinja2 template syntax: {{ var }}, {% if %}...{% endif %}, "
                "{% for x in xs %}...{% endfor %}",
            )
        except Exception as exc:  # the sandbox must never take the compiler down
            result = Problem("E120", "template cannot be compiled", line=1, detail=str(exc))
        self._compiled[source] = result
        return result

    def _render_jinja(self, source: str, variables: Mapping[str, object]) -> Rendered:
        compiled = self._compile(source)
        if isinstance(compiled, Problem):
            return Rendered(None, [compiled])
        missing = sorted(self._needs.get(source, frozenset()) - set(variables))
        if missing:
            return Rendered(
                None, [_undefined(n, _find_name(source, n), variables) for n in missing]
            )
        self.jinja_renders += 1
        try:
            return Rendered(compiled.render(dict(variables)))
        except Exception as exc:  # UndefinedError, SecurityError, TypeError, ...
            offset, length = _find_attribute(source, str(exc))
            return Rendered(
                None,
                [
                    Problem(
                        "E122",
                        "template error",
                        offset,
                        length,
                        line=_error_line(exc),
                        hint="check the expression against the variables' values",
                        detail=str(exc),
                    )
                ],
            )


def _find_name(source: str, name: str) -> int | None:
    """Offset of the first use of `name` inside a `{{ }}` or `{% %}` tag."""
    pat = re.compile(r"(?<![\w.])" + re.escape(name) + r"(?!\w)")
    for tag in re.finditer(r"\{\{.*?\}\}|\{%.*?%\}", source, re.S):
        m = pat.search(source, tag.start(), tag.end())
        if m:
            return m.start()
    return None


def _find_attribute(source: str, message: str) -> tuple[int | None, int]:
    """Where the attribute or key an error message names ('x' has no attribute 'y') is used."""
    m = re.search(r"attribute '([^']+)'|key '([^']+)'", message)
    if not m:
        return None, 1
    name = m.group(1) or m.group(2)
    use = re.search(r"\.\s*" + re.escape(name) + r"(?!\w)|\[\s*['\"]" + re.escape(name), source)
    if not use:
        return None, 1
    at = source.index(name, use.start())
    return at, len(name)


def _error_line(exc: BaseException) -> int | None:
    tb = exc.__traceback__
    line: int | None = None
    while tb is not None:
        if tb.tb_frame.f_code.co_filename == "<template>":
            line = tb.tb_lineno
        tb = tb.tb_next
    return line
