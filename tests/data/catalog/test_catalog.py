"""Catalog: idempotent add, facets, FTS text search, stats, export, migrations, WAL readers, CLI."""

from __future__ import annotations

import json
import sqlite3

import pytest
import typer
from typer.testing import CliRunner

from vla.data import Dataset
from vla.data.audit import synthetic as S
from vla.data.catalog import Catalog, Query, add_dataset, export, task_category
from vla.data.catalog.commands import register
from vla.data.catalog.schema import MIGRATIONS, SCHEMA_VERSION, migrate


@pytest.fixture(scope="module")
def datasets(tmp_path_factory):
    base = tmp_path_factory.mktemp("cat")
    a = S.write(S.dataset(6, seed=1, tasks=["open the drawer", "pick up the red block"]), base / "arm_a")
    # the second dataset differs in robot, embodiment and licence, so every facet filter has something to exclude
    eps = S.dataset(4, seed=2, tasks=["insert the peg into the hole"])
    for e in eps:
        e.provenance = {**e.provenance, "license": "CC-BY-4.0"}
    b = S.write(eps, base / "arm_b")
    info_path = b / "meta/info.json"
    info = json.loads(info_path.read_text())
    info["robot_type"] = "synthetic_humanoid"
    info["vla"]["embodiment"].update(robot_type="synthetic_humanoid", embodiment_type="humanoid")
    info_path.write_text(json.dumps(info))
    return a, b


@pytest.fixture()
def cat(tmp_path, datasets):
    c = Catalog(tmp_path / "c.sqlite")
    for d in datasets:
        add_dataset(c, d)
    yield c
    c.close()


def test_task_category_rules():
    assert task_category("Pick up the yellow bottle on the table.") == "pick-and-place"
    assert task_category("open the drawer") == "articulated-object"
    assert task_category("insert the peg into the hole") == "assembly"
    assert task_category("navigate to the kitchen") == "navigation"
    assert task_category("") == "other"


def test_add_is_idempotent_and_updates_on_change(tmp_path, datasets):
    c = Catalog(tmp_path / "c.sqlite")
    assert add_dataset(c, datasets[0])["action"] == "added"
    assert add_dataset(c, datasets[0])["action"] == "unchanged"
    assert c.count(Query())[0] == 6
    S.write(S.dataset(3, seed=5), datasets[0].parent / "arm_a")  # rewritten in place
    r = add_dataset(c, datasets[0])
    assert r["action"] == "updated" and r["episodes"] == 3
    assert c.count(Query())[0] == 3
    S.write(S.dataset(6, seed=1, tasks=["open the drawer", "pick up the red block"]), datasets[0])


def test_facets_and_text(cat):
    assert cat.count(Query())[0] == 10
    assert cat.count(Query(embodiment="fixed_base_arm"))[0] == 6
    assert cat.count(Query(embodiment="humanoid"))[0] == 4
    assert cat.count(Query(robot="synthetic_arm"))[0] == 6
    assert cat.count(Query(robot="synthetic_humanoid"))[0] == 4
    assert cat.count(Query(task_category="assembly"))[0] == 4
    assert cat.count(Query(task_category="articulated-object"))[0] == 3
    assert cat.count(Query(license="MIT"))[0] == 6
    assert cat.count(Query(license="CC-BY-4.0"))[0] == 4
    assert cat.count(Query(license="GPL-3.0"))[0] == 0
    # filters combine (AND): each pair below excludes what either alone keeps
    assert cat.count(Query(license="MIT", task_category="assembly"))[0] == 0
    assert cat.count(Query(robot="synthetic_humanoid", task_category="assembly"))[0] == 4
    assert cat.count(Query(embodiment="humanoid", robot="synthetic_arm"))[0] == 0
    assert {r["robot"] for r in cat.search(Query(embodiment="humanoid"))} == {"synthetic_humanoid"}
    assert cat.count(Query(text="red block"))[0] == 3
    assert cat.count(Query(text="peg", task_category="assembly"))[0] == 4
    assert cat.count(Query(text="peg", task_category="pick-and-place"))[0] == 0
    scenes = {r["scene_complexity"] for r in cat.search(Query())}
    assert scenes <= {"low", "medium", "high"} and scenes
    assert cat.count(Query(scene=next(iter(scenes))))[0] >= 4
    rows = cat.search(Query(text="drawer"))
    assert rows and all("drawer" in r["instruction"] for r in rows)


