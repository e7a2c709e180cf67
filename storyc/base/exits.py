"""Exit codes: what every command returns, documented in docs/cli.md.

Stage: foundation (the command line and the sessions below it return these). No I/O.
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    OK = 0
    FAILED = 1  # the story has errors, or a scene failed to render
    USAGE = 2  # bad command line
    ENVIRONMENT = 3  # missing/bad key, provider unreachable, project locked, no project
    NEEDS_DECISION = 4  # consent refused, budget exceeded, attempts of unknown fate
    INTERRUPTED = 130  # Ctrl-C
