"""Every hostile case of the corpus, run through the CLI in a subprocess under a memory limit.

Per case: each command exits 0 or prints exactly one ``error:`` line and exits 2 (no traceback), the
commands that must refuse the input do, nothing is written outside the allowed outputs, nothing is left
behind, and the peak RSS stays under 1 GB. A few cases also check what the error says or what was
written (stats.json is strict JSON, the viewer's data cannot end its script element).
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.data.hostile import corpus
from tests.data.hostile.harness import build_and_run

# what the first refusing command's error must mention: the file, the field, what was found / the limit
MENTIONS = {
    "v30-camera-key-dotdot": ["info.json", "feature name", "observation.images.front/../../../x"],
    "mcap-mapping-key-dotdot": ["mapping", "observation.images.front/../../../x"],
    "v30-data-path-dotdot": ["info.json", "data_path", "points outside"],
    "v30-data-path-absolute": ["info.json", "data_path", "absolute path"],
    "v30-video-path-dotdot": ["info.json", "video_path", "points outside"],
    "v30-data-symlink-outside": ["data_path", "points outside"],
    "v21-data-path-dotdot": ["info.json", "data_path", "points outside"],
    "rlds-filepath-template-dotdot": ["dataset_info.json", "filepathTemplate", "points outside"],
    "rlds-split-name-dotdot": ["dataset_info.json", "split name"],
    "v30-template-positional": ["data_path", "{0}", "allowed fields"],
    "v30-template-unknown-field": ["data_path", "{nope}"],
    "v30-template-huge-width": ["data_path", "01000000000d"],
    "v21-template-huge-width": ["data_path", "01000000000d"],
    "v30-task-index-huge": ["tasks.parquet", "task_index 300000000", "2 rows"],
    "v21-task-index-huge": ["tasks.jsonl", "task_index 300000000"],
    "v30-state-list-2M": ["file-000.parquet", "observation.state", "2,000,000", "[4]"],
    "v30-state-list-16M-rle": ["file-000.parquet", "parquet columns", "limit"],
    "v30-state-shape-declared-huge": ["info.json", "features.observation.state.shape", "2,000,000", "limit"],
    "v21-state-list-2M": ["episode_000000.parquet", "observation.state", "2,000,000"],
    "v30-png-9000": ["file-000.parquet", CAM := corpus.CAM, "9000x9000", "limit"],
    "v30-png-9000-declared": ["info.json", CAM, "9000x9000", "limit"],
    "v30-episode-length-huge": ["episodes", "length", "1,000,000,000,000", "200,000"],
    "hdf5-sparse-1e12-rows": ["demo.hdf5", "/data/demo_0/actions", "1000000000000", "limit"],
    "mcap-gap-1e15ns": ["gap.mcap", "output grid", "10,000,001 frames", "limit"],
    "rlds-record-length-2^40": ["tfrecord", "record 0", "'length'", "1,099,511,627,776", "left in the file"],
    "rlds-shape-declared-huge": ["steps/observation/state", "10,000,000,000", "limit"],
    "v30-fps-string": ["info.json", "'fps'", "'ten'"],
    "v30-fps-zero": ["info.json", "'fps'", "> 0"],
    "v30-fps-nan": ["info.json", "'fps'", "finite"],
    "v30-features-list": ["info.json", "'features'", "list"],
    "v30-feature-no-dtype": ["info.json", "features.action", "dtype"],
    "v30-info-string": ["info.json", "JSON object", "str"],
    "v30-provenance-cell-bad-json": ["episodes", "provenance/hardware", "invalid JSON"],
    "v30-chunk-index-string": ["episodes", "data/chunk_index", "'0'", "integer"],
    "v30-task-index-5": ["task_index", "5", "0..0"],
    "v30-task-index-minus1": ["task_index", "-1", "0..0"],
    "v21-task-index-minus1": ["task_index", "-1", "0..0"],
    "v30-timestamp-1e300": ["file-000.parquet", "timestamp", "1e+300"],
    "mcap-fps-string": ["mapping", "fps", "'ten'"],
    "hdf5-control-freq-string": ["demo.hdf5", "fps", "'fast'"],
    "rlds-dtype-void-1GB": ["features.json", "steps/observation/state", "V1000000000"],
    "rlds-dataset-info-list": ["dataset_info.json", "JSON object"],
}


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory) -> dict[str, dict]:
    work = tmp_path_factory.mktemp("hostile")
    return {r["name"]: r for r in build_and_run(work)} | {"__work__": {"path": str(work)}}


@pytest.mark.parametrize("name", list(corpus.MAKERS))
def test_hostile_case(corpus_run, name):
    r = corpus_run[name]
    assert not r["problems"], "\n".join(r["problems"])
    assert r["tracebacks"] == 0 and r["escapes"] == 0 and r["leftovers"] == 0 and r["peak_rss_mb"] < 1024
    if name in MENTIONS:
        errors = [c["error"] for c in r["commands"].values() if c["rc"] == 2]
        assert errors, f"{name}: no command refused the input"
        for text in MENTIONS[name]:
            assert text in errors[0], f"{name}: error does not mention {text!r}: {errors[0]}"


def _case_dir(corpus_run, name: str) -> Path:
    return Path(corpus_run["__work__"]["path"]) / "cases" / name


def test_nan_data_is_a_finding_and_null_in_stats(corpus_run):
    d = _case_dir(corpus_run, "v30-nan-in-state")

    def refuse(token: str):
        raise AssertionError(f"non-JSON token {token} in stats.json")

    stats = json.loads((d / "out/dst/meta/stats.json").read_text(), parse_constant=refuse)
    assert None in stats["observation.state"]["max"]
    report = json.loads((d / "out/audit.json").read_text(), parse_constant=refuse)
    assert any(f["type"] == "modality.nan" for e in report["episodes"] for f in e["findings"])


def test_viewer_data_cannot_end_or_comment_out_its_script(corpus_run):
    html = (_case_dir(corpus_run, "v30-task-html-comment-script") / "out/view.html").read_text()
    m = re.search(r'<script type="application/json" id="vla-data">(.*?)</script>', html, re.S)
    assert m, "data element missing"
    blob = m.group(1)
    assert "<" not in blob and ">" not in blob and "&" not in blob
    assert json.loads(blob)["instruction"] == "<!--<script>"
    # the rest of the page has exactly the template's own scripts
    assert html.count("<script") == 2 and "window.pwned" not in html.replace(blob, "")


def test_camera_key_escape_writes_nothing_outside(corpus_run):
    d = _case_dir(corpus_run, "v30-camera-key-dotdot")
    assert not (d / "out/x").exists() and not (d / "out/dst").exists()


def test_writer_refuses_unsafe_names_and_leaves_nothing(tmp_path):
    from vla.data import DatasetWriter
    from vla.data.errors import DatasetError

    for name in ("observation.images.a/../../b", "..", "a\\b", "bad\x00name", " padded"):
        feats = {name: {"dtype": "float32", "shape": [2]}, "action": {"dtype": "float32", "shape": [2]}}
        with pytest.raises(DatasetError, match="feature name"):
            DatasetWriter(tmp_path / "dst", fps=10, features=feats, robot_type="toy")
    with pytest.raises(DatasetError, match="fps"):
        DatasetWriter(tmp_path / "dst", fps=float("nan"), features={"action": {"dtype": "float32", "shape": [2]}},
                      robot_type="toy")
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_sigterm_during_convert_leaves_nothing(tmp_path):
    """A convert stopped by SIGTERM removes its temporary folder (the writer aborts on SystemExit)."""
    import os
    import signal
    import subprocess
    import sys
    import time

    src = corpus.write_v30(tmp_path / "src", lengths=(40,) * 30)
    (tmp_path / "prov.json").write_text(json.dumps(corpus.PROV))
    out = tmp_path / "out"
    out.mkdir()
    p = subprocess.Popen([sys.executable, "-m", "vla.cli", "convert", str(src), str(out / "dst"), "--provenance",
                          str(tmp_path / "prov.json")], env=os.environ, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not any(out.iterdir()) and p.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert p.poll() is None, "convert finished before it could be stopped: make the source larger"
    p.send_signal(signal.SIGTERM)
    p.communicate(timeout=60)
    assert p.returncode != 0
    assert sorted(x.name for x in out.iterdir()) == []
