"""Catalog schema and its versioned migrations (SQLite ``PRAGMA user_version``).

Each entry of MIGRATIONS moves the schema from version i to i+1; ``migrate`` applies the missing
ones in one transaction each. Never edit a released migration: append a new one.
"""

from __future__ import annotations

import sqlite3

MIGRATIONS: list[str] = [
    # 1: datasets and episodes with denormalized facet columns
    """
    CREATE TABLE datasets (
        id INTEGER PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        fingerprint TEXT NOT NULL,
        codebase_version TEXT,
        robot TEXT,
        embodiment_type TEXT,
        action_space TEXT,
        control_rate_hz REAL,
        fps REAL,
        num_episodes INTEGER,
        num_frames INTEGER,
        license TEXT,
        quality REAL,
        audited_at TEXT,
        added_at TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        info_json TEXT
    );
    CREATE TABLE episodes (
        id INTEGER PRIMARY KEY,
        dataset_id INTEGER NOT NULL REFERENCES datasets(id) ON DELETE CASCADE,
        episode_index INTEGER NOT NULL,
        length INTEGER NOT NULL,
        instruction TEXT,
        task_category TEXT,
        scene_complexity TEXT,
        quality REAL,
        license TEXT,
        collector_id TEXT,
        collection_method TEXT,
        robot TEXT,
        embodiment_type TEXT,
        action_space TEXT,
        control_rate_hz REAL,
        provenance_json TEXT,
        UNIQUE (dataset_id, episode_index)
    );
    """,
    # 2: facet indexes and full-text search over instructions (external-content FTS5)
    """
    CREATE INDEX ix_ep_embodiment ON episodes(embodiment_type);
    CREATE INDEX ix_ep_robot ON episodes(robot);
    CREATE INDEX ix_ep_task ON episodes(task_category);
    CREATE INDEX ix_ep_scene ON episodes(scene_complexity);
    CREATE INDEX ix_ep_quality ON episodes(quality);
    CREATE INDEX ix_ep_license ON episodes(license);
    CREATE INDEX ix_ep_dataset ON episodes(dataset_id);
    CREATE VIRTUAL TABLE episodes_fts USING fts5(instruction, content='episodes', content_rowid='id');
    CREATE TRIGGER episodes_ai AFTER INSERT ON episodes BEGIN
        INSERT INTO episodes_fts(rowid, instruction) VALUES (new.id, new.instruction);
    END;
    CREATE TRIGGER episodes_ad AFTER DELETE ON episodes BEGIN
        INSERT INTO episodes_fts(episodes_fts, rowid, instruction) VALUES ('delete', old.id, old.instruction);
    END;
    CREATE TRIGGER episodes_au AFTER UPDATE OF instruction ON episodes BEGIN
        INSERT INTO episodes_fts(episodes_fts, rowid, instruction) VALUES ('delete', old.id, old.instruction);
        INSERT INTO episodes_fts(rowid, instruction) VALUES (new.id, new.instruction);
    END;
    """,
]

SCHEMA_VERSION = len(MIGRATIONS)


def migrate(con: sqlite3.Connection) -> int:
    """Bring the database to SCHEMA_VERSION; returns the version it started from."""
    start = con.execute("PRAGMA user_version").fetchone()[0]
    if start > SCHEMA_VERSION:
        raise RuntimeError(f"catalog schema version {start} is newer than this vla ({SCHEMA_VERSION}); upgrade vla")
    for v in range(start, SCHEMA_VERSION):
        with con:  # one transaction per migration
            con.execute("BEGIN")
            for stmt in _statements(MIGRATIONS[v]):
                con.execute(stmt)
            con.execute(f"PRAGMA user_version = {v + 1}")
    return start


def _statements(script: str) -> list[str]:
    """Split a migration into statements (triggers contain ';' inside BEGIN ... END)."""
    out, buf = [], []
    for line in script.strip().splitlines():
        buf.append(line)
        text = "\n".join(buf).strip()
        if text.endswith(";") and sqlite3.complete_statement(text):
            out.append(text)
            buf = []
    if "\n".join(buf).strip():
        out.append("\n".join(buf).strip())
    return out
