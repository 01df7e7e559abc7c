"""The recall benchmark's bookkeeping: an episode.duplicate injection always has an earlier
untouched episode to copy (so a pick never counts as a miss with nothing injected), and a demo
verified by hand as genuinely odd is recognized by its provenance."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

from vla.data.audit import EpisodeArrays
from vla.data.audit.inject import FAULTS

BENCH = Path(__file__).resolve().parents[3] / "benchmarks" / "audit_recall.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("audit_recall_bench", BENCH)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _eps(n: int, tasks: int = 1) -> list[EpisodeArrays]:
    rng = np.random.default_rng(0)
    return [EpisodeArrays(i, np.arange(10) / 10.0, rng.normal(size=(10, 2)), rng.normal(size=(10, 2)),
                          tasks=[f"task {i % tasks}"], provenance={"source": {"path": f"t/{i % tasks}"}})
            for i in range(n)]


@pytest.mark.parametrize("stratify,tasks", [(False, 1), (True, 2)])
def test_duplicate_picks_always_have_an_earlier_donor(bench, stratify, tasks):
    eps = _eps(8, tasks)
    src = {"episodes": eps, "stratify": stratify}
    rng = np.random.default_rng(0)
    for _ in range(200):
        idx = bench.pick(src, rng, needs_earlier=True)
        assert 0 not in idx
        donors = [e for e in eps if e.index not in idx]
        for i in idx:
            out = FAULTS["episode.duplicate"].inject(eps[i], rng, 1, donors, {})
            assert not np.array_equal(out.action, eps[i].action)   # something was injected
    # other faults still pick from every episode
    assert any(0 in bench.pick(src, rng) for _ in range(200))


def test_known_defect_is_matched_by_provenance(bench):
    (path, seed), (kind, evidence) = next(iter(bench.KNOWN_DEFECTS.items()))
    ep = EpisodeArrays(3, np.arange(4) / 10.0, provenance={"source": {"path": path, "seed": seed}})
    assert bench.known_defect(ep) == kind and evidence
    ep.provenance["source"]["seed"] = seed + 1
    assert bench.known_defect(ep) is None
