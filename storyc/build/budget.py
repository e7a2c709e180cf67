"""The two limits a build keeps while it sends: the budget and the tasks in flight.

Stage: execute (used by `storyc.build.executor`). In: `--max-cost` and `--jobs`. Out:
reservations that succeed or say why not; slots to wait for. No I/O.

**The budget is a reservation.** A take's estimate is reserved in the same synchronous
step as the decision to send it, before the executor awaits anything (a frame to
extract, an upload, a slot), so no two takes can both see room for one. A reservation
is given back only when the take is known not to have cost anything: it stopped or
failed before any byte of the request left, or the provider refused it outright (no
task created). Work in flight and attempts of unknown fate stay reserved. A take whose
price is unknown does not fit under a cap.

**`--jobs` bounds tasks in flight at the provider**: a take holds a slot from the
decision to send it until its task has finished and its output is downloaded; a task
re-attached from an earlier build holds one too (it is running whether or not this
build follows it), so new submissions wait while re-attached ones fill the slots.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal


class OverBudget(Exception):
    """This take does not fit: the message says by how much, for the user."""


class Budget:
    def __init__(self, cap: Decimal | None) -> None:
        self.cap = cap
        self.reserved = Decimal(0)  # sent, in flight and of unknown fate, in this build

    def reserve(self, amount: Decimal | None, *, reason: str = "") -> Decimal:
        """Reserve `amount` (None: unknown) or raise `OverBudget`; returns what was
        reserved (0 for an unknown amount without a cap)."""
        if self.cap is None:
            self.reserved += amount or Decimal(0)
            return amount or Decimal(0)
        if amount is None:
            why = f" ({reason})" if reason else ""
            raise OverBudget(f"its cost is unknown{why}, and a budget needs a price")
        if self.reserved + amount > self.cap:
            raise OverBudget(
                f"${self.reserved:.2f} already sent or reserved + ${amount:.2f} would exceed "
                f"the budget of ${self.cap:.2f}"
            )
        self.reserved += amount
        return amount

    def release(self, amount: Decimal) -> None:
        """Give back a reservation known not to have cost anything."""
        self.reserved -= amount


class Slots:
    """At most `limit` tasks in flight; tasks already running elsewhere are counted."""

    def __init__(self, limit: int) -> None:
        self.limit = max(1, limit)
        self.busy = 0
        self.peak = 0
        self._freed = asyncio.Condition()

    @property
    def full(self) -> bool:
        return self.busy >= self.limit

    async def acquire(self) -> None:
        async with self._freed:
            await self._freed.wait_for(lambda: self.busy < self.limit)
            self._take()

    def take_running(self) -> None:
        """Count a task that is already running on the provider (re-attached): it holds
        a slot at once, even beyond the limit, because it is in flight either way."""
        self._take()

    def _take(self) -> None:
        self.busy += 1
        self.peak = max(self.peak, self.busy)

    async def release(self) -> None:
        async with self._freed:
            self.busy -= 1
            self._freed.notify(1)
