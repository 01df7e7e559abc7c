"""The ``vla`` block of meta/info.json (embodiment spec, standardization, normalization) kept where
LeRobot's tools keep it.

LeRobot 0.6.1 reads info.json into a fixed dataclass and drops every top-level key it does not know,
so ``lerobot-edit-dataset`` (delete_episodes, merge, split) writes an info.json without ``vla``. What
its tools copy unchanged is each feature's dict (``dtype``, ``shape``, ``names``, ``info`` and any
other key): delete and split pass ``dataset.meta.features`` to the new dataset, merge deep-copies the
first source's features (and refuses sources whose features differ). So the writer stores

- a copy of the block under ``features[<carrier>]["vla"]`` (carrier: ``action`` if the dataset has
  it, else its first feature), without ``source`` (where one dataset was converted from: a merge has
  several origins, and datasets that differ only there must stay mergeable), and
- the spec's action and state names as the ``names`` of ``action`` / ``observation.state``
  (LeRobot's own place for them) when the caller gave none.

On read, a top-level ``vla`` block wins; without one, ``restore_vla_block`` rebuilds it from the
feature copy and marks it ``restored_from``. Not restored: ``source``.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from vla.data.errors import DatasetError
from vla.data.layout import DEFAULT_FEATURES

FEATURE_KEY = "vla"                 # key of the copy inside a feature's dict
NOT_COPIED = ("source",)            # block keys that describe one dataset's origin
NAMED_FEATURES = {"action": "action_names", "observation.state": "state_names"}


def carrier(features: dict[str, dict[str, Any]]) -> str | None:
    """The feature that carries the copy: ``action``, else the first non-default feature."""
    if "action" in features:
        return "action"
    return next((k for k in features if k not in DEFAULT_FEATURES), None)


def embed_vla_block(features: dict[str, dict[str, Any]], block: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Features with the block's copy on the carrier (stale copies on other features removed) and the
    embodiment's action/state names filled in where a feature has none and the widths match."""
    out = {k: {kk: vv for kk, vv in v.items() if kk != FEATURE_KEY} for k, v in features.items()}
    spec = block.get("embodiment") or {}
    for key, field in NAMED_FEATURES.items():
        names = spec.get(field) or []
        feat = out.get(key)
        if feat is not None and feat.get("names") is None and names and [len(names)] == list(feat.get("shape", [])):
            feat["names"] = [str(n) for n in names]
    target = carrier(out)
    if target is not None:
        out[target][FEATURE_KEY] = {k: copy.deepcopy(v) for k, v in block.items() if k not in NOT_COPIED}
    return out


def restore_vla_block(info: dict[str, Any], path: Path | None = None) -> dict[str, Any]:
    """``info`` with its ``vla`` block: the top-level one if present, else the feature copy (marked
    ``restored_from: features.<name>.vla``), else unchanged. A copy that is not an object is an error."""
    if info.get("vla") is not None:
        return info
    feats = info.get("features") or {}
    names = [k for k, v in feats.items() if isinstance(v, dict) and v.get(FEATURE_KEY) is not None]
    if not names:
        return info
    first = carrier({k: feats[k] for k in names})
    copy_ = feats[first][FEATURE_KEY]
    if not isinstance(copy_, dict):
        raise DatasetError(path, f"field 'features.{first}.{FEATURE_KEY}' is a {type(copy_).__name__}; expected "
                           "an object (the copy of the vla block)")
    return {**info, "vla": {**copy.deepcopy(copy_), "restored_from": f"features.{first}.{FEATURE_KEY}"}}
