"""Whether output may be styled: one answer for every command, plain and rich alike.

Stage: foundation (the command line, the build's progress display, watch's view and the
plan table ask it). In: the environment and an output stream. Out: yes/no, and the
options a `rich.console.Console` needs to agree. No I/O beyond reading the environment.

`NO_COLOR` (set and not empty, as no-color.org says) turns off every terminal style, not
only colour: rich keeps bold and dim under its own `no_color`, which is why consoles are
made with `color_system=None` instead.
"""

from __future__ import annotations

import os
from typing import Any


def no_colour() -> bool:
    return bool(os.environ.get("NO_COLOR"))


def styled(stream: Any) -> bool:
    """Styles (colour, bold, dim) for `stream`: only on a terminal, and never under NO_COLOR."""
    return not no_colour() and bool(getattr(stream, "isatty", lambda: False)())


def rich_options() -> dict[str, Any]:
    """Keyword arguments for `rich.console.Console` that honour NO_COLOR entirely."""
    return {"color_system": None} if no_colour() else {}
