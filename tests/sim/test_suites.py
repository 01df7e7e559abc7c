"""Suites, the instructions data file and the seed ranges."""

from __future__ import annotations

import pytest

from vla.sim import make_suite, suite_names
from vla.sim.seeds import collection_seed, evaluation_seed, is_evaluation_seed
from vla.sim.suites import load_instructions, mt50_tasks


def test_suite_task_lists():
    assert len(make_suite("mt10").tasks) == 10
    assert len(make_suite("mt50").tasks) == 50
    assert set(make_suite("mt10").tasks) <= set(make_suite("mt50").tasks)
    assert make_suite("mt1:drawer-open-v3").tasks == ("drawer-open-v3",)
    assert "reach-v3" in make_suite("mt10").tasks and "mt1:reach-v3" in suite_names()


@pytest.mark.parametrize("name", ["mt11", "ml10", "mt1:fly-v3", ""])
def test_unknown_suite_lists_valid_names(name):
    with pytest.raises(ValueError) as e:
        make_suite(name)
    assert "mt10" in str(e.value) or "reach-v3" in str(e.value)
    assert "drawer-open-v3" in str(e.value)


def test_instructions_complete_and_split():
    data = load_instructions()
    assert sorted(data) == sorted(mt50_tasks())
    suite = make_suite("mt50")
    for task in suite.tasks:
        train, heldout = suite.instructions(task, "train"), suite.instructions(task, "heldout")
        assert len(train) >= 4 and len(heldout) >= 2, task
        assert len(set(train)) == len(train) and len(set(heldout)) == len(heldout), task
        assert not set(train) & set(heldout), task
        assert all(s.strip() == s and s for s in train + heldout), task
        # held-out ones are reworded, not the same words shuffled
        train_bags = {frozenset(s.lower().split()) for s in train}
        assert not any(frozenset(s.lower().split()) in train_bags for s in heldout), task


def test_instructions_errors():
    suite = make_suite("mt10")
    with pytest.raises(ValueError, match="heldout"):
        suite.instructions("reach-v3", "test")
    with pytest.raises(KeyError, match="not in suite"):
        suite.instructions("hammer-v3")


def test_collection_and_evaluation_seeds_are_disjoint():
    top_collection = collection_seed(10**6 - 1, 999, 10**6 - 1)
    assert top_collection < evaluation_seed(0, 0, 0)
    assert not is_evaluation_seed(top_collection) and is_evaluation_seed(evaluation_seed(0, 0, 0))
    assert collection_seed(0, 3, 7) != collection_seed(0, 4, 7) != collection_seed(1, 3, 7)
    with pytest.raises(ValueError):
        collection_seed(0, 0, 10**6)


def test_adaptation_seeds_lie_between_collection_and_evaluation():
    from vla.sim.seeds import adaptation_seed, is_adaptation_seed

    top_collection = collection_seed(10**6 - 1, 999, 10**6 - 1)
    low, high = adaptation_seed(0, 0, 0, 0), adaptation_seed(10**6 - 1, 99, 999, 9_999)
    assert top_collection < low and high < evaluation_seed(0, 0, 0)
    assert is_adaptation_seed(low) and is_adaptation_seed(high) and not is_adaptation_seed(top_collection)
    assert not is_evaluation_seed(high)
    # rounds and tasks give different scenes
    assert len({adaptation_seed(0, r, t, e) for r in range(3) for t in range(3) for e in range(3)}) == 27
    with pytest.raises(ValueError, match="round"):
        adaptation_seed(0, 100, 0, 0)
    with pytest.raises(ValueError, match="episode"):
        adaptation_seed(0, 0, 0, 10_000)
