"""Benchmark: the language server through the protocol, and `storyc fmt --check`.

Stage: a script, not a test (timings vary with the machine; nothing here asserts a
speed). In: `--scenes` (default 1000), `--files` (20), `--edits` (30), `--fmt-scenes`
(10000). Out: figures on stdout. I/O: writes projects under a temporary directory,
starts `storyc lsp` and `storyc fmt` as subprocesses, deletes everything.

The server is driven as an editor drives it: JSON-RPC over its stdin/stdout (the
Content-Length framing by hand, so the client costs nothing measurable). Figures:

  diagnostics   from sending a one-character edit (didChange) of an open file to
                receiving the publishDiagnostics for it (the whole project re-checked)
  hover         a scene's name: request to response (prompt as sent, cost, build state)
  completion    after `@` inside a prompt: request to response
  fmt --check   `storyc fmt --check` over a formatted project, wall and CPU time (best of 3)

CPU time is printed beside wall time because on a shared machine the wall time also
counts the time other processes hold the cores; on an idle machine the two agree.

Targets from the issue: diagnostics <= 50 ms (median), hover and completion <= 20 ms at
1,000 scenes over 20 files; fmt --check <= 1 s at 10,000 scenes.

Usage: python bench/bench_editor.py [--scenes 1000] [--files 20] [--edits 30]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from storyc.media import ffmpeg as media


def generate(root: Path, scenes: int, files: int) -> list[Path]:
    (root / "assets").mkdir(parents=True, exist_ok=True)
    media.make_test_image(root / "assets" / "market.png", 640, 480)
    media.make_test_image(root / "assets" / "mei.png", 480, 640)
    per = max(1, scenes // files)
    parts: list[Path] = []
    for f in range(files):
        lines = []
        for i in range(f * per, min(scenes, (f + 1) * per)):
            chain = f"  start    = s{i - 1}.last_frame\n" if i % 4 and i % per else ""
            lines.append(
                f"scene s{i} : look {{\n{chain}"
                f'  prompt   = "@mei walks past @market, shot {i}, {{{{ style }}}}"\n'
                "  duration = 5\n}\n"
            )
        part = root / f"part{f:02d}.story"
        part.write_text("\n".join(lines), "utf-8")
        parts.append(part)
    includes = "".join(f'include "{p.name}"\n' for p in parts)
    (root / "main.story").write_text(
        'project "Bench" {\n  aspect = "16:9"\n}\n\n'
        'let style = "35mm film, neon reflections"\n\n'
        'image market "assets/market.png"\n\n'
        'element mei {\n  frontal     = "assets/mei.png"\n  description = "a woman"\n}\n\n'
        'style look {\n  quality = "std"\n}\n\n' + includes,
        "utf-8",
    )
    return parts


class Client:
    def __init__(self, root: Path) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "storyc", "lsp"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        self.next_id = 0
        self.request("initialize", {"capabilities": {}, "rootUri": root.as_uri()})
        self.notify("initialized", {})

    def _send(self, obj: dict[str, Any]) -> None:
        body = json.dumps(obj).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _recv(self) -> dict[str, Any]:
        out = self.proc.stdout
        assert out is not None
        length = 0
        while True:
            line = out.readline()
            if line in (b"\r\n", b""):
                break
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":")[1])
        message: dict[str, Any] = json.loads(out.read(length))
        return message

    def notify(self, method: str, params: dict[str, Any]) -> None:
        self._send({"jsonrpc": "2.0", "method": method, "params": params})

    def request(self, method: str, params: dict[str, Any]) -> Any:
        self.next_id += 1
        self._send({"jsonrpc": "2.0", "id": self.next_id, "method": method, "params": params})
        while True:
            msg = self._recv()
            if msg.get("id") == self.next_id:
                return msg.get("result")

    def wait_diagnostics(self, uri: str) -> list[Any]:
        while True:
            msg = self._recv()
            if (
                msg.get("method") == "textDocument/publishDiagnostics"
                and msg["params"]["uri"] == uri
            ):
                return list(msg["params"]["diagnostics"])

    def cpu(self) -> float:
        """Seconds of CPU the server has used (user + system), from /proc."""
        try:
            fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return float("nan")
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def close(self) -> None:
        self.request("shutdown", {})
        self.notify("exit", {})
        self.proc.wait(timeout=10)


def ms(xs: list[float]) -> str:
    return f"median {statistics.median(xs) * 1000:.1f} ms (min {min(xs) * 1000:.1f}, max {max(xs) * 1000:.1f}, n={len(xs)})"


def bench_lsp(scenes: int, files: int, edits: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        parts = generate(root, scenes, files)
        target = parts[len(parts) // 2]
        uri = target.as_uri()
        text = target.read_text("utf-8")
        client = Client(root)
        t = time.perf_counter()
        client.notify(
            "textDocument/didOpen",
            {"textDocument": {"uri": uri, "languageId": "story", "version": 1, "text": text}},
        )
        diags = client.wait_diagnostics(uri)
        print(
            f"  first check (open):  {(time.perf_counter() - t) * 1000:.0f} ms, {len(diags)} diagnostics"
        )
        at = text.index("shot ") + 5
        line = text.count("\n", 0, at)
        col = at - (text.rfind("\n", 0, at) + 1)
        times = []
        cpu0 = client.cpu()
        for n in range(edits):
            ch = "xy"[n % 2]
            t = time.perf_counter()
            client.notify(
                "textDocument/didChange",
                {
                    "textDocument": {"uri": uri, "version": n + 2},
                    "contentChanges": [
                        {
                            "range": {
                                "start": {"line": line, "character": col},
                                "end": {"line": line, "character": col + (1 if n else 0)},
                            },
                            "text": ch,
                        }
                    ],
                },
            )
            client.wait_diagnostics(uri)
            times.append(time.perf_counter() - t)
        per = (client.cpu() - cpu0) / edits * 1000
        print(
            f"  diagnostics after a one-character edit: {ms(times)}; server CPU {per:.0f} ms/edit"
        )
        name_at = text.index("scene ") + 7
        pos = {"line": text.count("\n", 0, name_at), "character": 7}
        doc = {"uri": uri}
        # The first hover after a check also makes the build plan (lock file, store).
        t = time.perf_counter()
        client.request("textDocument/hover", {"textDocument": doc, "position": pos})
        print(
            f"  first hover after a check (makes the build plan): {(time.perf_counter() - t) * 1000:.0f} ms"
        )
        times = []
        cpu0 = client.cpu()
        for _ in range(edits):
            t = time.perf_counter()
            r = client.request("textDocument/hover", {"textDocument": doc, "position": pos})
            times.append(time.perf_counter() - t)
        assert r and "prompt as sent" in r["contents"]["value"], r
        per = (client.cpu() - cpu0) / edits * 1000
        print(f"  hover on a scene:    {ms(times)}; server CPU {per:.1f} ms/request")
        m = text.index("@mei") + 1
        cpos = {"line": text.count("\n", 0, m), "character": m - (text.rfind("\n", 0, m) + 1)}
        times = []
        cpu0 = client.cpu()
        for _ in range(edits):
            t = time.perf_counter()
            r = client.request("textDocument/completion", {"textDocument": doc, "position": cpos})
            times.append(time.perf_counter() - t)
        assert r and any(i["label"] == "mei" for i in r["items"]), r
        per = (client.cpu() - cpu0) / edits * 1000
        print(
            f"  completion after @:  {ms(times)}; server CPU {per:.1f} ms/request "
            f"({len(r['items'])} items)"
        )
        client.close()


def bench_fmt(scenes: int) -> None:
    with tempfile.TemporaryDirectory() as d:
        root = Path(d)
        generate(root, scenes, max(1, scenes // 500))
        subprocess.run(
            [sys.executable, "-m", "storyc", "fmt", str(root)], check=True, capture_output=True
        )
        best = best_cpu = float("inf")
        for _ in range(3):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            t = time.perf_counter()
            r = subprocess.run(
                [sys.executable, "-m", "storyc", "fmt", "--check", str(root)], capture_output=True
            )
            best = min(best, time.perf_counter() - t)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            used = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            best_cpu = min(best_cpu, used)
            assert r.returncode == 0, r.stdout + r.stderr
        t = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        start = time.perf_counter() - t
        size = sum(p.stat().st_size for p in root.glob("*.story"))
        print(
            f"  fmt --check, {scenes} scenes ({size / 1e6:.1f} MB): {best:.2f} s wall, "
            f"{best_cpu:.2f} s CPU (python start-up alone {start:.2f} s wall)"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--scenes", type=int, default=1000)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--edits", type=int, default=30)
    ap.add_argument("--fmt-scenes", type=int, default=10000)
    args = ap.parse_args()
    print(f"language server, {args.scenes} scenes over {args.files} files:")
    bench_lsp(args.scenes, args.files, args.edits)
    print("formatter:")
    bench_fmt(args.fmt_scenes)


if __name__ == "__main__":
    main()
