"""Data-quality audit: per-episode findings (time, modalities, actions, episodes), scores, fixes.

``audit(path_or_dataset)`` returns an ``AuditReport``; ``audit_arrays`` runs the same detectors
on plain numpy episodes; ``fix_dataset`` writes a dropped or repaired copy; ``inject`` holds the
fault injectors used by tests and ``benchmarks/audit_recall.py``.
"""

from vla.data.audit.episode import EpisodeArrays, load_episodes, thumbnails
from vla.data.audit.findings import FINDING_TYPES, AuditReport, EpisodeReport, Finding
from vla.data.audit.fix import FixSummary, fix_dataset, repair_arrays
from vla.data.audit.runner import audit, audit_arrays

__all__ = [
    "FINDING_TYPES",
    "AuditReport",
    "EpisodeArrays",
    "EpisodeReport",
    "Finding",
    "FixSummary",
    "audit",
    "audit_arrays",
    "fix_dataset",
    "load_episodes",
    "repair_arrays",
    "thumbnails",
]
