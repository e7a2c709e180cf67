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

A template is code anyone can put in a pull request, so every way it could take the
machine's time or memory is bounded, whatever the operation (each a located E143 that
names the limit): the template's length; the output (`MAX_OUTPUT` characters, a prompt
is at most 2,500 once lowered); every value made on the way (strings, lists, numbers),
checked *before* an operation that could multiply it (`*`, `+`, `~`, `%`, `str.format`,
`join`, `replace`, `indent`, `center` and their kind) and after every call; the number of
steps a render may take (calls and template lines, `MAX_STEPS`: nested `range()` loops)
and its CPU time. The sandbox is the immutable one (no `append`/`extend` doubling), and
`random` and `lipsum` are gone: a prompt must render the same on every compile, or every
build would pay for a new take.
"""

from __future__ import annotations

import difflib
import functools
import re
import string
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from jinja2 import StrictUndefined, Template, TemplateSyntaxError, meta, nodes
from jinja2.compiler import CodeGenerator, Frame
from jinja2.exceptions import SecurityError
from jinja2.sandbox import (
    ImmutableSandboxedEnvironment,
    SandboxedEscapeFormatter,
    SandboxedFormatter,
)
from markupsafe import Markup

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


class _Suggestions(threading.local):
    """How many "did you mean" searches this thread may still make (each compares with
    every variable: thousands of undefined names over thousands of variables would take
    minutes). `Templates` resets it."""

    left = 200


_suggestions = _Suggestions()


def _did_you_mean(name: str, known: Mapping[str, object]) -> str:
    if _suggestions.left <= 0:
        return "define it with `let NAME = ...` or in the scene's `vars { ... }`"
    _suggestions.left -= 1
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


# The limits (docs/language.md, "Prompt templates"). A prompt is at most 2,500 characters
# once lowered; these leave room for any honest template and none for a hostile one.
MAX_SOURCE = 100_000  # characters of one prompt template
MAX_OUTPUT = 100_000  # characters a template may produce, and any one value it makes
MAX_NUMBER = 100_000  # a number passed to a call or filter (a width, a count, a tab size)
MAX_DIGITS = 4_000  # digits of a whole number a template computes
MAX_MADE = 10_000_000  # characters of all the values one render makes, kept or not
MAX_STEPS = 200_000  # calls and template lines one render may run
MAX_SECONDS = 1.0  # CPU time one render may take
MAX_TOTAL_SECONDS = 30.0  # CPU time all the renders of one compile may take


class TemplateLimit(SecurityError):
    """A template went over one of the limits above; the message names it."""


def _size(value: Any, budget: int = MAX_OUTPUT) -> int:
    """About how many characters `value` holds, counted until past `budget` (so a huge
    value costs no more than a small one to measure)."""
    total = 0
    stack = [value]
    while stack:
        v = stack.pop()
        if isinstance(v, str | bytes):
            total += len(v)
        elif isinstance(v, list | tuple | set | frozenset):
            total += 2 + 2 * len(v)
            if total <= budget:
                stack.extend(v)
        elif isinstance(v, dict):
            total += 2 + 4 * len(v)
            if total <= budget:
                stack.extend(v.keys())
                stack.extend(v.values())
        else:
            total += 8  # numbers and other objects print short
        if total > budget:
            return total
    return total


def _too_big(what: str, size: int) -> TemplateLimit:
    return TemplateLimit(
        f"{what} would be {size:,}+ characters; a template may make at most "
        f"{MAX_OUTPUT:,} (the limit on template output)"
    )


class _Made(threading.local):
    """Characters made by the render in progress on this thread."""

    total = 0


_made = _Made()


def _check_size(value: Any, what: str = "a value") -> Any:
    n = _size(value)
    if n > MAX_OUTPUT:
        raise _too_big(what, n)
    if n > 64:  # small values cost nothing worth counting
        _made.total += n
        if _made.total > MAX_MADE:
            raise TemplateLimit(
                f"the template made more than {MAX_MADE:,} characters in all (the limit on "
                "template work)"
            )
    return value


def _check_numbers(args: Iterable[Any], what: str) -> None:
    for a in args:
        if isinstance(a, int) and not isinstance(a, bool) and abs(a) > MAX_NUMBER:
            raise TemplateLimit(
                f"{what} was given {_short_number(a)}; numbers passed to calls and "
                f"filters may be at most {MAX_NUMBER:,} (the limit on template numbers)"
            )


def _short_number(n: int) -> str:
    digits = n.bit_length() * 0.30103
    return f"{n:,}" if digits < 30 else f"a number of about {int(digits):,} digits"


# %-format conversions: the width and precision are what can make a huge string.
_PERCENT = re.compile(r"%(?:\([^)]*\))?[-#0 +]*(\*|\d+)?(?:\.(\*|\d+))?")


def _check_percent(fmt: str, args: Any) -> None:
    items = args if isinstance(args, tuple) else (args,)
    _check_numbers(items, "`%` formatting")
    count = 0
    for m in _PERCENT.finditer(fmt):
        count += 1
        for g in m.groups():
            if g and g.isdigit() and int(g) > MAX_NUMBER:
                raise TemplateLimit(
                    f"a `%` format width of {int(g):,}; at most {MAX_NUMBER:,} "
                    "(the limit on template numbers)"
                )
    estimate = len(fmt) + count * (_size(args) + MAX_NUMBER // 10)
    if isinstance(args, dict):
        estimate = len(fmt) + count * _size(args)
    if estimate > MAX_OUTPUT and count * _size(args) > MAX_OUTPUT:
        raise _too_big("a `%` formatting result", estimate)


def _check_spec(spec: str) -> None:
    for digits in re.findall(r"\d+", spec):
        if int(digits) > MAX_NUMBER:
            raise TemplateLimit(
                f"a format width of {int(digits):,}; at most {MAX_NUMBER:,} "
                "(the limit on template numbers)"
            )


class _LimitedFormat:
    """`str.format` in the sandbox, with the total it builds counted as it goes."""

    _total = 0

    def vformat(self, format_string: str, args: Any, kwargs: Any) -> str:
        self._total = 0
        return super().vformat(format_string, args, kwargs)  # type: ignore[misc, no-any-return]

    def format_field(self, value: Any, format_spec: str) -> Any:
        _check_spec(format_spec)
        out = super().format_field(value, format_spec)  # type: ignore[misc]
        self._total += len(out)
        if self._total > MAX_OUTPUT:
            raise _too_big("a `format` result", self._total)
        return out


class _Formatter(_LimitedFormat, SandboxedFormatter):
    pass


class _EscapeFormatter(_LimitedFormat, SandboxedEscapeFormatter):
    pass


def _join_size(items: Any, sep: Any) -> int:
    seq = list(items) if not isinstance(items, list | tuple | str) else items
    return _size(seq) + max(0, len(seq) - 1) * len(str(sep))


# Filters that can make far more than they are given, and how big the result would be.
def _filter_estimate(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> int:
    value = args[0] if args else None
    if name == "join":
        sep = args[1] if len(args) > 1 else kwargs.get("d", "")
        if isinstance(value, Iterable) and not isinstance(value, str | dict):
            return _join_size(list(value), sep)
    elif name == "replace" and len(args) >= 3 and isinstance(value, str):
        old, new = str(args[1]), str(args[2])
        return len(value) + (value.count(old) if old else len(value) + 1) * len(new)
    elif name == "indent" and isinstance(value, str):
        width = args[1] if len(args) > 1 else kwargs.get("width", 4)
        pad = len(width) if isinstance(width, str) else int(width or 0)
        return len(value) + (value.count("\n") + 1) * pad
    elif name == "sum":
        return _size(value)
    return 0


def _limited_filter(name: str, func: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(func)
    def limited(*args: Any, **kwargs: Any) -> Any:
        # a filter given the context receives it first: the value comes after it
        data = args[1:] if getattr(func, "jinja_pass_arg", None) is not None else args
        _check_numbers([*data[1:], *kwargs.values()], f"the `{name}` filter")
        estimate = _filter_estimate(name, data, kwargs)
        if estimate > MAX_OUTPUT:
            raise _too_big(f"the `{name}` filter's result", estimate)
        if name == "format" and data and isinstance(data[0], str):
            _check_percent(data[0], tuple(data[1:]) or kwargs)
        return _check_size(func(*args, **kwargs), f"the `{name}` filter's result")

    return limited


# String methods that can multiply what they are given, and how big the result would be.
def _method_estimate(func: Any, args: tuple[Any, ...]) -> int:
    owner = getattr(func, "__self__", None)
    name = getattr(func, "__name__", "")
    if not isinstance(owner, str):
        return 0
    if name == "join" and args:
        return _join_size(args[0], owner)
    if name == "replace" and len(args) >= 2:
        old, new = str(args[0]), str(args[1])
        return len(owner) + (owner.count(old) if old else len(owner) + 1) * len(new)
    if name == "expandtabs":
        size = args[0] if args and isinstance(args[0], int) else 8
        return len(owner) + owner.count("\t") * max(0, size)
    return 0


class _Generator(CodeGenerator):
    """Jinja's code generator, with `~` (string concatenation) going through the
    environment, where its size is checked before the strings are joined."""

    def visit_Concat(self, node: nodes.Concat, frame: Frame) -> None:
        self.write("environment.concat_checked((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class _PromptEnvironment(ImmutableSandboxedEnvironment):
    """The immutable sandbox, with every operation that could make a huge value checked."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _Generator

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for name in ("lipsum",):
            self.globals.pop(name, None)
        self.filters.pop("random", None)  # a prompt must be the same on every compile
        self.filters = {name: _limited_filter(name, f) for name, f in self.filters.items()}
        self.concat = self._concat  # type: ignore[method-assign]

    @staticmethod
    def _concat(parts: Iterable[Any]) -> str:
        items = list(parts)
        total = sum(len(p) if isinstance(p, str) else _size(p) for p in items)
        if total > MAX_OUTPUT:
            raise _too_big("a block of template output", total)
        return _check_size("".join(items))  # type: ignore[no-any-return]

    @staticmethod
    def concat_checked(parts: tuple[Any, ...]) -> str:
        texts = [p if isinstance(p, str) else str(_check_size(p)) for p in parts]
        total = sum(len(t) for t in texts)
        if total > MAX_OUTPUT:
            raise _too_big("a `~` result", total)
        return _check_size("".join(texts))  # type: ignore[no-any-return]

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "**" and isinstance(right, int | float):
            if abs(right) > 64:
                raise TemplateLimit("exponent too large in a prompt template (at most 64)")
            if isinstance(left, int) and left.bit_length() * abs(right) > MAX_DIGITS * 3.33:
                raise TemplateLimit(
                    f"`**` would make a number of more than {MAX_DIGITS:,} digits "
                    "(the limit on template numbers)"
                )
        elif operator == "*":
            for seq, times in ((left, right), (right, left)):
                if isinstance(seq, str | list | tuple) and isinstance(times, int):
                    size = _size(seq) * max(0, times)
                    if size > MAX_OUTPUT:
                        raise _too_big("a `*` repetition", size)
        elif operator == "+":
            if isinstance(left, str | list | tuple) and isinstance(right, str | list | tuple):
                size = _size(left) + _size(right)
                if size > MAX_OUTPUT:
                    raise _too_big("a `+` result", size)
        elif operator == "%" and isinstance(left, str):
            _check_percent(left, right)
        result = super().call_binop(context, operator, left, right)
        if isinstance(result, int) and result.bit_length() > MAX_DIGITS * 3.33:
            raise TemplateLimit(
                f"a number of more than {MAX_DIGITS:,} digits (the limit on template numbers)"
            )
        return _check_size(result, f"a `{operator}` result")

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:  # noqa: N805
        name = getattr(__obj, "__name__", "a call")
        _check_numbers([*args, *kwargs.values()], f"`{name}`")
        estimate = _method_estimate(__obj, args)
        if estimate > MAX_OUTPUT:
            raise _too_big(f"`{name}`", estimate)
        return _check_size(super().call(__context, __obj, *args, **kwargs), f"`{name}`")

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        owner: str = value.__self__
        formatter = (
            _EscapeFormatter(self, escape=owner.escape)
            if isinstance(owner, Markup)
            else _Formatter(self)
        )
        is_map = value.__name__ == "format_map"

        def limited(*args: Any, **kwargs: Any) -> str:
            if is_map:
                if kwargs or len(args) != 1:
                    raise TypeError("format_map() takes exactly one argument")
                mapping = args[0]
                args, kwargs = (), mapping
            for _, _, spec, _ in string.Formatter().parse(owner):
                _check_spec(spec or "")
            return type(owner)(formatter.vformat(owner, args, kwargs))

        return functools.update_wrapper(limited, value)


