"""Source formats -> our store: LeRobot v2.1/v3.0, RLDS/TFDS, MCAP (ROS 2, JSON, protobuf), HDF5.

    from vla.data.formats.convert import convert      # the module convert.py holds the function convert
    report = convert("bridge_dataset/", "out/", provenance="prov.yaml", workers=2)

One module per format (`rlds`, `mcap`, `hdf5`, `lerobot`, with `tfrecord`/`example` for TFRecord and
tf.train.Example), `convert` for the pipeline, `commands` for the CLI (`vla convert`, `vla inspect`,
`vla standardize`). Standardization lives in `vla.data.standardize`.
"""

from typing import Any

_EXPORTS = {
    "ConversionError": "vla.data.formats.episode", "SourceEpisode": "vla.data.formats.episode",
    "Stream": "vla.data.formats.episode", "ConvertReport": "vla.data.formats.convert",
    "detect_format": "vla.data.formats.convert",
    "inspect_mcap": "vla.data.formats.inspect_mcap",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    """Lazy exports (vla.data.standardize and the converters import each other's modules)."""
    if name not in _EXPORTS:
        raise AttributeError(f"module 'vla.data.formats' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(_EXPORTS[name]), name)
