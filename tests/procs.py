"""A child process for the tests whose every wait has a deadline: its output is read by
threads, so a stuck child fails its test within seconds, saying what it printed, instead of
hanging CI. (No tests in this file; tests/test_suite_honesty.py makes the tests use it.)"""

from __future__ import annotations

import queue
import subprocess
import threading
from collections.abc import Iterator, Sequence
from typing import IO


class Child:
    """`subprocess.Popen` with stdout as a stream of lines (each awaited with a timeout)
    and stderr collected on the side, so neither pipe can fill up and block the child."""

    def __init__(
        self,
        args: Sequence[str],
        *,
        env: dict[str, str] | None = None,
        cwd: str | None = None,
        stdout: bool = True,
    ) -> None:
        self.proc = subprocess.Popen(
            list(args),
            env=env,
            cwd=cwd,
            stdout=subprocess.PIPE if stdout else subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._err: list[str] = []
        self._eof = not stdout
        self._threads = [threading.Thread(target=self._pump_err, daemon=True)]
        if stdout:
            self._threads.append(threading.Thread(target=self._pump_out, daemon=True))
        for t in self._threads:
            t.start()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _pump_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self._lines.put(line)
        self._lines.put(None)

    def _pump_err(self) -> None:
        stream: IO[str] | None = self.proc.stderr
        assert stream is not None
        for line in stream:
            self._err.append(line)

    def stderr(self) -> str:
        """What the child has written to stderr so far."""
        return "".join(self._err)

    def readline(self, timeout: float = 60) -> str:
        """The next line of stdout ("" at its end), or the child is killed and the test
        fails if none comes within `timeout` seconds."""
        if self._eof:
            return ""
        try:
            line = self._lines.get(timeout=timeout)
        except queue.Empty:
            self.proc.kill()
            raise AssertionError(
                f"the child printed no line for {timeout} s; stderr so far:\n{self.stderr()}"
            ) from None
        if line is None:
            self._eof = True
            return ""
        return line

    def lines(self, timeout: float = 60) -> Iterator[str]:
        """stdout's lines as they come, to its end; each within `timeout` s of the last."""
        while line := self.readline(timeout):
            yield line

    def send_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def finish(self, timeout: float) -> tuple[int, str, str]:
        """Wait for the child's end: (exit code, the rest of stdout, all of stderr). A
        child still running after `timeout` seconds is killed and the test fails."""
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(10)
            raise AssertionError(
                f"the child did not end within {timeout} s; stderr:\n{self.stderr()}"
            ) from None
        for t in self._threads:
            t.join(10)
        rest = []
        while not self._eof and (line := self.readline(10)):
            rest.append(line)
        return code, "".join(rest), self.stderr()

    def __enter__(self) -> Child:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        for t in self._threads:  # the pipes end with the child (unless it left a grandchild)
            t.join(10)
        for stream in (self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()
