"""Audit findings and reports: the data model every detector returns and the CLI prints.

A ``Finding`` is one problem in one episode (or the whole dataset when ``episode`` is None):
a dotted ``type`` (``family.name``), a ``severity``, the frames and seconds involved and one line
saying what was seen. ``EpisodeReport`` groups an episode's findings with its quality score;
``AuditReport`` is the whole dataset's result and serialises to JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Any

SEVERITIES = ("info", "warning", "error")

# Every finding type a detector may emit, with its family and default severity.
FINDING_TYPES: dict[str, str] = {
    "time.non_monotonic": "error",
    "time.duplicate_timestamp": "error",
    "time.jitter": "warning",
    "time.gap": "warning",
    "time.rate_mismatch": "warning",
    "time.stream_offset": "warning",
    "modality.missing": "error",
    "modality.nan": "error",
    "modality.frozen_state": "error",
    "modality.frozen_image": "error",
    "modality.dropped_frames": "warning",
    "modality.frame_count_mismatch": "error",
    "action.inconsistent": "error",
    "action.outlier": "error",
    "action.gripper_flip_flop": "warning",
    "action.sign_error": "error",
    "action.scale_error": "error",
    "action.time_shift": "error",
    "episode.too_short": "warning",
    "episode.too_long": "warning",
    "episode.missing_instruction": "warning",
    "episode.duplicate": "error",
}


@dataclass
class Finding:
    """One problem: type, severity, where (frames [start, end) and seconds) and why (one line)."""

    type: str
    severity: str
    episode: int | None
    frames: tuple[int, int] | None
    explanation: str
    time_range: tuple[float, float] | None = None
    details: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.type not in FINDING_TYPES:
            raise ValueError(f"unknown finding type {self.type!r}")
        if self.severity not in SEVERITIES:
            raise ValueError(f"unknown severity {self.severity!r}")

    @property
    def family(self) -> str:
        return self.type.split(".", 1)[0]

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["frames"] = list(self.frames) if self.frames is not None else None
        d["time_range"] = list(self.time_range) if self.time_range is not None else None
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Finding:
        fr, tr = d.get("frames"), d.get("time_range")
        return cls(
            type=d["type"], severity=d["severity"], episode=d.get("episode"),
            frames=tuple(fr) if fr is not None else None, explanation=d["explanation"],
            time_range=tuple(tr) if tr is not None else None, details=dict(d.get("details") or {}),
        )

    def line(self) -> str:
        where = f"frames {self.frames[0]}-{self.frames[1] - 1}" if self.frames else "whole episode"
        if self.time_range:
            where += f" ({self.time_range[0]:.2f}-{self.time_range[1]:.2f} s)"
        return f"[{self.severity}] {self.type} {where}: {self.explanation}"


def make_finding(
    type_: str, episode: int | None, frames: tuple[int, int] | None, explanation: str,
    timestamps: Any = None, severity: str | None = None, **details: Any,
) -> Finding:
    """Build a Finding with the type's default severity and a time range read from ``timestamps``."""
    time_range = None
    if frames is not None and timestamps is not None and len(timestamps):
        a = int(min(max(frames[0], 0), len(timestamps) - 1))
        b = int(min(max(frames[1] - 1, 0), len(timestamps) - 1))
        time_range = (round(float(timestamps[a]), 4), round(float(timestamps[b]), 4))
    frames = (int(frames[0]), int(frames[1])) if frames is not None else None
    clean = {k: _plain(v) for k, v in details.items()}
    return Finding(type_, severity or FINDING_TYPES[type_], episode, frames, explanation, time_range, clean)


def _plain(v: Any) -> Any:
    """numpy scalars/arrays -> JSON-safe Python values."""
    if hasattr(v, "tolist"):
        return v.tolist()
    if isinstance(v, (list, tuple)):
        return [_plain(x) for x in v]
    if isinstance(v, dict):
        return {str(k): _plain(x) for k, x in v.items()}
    return v


@dataclass
class EpisodeReport:
    """Findings and quality score (0..1, 1 = nothing found) of one episode."""

    episode: int
    length: int
    score: float
    findings: list[Finding] = field(default_factory=list)

    @property
    def worst(self) -> str | None:
        if not self.findings:
            return None
        return max((f.severity for f in self.findings), key=SEVERITIES.index)

    def has(self, type_: str) -> bool:
        return any(f.type == type_ for f in self.findings)

    def to_dict(self) -> dict[str, Any]:
        return {"episode": self.episode, "length": self.length, "score": round(self.score, 4),
                "worst": self.worst, "findings": [f.to_dict() for f in self.findings]}


@dataclass
class AuditReport:
    """The audit of one dataset: per-episode reports, dataset findings, score and the fitted model."""

    path: str
    fps: float
    score: float
    episodes: list[EpisodeReport]
    dataset_findings: list[Finding] = field(default_factory=list)
    context: dict[str, Any] = field(default_factory=dict)

    def episode(self, index: int) -> EpisodeReport:
        for e in self.episodes:
            if e.episode == index:
                return e
        raise KeyError(f"episode {index} not in the audit report")

    @property
    def findings(self) -> list[Finding]:
        return [f for e in self.episodes for f in e.findings] + list(self.dataset_findings)

    def counts(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for f in self.findings:
            out[f.type] = out.get(f.type, 0) + 1
        return dict(sorted(out.items()))

    def bad_episodes(self, min_severity: str = "error") -> list[int]:
        """Episodes with at least one finding of ``min_severity`` or worse."""
        lvl = SEVERITIES.index(min_severity)
        return [e.episode for e in self.episodes if any(SEVERITIES.index(f.severity) >= lvl for f in e.findings)]

    def to_dict(self) -> dict[str, Any]:
        return {
            "path": self.path, "fps": self.fps, "score": round(self.score, 4),
            "num_episodes": len(self.episodes), "counts": self.counts(),
            "bad_episodes": self.bad_episodes(),
            "dataset_findings": [f.to_dict() for f in self.dataset_findings],
            "context": _plain(self.context),
            "episodes": [e.to_dict() for e in self.episodes],
        }

    def to_json(self, indent: int | None = 2) -> str:
        from vla.data.atomic import json_safe

        return json.dumps(json_safe(self.to_dict()), indent=indent, allow_nan=False)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> AuditReport:
        eps = [EpisodeReport(e["episode"], e["length"], e["score"], [Finding.from_dict(f) for f in e["findings"]])
               for e in d["episodes"]]
        return cls(d["path"], d["fps"], d["score"], eps,
                   [Finding.from_dict(f) for f in d.get("dataset_findings", [])], d.get("context", {}))
