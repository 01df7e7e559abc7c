"""One policy for two simulators and robots, from the command line: collect MetaWorld (Sawyer, 4-D actions,
corner4) and robosuite (Panda, 7-D OSC actions, agentview) demos, train on the mixture, evaluate each robot."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from vla.cli import app
from vla.models import Policy

SIZE = 32


def test_collect_train_and_evaluate_two_robots(tmp_path):
    run = CliRunner()
    mw, rs, out = tmp_path / "mw", tmp_path / "rs", tmp_path / "run"
    res = run.invoke(app, ["collect", "metaworld", "--suite", "mt1:reach-v3", "--episodes-per-task", "1",
                           "--cameras", "corner4", "--image-size", str(SIZE), "--workers", "1", "--out", str(mw)])
    assert res.exit_code == 0, res.output
    res = run.invoke(app, ["collect", "robosuite", "--robots", "Panda", "--tasks", "Lift", "--episodes-per-task", "1",
                           "--cameras", "agentview", "--image-size", str(SIZE), "--workers", "1", "--out", str(rs),
                           "--json"])
    assert res.exit_code == 0, res.output
    res = run.invoke(app, ["train", "--dataset", str(mw), "--dataset", f"{rs / 'Panda'}:2", "--out", str(out),
                           "steps=2", "batch_size=4", "progress=false", "warmup_steps=1", f"cache_dir={tmp_path / 'c'}",
                           f"policy.image_size={SIZE}", "policy.vision_widths=[8,16]", "policy.vision_blocks=[0,1]",
                           "policy.vision_grid=2", "policy.d_model=32", "policy.heads=2", "policy.layers=1"])
    assert res.exit_code == 0, res.output
    policy = Policy.from_pretrained(out)
    assert policy.embodiment_names == ["metaworld_sawyer", "robosuite_panda_osc"]
    assert policy.config.cameras == ["corner4", "agentview"]
    assert policy.registry["robosuite_panda_osc"].cameras == ["agentview"]
    for suite, extra in (("mt1:reach-v3", []), ("robosuite:lift", ["--robot", "Panda"])):
        folder = tmp_path / f"eval_{suite.split(':')[0]}"
        res = run.invoke(app, ["eval", "--policy", str(out), "--suite", suite, *extra, "--episodes-per-task", "1",
                               "--max-steps", "3", "--workers", "1", "--out", str(folder)])
        assert res.exit_code == 0, res.output
        report = json.loads((folder / "report.json").read_text())
        assert report["episodes"] == 1 and report["per_episode"][0]["steps"] == 3
    res = run.invoke(app, ["eval", "--policy", str(out), "--suite", "robosuite:lift", "--robot", "UR5e",
                           "--episodes-per-task", "1", "--max-steps", "3", "--workers", "1",
                           "--out", str(tmp_path / "ur5e")])
    assert res.exit_code != 0 and "robosuite_ur5e_osc" in res.output and "robosuite_panda_osc" in res.output
