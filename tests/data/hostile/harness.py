"""Build corpus cases, run them through the driver (subprocess, memory limit) and judge the results.

`judge` applies the corpus contract to one case: every command exits 0 or prints exactly one
``error:`` line and exits 2, never a traceback; a command that must fail does; nothing is written
outside the allowed outputs (``out/dst``, ``out/*.html``, ``out/audit.json``); nothing is left
behind (no temporary folder beside ``out/dst``, no ``out/dst`` after a failed convert); peak RSS
stays under ``RSS_LIMIT_MB``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.data.hostile.corpus import Case, build

REPO = Path(__file__).resolve().parents[3]
RSS_LIMIT_MB = 1024.0
ALLOWED = ("out/dst", "out/audit.json", "out/view.html", "out/view-dst.html")


def snapshot(base: Path) -> set[str]:
    """Every file and link under ``base`` (relative), not following symlinks."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(base):
        for n in filenames + [d for d in dirnames if (Path(dirpath) / d).is_symlink()]:
            out.add(str((Path(dirpath) / n).relative_to(base)))
    return out


def run(cases: list[Case], workdir: Path) -> list[dict[str, Any]]:
    """Run ``cases`` (built under ``workdir``) in one driver subprocess, one fork per case; returns the
    judged results. Files that appear under ``workdir`` but outside every case folder count as escapes."""
    spec, out = workdir / "cases.json", workdir / "results.json"
    spec.write_text(json.dumps([c.to_json() for c in cases]))
    out.unlink(missing_ok=True)
    before = snapshot(workdir)
    # the caller's PYTHONPATH first (so the corpus can be run against another checkout's src), then this one
    paths = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p] + [str(REPO / "src"), str(REPO)]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(paths)}
    subprocess.run([sys.executable, "-m", "tests.data.hostile.driver", str(spec), str(out)], cwd=REPO, env=env,
                   check=True, timeout=3600)
    results = json.loads(out.read_text())
    new = snapshot(workdir) - before - {"results.json"}
    rels = {c.name: str(Path(c.root).relative_to(workdir)) + os.sep for c in cases}
    stray = {p for p in new if not any(p.startswith(r) for r in rels.values())}
    return [judge(c, res, {p[len(rels[c.name]):] for p in new if p.startswith(rels[c.name])}, stray)
            for c, res in zip(cases, results, strict=True)]


def judge(case: Case, res: dict[str, Any], new_files: set[str], stray: set[str]) -> dict[str, Any]:
    """Apply the corpus contract to one case's results (see module docstring)."""
    problems = []
    root = Path(case.root)
    if res["killed"] or res["exit"] not in (0, None):
        problems.append(f"case process died (signal {res['signal']}, exit {res['exit']})")
    ran = {c["name"] for c in res["commands"]}
    for cmd in case.commands:
        if cmd["name"] not in ran and not cmd.get("if_exists"):
            problems.append(f"{cmd['name']}: did not run")
    tracebacks = 0
    for c in res["commands"]:
        if c["traceback"]:
            tracebacks += 1
            problems.append(f"{c['name']}: traceback: {c['output'][-600:]}")
        elif c["rc"] not in (0, 2):
            problems.append(f"{c['name']}: exit {c['rc']}: {c['output'][-300:]}")
        elif c["rc"] == 2 and len(c["error_lines"]) != 1:
            problems.append(f"{c['name']}: exit 2 with {len(c['error_lines'])} 'error:' lines: {c['output'][-300:]}")
        if c["expect"] == "error" and c["rc"] != 2:
            problems.append(f"{c['name']}: expected one clean error (exit 2), got exit {c['rc']}")
        if c["expect"] == "ok" and c["rc"] != 0:
            problems.append(f"{c['name']}: expected success, got exit {c['rc']}: {c['output'][-300:]}")
    escapes = sorted(p for p in new_files if not p.startswith(ALLOWED)) + sorted(stray)
    if escapes:
        problems.append(f"written outside the allowed outputs: {escapes[:5]}")
    leftovers = sorted(p.name for p in (root / "out").iterdir() if p.name.startswith(".dst"))
    convert = next((c for c in res["commands"] if c["name"] == "convert"), None)
    if convert is not None and convert["rc"] != 0 and (root / "out/dst").exists():
        leftovers.append("out/dst after a failed convert")
    if leftovers:
        problems.append(f"left behind: {leftovers}")
    if res["peak_rss_mb"] >= RSS_LIMIT_MB:
        problems.append(f"peak RSS {res['peak_rss_mb']} MB >= {RSS_LIMIT_MB} MB")
    return {"name": case.name, "class": case.klass, "format": case.format, "note": case.note,
            "peak_rss_mb": res["peak_rss_mb"], "seconds": res["seconds"], "tracebacks": tracebacks,
            "escapes": len(escapes), "leftovers": len(leftovers),
            "commands": {c["name"]: {"rc": c["rc"], "error": (c["error_lines"] or [""])[0][:300],
                                     "seconds": c["seconds"]} for c in res["commands"]},
            "problems": problems}


def build_and_run(workdir: Path, names: list[str] | None = None) -> list[dict[str, Any]]:
    cases = build(workdir / "cases", names)
    return run(cases, workdir)
