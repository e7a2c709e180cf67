"""Prices: what one take of a scene will cost, from a documented table.

Stage: plan. In: a `Request` (its quality, duration and whether it has a reference
video), the backend, and for base editing the real length of the input video. Out:
an `Estimate` — free (the preview backend), a known amount in USD as a `Decimal`, or
unknown (never shown as $0). Pure; no I/O.

The table is provider-facts §3, per second of output video. The v2 schema's
`resolution` is priced like the v1 `mode` it replaced: 720p as std, 1080p as pro
(the target records that as `Request.quality`). Base editing produces a video as
long as its input; the provider bills whole seconds, so the input's length is
rounded up to the next second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal

from storyc.targets.request import Request

# USD per second of output: (quality, has a reference video) -> price.
PRICE_PER_SECOND: dict[tuple[str, bool], Decimal] = {
    ("std", False): Decimal("0.084"),
    ("std", True): Decimal("0.126"),
    ("pro", False): Decimal("0.112"),
    ("pro", True): Decimal("0.168"),
}
FREE_BACKENDS = frozenset({"preview"})
CENT = Decimal("0.01")

EstimateKind = Literal["free", "known", "unknown"]


@dataclass(frozen=True, slots=True)
class Estimate:
    """The cost of some takes of one scene. `amount` is None exactly when unknown."""

    kind: EstimateKind
    amount: Decimal | None
    takes: int = 1
    seconds: int | None = None  # per take
    per_second: Decimal | None = None
    reason: str = ""  # why it is unknown, or how it was computed

    def times(self, takes: int) -> Estimate:
        amount = None if self.amount is None else self.amount / self.takes * takes
        return Estimate(self.kind, amount, takes, self.seconds, self.per_second, self.reason)


FREE = Estimate("free", Decimal(0), reason="preview renders are free")


def price_per_second(quality: str, has_video_input: bool) -> Decimal | None:
    return PRICE_PER_SECOND.get((quality, has_video_input))


def output_seconds(request: Request, base_duration: float | None) -> int | None:
    """Seconds of video one take produces, or None when it cannot be known."""
    if request.duration is not None:
        return int(request.duration)
    if base_duration is None or base_duration <= 0:
        return None
    return math.ceil(base_duration - 1e-6)


def estimate(
    request: Request, *, backend: str, takes: int | None = None, base_duration: float | None = None
) -> Estimate:
    """Cost of `takes` takes (default: all of the request's takes)."""
    n = request.takes if takes is None else takes
    if backend in FREE_BACKENDS:
        return Estimate(
            "free",
            Decimal(0),
            n,
            output_seconds(request, base_duration),
            Decimal(0),
            "preview renders are free",
        )
    rate = price_per_second(request.quality, request.has_video_input)
    if rate is None:
        return Estimate("unknown", None, n, reason=f"no price for quality {request.quality!r}")
    seconds = output_seconds(request, base_duration)
    if seconds is None:
        return Estimate(
            "unknown", None, n, None, rate, "the length of the video to edit is not known yet"
        )
    return Estimate("known", rate * seconds * n, n, seconds, rate, f"{n} × {seconds} s × ${rate}/s")


def total(estimates: list[Estimate]) -> tuple[Decimal, int]:
    """(sum of the known and free amounts, number of unknown estimates)."""
    known = sum((e.amount for e in estimates if e.amount is not None), Decimal(0))
    return known, sum(1 for e in estimates if e.amount is None)


def format_usd(amount: Decimal | None, *, free: bool = False) -> str:
    if amount is None:
        return "unknown"
    if free and amount == 0:
        return "free"
    return f"${amount.quantize(CENT)}"


def format_estimate(e: Estimate) -> str:
    if e.kind == "free":
        return "free"
    return format_usd(e.amount)