def test_quality_from_audit(cat, datasets):
    assert cat.count(Query(min_quality=0.5))[0] == 0  # not audited yet
    r = add_dataset(cat, datasets[1], run_audit=True)
    assert r["action"] == "updated"
    assert cat.count(Query(min_quality=0.9))[0] == 4
    assert cat.stats()["quality"]["audited_episodes"] == 4


def test_stats(cat):
    s = cat.stats()
    assert s["datasets"] == 2 and s["episodes"] == 10 and s["schema_version"] == SCHEMA_VERSION
    assert s["facets"]["task_category"]["assembly"]["episodes"] == 4
    assert sum(v["frames"] for v in s["facets"]["robot"].values()) == s["frames"]


def test_export(cat, tmp_path):
    summary = export(cat, Query(task_category="assembly"), tmp_path / "train")
    ds = Dataset.open(tmp_path / "train")
    assert ds.num_episodes == summary["episodes"] == 4
    assert all(t == "insert the peg into the hole" for e in ds.episodes for t in e.tasks)
    src = ds.episodes[0].provenance["extra"]["catalog_export"]
    assert src["source_dataset"].endswith("arm_b") and src["source_episode"] == 0


def test_migrations_from_v1_and_wal(tmp_path):
    path = tmp_path / "old.sqlite"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0])
    con.execute("PRAGMA user_version = 1")
    con.commit()
    con.close()
    c = Catalog(path)
    assert c.schema_version == SCHEMA_VERSION
    assert c.con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert migrate(c.con) == SCHEMA_VERSION  # nothing left to do
    c.upsert({"path": "/x", "name": "x", "fingerprint": "f"}, [{"episode_index": 0, "length": 5,
                                                                 "instruction": "open the door"}])
    # a reader sees committed data while a writer holds an open transaction
    c.con.execute("BEGIN IMMEDIATE")
    c.con.execute("UPDATE episodes SET length = 6")
    reader = Catalog(path, readonly=True)
    assert reader.count(Query(text="door")) == (1, 5)
    c.con.execute("COMMIT")
    assert reader.count(Query(text="door")) == (1, 6)
    reader.close()
    c.close()


def test_cli(tmp_path, datasets, monkeypatch):
    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    monkeypatch.setenv("VLA_CATALOG", str(tmp_path / "env.sqlite"))
    run = CliRunner().invoke
    r = run(app, ["catalog", "add", *map(str, datasets)])
    assert r.exit_code == 0, r.output
    assert (tmp_path / "env.sqlite").exists()
    r = run(app, ["catalog", "search", "--task-category", "assembly", "--json"])
    assert json.loads(r.output)["total_episodes"] == 4
    r = run(app, ["catalog", "search", "--text", "drawer", "--embodiment", "fixed_base_arm"])
    assert r.exit_code == 0 and "arm_a" in r.output
    r = run(app, ["catalog", "stats", "--json"])
    assert json.loads(r.output)["episodes"] == 10
    other = tmp_path / "flag.sqlite"
    r = run(app, ["catalog", "add", str(datasets[1]), "--catalog", str(other)])
    assert r.exit_code == 0 and other.exists()
    r = run(app, ["catalog", "export", str(tmp_path / "out"), "--query", "text='red block'", "--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.output)["episodes"] == 3
    r = run(app, ["catalog", "export", str(tmp_path / "bad"), "--query", "colour=red"])
    assert r.exit_code != 0
