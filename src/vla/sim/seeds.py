"""Episode seeds: collection, monitor calibration, adaptation and evaluation draw from disjoint ranges.

A seed fixes an episode's scene (object and goal positions) and its instruction choice.

- collection: ``(seed * 1000 + task_index) * 1_000_000 + attempt``, below 10**15;
- calibration (``vla monitor calibrate``): ``2**61 + (seed * 1000 + task_index) * 1_000_000 + episode``, in
  [2**61, 2**61 + 10**15);
- adaptation (``vla adapt`` rollouts, round ``r``): ``2**61 + 2**60 + (seed * 1000 + task_index) * 1_000_000
  + r * 10_000 + episode``, in [2**61 + 2**60, 2**61 + 2**60 + 10**15) (rounds < 100, episodes per round < 10_000);
- evaluation: ``2**62 + (seed * 1000 + task_index) * 1_000_000 + episode``, at or above 2**62.

``task_index`` is the task's position among all 50 MT50 tasks (so a task gets the same seeds
in mt1, mt10 and mt50), ``seed`` is the user's run seed (0 <= seed < 10**6), attempt/episode
counts within a task (< 10**6). No collection, calibration or adaptation scene can therefore appear in an
evaluation, and the four ranges never meet.
"""

from __future__ import annotations

EVALUATION_BASE = 2**62
CALIBRATION_BASE = 2**61
ADAPTATION_BASE = 2**61 + 2**60
MAX_ADAPT_ROUNDS = 100
MAX_ADAPT_EPISODES = 10_000
_MAX_RUN_SEED = 10**6
_MAX_TASKS = 1000
_MAX_EPISODES = 10**6


def _compose(seed: int, task_index: int, episode: int) -> int:
    if not 0 <= seed < _MAX_RUN_SEED:
        raise ValueError(f"run seed must be in [0, {_MAX_RUN_SEED}), got {seed}")
    if not 0 <= task_index < _MAX_TASKS:
        raise ValueError(f"task index must be in [0, {_MAX_TASKS}), got {task_index}")
    if not 0 <= episode < _MAX_EPISODES:
        raise ValueError(f"episode/attempt index must be in [0, {_MAX_EPISODES}), got {episode}")
    return (seed * _MAX_TASKS + task_index) * _MAX_EPISODES + episode


def collection_seed(seed: int, task_index: int, attempt: int) -> int:
    """Seed of collection attempt ``attempt`` of task ``task_index`` in run ``seed``."""
    return _compose(seed, task_index, attempt)


def evaluation_seed(seed: int, task_index: int, episode: int) -> int:
    """Seed of evaluation episode ``episode`` of task ``task_index`` in run ``seed``."""
    return EVALUATION_BASE + _compose(seed, task_index, episode)


def calibration_seed(seed: int, task_index: int, episode: int) -> int:
    """Seed of monitor-calibration episode ``episode`` of task ``task_index`` in run ``seed``."""
    return CALIBRATION_BASE + _compose(seed, task_index, episode)


def is_calibration_seed(value: int) -> bool:
    """True for seeds from the calibration range."""
    return CALIBRATION_BASE <= value < ADAPTATION_BASE


def adaptation_seed(seed: int, round_: int, task_index: int, episode: int) -> int:
    """Seed of rollout ``episode`` of task ``task_index`` in adaptation round ``round_`` of run ``seed``."""
    if not 0 <= round_ < MAX_ADAPT_ROUNDS:
        raise ValueError(f"adaptation round must be in [0, {MAX_ADAPT_ROUNDS}), got {round_}")
    if not 0 <= episode < MAX_ADAPT_EPISODES:
        raise ValueError(f"adaptation episode index must be in [0, {MAX_ADAPT_EPISODES}), got {episode}")
    return ADAPTATION_BASE + _compose(seed, task_index, round_ * MAX_ADAPT_EPISODES + episode)


def is_adaptation_seed(value: int) -> bool:
    """True for seeds from the adaptation range."""
    return ADAPTATION_BASE <= value < EVALUATION_BASE


def is_evaluation_seed(value: int) -> bool:
    """True for seeds from the evaluation range."""
    return value >= EVALUATION_BASE