class _Budget:
    """Counts a render's steps (every Python call it makes, and every line of the
    template's own code) and its CPU time; raises `TemplateLimit` past either limit."""

    def __init__(self, seconds: float) -> None:
        self.steps = 0
        self.seconds = seconds
        self.started = time.thread_time()

    def _tick(self) -> None:
        self.steps += 1
        if self.steps > MAX_STEPS:
            raise TemplateLimit(
                f"the template ran more than {MAX_STEPS:,} steps (the limit on template work)"
            )
        if not self.steps % 2048 and time.thread_time() - self.started > self.seconds:
            raise TemplateLimit(
                f"the template ran for more than {self.seconds:g} s of CPU time "
                "(the limit on template work)"
            )

    def _line(self, frame: FrameType, event: str, arg: Any) -> Any:
        if event == "line":
            self._tick()
        return self._line

    def _call(self, frame: FrameType, event: str, arg: Any) -> Any:
        self._tick()
        return self._line if frame.f_code.co_filename == "<template>" else None

    def run(self, render: Callable[[], Iterable[str]]) -> str:
        _made.total = 0
        previous = sys.gettrace()
        sys.settrace(self._call)
        try:
            out: list[str] = []
            total = 0
            for piece in render():
                total += len(piece)
                if total > MAX_OUTPUT:
                    raise _too_big("the template's output", total)
                out.append(piece)
            return "".join(out)
        finally:
            sys.settrace(previous)

    @property
    def used(self) -> float:
        return time.thread_time() - self.started


