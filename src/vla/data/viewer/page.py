"""Build the self-contained episode page: frames as base64 JPEG, plots and findings in inline JS.

Nothing is loaded from the network: the template (package data ``template.html``) carries its
CSS and JS, and the episode's data is embedded as one JSON object in a non-executable
``<script type="application/json">`` element, with ``<``, ``>`` and ``&`` written as ``\u003c``,
``\u003e`` and ``\u0026``: no string in the data (a task, a name, a provenance field) can end the
element, open a comment or start a script. Frames are downscaled to at
most ``max_width`` pixels wide; long episodes keep every frame (a 500-frame, 2-camera episode at
160 px is roughly 2-3 MB).
"""

from __future__ import annotations

import base64
import io
import json
import math
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np

from vla.data.limits import LimitError

PLACEHOLDER = "/*__DATA__*/"


def jpeg_b64(img: np.ndarray, quality: int = 80, max_width: int = 256) -> str:
    from PIL import Image

    im = Image.fromarray(np.asarray(img, np.uint8))
    if im.width > max_width:
        im = im.resize((max_width, max(1, round(im.height * max_width / im.width))), Image.BILINEAR)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _series(a: np.ndarray | None) -> list[list[float | None]] | None:
    if a is None:
        return None
    a = np.asarray(a, np.float64)
    a = a[:, None] if a.ndim == 1 else a
    return [[None if not math.isfinite(v) else round(float(v), 6) for v in row] for row in a]


def _names(feature: dict | None, n: int) -> list[str]:
    names = (feature or {}).get("names")
    if isinstance(names, dict):
        names = next(iter(names.values()), None)
    if isinstance(names, list) and names and isinstance(names[0], list):
        names = names[0]
    if isinstance(names, list) and len(names) == n:
        return [str(x) for x in names]
    return [f"dim {i}" for i in range(n)]


def page_data(ds: Any, episode: int, findings: list[dict] | None = None, score: float | None = None,
              max_width: int = 256, quality: int = 80) -> dict[str, Any]:
    """The JSON object the page is built from (also useful for tests)."""
    info = ds.episode(episode)
    cols = ds.episode_columns(episode)
    ts = np.asarray(cols.get("timestamp", np.arange(info.length) / ds.fps), np.float64).reshape(-1)
    state = cols.get("observation.state")
    action = cols.get("action")
    frames = {}
    for key in ds.camera_keys:
        try:
            imgs = ds.episode_images(episode, key)
        except LimitError:
            raise  # a stream declaring more than the limits allow is refused, not silently left out
        except Exception:  # noqa: BLE001 - show the page without a broken stream
            continue
        frames[key.split("observation.images.")[-1]] = [jpeg_b64(f, quality, max_width) for f in imgs]
    s = _series(state)
    a = _series(action)
    return {
        "title": f"{Path(ds.root).name} - episode {episode}",
        "subtitle": f"{info.length} frames at {ds.fps:g} Hz ({info.length / ds.fps:.2f} s), robot {ds.robot_type}",
        "fps": ds.fps, "timestamps": [round(float(t), 6) for t in ts],
        "state": s, "action": a,
        "state_names": _names(ds.features.get("observation.state"), len(s[0]) if s else 0),
        "action_names": _names(ds.features.get("action"), len(a[0]) if a else 0),
        "frames": frames, "findings": findings or [], "score": score,
        "instruction": " | ".join(info.tasks), "provenance": info.provenance or {},
        "dataset": {"path": str(ds.root), "fps": ds.fps, "robot_type": ds.robot_type,
                    "episodes": ds.num_episodes, "embodiment": ds.embodiment},
    }


def embed_json(data: Any) -> str:
    """JSON safe inside an HTML element: no '<', '>' or '&' (and no U+2028/9), so nothing can close or
    comment out the element; non-finite numbers become null."""
    from vla.data.atomic import json_safe

    blob = json.dumps(json_safe(data), separators=(",", ":"), allow_nan=False)
    for ch, esc in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e"), ("\u2028", "\\u2028"),
                    ("\u2029", "\\u2029")):
        blob = blob.replace(ch, esc)
    return blob


def render(data: dict[str, Any]) -> str:
    """Fill the template with ``data`` (see `embed_json`) and the HTML-escaped title."""
    import html

    tpl = resources.files("vla.data.viewer").joinpath("template.html").read_text(encoding="utf-8")
    title = html.escape(str(data.get("title", "")))
    head, found, tail = tpl.partition(PLACEHOLDER)
    if not found:
        raise RuntimeError("viewer template lacks its data placeholder")
    # each placeholder is filled once, in the template's own text, never inside inserted content
    return head.replace("__TITLE__", title, 1) + embed_json(data) + tail


def build_page(ds_or_path: Any, episode: int | None = None, out: str | Path | None = None,
               report: Any = None, run_audit: bool = True, max_width: int = 256) -> str:
    """HTML page of one episode (default: the first present). Runs the audit for the findings unless
    ``report`` is given or ``run_audit`` is False. Writes ``out`` when given; returns the HTML."""
    from vla.data import Dataset

    ds = Dataset.open(ds_or_path) if isinstance(ds_or_path, (str, Path)) else ds_or_path
    missing = set(getattr(ds, "missing_episodes", []) or [])
    present = [e.index for e in ds.episodes if e.index not in missing]
    if episode is None:
        if not present:
            raise ValueError(f"{ds.root}: no episode on disk")
        episode = present[0]
    if episode not in present:
        raise ValueError(f"episode {episode} is not in {ds.root} (present: {present[:10]}...)")
    if report is None and run_audit:
        from vla.data.audit import audit

        report = audit(ds)
    findings, score = [], None
    if report is not None:
        rep = next((e for e in report.episodes if e.episode == episode), None)
        if rep is not None:
            findings = [f.to_dict() for f in rep.findings]
            score = rep.score
    html = render(page_data(ds, episode, findings, score, max_width))
    if out is not None:
        Path(out).parent.mkdir(parents=True, exist_ok=True)
        Path(out).write_text(html, encoding="utf-8")
    return html
