"""Turn a dataset folder into catalog records: fingerprint, dataset row, one row per episode.

The fingerprint hashes meta/ files (names, sizes, modification times) and the data/video file
listing, so re-adding an unchanged dataset is a no-op and a rewritten one is re-indexed.
Task category comes from provenance (``extra.task_category``) when given, else from keyword
rules on the instruction. Scene complexity comes from provenance (``extra.scene_complexity``),
else is estimated from the first frame of up to SCENE_SAMPLES episodes per dataset.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from vla.data.catalog.taxonomy import SCENE_LEVELS, scene_complexity, task_category

SCENE_SAMPLES = 3


def fingerprint(root: str | Path) -> str:
    root = Path(root)
    h = hashlib.sha1()
    for sub in ("meta", "data", "videos"):
        base = root / sub
        if not base.exists():
            continue
        for p in sorted(base.rglob("*")):
            if p.is_file():
                st = p.stat()
                h.update(f"{p.relative_to(root)}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()


def _estimate_scene(ds: Any) -> str | None:
    if not ds.camera_keys:
        return None
    present = [e for e in ds.episodes if e.index not in set(getattr(ds, "missing_episodes", []) or [])]
    if not present:
        return None
    picks = [present[int(i * (len(present) - 1) / max(1, SCENE_SAMPLES - 1))] for i in range(SCENE_SAMPLES)]
    dens = []
    for e in {p.index: p for p in picks}.values():
        try:
            frame = ds.frame(e.index, 0)[ds.camera_keys[0]]
        except Exception:  # noqa: BLE001 - a broken video must not stop cataloguing
            continue
        dens.append(scene_complexity(frame)[1])
    if not dens:
        return None
    d = sorted(dens)[len(dens) // 2]
    return "low" if d < 0.06 else ("medium" if d < 0.16 else "high")


def records(ds: Any, quality: dict[int, float] | None = None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """(dataset row, episode rows) for an open Dataset."""
    emb = ds.embodiment or {}
    info = ds.info
    root = Path(ds.root).absolute()
    present = [e for e in ds.episodes if e.index not in set(getattr(ds, "missing_episodes", []) or [])]
    scene_est = None
    eps = []
    licenses = set()
    for e in present:
        prov = dict(e.provenance or {})
        extra = prov.get("extra") or {}
        instr = e.tasks[0] if e.tasks else ""
        scene = extra.get("scene_complexity")
        if scene not in SCENE_LEVELS:
            if scene_est is None:
                scene_est = _estimate_scene(ds) or ""
            scene = scene_est or None
        lic = prov.get("license") or info.get("license") or None
        licenses.add(lic)
        hw = prov.get("hardware") or {}
        eps.append({
            "episode_index": e.index, "length": e.length, "instruction": " | ".join(e.tasks) if e.tasks else "",
            "task_category": extra.get("task_category") or task_category(instr),
            "scene_complexity": scene,
            "quality": (quality or {}).get(e.index),
            "license": lic, "collector_id": prov.get("collector_id"),
            "collection_method": prov.get("collection_method"),
            "robot": emb.get("robot_type") or ds.robot_type or hw.get("robot"),
            "embodiment_type": emb.get("embodiment_type") or _guess_embodiment(ds.robot_type),
            "action_space": emb.get("action_space") or None,
            "control_rate_hz": emb.get("control_rate_hz") or ds.fps,
            "provenance_json": prov,
        })
    dataset = {
        "path": str(root), "name": root.name, "fingerprint": fingerprint(root),
        "codebase_version": info.get("codebase_version"),
        "robot": emb.get("robot_type") or ds.robot_type,
        "embodiment_type": emb.get("embodiment_type") or _guess_embodiment(ds.robot_type),
        "action_space": emb.get("action_space") or None,
        "control_rate_hz": emb.get("control_rate_hz") or ds.fps, "fps": ds.fps,
        "num_episodes": len(present), "num_frames": sum(e.length for e in present),
        "license": ", ".join(sorted(x for x in licenses if x)) or None,
        "quality": None, "audited_at": None,
        "info_json": {k: v for k, v in info.items() if k not in ("features",)},
    }
    return dataset, eps


def _guess_embodiment(robot_type: str | None) -> str | None:
    """Embodiment type from a robot name when the dataset has no embodiment spec."""
    r = (robot_type or "").lower()
    rules = [("humanoid", ("g1", "h1", "humanoid", "unitree_g", "gr1", "optimus", "figure")),
             ("bimanual", ("aloha", "bimanual", "dual", "koch_bimanual")),
             ("mobile_manipulator", ("stretch", "tiago", "fetch", "mobile", "spot_arm", "rby1")),
             ("quadruped", ("go1", "go2", "a1", "spot", "anymal")),
             ("fixed_base_arm", ("panda", "franka", "ur5", "ur10", "sawyer", "widowx", "kuka", "xarm", "so100",
                                 "so101", "koch", "jaco", "kinova", "iiwa"))]
    for name, keys in rules:
        if any(k in r for k in keys):
            return name
    return None


def add_dataset(cat: Any, path: str | Path, run_audit: bool = False, report: Any = None,
                force: bool = False) -> dict[str, Any]:
    """Add or update one dataset; returns {"path", "action": added|updated|unchanged, "episodes"}."""
    from vla.data import Dataset

    root = str(Path(path).absolute())
    fp = fingerprint(root)
    old = cat.fingerprint_of(root)
    if old == fp and not force and not run_audit and report is None:
        return {"path": root, "action": "unchanged", "episodes": None}
    ds = Dataset.open(root)
    quality = None
    if run_audit and report is None:
        from vla.data.audit import audit

        report = audit(ds)
    if report is not None:
        quality = {e.episode: e.score for e in report.episodes}
    dataset, eps = records(ds, quality)
    if report is not None:
        from datetime import UTC, datetime

        dataset["quality"] = report.score
        dataset["audited_at"] = datetime.now(UTC).isoformat(timespec="seconds")
    cat.upsert(dataset, eps)
    return {"path": root, "action": "updated" if old else "added", "episodes": len(eps)}


def load_report(path: str | Path) -> Any:
    from vla.data.audit import AuditReport

    return AuditReport.from_dict(json.loads(Path(path).read_text()))
