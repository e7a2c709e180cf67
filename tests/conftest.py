"""Shared pytest configuration: the --update-golden switch and the `golden` fixture, and
`s3`, a real S3 endpoint on loopback (moto's server) for a test module.

Golden files are rewritten only with `pytest --update-golden`; CI never passes it, so a
missing or different golden file fails the test.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--update-golden",
        action="store_true",
        default=False,
        help="rewrite golden files instead of comparing against them",
    )


GoldenCheck = Callable[[Path, str], None]


@pytest.fixture
def golden(request: pytest.FixtureRequest) -> GoldenCheck:
    """`golden(path, actual_text)`: compare with (or, with --update-golden, rewrite) a file."""
    update = bool(request.config.getoption("--update-golden"))

    def check(path: Path, actual: str) -> None:
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(actual, "utf-8")
            return
        assert path.exists(), f"missing golden file {path}; run pytest --update-golden"
        expected = path.read_text("utf-8")
        assert actual == expected, f"output differs from golden file {path}"

    return check


@pytest.fixture(scope="module")
def s3() -> Iterator[Any]:
    """A real S3 endpoint on loopback (tests/s3_support.py), one per test module; each
    module's `bucket` fixture makes a fresh bucket and clears its faults."""
    from s3_support import S3Server  # moto: only for the modules that use it

    srv = S3Server()
    yield srv
    srv.stop()
