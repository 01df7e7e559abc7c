"""The served names come from the training dataset's embodiment spec, also after a LeRobot edit
dropped the top-level vla block of its info.json (the spec is restored from the feature copy)."""

from __future__ import annotations

import json

from tests.data.helpers import write_dataset
from tests.data.test_lerobot_metadata import lerobot_edit
from vla.serve.policy_service import _dataset_embodiment


def test_names_survive_a_lerobot_edit_of_the_training_dataset(tmp_path):
    write_dataset(tmp_path / "ds")
    policy = tmp_path / "run" / "policy"
    policy.mkdir(parents=True)
    (policy / "train_config.json").write_text(json.dumps({"dataset": str(tmp_path / "ds")}))
    before = _dataset_embodiment(policy)
    lerobot_edit(tmp_path / "ds")
    after = _dataset_embodiment(policy)
    assert after == before
    assert after["action_names"] == ["dx", "dy", "dz", "gripper"] and after["state_names"][0] == "x"
