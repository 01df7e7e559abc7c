"""Where adaptation data goes: provenance of new episodes, one growing dataset, its audit and catalog entry.

A round's kept episodes are first written to a dataset of their own (encoded once), then merged with the
episodes of the earlier rounds into DIR/dataset: the merge copies every episode's video packets (no
re-encoding) and rewrites tables and statistics, through ``DatasetWriter``, so the growing dataset is always a
complete LeRobot v3.0 dataset (the previous version stays in place until the new one is finalized).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.provenance import Provenance

ROLLOUT_PROTOCOL = ("policy rollout in MetaWorld kept because it succeeded (success-filtered behaviour cloning); "
                    "episode ends {n} steps after the first success; instruction drawn (seeded) from the 'train' "
                    "split of vla/sim/instructions.json")
INTERVENTION_PROTOCOL = ("HG-DAgger-style correction: the failure monitor's alarm handed control from the policy to "
                         "the scripted expert (standing in for a person); frames from the takeover on, with the "
                         "expert's actions, until {n} steps after success; the policy's part is not recorded")


def _hardware(cameras: tuple[str, ...], image_size: int) -> dict[str, Any]:
    return {"robot": "MetaWorld Sawyer (sim)", "gripper": "Sawyer two-finger parallel gripper (sim)",
            "cameras": list(cameras), "image_size": [image_size, image_size],
            "simulator": f"mujoco {metadata.version('mujoco')}"}


def episode_provenance(method: str, collector: str, task: str, seed: int, round_: int, cameras: tuple[str, ...],
                       image_size: int, steps_after_success: int, extra: dict[str, Any]) -> Provenance:
    """Provenance of one adaptation episode (``method``: policy_rollout, intervention or scripted)."""
    protocol = {"policy_rollout": ROLLOUT_PROTOCOL, "intervention": INTERVENTION_PROTOCOL}.get(
        method, "scripted expert demonstration on an adaptation-range scene (the extra-demos baseline); episode ends "
                "{n} steps after the first success")
    return Provenance(
        collector_id=collector, collection_method=method, hardware=_hardware(cameras, image_size), calibration={},
        annotation_protocol=protocol.format(n=steps_after_success),
        source={"format": "metaworld", "path": f"metaworld/{task}", "sha256": None,
                "metaworld_version": metadata.version("metaworld"), "seed": int(seed)},
        license="MIT", extra={"round": int(round_), "seed_range": "adaptation", **extra}).validate()


def write_episodes(path: Path, episodes: list[tuple[dict[str, Any], Provenance]], cameras: tuple[str, ...],
                   image_size: int) -> Path:
    """A new dataset of ``episodes``: (frames {"states", "actions", "images", "instruction"}, provenance) pairs."""
    from vla.data import DatasetWriter
    from vla.sim.collect import embodiment, features
    from vla.sim.defaults import CONTROL_RATE_HZ

    feats = features(cameras, image_size, env_state=False)  # adaptation episodes carry no simulator state
    with DatasetWriter(path, fps=CONTROL_RATE_HZ, features=feats, robot_type="sawyer",
                       embodiment=embodiment(cameras), use_videos=True) as w:
        for ep, prov in episodes:
            for t in range(len(ep["actions"])):
                frame = {"observation.state": ep["states"][t], "action": ep["actions"][t]}
                for cam in cameras:
                    frame[f"observation.images.{cam}"] = ep["images"][cam][t]
                w.add_frame(frame, task=ep["instruction"])
            w.save_episode(prov)
    return path


def merge_datasets(sources: list[Path], out: Path) -> Path:
    """Write every episode of ``sources`` (same features) into ``out``, copying video packets; ``out`` may be
    one of the sources (it is replaced only when the merged dataset is finalized)."""
    from vla.data import Dataset, DatasetWriter
    from vla.data.stats import MAX_IMAGE_FRAMES
    from vla.data.video import VideoSegment, decode_frames, sample_indices
    from vla.sim.collect import features as sim_features

    datasets = [Dataset.open(s) for s in sources]
    first = datasets[0]
    cameras = tuple(k.removeprefix("observation.images.") for k in first.camera_keys)
    features = sim_features(cameras, int(first.features[first.camera_keys[0]]["shape"][0]), env_state=False)
    for ds in datasets[1:]:
        if set(ds.camera_keys) != set(first.camera_keys) or ds.fps != first.fps:
            raise ValueError(f"cannot merge {ds.root} into {first.root}: cameras or fps differ")
    cams = list(first.camera_keys)
    with DatasetWriter(out, fps=first.fps, features=features, robot_type=first.robot_type or "sawyer",
                       embodiment=first.embodiment, use_videos=True, overwrite=True, copied_videos=cams) as w:
        for ds in datasets:
            for e in ds.episodes:
                cols = ds.episode_columns(e.index)
                tasks = ([ds.tasks[int(i)] for i in np.asarray(cols["task_index"]).reshape(-1)]
                         if "task_index" in cols else [e.tasks[0]] * e.length)
                for t in range(e.length):
                    w.add_frame({"observation.state": cols["observation.state"][t], "action": cols["action"][t]},
                                task=tasks[t])
                videos = {}
                for key in cams:
                    ref = e.videos[key]
                    sample = decode_frames(ref.path, ref.from_timestamp, ds.fps, e.length,
                                           sample_indices(e.length, MAX_IMAGE_FRAMES), ds.features[key]["shape"])
                    videos[key] = VideoSegment(ref.path, ref.from_timestamp, ref.to_timestamp, e.length, sample)
                w.save_episode(Provenance.from_dict(dict(e.provenance or {})), videos=videos)
    return out


def audit_summary(path: Path) -> tuple[Any, dict[str, Any]]:
    """Run the data audit (``vla audit``) on ``path``: the report and a summary (passed = no error finding)."""
    from vla.data.audit import audit

    report = audit(path)
    findings = report.findings
    errors = [f for f in findings if f.severity == "error"]
    counts: dict[str, int] = {}
    for f in findings:
        counts[f.type] = counts.get(f.type, 0) + 1
    return report, {"passed": not errors, "score": float(report.score), "errors": len(errors),
                    "warnings": sum(f.severity == "warning" for f in findings), "findings": counts,
                    "bad_episodes": report.bad_episodes("error")}


def catalog_add(catalog: Path, dataset: Path, report: Any) -> dict[str, Any]:
    """Add (or update) ``dataset`` in the SQLite catalog at ``catalog``, with the audit's quality scores."""
    from vla.data.catalog import Catalog, add_dataset

    with Catalog(catalog) as cat:
        return add_dataset(cat, dataset, report=report)
