"""Hostile-input corpus: every case through the CLI under a memory limit; counts and worst figures.

    python benchmarks/hostile.py [--out benchmarks/results/hostile.json] [--fresh-class size-bomb] [--cases a b]

1. Every case of ``tests/data/hostile/corpus.py`` runs in a forked child of one driver process (the CLI
   imported once), under ``RLIMIT_AS``, as the tests do: per case peak RSS (wait4) and wall time.
2. The cases of ``--fresh-class`` (default ``size-bomb``; ``all`` for every case) run again with every
   command as its own fresh ``python -m vla.cli`` process (``preexec_fn`` sets ``RLIMIT_AS``; peak RSS
   from ``wait4``), which includes the interpreter and torch import a user's command pays.

The JSON holds per case: class, format, per-command exit codes and error lines, peak RSS, seconds and
the problems the judge found (tracebacks, escapes, leftovers); and per class x format the case count,
the totals of tracebacks / escapes / leftovers and the worst peak RSS and time. Pass another checkout's
``src`` first on PYTHONPATH to run the corpus against it (e.g. the code before the fix).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO)]

from tests.data.hostile.corpus import build  # noqa: E402
from tests.data.hostile.harness import RSS_LIMIT_MB, run  # noqa: E402

AS_LIMIT = int(os.environ.get("VLA_HOSTILE_AS_LIMIT", 6 << 30))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", type=Path, default=REPO / "benchmarks/results/hostile.json")
    ap.add_argument("--fresh-class", default="size-bomb", help="class whose cases also run as fresh processes "
                    "('all', 'none')")
    ap.add_argument("--cases", nargs="*", default=None)
    ap.add_argument("--label", default="this checkout")
    args = ap.parse_args()

    import vla

    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="vla-hostile-") as tmp:
        work = Path(tmp)
        cases = build(work / "cases", args.cases)
        build_s = time.perf_counter() - t0
        judged = run(cases, work)
        run_s = time.perf_counter() - t0 - build_s
        fresh_rows = {}
        for c in cases:
            if args.fresh_class in ("all", c.klass):
                # fresh processes write the same outputs: start from a clean out/
                for p in sorted((Path(c.root) / "out").rglob("*"), reverse=True):
                    p.unlink() if p.is_file() or p.is_symlink() else p.rmdir()
                fresh_rows[c.name] = fresh_with_rusage(c)
    by: dict[tuple[str, str], dict] = defaultdict(lambda: {"cases": 0, "tracebacks": 0, "escapes": 0,
                                                           "leftovers": 0, "cases_with_problems": 0,
                                                           "worst_peak_rss_mb": 0.0, "worst_seconds": 0.0})
    for r in judged:
        s = by[(r["class"], r["format"])]
        s["cases"] += 1
        s["tracebacks"] += r["tracebacks"]
        s["escapes"] += r["escapes"]
        s["leftovers"] += r["leftovers"]
        s["cases_with_problems"] += bool(r["problems"])
        s["worst_peak_rss_mb"] = max(s["worst_peak_rss_mb"], r["peak_rss_mb"])
        s["worst_seconds"] = max(s["worst_seconds"], r["seconds"])
    worst_rss = max(judged, key=lambda r: r["peak_rss_mb"])
    worst_t = max(judged, key=lambda r: r["seconds"])
    fresh_all = [(n, k, v) for n, row in fresh_rows.items() for k, v in row.items() if v["peak_rss_mb"]]
    result = {
        "benchmark": "hostile inputs (issue 16)", "label": args.label, "vla": str(Path(vla.__file__).parent),
        "command": " ".join(["python", "benchmarks/hostile.py", *sys.argv[1:]]),
        "limits": {"rss_mb": RSS_LIMIT_MB, "rlimit_as_bytes": AS_LIMIT},
        "totals": {"cases": len(judged), "commands": sum(len(r["commands"]) for r in judged),
                   "tracebacks": sum(r["tracebacks"] for r in judged),
                   "escapes": sum(r["escapes"] for r in judged), "leftovers": sum(r["leftovers"] for r in judged),
                   "cases_with_problems": sum(bool(r["problems"]) for r in judged),
                   "build_seconds": round(build_s, 1), "run_seconds": round(run_s, 1)},
        "worst": {"peak_rss_mb": [worst_rss["name"], worst_rss["peak_rss_mb"]],
                  "seconds": [worst_t["name"], worst_t["seconds"]]},
        "by_class_and_format": [{"class": k[0], "format": k[1], **v} for k, v in sorted(by.items())],
        "cases": judged,
    }
    if fresh_rows:
        w = max(fresh_all, key=lambda x: x[2]["peak_rss_mb"]) if fresh_all else None
        wt = max(fresh_all, key=lambda x: x[2]["seconds"]) if fresh_all else None
        result["fresh_processes"] = {
            "class": args.fresh_class, "commands": len(fresh_all),
            "tracebacks": sum(v["traceback"] for _, _, v in fresh_all),
            "bad_exits": sum(v["rc"] not in (0, 2) or (v["rc"] == 2 and v["error_lines"] != 1)
                             for _, _, v in fresh_all),
            "worst_peak_rss_mb": [w[0], w[1], w[2]["peak_rss_mb"]] if w else None,
            "worst_seconds": [wt[0], wt[1], wt[2]["seconds"]] if wt else None,
            "cases": fresh_rows}
    try:
        from benchmarks._machine import machine_info, write_result

        result["machine"] = machine_info()
        write_result(args.out, result)
    except ImportError:
        args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["totals"]), json.dumps(result["worst"]), file=sys.stderr)


def fresh_with_rusage(case, timeout: float = 120.0) -> dict:
    """Each command as a fresh ``python -m vla.cli`` under RLIMIT_AS; peak RSS per command via wait4."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([p for p in env.get("PYTHONPATH", "").split(os.pathsep) if p] +
                                        [str(REPO / "src")])

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))

    out = {}
    for cmd in case.commands:
        if cmd.get("if_exists") and not (Path(case.root) / cmd["if_exists"]).exists():
            continue
        t0 = time.perf_counter()
        with tempfile.TemporaryFile() as err:
            pid = subprocess.Popen([sys.executable, "-m", "vla.cli", *cmd["args"]], cwd=case.root, env=env,
                                   stdout=subprocess.DEVNULL, stderr=err, preexec_fn=limit).pid
            deadline = time.monotonic() + timeout
            while True:
                done, status, usage = os.wait4(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    _, status, usage = os.wait4(pid, 0)
                    break
                time.sleep(0.02)
            err.seek(0)
            text = err.read().decode("utf-8", "replace")
        rc = os.WEXITSTATUS(status) if os.WIFEXITED(status) else -os.WTERMSIG(status)
        out[cmd["name"]] = {"rc": rc, "seconds": round(time.perf_counter() - t0, 2),
                            "traceback": "Traceback (most recent call last)" in text,
                            "error_lines": sum(1 for ln in text.splitlines() if ln.startswith("error:")),
                            "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}
    return out


if __name__ == "__main__":
    main()
