"""Every finding type is found at its documented strength on synthetic episodes, and clean
episodes stay clean."""

from __future__ import annotations

import numpy as np
import pytest

from vla.data.audit import FINDING_TYPES, audit_arrays
from vla.data.audit import synthetic as S
from vla.data.audit.inject import FAULTS, injection_context

NAMES = ["dx", "dy", "dz", "gripper"]


@pytest.fixture(scope="module")
def clean():
    return [e.arrays(i) for i, e in enumerate(S.dataset(16, seed=3))]


def test_clean_dataset_has_no_findings(clean):
    rep = audit_arrays(clean, S.FPS, action_names=NAMES)
    assert rep.findings == []
    assert rep.score == 1.0
    assert rep.context["action_model"]["relation"] == "delta"


def test_every_finding_type_has_an_injector():
    assert set(FAULTS) == set(FINDING_TYPES)


@pytest.mark.parametrize("name", sorted(FAULTS))
def test_fault_is_found(clean, name):
    fault = FAULTS[name]
    ctx = injection_context(clean)
    ctx["gripper_dims"] = [3]
    rng = np.random.default_rng(7)
    target = {5, 11}
    others = [e for e in clean if e.index not in target]
    eps = [fault.inject(e, rng, fault.documented, others, ctx) if e.index in target else e for e in clean]
    rep = audit_arrays(eps, S.FPS, action_names=NAMES, gripper=[3])
    for t in target:
        er = rep.episode(t)
        assert er.has(name), f"{name} not found in episode {t}: {[f.line() for f in er.findings]}"
        f = next(f for f in er.findings if f.type == name)
        assert f.explanation and f.severity in ("info", "warning", "error")
        assert er.score < 1.0
    flagged = [e.episode for e in rep.episodes if e.episode not in target and e.findings]
    assert not flagged, [f.line() for e in rep.episodes if e.episode in flagged for f in e.findings]


def test_finding_has_frames_and_time_range(clean):
    ep = FAULTS["time.gap"].inject(clean[2], np.random.default_rng(0), 3)
    rep = audit_arrays([ep if e.index == 2 else e for e in clean], S.FPS)
    f = next(f for f in rep.episode(2).findings if f.type == "time.gap")
    assert f.frames[1] > f.frames[0]
    assert f.time_range[1] > f.time_range[0]
    assert "missing" in f.explanation
