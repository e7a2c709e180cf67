"""Benchmark: how long a syntax error takes to explain, by the size of the text before it.

Stage: a script, not a test (timings vary with the machine; nothing here asserts a
speed). In: `--sizes` (characters, default 20000,40000,1000000) and `--limit` (seconds a
single parse may take before it is given up on and reported as over the limit). Out:
figures on stdout. I/O: none beyond starting one child process per figure (so a parse
that would take hours can be stopped).

Each shape puts a long run of one kind of text right before a syntax error, the way a
pasted prompt or a generated file does. Explaining an error must cost time linear in the
text (the issue measured 3.6 s at 20k characters, 15 s at 40k and hours at 1 MB before).

Usage: python bench/bench_syntax_errors.py [--sizes 20000,40000,1000000] [--limit 120]
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import time

SHAPES = {
    # word characters, a closing quote, then the error
    "string then error": lambda n: 'scene a { prompt = "' + "a" * n + '" 5 }\n',
    "name then error": lambda n: "scene a { prompt = " + "a" * n + " 5 }\n",
    "words then error": lambda n: "scene a { prompt = " + "ab " * (n // 3) + "$ }\n",
    "digits then error": lambda n: "scene a { duration = " + "1" * min(n, 4000) + "a" * n + " 5 }",
    "unclosed block": lambda n: "scene a {\n" + '  prompt = "x"\n' * (n // 15),
    "many errors": lambda n: "scene a { prompt = x y }\n" * (n // 25),
}


def _one(shape: str, n: int, out: mp.Queue) -> None:  # type: ignore[type-arg]
    from storyc.lang.parser import parse_text

    parse_text("scene a { }", "warm.story")  # builds the shared parser: not part of the figure
    text = SHAPES[shape](n)
    t = time.perf_counter()
    result = parse_text(text, "main.story")
    out.put((time.perf_counter() - t, len(result.diagnostics)))


def measure(shape: str, n: int, limit: float) -> str:
    q: mp.Queue = mp.Queue()  # type: ignore[type-arg]
    p = mp.Process(target=_one, args=(shape, n, q))
    p.start()
    p.join(limit)
    if p.is_alive():
        p.kill()
        p.join()
        return f"> {limit:.0f} s (stopped)"
    seconds, n_diags = q.get()
    return f"{seconds * 1000:9.1f} ms  ({n_diags} diagnostic{'s' if n_diags != 1 else ''})"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sizes", default="20000,40000,1000000")
    ap.add_argument("--limit", type=float, default=120.0)
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    for shape in SHAPES:
        for n in sizes:
            print(f"{shape:18} {n:>9,} chars  {measure(shape, n, args.limit)}", flush=True)


if __name__ == "__main__":
    main()
