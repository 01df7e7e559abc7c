"""vla.data: the episode store (LeRobot v3.0 layout + provenance), readers and writers."""

from vla.data.dataset import Dataset, EpisodeInfo
from vla.data.embodiment import EmbodimentSpec
from vla.data.errors import DatasetError, ProvenanceError
from vla.data.provenance import Provenance
from vla.data.writer import DatasetWriter

__all__ = [
    "Dataset",
    "DatasetError",
    "DatasetWriter",
    "EmbodimentSpec",
    "EpisodeInfo",
    "Provenance",
    "ProvenanceError",
]
