"""Summary of a dataset for `vla info`: counts, features, tasks, provenance, size, missing episodes and
video files, and feature names that break LeRobot's conventions."""

from __future__ import annotations

from collections import Counter
from typing import Any

from vla.data.conventions import nonstandard_features
from vla.data.dataset import Dataset


def dataset_summary(ds: Dataset) -> dict[str, Any]:
    """A JSON-ready summary of ``ds``."""
    collectors: Counter[str] = Counter()
    methods: Counter[str] = Counter()
    hardware: Counter[str] = Counter()
    licenses: Counter[str] = Counter()
    sources: Counter[str] = Counter()
    with_prov = 0
    for e in ds.episodes:
        p = e.provenance
        if not p:
            continue
        with_prov += 1
        collectors[p.get("collector_id", "")] += 1
        methods[p.get("collection_method", "")] += 1
        hardware[str((p.get("hardware") or {}).get("robot", ""))] += 1
        licenses[p.get("license", "")] += 1
        sources[str((p.get("source") or {}).get("format", ""))] += 1
    features = {
        k: {"dtype": v["dtype"], "shape": v["shape"]} for k, v in ds.features.items()
    }
    return {
        "path": str(ds.root),
        "codebase_version": ds.version,
        "episodes": ds.num_episodes,
        "frames": ds.num_frames,
        "fps": ds.fps,
        "robot_type": ds.robot_type,
        "features": features,
        "cameras": ds.camera_keys,
        "tasks": ds.tasks,
        "embodiment": ds.embodiment,
        "provenance": {
            "episodes_with_provenance": with_prov,
            "collectors": dict(collectors),
            "collection_methods": dict(methods),
            "hardware": dict(hardware),
            "licenses": dict(licenses),
            "source_formats": dict(sources),
        },
        "size_bytes": ds.size_bytes(),
        "missing_episodes": ds.missing_episodes,
        "listed_episodes": ds.num_episodes + len(ds.missing_episodes),
        "missing_videos": [m.to_json(ds.root) for m in ds.missing_videos],
        "nonstandard_features": [f.to_json() for f in nonstandard_features(ds.features, require_action=True)],
    }
