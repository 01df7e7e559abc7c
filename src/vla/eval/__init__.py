"""vla.eval: policy rollouts in simulation, success with confidence intervals, latency, HTML report.

Import from the submodules (``vla.eval.runner.evaluate``): this package imports nothing itself, so the
``vla`` command starts without loading torch.
"""
