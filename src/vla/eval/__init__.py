"""vla.eval: policy rollouts in simulation, success with confidence intervals, latency, HTML report."""

from vla.eval.runner import evaluate, resolve_policy_dir

__all__ = ["evaluate", "resolve_policy_dir"]
