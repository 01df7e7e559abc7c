"""The catalog database: one SQLite file of datasets and episodes with facets and FTS5 search.

Opened in WAL mode (readers never block each other or a writer) with a busy timeout, migrated
to the current schema on open. Location: ``--catalog PATH`` > ``$VLA_CATALOG`` >
``$XDG_DATA_HOME/vla/catalog.sqlite`` (``~/.local/share/vla/catalog.sqlite``).
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from vla.data.catalog.schema import migrate
from vla.errors import VlaError

FACETS = {  # CLI / query name -> episodes column
    "embodiment": "embodiment_type",
    "robot": "robot",
    "task_category": "task_category",
    "scene": "scene_complexity",
    "license": "license",
    "collection_method": "collection_method",
}
EPISODE_COLUMNS = ("episode_index", "length", "instruction", "task_category", "scene_complexity", "quality",
                   "license", "collector_id", "collection_method", "robot", "embodiment_type", "action_space",
                   "control_rate_hz", "provenance_json")
DATASET_COLUMNS = ("path", "name", "fingerprint", "codebase_version", "robot", "embodiment_type", "action_space",
                   "control_rate_hz", "fps", "num_episodes", "num_frames", "license", "quality", "audited_at",
                   "info_json")


def default_path() -> Path:
    """$VLA_CATALOG, else the user's data dir (XDG) / vla / catalog.sqlite."""
    env = os.environ.get("VLA_CATALOG")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "vla" / "catalog.sqlite"


@dataclass
class Query:
    """A catalog selection. Facet values are exact (case-insensitive); ``text`` is FTS5 over instructions."""

    embodiment: str | None = None
    robot: str | None = None
    task_category: str | None = None
    scene: str | None = None
    license: str | None = None
    collection_method: str | None = None
    min_quality: float | None = None
    text: str | None = None
    dataset: str | None = None
    limit: int | None = 100

    @classmethod
    def parse(cls, s: str) -> Query:
        """``key=value`` pairs separated by spaces (quote values with spaces): the CLI ``--query``."""
        import shlex

        q = cls(limit=None)
        for part in shlex.split(s or ""):
            if "=" not in part:
                raise ValueError(f"query part {part!r} is not key=value")
            k, v = part.split("=", 1)
            k = k.strip().replace("-", "_")
            if k == "min_quality":
                q.min_quality = float(v)
            elif k == "limit":
                q.limit = int(v)
            elif k in FACETS or k in ("text", "dataset"):
                setattr(q, k, v)
            else:
                raise ValueError(f"unknown query key {k!r}; use {sorted([*FACETS, 'text', 'dataset', 'min_quality'])}")
        return q


def fts_expression(text: str) -> str:
    """Words -> an FTS5 expression matching all of them (prefix match on each)."""
    words = re.findall(r"[A-Za-z0-9]+", text or "")
    return " AND ".join(f'"{w}"*' for w in words)


class CatalogError(VlaError):
    """The catalog file asked for does not exist (queries never create one)."""


