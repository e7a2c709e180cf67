"""`storyc board --serve`: the board over HTTP on 127.0.0.1, reloading when rewritten.

Stage: review (a local tool). In: the project's `renders/` folder and a port. Out: the
files of that folder over HTTP (GET and HEAD only, nothing outside it), plus
`/__board_version`, the `data-version` stamped on the current `board.html`; the page polls
it once a second and reloads when it changes (whoever rewrote the page: `storyc watch
--board`, another `storyc board`). I/O: reads `renders/`; listens on loopback only.
"""

from __future__ import annotations

import functools
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from storyc.review.board import PAGE

_VERSION = re.compile(rb'data-version="([0-9a-f]*)"')


def page_version(folder: Path) -> str:
    try:
        with open(folder / PAGE, "rb") as f:
            head = f.read(200)
    except OSError:
        return ""
    m = _VERSION.search(head)
    return m.group(1).decode() if m else ""


class _Handler(SimpleHTTPRequestHandler):
    folder: Path

    def do_GET(self) -> None:
        if self.path.split("?", 1)[0] == "/__board_version":
            body = page_version(self.folder).encode()
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; charset=utf-8")
            self.send_header("Cache-Control", "no-store")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        if self.path in ("/", ""):
            self.path = f"/{PAGE}"
        super().do_GET()

    def log_message(self, format: str, *args: object) -> None:
        return None  # a page polling every second would flood the terminal


class BoardServer:
    """A server for `folder` on 127.0.0.1:`port` (0: any free port) in a thread."""

    def __init__(self, folder: Path, port: int = 0) -> None:
        bound = type("BoardHandler", (_Handler,), {"folder": folder})
        handler = functools.partial(bound, directory=str(folder))
        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self.httpd.server_address[:2]
        return f"http://{host!s}:{port}/{PAGE}"

    def start(self) -> BoardServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(5)
