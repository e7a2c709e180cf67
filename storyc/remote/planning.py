"""The plan with the team store: which takes the team already has, found in batches.

Stage: remote (over plan). In: a function that makes a plan given a `RemoteLookup`
(`storyc.plan.planner.make_plan` with everything else bound), a `TeamStore`. Out: the
plan in which every take the team store has is `pull` instead of `render`. I/O: the
listings of `storyc.remote.team.TeamStore.lookup_many`.

A scene's key is known only once the outputs of the scenes it uses are known, and a
pulled upstream's output is known from the listing alone (the record's name holds it).
So the plan is made in waves: each wave asks, in one batch, every key the planner met
that the team store was not yet asked about; the next wave can then compute the keys of
the scenes downstream of what the team has. Planning is cheap next to a round trip, so
a project needs as many round trips as its longest chain of pulled scenes, not one per
scene.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from storyc.plan.planner import RemoteLookup
from storyc.remote.client import RemoteError
from storyc.remote.team import TeamStore

P = TypeVar("P")
MAX_WAVES = 64


class RemoteView:
    """`RemoteLookup` over what the team store said so far; notes what it was not asked."""

    def __init__(self, team: TeamStore) -> None:
        self.team = team
        self.pending: set[str] = set()

    def output(self, key: str) -> str | None:
        if self.team.asked(key):
            return self.team.known(key)
        self.pending.add(key)
        return None


def plan_with_remote(make: Callable[[RemoteLookup | None], P], team: TeamStore | None) -> P:
    """`make(remote)` until the team store has been asked about every key it needs.

    A team store that does not answer is reported (W340) and the plan is made without it."""
    if team is None or not team.usable:
        return make(None)
    view = RemoteView(team)
    for _ in range(MAX_WAVES):
        plan = make(view)
        if not view.pending:
            return plan
        try:
            team.lookup_many(view.pending)
        except RemoteError as exc:
            team.mark_down(exc)
            return make(None)
        view.pending = set()
    return make(view)
