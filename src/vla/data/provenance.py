"""Per-episode provenance: who collected an episode, how, with what hardware, from which source.

Stored as extra columns of the LeRobot v3.0 episodes table (``provenance/<field>``, JSON-encoded
for nested values), so LeRobot readers ignore them and ours expose them.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

from vla.data.errors import DatasetError, ProvenanceError

COLLECTION_METHODS = ("teleoperation", "kinesthetic", "scripted", "policy_rollout", "intervention")
PREFIX = "provenance/"


@dataclass
class Provenance:
    """Where an episode came from. ``collector_id`` and ``collection_method`` are required."""

    collector_id: str = ""
    collection_method: str = ""
    hardware: dict[str, Any] = field(default_factory=dict)
    calibration: dict[str, Any] = field(default_factory=dict)
    annotation_protocol: str = ""
    source: dict[str, Any] = field(default_factory=dict)
    license: str = ""
    created_at: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict[str, Any] | Provenance) -> Provenance:
        """Build from a dict; unknown keys go to ``extra`` rather than being dropped."""
        if isinstance(d, Provenance):
            return d
        if not isinstance(d, dict):
            raise ProvenanceError(None, f"provenance must be a dict, got {type(d).__name__}")
        names = {f.name for f in fields(cls)}
        known = {k: v for k, v in d.items() if k in names}
        extra = dict(known.pop("extra", {}) or {})
        extra.update({k: v for k, v in d.items() if k not in names})
        return cls(**known, extra=extra)

    def validate(self) -> Provenance:
        """Raise ProvenanceError naming the field when a required field is missing or invalid."""
        if not self.collector_id or not str(self.collector_id).strip():
            raise ProvenanceError(None, "provenance field 'collector_id' is required (who or what collected it)")
        if self.collection_method not in COLLECTION_METHODS:
            raise ProvenanceError(
                None,
                f"provenance field 'collection_method' must be one of {', '.join(COLLECTION_METHODS)}; "
                f"got {self.collection_method!r}",
            )
        for name in ("hardware", "calibration", "source", "extra"):
            if not isinstance(getattr(self, name), dict):
                raise ProvenanceError(None, f"provenance field {name!r} must be a JSON object (dict)")
        if not self.created_at:
            self.created_at = datetime.now(UTC).isoformat(timespec="seconds")
        return self

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_columns(self) -> dict[str, str]:
        """Flatten into episodes-table columns (strings; nested values JSON-encoded)."""
        out = {}
        for k, v in self.to_dict().items():
            out[PREFIX + k] = v if isinstance(v, str) else json.dumps(v, sort_keys=True)
        return out

    @classmethod
    def from_columns(cls, row: dict[str, Any], path: Any = None) -> Provenance | None:
        """Read back from an episodes-table row; None when the row has no provenance columns.

        A cell that is not what its field needs (a dict field holding invalid JSON or a non-object, a
        text field holding a non-string) raises DatasetError naming ``path``, the episode and the column."""
        cols = {k[len(PREFIX):]: v for k, v in row.items() if k.startswith(PREFIX)}
        if not cols:
            return None
        d: dict[str, Any] = {}
        for f in fields(cls):
            v = cols.get(f.name)
            if v is None:
                continue
            where = f"episode {row.get('episode_index')}: column {PREFIX + f.name!r}"
            if f.type.startswith("dict"):
                try:
                    v = json.loads(v) if isinstance(v, str) else v
                except (json.JSONDecodeError, RecursionError) as e:
                    raise DatasetError(path, f"{where}: invalid JSON ({e})") from e
                if v is not None and not isinstance(v, dict):
                    raise DatasetError(path, f"{where}: holds a {type(v).__name__}; expected a JSON object")
            elif not isinstance(v, str):
                raise DatasetError(path, f"{where}: holds {v!r}; expected a string")
            d[f.name] = v
        return cls(**d)
