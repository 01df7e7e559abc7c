"""Every `vla` command answers a missing input path with one ``error:`` line naming it and exit code 2."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

# {missing} is a path that does not exist, {out} a fresh output path; each command reads {missing}
COMMANDS = {
    "info": "info {missing}",
    "convert": "convert {missing} {out}",
    "inspect": "inspect {missing}.mcap",
    "standardize": "standardize {missing} {out} --fps 10",
    "audit": "audit {missing}",
    "view": "view {missing} --episode 0 --out {out}.html",
    "train": "train --dataset {missing} --out {out}",
    "train --config": "train --dataset {missing} --out {out} --config {missing}.yaml",
    "eval": "eval --policy {missing} --out {out}",
    "serve": "serve --policy {missing}",
    "serve --api-key-file": "serve --policy {missing} --api-key-file {missing}.key",
    "catalog add": "catalog add {missing}",
    "catalog search": "catalog search --catalog {missing}.db",
    "catalog stats": "catalog stats --catalog {missing}.db",
    "catalog export": "catalog export --catalog {missing}.db {out}",
}


def _terminal_lines(stderr: str) -> list[str]:
    """The lines a terminal shows (a progress bar redrawn with \\r leaves only its last state)."""
    return [seg for line in stderr.split("\n") if (seg := line.split("\r")[-1].strip())]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_missing_path_gives_one_error_line_and_exit_2(name: str, tmp_path: Path) -> None:
    missing = tmp_path / "does_not_exist"
    args = COMMANDS[name].format(missing=missing, out=tmp_path / "out").split()
    env = {**os.environ, "VLA_CATALOG": str(tmp_path / "default_catalog.db")}
    r = subprocess.run([sys.executable, "-c", "from vla.cli import main; main()", *args], capture_output=True,
                       text=True, timeout=300, env=env)
    lines = _terminal_lines(r.stderr)
    assert r.returncode == 2, (r.returncode, r.stderr[-2000:])
    assert "Traceback" not in r.stderr and len(lines) == 1, r.stderr[-2000:]
    assert lines[0].startswith("error: ") and str(missing) in lines[0], lines
    assert not missing.exists() and not (tmp_path / "out").exists(), "a failed command left something behind"
    assert not Path(f"{missing}.db").exists(), "a query created a catalog"


def test_the_vla_script_is_the_main_that_maps_errors() -> None:
    """`vla` (the installed script) goes through main(), so errors a command lets through are mapped too."""
    from importlib.metadata import entry_points

    (ep,) = [e for e in entry_points(group="console_scripts") if e.name == "vla"]
    assert ep.value == "vla.cli:main"
