"""Backends: what turns one keyed request into one video in the store.

Stage: execute. In: a `Job` (one scene, one take, its key, the compiled request and the
local files its markers point at). Out: a `Finished` (the output's digest in the store,
plus the provider's task id, URL and cost when there is one). I/O: yes — a backend
renders with ffmpeg (preview) or talks to the provider (inference).

Every backend goes through the same executor path, in three steps, so that the executor
(not the backend) decides what is recorded in the journal and when:

    prepared = await backend.prepare(job)         # e.g. uploads: costs nothing
    task_id  = await backend.submit(job, prepared, may_send=…)  # the only paid step
    finished = await backend.follow(job, task_id)  # wait for the result (re-attachable)

(`follow(..., wait=False)` asks once and raises `StillRunning` when the task has not
ended: that is how a detached build collects what finished and leaves the rest.)

`submit` asks `may_send()` right before every request it sends (a stop requested in
between sends nothing), and raises `NotSent` when the request certainly did not reach
the provider (safe to retry), `MaybeSent` when it might have (never retried
automatically) and `TaskFailed` when the provider answered with an error.
`refetch(url, expected)` downloads a recorded output again and keeps it only when it is
exactly the recorded digest (`FetchFailed` otherwise). `follow` may be called in a later process with
a task id read back from the journal: that is how an interrupted build re-attaches.
"""

from __future__ import annotations

from storyc.backends.protocol import (
    Backend,
    BackendError,
    BackendOptions,
    FetchFailed,
    Finished,
    Job,
    LocalInput,
    MaybeSent,
    NotSent,
    SetupError,
    StatusCallback,
    StillRunning,
    TaskFailed,
)

__all__ = [
    "BACKENDS",
    "Backend",
    "BackendError",
    "BackendOptions",
    "FetchFailed",
    "Finished",
    "Job",
    "LocalInput",
    "MaybeSent",
    "NotSent",
    "SetupError",
    "StatusCallback",
    "StillRunning",
    "TaskFailed",
    "create",
    "names",
]

BACKENDS = ("preview", "inference")


def names() -> tuple[str, ...]:
    return BACKENDS


def create(name: str, options: BackendOptions) -> Backend:
    """Build the backend called `name`; raises SetupError for an unknown name or bad setup."""
    if name == "preview":
        from storyc.backends.preview import PreviewBackend

        return PreviewBackend(options)
    if name == "inference":
        from storyc.backends.inference import InferenceBackend

        return InferenceBackend(options)
    raise SetupError(f"unknown backend {name!r} (known: {', '.join(BACKENDS)})")
