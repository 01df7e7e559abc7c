"""Online adaptation in simulation: monitored rollouts, expert takeovers (HG-DAgger), success-filtered
rollouts, a growing dataset with provenance, fine-tuning rounds, and the extra-demonstrations baseline.

Drives ``vla.sim``, ``vla.serve.monitor``, ``vla.train`` and ``vla.eval``; nothing there imports from here.
``adapt(AdaptSettings(...))`` or ``vla adapt``.
"""

from vla.adapt.runner import AdaptError, AdaptSettings, adapt

__all__ = ["AdaptError", "AdaptSettings", "adapt"]
