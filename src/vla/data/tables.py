"""Small pyarrow helpers shared by the writer and the reader: column building and parquet I/O."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from vla.data.errors import DatasetError
from vla.data.limits import LIMITS, check_bytes

_FIXED_WIDTH = {"BOOLEAN": 1, "INT32": 4, "INT64": 8, "INT96": 12, "FLOAT": 4, "DOUBLE": 8}


def column_from_values(values: list[np.ndarray] | np.ndarray, dtype: str, shape: list[int]) -> pa.Array:
    """A pyarrow column for a feature: scalars for shape [1], fixed-size lists otherwise."""
    arr = np.asarray(values)
    pa_type = pa.from_numpy_dtype(np.dtype(dtype))
    if shape == [1]:
        return pa.array(arr.reshape(-1), type=pa_type)
    flat = arr.reshape(len(arr), -1)
    width = flat.shape[1]
    return pa.FixedSizeListArray.from_arrays(pa.array(flat.reshape(-1), type=pa_type), width)


def column_to_numpy(col: pa.ChunkedArray | pa.Array, path: Path, name: str) -> np.ndarray:
    """Turn a (possibly nested list) column into a dense numpy array [N, ...]."""
    if isinstance(col, pa.ChunkedArray):
        col = col.combine_chunks()
    t = col.type
    if pa.types.is_fixed_size_list(t) or pa.types.is_list(t) or pa.types.is_large_list(t):
        n = len(col)
        flat = column_to_numpy(col.flatten(), path, name)
        if n == 0:
            return flat.reshape(0, 0)
        if flat.shape[0] % n:
            raise DatasetError(path, f"column {name!r} is ragged: {flat.shape[0]} values for {n} rows")
        return flat.reshape((n, flat.shape[0] // n) + flat.shape[1:])
    if pa.types.is_struct(t) or pa.types.is_string(t) or pa.types.is_binary(t):
        return np.asarray(col.to_pylist(), dtype=object)
    return col.to_numpy(zero_copy_only=False)


def declared_bytes(md: pq.FileMetaData) -> int:
    """Decoded size a parquet file declares: values x width for fixed-width columns (so a run-length
    encoded list of millions of zeros counts at its decoded size), the uncompressed size otherwise."""
    total = 0
    for g in range(md.num_row_groups):
        rg = md.row_group(g)
        for c in range(rg.num_columns):
            col = rg.column(c)
            width = _FIXED_WIDTH.get(col.physical_type)
            total += col.num_values * width if width else col.total_uncompressed_size
    return total


def read_parquet(path: Path, columns: list[str] | None = None) -> pa.Table:
    """Read a parquet file; a missing, damaged or oversized file raises DatasetError naming it.

    What the footer declares is compared with the file's size before anything is decoded
    (`vla.data.limits`)."""
    if not path.exists():
        raise DatasetError(path, "file is missing")
    try:
        with pq.ParquetFile(path) as pf:
            check_bytes(declared_bytes(pf.metadata), path.stat().st_size, path, "parquet columns", LIMITS)
            return pf.read(columns=columns)
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(path, f"cannot read parquet (truncated or corrupt?): {e}") from e


def parquet_rows(path: Path) -> int:
    """Row count from the parquet footer (cheap; detects truncation)."""
    if not path.exists():
        raise DatasetError(path, "file is missing")
    try:
        return pq.ParquetFile(path).metadata.num_rows
    except (pa.ArrowException, OSError) as e:
        raise DatasetError(path, f"cannot read parquet footer (truncated or corrupt?): {e}") from e


def tasks_table(tasks: list[str]) -> pa.Table:
    """meta/tasks.parquet as LeRobot v3.0 writes it with pandas: the task string is the index."""
    table = pa.table({"task_index": pa.array(range(len(tasks)), type=pa.int64()), "task": pa.array(tasks)})
    pandas_meta = {
        "index_columns": ["task"],
        "column_indexes": [],
        "columns": [
            {"name": "task_index", "field_name": "task_index", "pandas_type": "int64", "numpy_type": "int64",
             "metadata": None},
            {"name": "task", "field_name": "task", "pandas_type": "unicode", "numpy_type": "object",
             "metadata": None},
        ],
        "creator": {"library": "vla"},
        "pandas_version": "2.2.0",
    }
    return table.replace_schema_metadata({b"pandas": json.dumps(pandas_meta).encode()})


def read_tasks(path: Path) -> list[str]:
    """Task strings ordered by task_index, whatever column holds the string."""
    table = read_parquet(path)
    names = table.column_names
    key = next((c for c in ("task", "__index_level_0__") if c in names), None)
    if key is None or "task_index" not in names:
        raise DatasetError(path, f"expected columns 'task_index' and 'task' (or a pandas index), got {names}")
    from vla.data.meta_checks import dense_tasks

    pairs = list(zip(table.column("task_index").to_pylist(), table.column(key).to_pylist(), strict=True))
    return dense_tasks(pairs, path)