def _limit_problem(exc: TemplateLimit, source: str) -> Problem:
    offset, length = _find_attribute(source, str(exc))
    return Problem(
        "E143",
        "template over a limit",
        offset,
        length,
        line=_error_line(exc),
        hint="a prompt template must stay small and quick; see docs/language.md, "
        '"Prompt templates"',
        detail=str(exc),
    )


class Templates:
    """Renders prompt templates; one instance caches compiled templates by source."""

    def __init__(self) -> None:
        self.env = _PromptEnvironment(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        self._compiled: dict[str, Template | Problem] = {}
        self._needs: dict[str, frozenset[str]] = {}
        self.jinja_renders = 0  # how many prompts needed the full engine (for benchmarks)
        self.seconds = 0.0  # CPU time spent rendering, against MAX_TOTAL_SECONDS
        _suggestions.left = 200

    def render(self, source: str, variables: Mapping[str, object]) -> Rendered:
        if not has_template_syntax(source):
            return Rendered(source)
        if len(source) > MAX_SOURCE:
            return Rendered(
                None,
                [
                    Problem(
                        "E143",
                        "template over a limit",
                        line=1,
                        hint="split the text, or keep it outside the template",
                        detail=f"the template is {len(source):,} characters; at most "
                        f"{MAX_SOURCE:,} (the limit on template length)",
                    )
                ],
            )
        simple = self._render_simple(source, variables)
        if simple is not None:
            return simple
        return self._render_jinja(source, variables)

    def _render_simple(self, source: str, variables: Mapping[str, object]) -> Rendered | None:
        out: list[str] = []
        problems: list[Problem] = []
        pos = 0
        total = 0
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
            total += len(out[-1]) + len(literal)
            if total > MAX_OUTPUT:
                return Rendered(
                    None, [_limit_problem(_too_big("the template's output", total), source)]
                )
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
            with _frames():
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
        except RecursionError:  # its own words vary with where the limit was met
            result = Problem(
                "E120", "template cannot be compiled", line=1, detail="it is nested too deeply"
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
        left = MAX_TOTAL_SECONDS - self.seconds
        if left <= 0:
            return Rendered(
                None,
                [
                    _limit_problem(
                        TemplateLimit(
                            f"the story's templates together ran for more than "
                            f"{MAX_TOTAL_SECONDS:g} s of CPU time (the limit on template work)"
                        ),
                        source,
                    )
                ],
            )
        budget = _Budget(min(MAX_SECONDS, left))
        try:
            return self._run(compiled, budget, source, variables, left)
        finally:
            self.seconds += budget.used

    def _run(
        self,
        compiled: Template,
        budget: _Budget,
        source: str,
        variables: Mapping[str, object],
        left: float,
    ) -> Rendered:
        try:
            try:
                context = compiled.new_context(dict(variables))
                with _frames():
                    return Rendered(budget.run(lambda: compiled.root_render_func(context)))
            except Exception:
                # re-raised with the template's own line numbers, as `Template.render` does
                compiled.environment.handle_exception()
        except TemplateLimit as exc:
            if "ran for more than" in str(exc) and left < MAX_SECONDS:
                exc = TemplateLimit(
                    f"the story's templates together ran for more than "
                    f"{MAX_TOTAL_SECONDS:g} s of CPU time (the limit on template work)"
                )
            return Rendered(None, [_limit_problem(exc, source)])
        except (MemoryError, RecursionError) as exc:
            return Rendered(
                None,
                [
                    _limit_problem(
                        TemplateLimit(f"the template needs too much {_what(exc)}"), source
                    )
                ],
            )
        except Exception as exc:  # UndefinedError, SecurityError, TypeError, ...
            if isinstance(exc.__context__, TemplateLimit):  # re-raised by a filter's wrapper
                return Rendered(None, [_limit_problem(exc.__context__, source)])
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


# Python frames a template's compilation or rendering may use beyond where it was called
# from: the same budget wherever that is (a compile from scratch, the incremental engine,
# the language server), so a template nested near the limit fails in all or none of them.
TEMPLATE_FRAMES = 1000


@contextmanager
def _frames() -> Iterator[None]:
    """Run with `TEMPLATE_FRAMES` frames of room above the caller (the recursion limit is
    only ever raised, so other threads keep at least what they had)."""
    depth = 0
    f: FrameType | None = sys._getframe()
    while f is not None:
        depth += 1
        f = f.f_back
    old = sys.getrecursionlimit()
    want = depth + TEMPLATE_FRAMES
    if want <= old:
        yield  # a limit raised by the program itself: leave it
        return
    sys.setrecursionlimit(want)
    try:
        yield
    finally:
        sys.setrecursionlimit(old)


def _what(exc: BaseException) -> str:
    if isinstance(exc, MemoryError):
        return "memory (the limit on template memory)"
    return "nesting of calls within calls (the limit on template nesting)"


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