class Catalog:
    """SQLite catalog of datasets and episodes."""

    @classmethod
    def existing(cls, path: str | Path | None = None) -> Catalog:
        """Open a catalog that must already exist (for queries: a mistyped path is an error, not an empty file)."""
        target = Path(path) if path is not None else default_path()
        if not target.is_file():
            raise CatalogError(f"{target}: no catalog here (create one with `vla catalog add DATASET "
                               f"--catalog {target}`)")
        return cls(target)

    def __init__(self, path: str | Path | None = None, readonly: bool = False) -> None:
        self.path = Path(path) if path is not None else default_path()
        if readonly:
            self.con = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.con = sqlite3.connect(self.path, timeout=30)
        self.con.row_factory = sqlite3.Row
        self.con.execute("PRAGMA busy_timeout = 30000")
        self.con.execute("PRAGMA foreign_keys = ON")
        if not readonly:
            self.con.execute("PRAGMA journal_mode = WAL")
            self.con.execute("PRAGMA synchronous = NORMAL")
            migrate(self.con)

    def close(self) -> None:
        self.con.close()

    def __enter__(self) -> Catalog:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        return int(self.con.execute("PRAGMA user_version").fetchone()[0])

    # -- writing -----------------------------------------------------------
    def fingerprint_of(self, path: str) -> str | None:
        row = self.con.execute("SELECT fingerprint FROM datasets WHERE path = ?", (path,)).fetchone()
        return row["fingerprint"] if row else None

    def upsert(self, dataset: dict[str, Any], episodes: Iterable[dict[str, Any]]) -> int:
        """Insert or replace a dataset and all its episodes in one transaction; returns its id."""
        now = datetime.now(UTC).isoformat(timespec="seconds")
        d = {k: dataset.get(k) for k in DATASET_COLUMNS}
        if isinstance(d["info_json"], (dict, list)):
            d["info_json"] = json.dumps(d["info_json"])
        with self.con:
            row = self.con.execute("SELECT id, added_at FROM datasets WHERE path = ?", (d["path"],)).fetchone()
            if row:
                ds_id = row["id"]
                self.con.execute("DELETE FROM episodes WHERE dataset_id = ?", (ds_id,))
                sets = ", ".join(f"{k} = ?" for k in DATASET_COLUMNS)
                self.con.execute(f"UPDATE datasets SET {sets}, updated_at = ? WHERE id = ?",
                                 [*d.values(), now, ds_id])
            else:
                cols = ", ".join(DATASET_COLUMNS)
                marks = ", ".join("?" for _ in DATASET_COLUMNS)
                cur = self.con.execute(f"INSERT INTO datasets ({cols}, added_at, updated_at) VALUES ({marks}, ?, ?)",
                                       [*d.values(), now, now])
                ds_id = cur.lastrowid
            cols = ", ".join(("dataset_id",) + EPISODE_COLUMNS)
            marks = ", ".join("?" for _ in range(len(EPISODE_COLUMNS) + 1))
            rows = []
            for e in episodes:
                e = dict(e)
                if isinstance(e.get("provenance_json"), (dict, list)):
                    e["provenance_json"] = json.dumps(e["provenance_json"], sort_keys=True)
                rows.append([ds_id, *[e.get(k) for k in EPISODE_COLUMNS]])
            self.con.executemany(f"INSERT INTO episodes ({cols}) VALUES ({marks})", rows)
        return int(ds_id)

    def set_quality(self, path: str, dataset_quality: float, episode_quality: dict[int, float],
                    audited_at: str) -> None:
        with self.con:
            row = self.con.execute("SELECT id FROM datasets WHERE path = ?", (path,)).fetchone()
            if row is None:
                raise KeyError(f"{path} is not in the catalog")
            self.con.execute("UPDATE datasets SET quality = ?, audited_at = ? WHERE id = ?",
                             (dataset_quality, audited_at, row["id"]))
            self.con.executemany("UPDATE episodes SET quality = ? WHERE dataset_id = ? AND episode_index = ?",
                                 [(q, row["id"], e) for e, q in episode_quality.items()])

    def remove(self, path: str) -> bool:
        with self.con:
            return self.con.execute("DELETE FROM datasets WHERE path = ?", (path,)).rowcount > 0

    # -- reading -----------------------------------------------------------
    def _where(self, q: Query) -> tuple[str, list[Any]]:
        where, args = [], []
        for name, col in FACETS.items():
            v = getattr(q, name)
            if v:
                where.append(f"e.{col} = ? COLLATE NOCASE")
                args.append(v)
        if q.min_quality is not None:
            where.append("e.quality >= ?")
            args.append(q.min_quality)
        if q.dataset:
            where.append("(d.path = ? OR d.name = ?)")
            args += [q.dataset, q.dataset]
        if q.text and fts_expression(q.text):
            where.append("e.id IN (SELECT rowid FROM episodes_fts WHERE episodes_fts MATCH ?)")
            args.append(fts_expression(q.text))
        return (" WHERE " + " AND ".join(where)) if where else "", args

    def search(self, q: Query) -> list[dict[str, Any]]:
        """Episodes matching ``q`` (best quality first), with their dataset's path and name."""
        where, args = self._where(q)
        sql = ("SELECT d.path AS dataset_path, d.name AS dataset, e.episode_index, e.length, e.instruction, "
               "e.task_category, e.scene_complexity, e.quality, e.license, e.robot, e.embodiment_type, "
               "e.action_space, e.control_rate_hz, e.collection_method, e.collector_id "
               f"FROM episodes e JOIN datasets d ON d.id = e.dataset_id{where} "
               "ORDER BY e.quality IS NULL, e.quality DESC, d.path, e.episode_index")
        if q.limit:
            sql += f" LIMIT {int(q.limit)}"
        return [dict(r) for r in self.con.execute(sql, args)]

    def count(self, q: Query) -> tuple[int, int]:
        """(episodes, frames) matching ``q``."""
        where, args = self._where(q)
        r = self.con.execute("SELECT COUNT(*), COALESCE(SUM(e.length), 0) FROM episodes e "
                             f"JOIN datasets d ON d.id = e.dataset_id{where}", args).fetchone()
        return int(r[0]), int(r[1])

    def stats(self) -> dict[str, Any]:
        """Counts of datasets, episodes and frames, overall and per facet value."""
        tot = self.con.execute("SELECT COUNT(*), COALESCE(SUM(length), 0) FROM episodes").fetchone()
        out: dict[str, Any] = {
            "catalog": str(self.path), "schema_version": self.schema_version,
            "datasets": int(self.con.execute("SELECT COUNT(*) FROM datasets").fetchone()[0]),
            "episodes": int(tot[0]), "frames": int(tot[1]), "facets": {},
        }
        for name, col in FACETS.items():
            rows = self.con.execute(f"SELECT COALESCE({col}, '') AS v, COUNT(*) AS n, COALESCE(SUM(length), 0) AS f "
                                    f"FROM episodes GROUP BY v ORDER BY n DESC").fetchall()
            out["facets"][name] = {r["v"] or "(unknown)": {"episodes": r["n"], "frames": r["f"]} for r in rows}
        q = self.con.execute("SELECT COUNT(quality), AVG(quality) FROM episodes").fetchone()
        out["quality"] = {"audited_episodes": int(q[0]), "mean": q[1]}
        return out

    def datasets(self) -> list[dict[str, Any]]:
        return [dict(r) for r in self.con.execute("SELECT * FROM datasets ORDER BY path")]
