"""Fixtures for the format tests: a provenance file and paths to the real sample files."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

PROV = {"collector_id": "test-collector", "collection_method": "teleoperation",
        "hardware": {"gripper": "parallel"}, "annotation_protocol": "none", "license": "MIT"}


@pytest.fixture
def prov_file(tmp_path: Path) -> Path:
    p = tmp_path / "prov.json"
    p.write_text(json.dumps(PROV))
    return p


@pytest.fixture
def nothing_at(tmp_path: Path):
    """Assert a destination holds nothing, not even a leftover temp folder beside it."""

    def check(dst: Path) -> None:
        assert not dst.exists()
        leftovers = [p.name for p in dst.parent.iterdir() if p.name.startswith(f".{dst.name}")]
        assert not leftovers, leftovers

    return check
