"""The spooled episodes table: one file, rows in order, column types unified across parts."""

from __future__ import annotations

import pyarrow.parquet as pq

from vla.data.episode_rows import EpisodeRows


def test_parts_unify_into_one_table(tmp_path):
    rows = EpisodeRows(tmp_path / "scratch", part_rows=2)
    rows.append({"episode_index": 0, "x": None, "v": 1})
    rows.append({"episode_index": 1, "x": None, "v": 2})
    rows.append({"episode_index": 2, "x": "text", "v": 2.5, "late": [1.0, 2.0]})  # a new column in a later part
    rows.append({"episode_index": 3, "v": 4})
    rows.append({"episode_index": 4, "x": "more", "v": 5})
    assert len(rows) == 5 and len(list((tmp_path / "scratch").glob("*.parquet"))) == 2
    rows.write(tmp_path / "episodes.parquet")
    t = pq.read_table(tmp_path / "episodes.parquet")
    assert t.column_names == ["episode_index", "x", "v", "late"]
    assert t.column("episode_index").to_pylist() == [0, 1, 2, 3, 4]
    assert t.column("x").to_pylist() == [None, None, "text", None, "more"]
    assert t.column("v").to_pylist() == [1.0, 2.0, 2.5, 4.0, 5.0]
    assert t.column("late").to_pylist() == [None, None, [1.0, 2.0], None, None]
    assert not (tmp_path / "scratch").exists()
