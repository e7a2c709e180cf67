"""Measure what a paying user loses on each path where money can leak (issue 15's ten
findings), against a loopback provider that counts every submission.

Stage: a script, not a test (it asserts nothing; it prints figures). In: `--tree PATH`,
a checkout of storyc to measure (default: the one this script belongs to); the
loopback provider always comes from this checkout (it counts tasks in flight and when
each `POST /apps/run` arrived). Out: one line per measurement and a table at the end.
I/O: projects under a temporary directory, `storyc` subprocesses, SIGINT and SIGKILL.

Measurements (the same for any tree, so a before/after comparison is like for like):

  F1  submissions and dollars past `--max-cost` when 8 scenes start from one scene's frame
  F2  paid requests that started after "interrupted: no new submissions" (10 builds)
  F3  attempts of unknown fate after kills mid-send; how many had in fact created a task;
      how many were paid for twice to resolve them; where a key with a trailing newline
      ends up (exit code, journal state)
  F4  the most tasks in flight at once at the provider, against `--jobs`
  F5  paid records surviving a preview build: lock entries with URL and digest, what
      renders/<scene>.mp4 shows, what a clone without .storyc/ plans to pay, and what
      `storyc gc --keep-days 0` deletes
  F6  whether the build summary states dollars; whether a command lists the journal
  F7  requests the live schema refused when building every example paid
  F8  tasks paid twice when a build killed mid-send is not yet reaped (a zombie)
  F9  re-fetched outputs adopted with a digest other than the recorded one
  F10 the consent prompt's estimate against `storyc plan`'s, on an edit of an output
  K   duplicate paid submissions over N kill-and-rerun cycles without --resubmit-unknown
      (SIGKILL at spread moments; with the fault hook too, where the tree has it)

Usage: python bench/bench_money.py [--tree PATH] [--only F1,F4] [--cycles 30]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from storyc.media import ffmpeg as media
from storyc.provider import loopback

HERE = Path(__file__).resolve().parent.parent
TREE = HERE
KEY = "inf_loopback_key"


# -- running storyc from the tree under test -------------------------------------------


def _env(server: loopback.LoopbackServer | None, **extra: str) -> dict[str, str]:
    env = {**os.environ, "PYTHONPATH": str(TREE), "STORYC_NO_FASTPATH": "1"}
    if server is not None:
        env.update(server.env)
    env.update(extra)
    return env


def run(
    server: loopback.LoopbackServer | None, *args: str, timeout: float = 300, **extra: str
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "storyc", *args],
        env=_env(server, **extra),
        cwd=tempfile.gettempdir(),  # `-m` puts the working folder first on sys.path
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def start(
    server: loopback.LoopbackServer | None, *args: str, **extra: str
) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "storyc", *args],
        env=_env(server, **extra),
        cwd=tempfile.gettempdir(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def paid(root: Path, *more: str) -> list[str]:
    return ["build", str(root), "--backend", "inference", "--yes", "--json",
            "--poll-interval", "0.05", *more]  # fmt: skip


def events(out: str) -> list[dict[str, Any]]:
    found = []
    for line in out.splitlines():
        if line.startswith("{"):
            with contextlib.suppress(ValueError):
                found.append(json.loads(line))
    return found


def make_project(root: Path, story: str, images: int = 0) -> Path:
    (root / "assets").mkdir(parents=True, exist_ok=True)
    for i in range(images):
        media.make_test_image(root / "assets" / f"img{i}.png", 640, 360, seed=i + 1)
    (root / "main.story").write_text(story, "utf-8")
    return root


def journal_rows(root: Path) -> list[dict[str, Any]]:
    import sqlite3

    path = root / ".storyc" / "journal.sqlite"
    if not path.exists():
        return []
    db = sqlite3.connect(path)
    db.row_factory = sqlite3.Row
    try:
        return [dict(r) for r in db.execute("SELECT * FROM attempts ORDER BY id")]
    finally:
        db.close()


def duplicates(server: loopback.LoopbackServer) -> int:
    """Tasks created for an input that already had a task which did not fail."""
    seen: Counter[str] = Counter()
    extra = 0
    for sub in server.submissions:
        body = json.dumps({"app": sub["app"], "input": sub["input"]}, sort_keys=True)
        if seen[body]:
            extra += 1
        if sub.get("outcome") not in ("failed", "rejected", "cancelled"):
            seen[body] += 1
    return extra


def text_scene(name: str, prompt: str, **extra: str) -> str:
    settings = "".join(f"  {k} = {v}\n" for k, v in extra.items())
    return f'scene {name} {{\n  prompt = "{prompt}"\n  duration = 5\n{settings}}}\n'


HEAD = 'project "Bench" { quality = "std"  aspect = "16:9" }\n'

# -- the measurements ------------------------------------------------------------------


def f1_cap(tmp: Path) -> dict[str, Any]:
    story = HEAD + text_scene("a", "A quiet harbour at dawn")
    story += "".join(
        f'scene b{i} {{ start = a.last_frame  prompt = "Shot {i} from the harbour"  '
        "duration = 5 }\n"
        for i in range(8)
    )
    out: dict[str, Any] = {}
    for jobs in ("8", "4"):
        root = make_project(tmp / f"f1-{jobs}", story)
        with loopback.serve(latency=0.3, fast_outputs=True) as server:
            run(server, *paid(root, "--scene", "a"))
            before = len(server.submissions)
            p = run(server, *paid(root, "--max-cost", "0.84", "--jobs", jobs))
            sent = len(server.submissions) - before
        out[f"jobs {jobs}: submitted (cap allows 2)"] = sent
        out[f"jobs {jobs}: dollars sent (cap $0.84)"] = f"${sent * 0.42:.2f}"
        out[f"jobs {jobs}: exit"] = p.returncode
    return out


def f2_interrupt(tmp: Path, builds: int = 10) -> dict[str, Any]:
    story = HEAD + "".join(f'image img{i} "assets/img{i}.png"\n' for i in range(6))
    story += "".join(
        text_scene(f"s{i}", f"Scene number {i} on the pier", start=f"img{i}") for i in range(6)
    )
    after_message = total = 0
    for b in range(builds):
        root = make_project(tmp / f"f2-{b}", story, images=6)
        # uploads take a while: the interrupt lands while every take is uploading
        with loopback.serve(
            latency=0.2, fast_outputs=True, faults=["upload:delay:seconds=1.5"]
        ) as server:
            proc = start(server, *paid(root, "--jobs", "6"))
            assert proc.stdout is not None
            for line in proc.stdout:
                if '"event": "plan"' in line:
                    break
            time.sleep(0.6 + 0.05 * b)
            proc.send_signal(signal.SIGINT)
            t_msg = None
            for line in proc.stdout:
                if "interrupted" in line and t_msg is None:
                    t_msg = time.monotonic()
                    break
            try:
                proc.communicate(timeout=60)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGINT)
                proc.communicate(timeout=60)
            t_msg = t_msg or time.monotonic()
            after_message += sum(1 for t in server.arrivals if t > t_msg)
            total += len(server.arrivals)
    return {
        f"paid requests started after the message ({builds} builds)": after_message,
        "requests in all": total,
    }


def f3_unknown(tmp: Path) -> dict[str, Any]:
    story = HEAD + "".join(text_scene(f"u{i}", f"Unknown fate shot {i}") for i in range(5))
    unknown = created = paid_twice = 0
    for rnd in range(3):
        root = make_project(tmp / f"f3-{rnd}", story)
        with loopback.serve(
            latency=0.1, fast_outputs=True, faults=["submit:delay:seconds=1.5"]
        ) as server:
            proc = start(server, *paid(root, "--jobs", "5"))
            deadline = time.monotonic() + 30
            while len(server.arrivals) < 5 and time.monotonic() < deadline:
                time.sleep(0.02)
            time.sleep(0.2)  # every POST is in the provider's hands, no answer yet
            proc.kill()
            proc.communicate(timeout=30)
            time.sleep(1.6)  # the provider creates the tasks
            server.faults.faults.clear()
            p = run(server, *paid(root))
            rows = journal_rows(root)
            unknown += sum(1 for r in rows if r["state"] == "unknown")
            created += len(server.submissions)
            n = len(server.submissions)
            # the way out the tree offers: adopt when it can, else --resubmit-unknown
            if _has_command("adopt"):
                _resolve(server, root)
                p = run(server, *paid(root))
            else:
                p = run(server, *paid(root, "--resubmit-unknown"))
            paid_twice += duplicates(server)
            _ = (p, n)
    # a key with a trailing newline: fails before anything leaves the machine
    root = make_project(tmp / "f3-key", HEAD + text_scene("k", "Key test"))
    with loopback.serve(latency=0.0) as server:
        p = run(server, *paid(root), INFERENCE_API_KEY=KEY + "\n")
        states = [r["state"] for r in journal_rows(root)]
    return {
        "attempts of unknown fate (3 kills of 5 sends)": unknown,
        "of which had created a task": created,
        "tasks paid twice to resolve them": paid_twice,
        "key with a trailing newline: exit": p.returncode,
        "key with a trailing newline: journal": states or "(nothing recorded)",
    }


_COMMANDS: dict[str, bool] = {}


def _has_command(name: str) -> bool:
    if name not in _COMMANDS:
        p = run(None, name, "--help")
        _COMMANDS[name] = p.returncode == 0
    return _COMMANDS[name]


def _find_task(server: loopback.LoopbackServer, row: dict[str, Any]) -> str | None:
    """What a user does on the dashboard: find the task whose input is the request."""
    request = row.get("request")
    if not request:
        return None
    want = json.loads(request)["input"]
    claimed = {r.get("task_id") for r in _ROWS if r.get("task_id")}
    for sub in server.submissions:
        if sub["input"] == want and sub["task_id"] not in claimed:
            return str(sub["task_id"])
    return None


_ROWS: list[dict[str, Any]] = []  # the journal being resolved (see _resolve)


def _resolve(server: loopback.LoopbackServer, root: Path) -> int:
    """Resolve every attempt of unknown fate as a user with the dashboard open would."""
    _ROWS[:] = journal_rows(root)
    decided = 0
    for r in list(_ROWS):
        if r["state"] != "unknown":
            continue
        decided += 1
        task = _find_task(server, r)
        if task is not None:
            r["task_id"] = task
            run(server, "adopt", r["scene"], task, str(root))
        else:
            run(server, "forget", r["scene"], str(root))
    return decided


def f4_jobs(tmp: Path) -> dict[str, Any]:
    story = HEAD + "".join(text_scene(f"j{i}", f"Parallel shot {i}") for i in range(14))
    root = make_project(tmp / "f4", story)
    with loopback.serve(latency=1.0, fast_outputs=True) as server:
        run(server, *paid(root))
        return {"peak tasks in flight with the default --jobs 4": server.peak_in_flight}


def f5_previews(tmp: Path) -> dict[str, Any]:
    story = HEAD + "".join(text_scene(f"p{i}", f"Paid shot {i}") for i in range(3))
    root = make_project(tmp / "f5", story)
    out: dict[str, Any] = {}
    with loopback.serve(latency=0.05, fast_outputs=False) as server:
        run(server, *paid(root))
        paid_outputs = _paid_outputs(root)
        run(None, "build", str(root), "--json")  # a preview build
        out["paid lock entries with URL+digest after a preview build (of 3)"] = _paid_with_url(root)
        after_preview = tmp / "f5-gc"
        shutil.copytree(root, after_preview, symlinks=True)
        run(None, "gc", str(after_preview), "--keep-days", "0")
        kept = after_preview / ".storyc" / "objects"
        out["paid clips `storyc gc --keep-days 0` deletes after it (of 3)"] = sum(
            1 for d in paid_outputs.values() if not (kept / d[7:9] / d[9:]).exists()
        )
        out["renders/<scene>.mp4 showing the paid clip after it (of 3)"] = sum(
            1
            for s, d in paid_outputs.items()
            if os.path.realpath(root / "renders" / f"{s}.mp4").endswith(d[9:])
        )
        run(server, *paid(root))
        out["paid lock entries with URL+digest after paid→preview→paid (of 3)"] = _paid_with_url(
            root
        )
        n = len(server.submissions)
        clone = tmp / "f5-clone"
        shutil.copytree(root, clone, ignore=shutil.ignore_patterns(".storyc", "renders"))
        p = run(server, "plan", str(clone), "--backend", "inference", "--json")
        try:
            plan = json.loads(p.stdout)
            out["clone: scenes `plan` would pay for"] = sum(
                1 for s in plan["scenes"].values() if s["render"]
            )
        except ValueError:
            out["clone: scenes `plan` would pay for"] = "?"
        run(server, *paid(clone))
        out["clone: tasks paid by its build"] = len(server.submissions) - n
    return out


def _lock(root: Path) -> dict[str, Any]:
    import tomllib

    try:
        return tomllib.loads((root / "storyc.lock").read_text("utf-8"))
    except (OSError, ValueError):
        return {}


def _paid_outputs(root: Path) -> dict[str, str]:
    scenes = _lock(root).get("scenes", {})
    return {
        n: e["takes"][0]["output"]
        for n, e in scenes.items()
        if e.get("backend") == "inference" and e.get("takes")
    }


def _paid_with_url(root: Path) -> int:
    scenes = _lock(root).get("scenes", {})
    return sum(
        1
        for e in scenes.values()
        if e.get("backend") == "inference"
        and all(t.get("url") and t.get("output") for t in e.get("takes", []))
    )


def f6_spent(tmp: Path) -> dict[str, Any]:
    root = make_project(tmp / "f6", HEAD + text_scene("m", "Money shot"))
    with loopback.serve(latency=0.05, fast_outputs=True) as server:
        p = run(server, "build", str(root), "--backend", "inference", "--yes",
                "--poll-interval", "0.05")  # fmt: skip
    summary = [line for line in (p.stdout + p.stderr).splitlines() if line.startswith("build:")]
    line = summary[-1] if summary else ""
    j = run(None, "journal", str(root))
    return {
        "summary line": line,
        "summary states dollars": bool(re.search(r"\$\d", line)),
        "`storyc journal` exit": j.returncode,
    }


def f7_examples(tmp: Path) -> dict[str, Any]:
    refused = 0
    detail = []
    for ex in sorted((TREE / "examples").iterdir()):
        if not (ex / "main.story").exists():
            continue
        root = tmp / f"f7-{ex.name}"
        shutil.copytree(
            ex, root, ignore=shutil.ignore_patterns(".storyc", "renders", "storyc.lock")
        )
        with loopback.serve(latency=0.05, fast_outputs=True) as server:  # live schema: v2
            p = run(server, *paid(root, "--retries", "0"))
        n = sum(
            1
            for e in events(p.stdout)
            if e.get("state") == "failed" and "rejected the request" in e.get("detail", "")
        )
        refused += n
        detail.append(f"{ex.name}:{n}")
    return {
        "requests refused by the live schema (all examples)": refused,
        "per example": " ".join(detail),
    }


def f8_zombie(tmp: Path) -> dict[str, Any]:
    story = HEAD + "".join(text_scene(f"z{i}", f"Zombie shot {i}") for i in range(6))
    root = make_project(tmp / "f8", story)
    with loopback.serve(
        latency=0.1, fast_outputs=True, faults=["submit:delay:seconds=1.0"]
    ) as server:
        proc = start(server, *paid(root, "--jobs", "6"))
        deadline = time.monotonic() + 30
        while len(server.arrivals) < 6 and time.monotonic() < deadline:
            time.sleep(0.02)
        time.sleep(0.1)
        os.kill(proc.pid, signal.SIGKILL)  # not reaped: a zombie with the same pid
        time.sleep(0.2)
        run(server, *paid(root))
        dup = duplicates(server)
        proc.communicate(timeout=30)
    return {"tasks paid twice after a kill not yet reaped (of 6)": dup}


def f9_refetch(tmp: Path) -> dict[str, Any]:
    story = HEAD + text_scene("a", "First distinct shot") + text_scene("b", "Second distinct shot")
    root = make_project(tmp / "f9", story)
    with loopback.serve(latency=0.05, fast_outputs=False) as server:
        run(server, *paid(root))
        clone = tmp / "f9-clone"
        shutil.copytree(root, clone, ignore=shutil.ignore_patterns(".storyc", "renders"))
        text = (clone / "storyc.lock").read_text("utf-8")
        urls = re.findall(r'url = "([^"]+)"', text)
        if len(urls) >= 2:  # the provider now serves b's clip at a's URL
            text = text.replace(urls[0], "\0").replace(urls[1], urls[0]).replace("\0", urls[1])
            (clone / "storyc.lock").write_text(text, "utf-8")
        p = run(server, *paid(clone))
    expected = _paid_outputs(root)
    wrong = 0
    for scene, digest in expected.items():
        link = clone / "renders" / f"{scene}.mp4"
        if link.exists() and not os.path.realpath(link).endswith(digest[9:]):
            wrong += 1
    return {"outputs adopted with another digest (of 2)": wrong, "exit": p.returncode}


def f10_planners(tmp: Path) -> dict[str, Any]:
    story = (
        HEAD
        + text_scene("arrival", "Arrival at the market")
        + ('scene rain { edit = arrival  prompt = "Add heavy rain to @arrival" }\n')
    )
    root = make_project(tmp / "f10", story)
    p = run(None, "plan", str(root), "--backend", "inference", "--json")
    plan_total = json.loads(p.stdout).get("total")
    with loopback.serve(latency=0.05, fast_outputs=True) as server:
        b = run(server, "build", str(root), "--backend", "inference", "--json",
                "--poll-interval", "0.05")  # no --yes: stops at consent, pays nothing  # fmt: skip
    ev = next((e for e in events(b.stdout) if e.get("event") == "plan"), {})
    prompt = f"${float(ev.get('estimate', 0)):.2f}" + (
        f" + {ev['unknown']} unknown" if ev.get("unknown") else ""
    )
    return {"`storyc plan` total": f"${float(plan_total):.2f}" if plan_total else plan_total,
            "consent prompt estimate": prompt}  # fmt: skip


def k_cycles(tmp: Path, cycles: int) -> dict[str, Any]:
    story = HEAD + "".join(text_scene(f"k{i}", f"Kill and rerun shot {i}") for i in range(4))
    story += 'scene chained { start = k0.last_frame  prompt = "After the first"  duration = 5 }\n'
    root = make_project(tmp / "k", story)
    hook = _has_command("adopt")  # the tree with the fault hook also has adopt/forget
    points = ["after-intent", "after-send", "after-task-id", "after-download", "before-index",
              "before-lock"]  # fmt: skip
    killed = decided = 0
    with loopback.serve(latency=0.3, fast_outputs=True) as server:
        for c in range(cycles):
            # new work in every cycle, so that every kill lands inside a build
            with open(root / "main.story", "a", encoding="utf-8") as f:
                f.write(text_scene(f"n{c}", f"New work for cycle {c}"))
            if hook:  # a named recovery window, in turn
                fault = f"{points[c % len(points)]}:kill"
                proc = start(server, *paid(root, "--jobs", "2"), STORYC_TEST_FAULT=fault)
            else:  # no hook in that tree: SIGKILL at spread moments
                proc = start(server, *paid(root, "--jobs", "2"))
                time.sleep(0.8 + 0.1 * (c % 9))
                proc.kill()
            proc.communicate(timeout=120)
            killed += proc.returncode == -signal.SIGKILL
            if c % 5 == 4 and hook:  # now and then, resolve unknown fates as a user would
                decided += _resolve(server, root)
        for _ in range(4):
            p = run(server, *paid(root))
            if p.returncode == 0 or not hook:
                break
            decided += _resolve(server, root)
        return {
            f"kill-and-rerun cycles (killed mid-build: {killed})": cycles,
            "duplicate paid submissions": duplicates(server),
            "unknown fates resolved by adopt/forget": decided,
            "final build exit": p.returncode,
            f"tasks on the provider (scenes: {5 + cycles})": len(server.submissions),
        }


MEASURES: dict[str, Callable[..., dict[str, Any]]] = {
    "F1": f1_cap,
    "F2": f2_interrupt,
    "F3": f3_unknown,
    "F4": f4_jobs,
    "F5": f5_previews,
    "F6": f6_spent,
    "F7": f7_examples,
    "F8": f8_zombie,
    "F9": f9_refetch,
    "F10": f10_planners,
}


def main() -> None:
    global TREE
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--tree", type=Path, default=HERE, help="the storyc checkout to measure")
    ap.add_argument("--only", default="", help="comma-separated: F1,...,F10,K")
    ap.add_argument("--cycles", type=int, default=30, help="kill-and-rerun cycles for K")
    args = ap.parse_args()
    TREE = args.tree.resolve()
    wanted = [w.strip() for w in args.only.split(",") if w.strip()] or [*MEASURES, "K"]
    probe = run(None, "--version")
    where = subprocess.run(
        [sys.executable, "-c", "import storyc; print(storyc.__file__)"],
        env=_env(None),
        cwd=tempfile.gettempdir(),
        capture_output=True,
        text=True,
    ).stdout.strip()
    print(f"tree: {TREE} ({probe.stdout.strip()} from {where})")
    rows: list[tuple[str, str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-money-") as tmp:
        for name in wanted:
            t0 = time.monotonic()
            try:
                res = k_cycles(Path(tmp), args.cycles) if name == "K" else MEASURES[name](Path(tmp))
            except Exception as exc:  # noqa: BLE001 - a broken measurement is a figure too
                res = {"error": f"{type(exc).__name__}: {exc}"}
            for k, v in res.items():
                rows.append((name, k, v))
                print(f"{name:4} {k}: {v}", flush=True)
            print(f"{name:4} ({time.monotonic() - t0:.0f} s)", flush=True)
    print("\nsummary")
    for name, k, v in rows:
        print(f"  {name:4} {k:70} {v}")


if __name__ == "__main__":
    main()
