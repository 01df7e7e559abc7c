"""Suites, the instructions data file and the seed ranges."""

from __future__ import annotations

import pytest

from vla.eval.groups import difficulty_breakdown, group_mean
from vla.sim import make_suite, suite_names
from vla.sim.seeds import calibration_seed, collection_seed, evaluation_seed, is_calibration_seed, is_evaluation_seed
from vla.sim.suites import DIFFICULTIES, difficulty, load_instructions, mt50_tasks


def test_suite_task_lists():
    assert len(make_suite("mt10").tasks) == 10
    assert len(make_suite("mt50").tasks) == 50
    assert set(make_suite("mt10").tasks) <= set(make_suite("mt50").tasks)
    assert make_suite("mt1:drawer-open-v3").tasks == ("drawer-open-v3",)
    assert "reach-v3" in make_suite("mt10").tasks and "mt1:reach-v3" in suite_names()


def test_mt50_difficulty_groups_and_ml45():
    sizes = {d: len(make_suite(f"mt50:{d}").tasks) for d in DIFFICULTIES}
    assert sizes == {"easy": 28, "medium": 11, "hard": 6, "very_hard": 5}  # the SmolVLA / LeRobot table
    grouped = [t for d in DIFFICULTIES for t in make_suite(f"mt50:{d}").tasks]
    assert sorted(grouped) == sorted(mt50_tasks())  # a partition of MT50
    assert difficulty("reach-v3") == "easy" and difficulty("peg-insert-side-v3") == "medium"
    train, test = make_suite("ml45-train").tasks, make_suite("ml45-test").tasks
    assert len(train) == 45 and len(test) == 5 and not set(train) & set(test)
    assert sorted(train + test) == sorted(mt50_tasks())
    with pytest.raises(ValueError, match="very_hard"):
        make_suite("mt50:impossible")
    with pytest.raises(KeyError, match="fly-v3"):
        difficulty("fly-v3")


def test_difficulty_breakdown_weighs_tasks_equally():
    tasks = {"reach-v3": {"episodes": 10, "successes": 10, "success_rate": 1.0},
             "door-open-v3": {"episodes": 10, "successes": 5, "success_rate": 0.5},
             "push-v3": {"episodes": 4, "successes": 1, "success_rate": 0.25}}
    out = difficulty_breakdown(tasks)
    assert out == {"easy": {"tasks": 2, "episodes": 20, "successes": 15, "success_rate": 0.75},
                   "hard": {"tasks": 1, "episodes": 4, "successes": 1, "success_rate": 0.25}}
    assert group_mean(out) is None  # medium and very hard have no tasks: no paper-style average


def test_group_mean_is_the_papers_unweighted_average_of_the_four_groups():
    # every task of a group scores its group's rate: the task mean weighs easy's 28 tasks, the group mean does not
    rates = {"easy": 0.8, "medium": 0.4, "hard": 0.5, "very_hard": 0.6}
    tasks = {t: {"episodes": 10, "successes": int(rates[difficulty(t)] * 10), "success_rate": rates[difficulty(t)]}
             for t in mt50_tasks()}
    groups = difficulty_breakdown(tasks)
    assert [groups[g]["tasks"] for g in DIFFICULTIES] == [28, 11, 6, 5]
    assert group_mean(groups) == pytest.approx(0.575)
    task_mean = sum(t["success_rate"] for t in tasks.values()) / len(tasks)
    assert task_mean == pytest.approx((28 * 0.8 + 11 * 0.4 + 6 * 0.5 + 5 * 0.6) / 50) != pytest.approx(0.575)


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


def test_calibration_seeds_lie_between_collection_and_evaluation():
    top = calibration_seed(10**6 - 1, 999, 10**6 - 1)
    assert collection_seed(10**6 - 1, 999, 10**6 - 1) < calibration_seed(0, 0, 0) <= top < evaluation_seed(0, 0, 0)
    assert is_calibration_seed(calibration_seed(0, 0, 0)) and is_calibration_seed(top)
    assert not is_calibration_seed(evaluation_seed(0, 0, 0)) and not is_calibration_seed(collection_seed(0, 0, 0))
    assert not is_evaluation_seed(top)


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
