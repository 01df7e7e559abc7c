"""Shared test settings: single-threaded math, headless rendering, the Hypothesis profile, paths to the shared
fixtures."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("OMP_NUM_THREADS", "1")
os.environ.setdefault("MUJOCO_GL", "egl")
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import pytest  # noqa: E402
from hypothesis import settings  # noqa: E402

# CI runs the property tests on a fixed example sequence (HYPOTHESIS_PROFILE=ci, set by .ci/run), so a red run
# can be reproduced from its commit; locally each run explores new examples
settings.register_profile("ci", derandomize=True, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

REPO = Path(__file__).resolve().parents[1]
SHARED = Path(os.environ.get("VLA_SHARED", REPO.parent / "shared"))
FIXTURES = SHARED / "fixtures" / "real"


@pytest.fixture(scope="session")
def real_fixtures() -> Path:
    if not FIXTURES.is_dir():
        raise RuntimeError(f"shared fixtures not found at {FIXTURES} (set VLA_SHARED to the shared/ folder)")
    return FIXTURES
