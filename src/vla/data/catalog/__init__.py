"""Dataset catalog: an SQLite index of datasets and episodes searchable by embodiment, robot,
task category, scene complexity, quality, licence and instruction text; exports selections."""

from vla.data.catalog.export import export
from vla.data.catalog.ingest import add_dataset, fingerprint, records
from vla.data.catalog.schema import SCHEMA_VERSION, migrate
from vla.data.catalog.store import FACETS, Catalog, Query, default_path
from vla.data.catalog.taxonomy import TASK_CATEGORIES, scene_complexity, task_category

__all__ = [
    "FACETS",
    "SCHEMA_VERSION",
    "TASK_CATEGORIES",
    "Catalog",
    "Query",
    "add_dataset",
    "default_path",
    "export",
    "fingerprint",
    "migrate",
    "records",
    "scene_complexity",
    "task_category",
]
