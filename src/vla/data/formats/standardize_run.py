"""The `vla standardize` entry point: a store dataset (ours or LeRobot) through the conversion pipeline.

It lives beside `convert` (whose pipeline it runs) so that `vla.data.standardize`, which holds the
transforms, imports nothing from the pipeline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from vla.data.formats.convert import convert_reader
from vla.data.formats.lerobot import LeRobotReader
from vla.data.standardize import StandardizeConfig


def standardize_dataset(src: str | Path, dst: str | Path, config: StandardizeConfig,
                        provenance: str | Path | dict[str, Any] | None = None, progress: Any = None) -> Any:
    """Read a store dataset (ours or LeRobot), standardize every episode, write a new one at `dst`.

    Returns the `ConvertReport`. Provenance stored in `src` is kept; `provenance` adds to it. Cameras keep
    their storage (video or PNG images)."""
    reader = LeRobotReader(Path(src), decode_images=True)
    videos = any(spec.get("dtype") == "video" for spec in reader.info.features.values())
    return convert_reader(reader, Path(dst), provenance=provenance, standardize=config, progress=progress,
                          src=str(src), use_videos=videos)
