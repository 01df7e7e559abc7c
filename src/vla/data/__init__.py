"""vla.data: the episode store (LeRobot v3.0 layout + provenance), readers and writers."""

from vla.data.dataset import Dataset, EpisodeInfo
from vla.data.embodiment import EmbodimentSpec
from vla.data.errors import DatasetError, ProvenanceError
from vla.data.provenance import Provenance
from vla.data.writer import DatasetWriter


def __getattr__(name: str):
    """Lazy re-exports whose modules import this package (``convert``)."""
    if name == "convert":
        from vla.data.formats.convert import convert

        return convert
    raise AttributeError(f"module 'vla.data' has no attribute {name!r}")


__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "EmbodimentSpec",
    "EpisodeInfo",
    "Provenance",
    "ProvenanceError",
    "convert",
]
