"""The loopback provider: a real HTTP server on 127.0.0.1 that speaks inference.sh's protocol.

Stage: around the provider (a stand-in for rehearsals and tests; `storyc provider serve`).
In: HTTP requests from any client. Out: HTTP responses, tasks that move through the
provider's statuses, real MP4 outputs made with ffmpeg, and fault injection. I/O: a
listening socket, threads, ffmpeg through `storyc.media`.

`serve(...)` (a context manager) and `LoopbackServer` are the entry points.
"""

from storyc.provider.loopback.server import LoopbackServer, serve

__all__ = ["LoopbackServer", "serve"]
