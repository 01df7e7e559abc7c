"""Quality scores: 1.0 for an episode with no finding, lower with each finding by severity."""

from __future__ import annotations

from vla.data.audit.findings import EpisodeReport, Finding

PENALTY = {"error": 0.5, "warning": 0.15, "info": 0.02}


def episode_score(findings: list[Finding]) -> float:
    """Product of (1 - penalty) over findings; one penalty per finding type (repeats don't stack)."""
    worst: dict[str, float] = {}
    for f in findings:
        worst[f.type] = max(worst.get(f.type, 0.0), PENALTY[f.severity])
    score = 1.0
    for p in worst.values():
        score *= 1.0 - p
    return round(score, 4)


def dataset_score(episodes: list[EpisodeReport], dataset_findings: list[Finding]) -> float:
    """Frame-weighted mean of episode scores, lowered by dataset-level findings."""
    total = sum(max(e.length, 1) for e in episodes)
    mean = sum(e.score * max(e.length, 1) for e in episodes) / total if total else 0.0
    for f in dataset_findings:
        mean *= 1.0 - PENALTY[f.severity] / 2
    return round(mean, 4)
