"""Targets: one story, several provider schemas. The registry and the `Target` base.

Stage: lower. In: a resolved `Scene` (plus its `Project`) and a `Diagnostics` to report
into. Out: a `storyc.targets.request.Request` holding exactly the provider's JSON body, or
None when the scene cannot be lowered. No I/O.

Each target is one module in this package that calls `register(...)` at import time.
Adding a provider schema (fal.ai's inline `elements`, Kling's own API, ...) is one new
module plus one line in `_BUILTIN`; nothing else changes. Tests may `register` a
target of their own and compile through it.
"""

from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import TYPE_CHECKING

# Types only: `storyc.targets.request` is imported by commands that never lower a scene
# (the planner prices requests), and the model is dataclass-heavy to import.
if TYPE_CHECKING:
    from storyc.base.diagnostics import Diagnostics
    from storyc.resolve.model import Project, Scene
    from storyc.targets.request import Request


class Target(ABC):
    """A provider schema. Subclasses set the class attributes and implement `lower`."""

    name: str = ""  # as written in stories: `target = "inference/video-o1@v1"`
    schema: str = ""  # short label, e.g. "v2"
    app: str = ""  # the provider's app id
    description: str = ""

    @property
    def slug(self) -> str:
        """A file-name-safe form of `name` (golden files are named by it)."""
        return "".join(c if c.isalnum() or c in "-_" else "_" for c in self.name)

    @abstractmethod
    def lower(self, scene: Scene, project: Project, diags: Diagnostics) -> Request | None:
        """Lower one scene. Report every problem into `diags`; None when any is an error."""


class UnknownTarget(KeyError):
    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name = name

    def __str__(self) -> str:
        return f"unknown target {self.name!r} (known: {', '.join(names())})"


_REGISTRY: dict[str, Target] = {}
_BUILTIN = ("storyc.targets.inference_v2", "storyc.targets.inference_v1")
_loaded = False


def register(target: Target, *, replace: bool = False) -> Target:
    """Make `target` available by its name. Re-registering a name needs `replace=True`."""
    if not target.name:
        raise ValueError("a target needs a name")
    if target.name in _REGISTRY and not replace and _REGISTRY[target.name] is not target:
        raise ValueError(f"target {target.name!r} is already registered")
    _REGISTRY[target.name] = target
    return target


def unregister(name: str) -> None:
    _REGISTRY.pop(name, None)


def _load_builtin() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for module in _BUILTIN:
            importlib.import_module(module)


def get(name: str) -> Target:
    """The target called `name`; raises `UnknownTarget`."""
    _load_builtin()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise UnknownTarget(name) from None


def names() -> list[str]:
    """Registered target names, built-in first, then in registration order."""
    _load_builtin()
    return list(_REGISTRY)


def extras() -> list[str]:
    """Targets a caller registered (not storyc's own), without loading storyc's own."""
    return [n for n, t in _REGISTRY.items() if type(t).__module__ not in _BUILTIN]


def default_target() -> Target:
    from storyc.resolve.model import DEFAULT_TARGET

    return get(DEFAULT_TARGET)
