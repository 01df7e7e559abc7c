"""ProgressBar: plain progress lines in a log (non-terminal stream), nothing when disabled."""

from __future__ import annotations

import io

from vla.sim.progress import ProgressBar


def test_a_log_gets_one_line_per_step_and_one_at_the_end() -> None:
    log = io.StringIO()
    with ProgressBar(45, enabled=True, stream=log, every=0.2) as bar:  # a line every 9 episodes
        bar.describe("reach-v3", rejected=2)
        for _ in range(45):
            bar.advance(1)
    lines = log.getvalue().splitlines()
    assert [ln.split()[1] for ln in lines] == ["9/45", "18/45", "27/45", "36/45", "45/45"]
    assert "reach-v3 (rejected 2)" in lines[0]
    assert "(100%)" in lines[-1] and "min left" in lines[-1]


def test_a_jump_past_several_steps_prints_once() -> None:
    log = io.StringIO()
    with ProgressBar(100, enabled=True, stream=log, every=0.1) as bar:
        bar.advance(35)
        bar.advance(1)
        bar.advance(4)
    assert [ln.split()[1] for ln in log.getvalue().splitlines()] == ["35/100", "40/100"]


def test_disabled_prints_nothing() -> None:
    log = io.StringIO()
    with ProgressBar(10, enabled=False, stream=log) as bar:
        for _ in range(10):
            bar.advance(1)
    assert log.getvalue() == ""
