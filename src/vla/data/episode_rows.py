"""The episodes table of a dataset being written (meta/episodes/...parquet), spooled to disk in parts.

One row per episode (lengths, file positions, per-episode stats, provenance) would otherwise stay in
memory until the dataset is finalized; rows are kept ``PART_ROWS`` at a time and written as parquet
parts in a scratch folder, then streamed into the final file, one part at a time. Column types are
inferred per part and unified across parts (a column that is null in one part and text in another
is text; int and float give float), with the columns in the order they first appear.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

PART_ROWS = 256


class EpisodeRows:
    """Append-only rows; ``write(path)`` produces the one parquet file."""

    def __init__(self, scratch: Path, part_rows: int = PART_ROWS) -> None:
        self.scratch = scratch
        self.part_rows = part_rows
        self._rows: list[dict[str, Any]] = []
        self._parts: list[Path] = []
        self._count = 0

    def __len__(self) -> int:
        return self._count

    def append(self, row: dict[str, Any]) -> None:
        self._rows.append(row)
        self._count += 1
        if len(self._rows) >= self.part_rows:
            self._spill()

    def _spill(self) -> None:
        if not self._rows:
            return
        keys = list(dict.fromkeys(k for row in self._rows for k in row))
        table = pa.table({k: [row.get(k) for row in self._rows] for k in keys})
        self.scratch.mkdir(parents=True, exist_ok=True)
        path = self.scratch / f"part-{len(self._parts):06d}.parquet"
        pq.write_table(table, path)
        self._parts.append(path)
        self._rows = []

    def write(self, path: Path) -> None:
        """Write every row into `path` (a single parquet file) and remove the scratch parts."""
        self._spill()
        schemas = [pq.read_schema(p) for p in self._parts]
        schema = pa.unify_schemas(schemas, promote_options="permissive")
        with pq.ParquetWriter(path, schema) as out:
            for part in self._parts:
                table = pq.read_table(part)
                cols = [table.column(f.name).cast(f.type) if f.name in table.column_names
                        else pa.nulls(table.num_rows, f.type) for f in schema]
                out.write_table(pa.Table.from_arrays(cols, schema=schema))
        shutil.rmtree(self.scratch, ignore_errors=True)
        self._parts = []
