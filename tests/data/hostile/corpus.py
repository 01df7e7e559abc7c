"""A corpus of hostile inputs: each class of issue 16 crafted for each format it applies to.

`build(root)` writes every case under ``root/<case>/`` and returns the `Case` list. A case has a source
(``src`` or a file in it), optional mapping/provenance files, and the CLI commands to run on it; each
command lists whether it must fail with one clean error (``expect="error"``), must succeed
(``expect="ok"``), or may do either (``expect="any"``). Outside the source sits a ``secret`` folder
(files a hostile path could read) and ``out/`` where every command writes (``out/dst`` for convert).

Classes: ``escape-write`` (names with ``../``), ``escape-read`` (templates pointing outside, symlinks),
``format-string`` (``{0}``, ``{nope}``, huge widths), ``size-bomb`` (declared rows / values / pixels /
indices / spans / record lengths far beyond the file), ``bad-value`` (wrong types, NaN, out-of-range),
``viewer`` (strings that would end or comment out a script), ``holds`` (NaN data: an audit finding).
"""

from __future__ import annotations

import io
import json
import math
import shutil
import struct
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tests.data.formats import synth
from vla.data import DatasetWriter

PROV = {"collector_id": "hostile-corpus", "collection_method": "scripted", "license": "MIT"}
CAM = "observation.images.front"
LEROBOT_ALL = ("info", "audit", "view", "convert")
# metadata is fine, the data files are not: `vla info` (metadata only) succeeds, every reader of the data fails
DATA_ERROR = {"info": "ok", "audit": "error", "view": "error", "convert": "error"}


@dataclass
class Case:
    name: str
    klass: str
    format: str
    root: str  # the case folder
    commands: list[dict[str, Any]] = field(default_factory=list)  # {"name", "args", "expect"}
    note: str = ""

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


# -- commands ---------------------------------------------------------------------------------------


def lerobot_commands(expect: dict[str, str] | str) -> list[dict[str, Any]]:
    """info, audit, view and convert of ``src`` (then info + view of the result when convert succeeds)."""
    exp = expect if isinstance(expect, dict) else dict.fromkeys(LEROBOT_ALL, expect)
    args = {"info": ["info", "src", "--json"], "audit": ["audit", "src", "--out", "out/audit.json", "--json"],
            "view": ["view", "src", "--out", "out/view.html"],
            "convert": ["convert", "src", "out/dst", "--provenance", "prov.json"]}
    return [{"name": k, "args": args[k], "expect": exp.get(k, "any")} for k in LEROBOT_ALL] + _readback()


def convert_commands(src: str, expect: str, *extra: str, inspect: bool = False) -> list[dict[str, Any]]:
    cmds = []
    if inspect:
        cmds += [{"name": "inspect", "args": ["inspect", src, "--json"], "expect": "any"},
                 {"name": "inspect-scan", "args": ["inspect", src, "--scan", "--json"], "expect": "any"}]
    cmds.append({"name": "convert", "args": ["convert", src, "out/dst", "--provenance", "prov.json", *extra],
                 "expect": expect})
    return cmds + _readback()


def _readback() -> list[dict[str, Any]]:
    """Run only when out/dst exists: the converted dataset must read back cleanly."""
    return [{"name": "info-dst", "args": ["info", "out/dst", "--json"], "expect": "ok", "if_exists": "out/dst"},
            {"name": "view-dst", "args": ["view", "out/dst", "--out", "out/view-dst.html", "--no-audit"],
             "expect": "ok", "if_exists": "out/dst"}]


# -- base sources -------------------------------------------------------------------------------------


def _image(t: int, h: int = 16, w: int = 16) -> np.ndarray:
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (t * 20) % 256
    img[..., 1] = 80
    img[2:6, (t % (w - 4)):(t % (w - 4)) + 4] = 255
    return img


def write_v30(root: Path, *, video: bool = True, camera: bool = True, tasks: tuple[str, ...] = ("pick the cube",),
              lengths: tuple[int, ...] = (8, 6)) -> Path:
    """A small, valid LeRobot v3.0 dataset (ours) with state, action and one camera."""
    feats: dict[str, Any] = {
        "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "g"]},
        "action": {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "dg"]},
    }
    if camera:
        feats[CAM] = {"dtype": "video", "shape": [16, 16, 3], "names": None}
    rng = np.random.default_rng(0)
    with DatasetWriter(root, fps=10, features=feats, robot_type="toy", use_videos=video) as w:
        for e, n in enumerate(lengths):
            s = np.cumsum(rng.normal(0, 0.1, (n, 4)), axis=0).astype(np.float32)
            for i in range(n):
                frame = {"observation.state": s[i], "action": (s[min(i + 1, n - 1)] - s[i]).astype(np.float32)}
                if camera:
                    frame[CAM] = _image(i + 3 * e)
                w.add_frame(frame, task=tasks[e % len(tasks)])
            w.save_episode(PROV)
    return root


def write_v21(root: Path, *, lengths: tuple[int, ...] = (8, 6), state_width: int = 4) -> Path:
    """A small LeRobot v2.1 dataset (one parquet per episode, no videos), as LeRobot 2.x lays it out."""
    (root / "meta").mkdir(parents=True)
    info = {"codebase_version": "v2.1", "robot_type": "toy", "fps": 10, "chunks_size": 1000,
            "total_episodes": len(lengths), "total_frames": sum(lengths), "total_tasks": 1,
            "data_path": "data/chunk-{episode_chunk:03d}/episode_{episode_index:06d}.parquet",
            "video_path": "videos/chunk-{episode_chunk:03d}/{video_key}/episode_{episode_index:06d}.mp4",
            "features": {
                "observation.state": {"dtype": "float32", "shape": [4], "names": ["x", "y", "z", "g"]},
                "action": {"dtype": "float32", "shape": [4], "names": ["dx", "dy", "dz", "dg"]},
                "timestamp": {"dtype": "float32", "shape": [1], "names": None},
                "frame_index": {"dtype": "int64", "shape": [1], "names": None},
                "episode_index": {"dtype": "int64", "shape": [1], "names": None},
                "index": {"dtype": "int64", "shape": [1], "names": None},
                "task_index": {"dtype": "int64", "shape": [1], "names": None}}}
    _write_json(root / "meta/info.json", info)
    (root / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "pick the cube"}) + "\n")
    (root / "meta/episodes.jsonl").write_text("".join(
        json.dumps({"episode_index": e, "tasks": ["pick the cube"], "length": n}) + "\n"
        for e, n in enumerate(lengths)))
    start = 0
    rng = np.random.default_rng(1)
    for e, n in enumerate(lengths):
        p = root / f"data/chunk-000/episode_{e:06d}.parquet"
        p.parent.mkdir(parents=True, exist_ok=True)
        s = np.cumsum(rng.normal(0, 0.1, (n, state_width)), axis=0).astype(np.float32)
        pq.write_table(pa.table({
            "observation.state": pa.array(list(s)), "action": pa.array(list(rng.normal(size=(n, 4)).astype("f4"))),
            "timestamp": pa.array(np.arange(n, dtype=np.float32) / 10), "frame_index": pa.array(np.arange(n)),
            "episode_index": pa.array(np.full(n, e)), "index": pa.array(np.arange(start, start + n)),
            "task_index": pa.array(np.zeros(n, np.int64))}), p)
        start += n
    return root


# -- editing helpers -------------------------------------------------------------------------------


def _write_json(path: Path, obj: Any) -> None:
    path.write_text(json.dumps(obj, indent=2))


def edit_info(root: Path, fn: Callable[[dict], Any]) -> None:
    """Apply ``fn`` to info.json: it edits the dict in place (returns None), returns a new object, or
    returns the file's raw text (a str)."""
    p = root / "meta/info.json"
    info = json.loads(p.read_text())
    out = fn(info)
    p.write_text(out if isinstance(out, str) else json.dumps(info if out is None else out, indent=2))


def edit_parquet(path: Path, fn: Callable[[list[dict]], list[dict] | pa.Table]) -> None:
    table = pq.read_table(path)
    out = fn(table.to_pylist())
    pq.write_table(out if isinstance(out, pa.Table) else pa.Table.from_pylist(out), path)


def episodes_file(root: Path) -> Path:
    return root / "meta/episodes/chunk-000/file-000.parquet"


def data_file(root: Path) -> Path:
    return root / "data/chunk-000/file-000.parquet"


def rename_camera(root: Path, new: str) -> None:
    """Rename the v3.0 camera feature (info, episodes columns, stats, video folder) to ``new``."""
    edit_info(root, lambda i: i["features"].__setitem__(new, i["features"].pop(CAM)))

    def rows(rs: list[dict]) -> list[dict]:
        return [{k.replace(CAM, new) if k.startswith(("videos/", "stats/")) else k: v for k, v in r.items()}
                for r in rs]

    edit_parquet(episodes_file(root), rows)
    st = json.loads((root / "meta/stats.json").read_text())
    st[new] = st.pop(CAM)
    _write_json(root / "meta/stats.json", st)


def png_bytes(img: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG", compress_level=9)
    return buf.getvalue()


_BIG_PNG: bytes | None = None


def big_png(side: int = 9000) -> bytes:
    """A black side x side PNG: a few hundred KB on disk, side^2 x 3 bytes decoded."""
    global _BIG_PNG
    if _BIG_PNG is None:
        from PIL import Image

        buf = io.BytesIO()
        Image.new("L", (side, side)).save(buf, format="PNG", compress_level=9)
        _BIG_PNG = buf.getvalue()
    return _BIG_PNG


# -- the cases ---------------------------------------------------------------------------------------

Maker = Callable[[Path], tuple[str, str, list[dict[str, Any]], str]]  # -> klass, format, commands, note
MAKERS: dict[str, Maker] = {}


def case(name: str):
    def deco(fn: Maker) -> Maker:
        MAKERS[name] = fn
        return fn

    return deco


def _lerobot_case(klass: str, fmt: str, expect: Any, note: str):
    return klass, fmt, lerobot_commands(expect), note


# escape-write ----------------------------------------------------------------------------------------


@case("v30-camera-key-dotdot")
def _(d: Path):
    src = write_v30(d / "src")
    key = CAM + "/../../../x"
    # where the source's own (relative) video path for that key resolves to: put the MP4 there
    target = d / "x/chunk-000/file-000.mp4"
    target.parent.mkdir(parents=True)
    shutil.move(src / f"videos/{CAM}/chunk-000/file-000.mp4", target)
    rename_camera(src, key)
    return _lerobot_case("escape-write", "lerobot-v3.0", "error", "camera key with ../ (convert wrote out/x/...)")


@case("v30-feature-key-backslash")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    edit_info(src, lambda i: i["features"].__setitem__("observation.st\\ate", i["features"].pop("observation.state")))
    return _lerobot_case("escape-write", "lerobot-v3.0", "error", "feature name with a backslash")


@case("mcap-mapping-key-dotdot")
def _(d: Path):
    (d / "src").mkdir()
    synth.write_robot_mcap(d / "src/a.mcap", seconds=1.0)
    m = json.loads(json.dumps(synth.ROBOT_MAPPING))
    m["features"]["observation.images.front/../../../x"] = m["features"].pop("observation.images.front")
    _write_json(d / "mapping.json", m)
    return "escape-write", "mcap", convert_commands("src/a.mcap", "error", "--mapping", "mapping.json"), \
        "mapping feature name with ../"


@case("rlds-feature-name-dotdot")
def _(d: Path):
    synth.write_rlds(d / "src", [5, 4])
    f = json.loads((d / "src/features.json").read_text())
    obs = f["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]["observation"]
    obs["featuresDict"]["features"][".."] = obs["featuresDict"]["features"].pop("image")
    _write_json(d / "src/features.json", f)
    return "escape-write", "rlds", convert_commands("src", "error", "--fps", "5"), "features.json name '..'"


# escape-read -----------------------------------------------------------------------------------------


def _secret_copy(d: Path, src: Path, rel: str, to: str) -> None:
    target = d / to
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(src / rel, target)


@case("v30-data-path-dotdot")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    _secret_copy(d, src, "data/chunk-000/file-000.parquet", "secret/chunk-000/file-000.parquet")
    edit_info(src, lambda i: i.__setitem__("data_path", "../secret/chunk-{chunk_index:03d}/file-{file_index:03d}"
                                                        ".parquet"))
    return _lerobot_case("escape-read", "lerobot-v3.0", "error", "data_path with ../")


@case("v30-data-path-absolute")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    _secret_copy(d, src, "data/chunk-000/file-000.parquet", "secret/chunk-000/file-000.parquet")
    edit_info(src, lambda i: i.__setitem__("data_path", str(d.resolve() / "secret") +
                                           "/chunk-{chunk_index:03d}/file-{file_index:03d}.parquet"))
    return _lerobot_case("escape-read", "lerobot-v3.0", "error", "absolute data_path")


@case("v30-video-path-dotdot")
def _(d: Path):
    src = write_v30(d / "src")
    _secret_copy(d, src, f"videos/{CAM}/chunk-000/file-000.mp4", f"secret/{CAM}/chunk-000/file-000.mp4")
    edit_info(src, lambda i: i.__setitem__("video_path", "../secret/{video_key}/chunk-{chunk_index:03d}/"
                                                         "file-{file_index:03d}.mp4"))
    return _lerobot_case("escape-read", "lerobot-v3.0", "error", "video_path with ../")


@case("v30-data-symlink-outside")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    _secret_copy(d, src, "data/chunk-000/file-000.parquet", "secret/file.parquet")
    data_file(src).unlink()
    data_file(src).symlink_to(d.resolve() / "secret/file.parquet")
    return _lerobot_case("escape-read", "lerobot-v3.0", "error", "data file is a symlink to a file outside")


@case("v21-data-path-dotdot")
def _(d: Path):
    src = write_v21(d / "src")
    for e in (0, 1):
        _secret_copy(d, src, f"data/chunk-000/episode_{e:06d}.parquet", f"secret/episode_{e:06d}.parquet")
    edit_info(src, lambda i: i.__setitem__("data_path", "../secret/episode_{episode_index:06d}.parquet"))
    return _lerobot_case("escape-read", "lerobot-v2.1", "error", "v2.1 data_path with ../")


@case("v21-data-path-absolute")
def _(d: Path):
    src = write_v21(d / "src")
    for e in (0, 1):
        _secret_copy(d, src, f"data/chunk-000/episode_{e:06d}.parquet", f"secret/episode_{e:06d}.parquet")
    edit_info(src, lambda i: i.__setitem__("data_path", str(d.resolve() / "secret") +
                                           "/episode_{episode_index:06d}.parquet"))
    return _lerobot_case("escape-read", "lerobot-v2.1", "error", "v2.1 absolute data_path")


@case("rlds-filepath-template-dotdot")
def _(d: Path):
    synth.write_rlds(d / "src", [5, 4])
    (d / "secret").mkdir()
    shutil.move(d / "src/toy_rlds-train.tfrecord-00000-of-00001", d / "secret/toy_rlds-train.tfrecord-00000-of-00001")
    di = json.loads((d / "src/dataset_info.json").read_text())
    di["splits"][0]["filepathTemplate"] = "../secret/{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    _write_json(d / "src/dataset_info.json", di)
    return "escape-read", "rlds", convert_commands("src", "error", "--fps", "5"), "filepathTemplate with ../"


@case("rlds-split-name-dotdot")
def _(d: Path):
    synth.write_rlds(d / "src", [5, 4])
    di = json.loads((d / "src/dataset_info.json").read_text())
    di["splits"][0]["name"] = "../../secret/train"
    _write_json(d / "src/dataset_info.json", di)
    return "escape-read", "rlds", convert_commands("src", "error", "--fps", "5"), "split name with ../"


# format-string ------------------------------------------------------------------------------------------


def _tpl_case(d: Path, fmt: str, template: str, note: str):
    src = write_v30(d / "src", camera=False) if fmt == "lerobot-v3.0" else write_v21(d / "src")
    edit_info(src, lambda i: i.__setitem__("data_path", template))
    return _lerobot_case("format-string", fmt, "error", note)


@case("v30-template-positional")
def _(d: Path):
    return _tpl_case(d, "lerobot-v3.0", "data/chunk-{0}/file-{file_index:03d}.parquet", "{0}")


@case("v30-template-unknown-field")
def _(d: Path):
    return _tpl_case(d, "lerobot-v3.0", "data/{nope}/file-{file_index:03d}.parquet", "{nope}")


@case("v30-template-huge-width")
def _(d: Path):
    return _tpl_case(d, "lerobot-v3.0", "data/chunk-{chunk_index:01000000000d}/file-{file_index:03d}.parquet",
                     "{chunk_index:01000000000d} (2.3 GB string)")


@case("v30-template-attribute")
def _(d: Path):
    return _tpl_case(d, "lerobot-v3.0", "data/chunk-{chunk_index.__class__}/file-{file_index:03d}.parquet",
                     "attribute access in a field")


@case("v21-template-huge-width")
def _(d: Path):
    return _tpl_case(d, "lerobot-v2.1", "data/chunk-{episode_chunk:03d}/episode_{episode_index:01000000000d}"
                     ".parquet", "{episode_index:01000000000d}")


@case("v21-template-unknown-field")
def _(d: Path):
    return _tpl_case(d, "lerobot-v2.1", "data/{nope}/episode_{episode_index:06d}.parquet", "{nope}")


@case("rlds-template-unknown-field")
def _(d: Path):
    synth.write_rlds(d / "src", [5, 4])
    di = json.loads((d / "src/dataset_info.json").read_text())
    di["splits"][0]["filepathTemplate"] = "{0}{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}"
    _write_json(d / "src/dataset_info.json", di)
    return "format-string", "rlds", convert_commands("src", "error", "--fps", "5"), "{0} in filepathTemplate"


# size bombs ---------------------------------------------------------------------------------------------


@case("v30-task-index-huge")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    pq.write_table(pa.table({"task_index": pa.array([0, 300_000_000]), "task": ["pick the cube", "x"]}),
                   src / "meta/tasks.parquet")
    return _lerobot_case("size-bomb", "lerobot-v3.0", "error", "tasks table with task_index 300,000,000")


@case("v21-task-index-huge")
def _(d: Path):
    src = write_v21(d / "src")
    (src / "meta/tasks.jsonl").write_text(json.dumps({"task_index": 0, "task": "pick the cube"}) + "\n" +
                                          json.dumps({"task_index": 300_000_000, "task": "x"}) + "\n")
    return _lerobot_case("size-bomb", "lerobot-v2.1", "error", "tasks.jsonl with task_index 300,000,000")


def _long_state_table(rows: list[dict], width: int) -> pa.Table:
    t = pa.Table.from_pylist(rows)
    col = pa.array([np.zeros(width, np.float32)] * len(rows), type=pa.list_(pa.float32()))
    return t.set_column(t.column_names.index("observation.state"), "observation.state", col)


@case("v30-state-list-2M")
def _(d: Path):
    src = write_v30(d / "src", camera=False, lengths=(2, 2))
    edit_parquet(data_file(src), lambda rs: _long_state_table(rs, 2_000_000))
    return _lerobot_case("size-bomb", "lerobot-v3.0", DATA_ERROR, "2,000,000 values per state row, shape [4]")


@case("v30-state-list-16M-rle")
def _(d: Path):
    src = write_v30(d / "src", camera=False, lengths=(8, 6))
    edit_parquet(data_file(src), lambda rs: _long_state_table(rs, 1_200_000))
    return _lerobot_case("size-bomb", "lerobot-v3.0", DATA_ERROR, "14 rows x 1.2 M zeros: 67 MB decoded, KB on disk")


@case("v30-state-shape-declared-huge")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    edit_info(src, lambda i: i["features"]["observation.state"].__setitem__("shape", [2_000_000]))
    return _lerobot_case("size-bomb", "lerobot-v3.0", "error", "info.json declares 2,000,000 state values")


@case("v21-state-list-2M")
def _(d: Path):
    src = write_v21(d / "src", lengths=(2, 2))
    p = src / "data/chunk-000/episode_000000.parquet"
    edit_parquet(p, lambda rs: _long_state_table(rs, 2_000_000))
    return _lerobot_case("size-bomb", "lerobot-v2.1", DATA_ERROR, "v2.1 2,000,000 values per state row")


@case("v30-png-9000")
def _(d: Path):
    src = write_v30(d / "src", video=False, lengths=(3, 3))
    big = big_png()

    def rows(rs: list[dict]) -> pa.Table:
        t = pa.Table.from_pylist(rs)
        col = pa.array([{"bytes": big, "path": f"frame_{i}.png"} for i in range(len(rs))],
                       type=pa.struct([("bytes", pa.binary()), ("path", pa.string())]))
        return t.set_column(t.column_names.index(CAM), CAM, col)

    edit_parquet(data_file(src), rows)
    return _lerobot_case("size-bomb", "lerobot-v3.0", DATA_ERROR, "9000x9000 PNG frames declared 16x16")


@case("v30-png-9000-declared")
def _(d: Path):
    src = write_v30(d / "src", video=False, lengths=(3, 3))
    edit_info(src, lambda i: i["features"][CAM].__setitem__("shape", [9000, 9000, 3]))
    return _lerobot_case("size-bomb", "lerobot-v3.0", "error", "image feature declared 9000x9000")


@case("v30-episode-length-huge")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    edit_parquet(episodes_file(src), lambda rs: [{**r, "length": 10**12} for r in rs])
    return _lerobot_case("size-bomb", "lerobot-v3.0", "error", "episode length 10^12")


@case("hdf5-sparse-1e12-rows")
def _(d: Path):
    import h5py

    (d / "src").mkdir()
    with h5py.File(d / "src/demo.hdf5", "w") as f:
        g = f.create_group("data")
        g.attrs["env_args"] = json.dumps({"env_name": "Lift", "env_kwargs": {"control_freq": 20}})
        demo = g.create_group("demo_0")
        demo.create_dataset("actions", shape=(10**12, 7), dtype="f8", chunks=(1024, 7))
        demo.create_dataset("obs/eef_pos", data=np.zeros((4, 3)))
    return "size-bomb", "hdf5", convert_commands("src/demo.hdf5", "error"), "actions declared (10^12, 7), 9 KB file"


@case("mcap-gap-1e15ns")
def _(d: Path):
    (d / "src").mkdir()
    from mcap.writer import Writer

    with open(d / "src/gap.mcap", "wb") as f:
        w = Writer(f)
        w.start(profile="", library="hostile-corpus")
        sid = w.register_schema("State", "jsonschema", b"{}")
        cs = w.register_channel("/state", "json", sid)
        ca = w.register_channel("/cmd", "json", sid)
        for t in (0, 10**15):
            for ch in (cs, ca):
                w.add_message(ch, log_time=t, publish_time=t, data=json.dumps({"data": [0.0, 1.0]}).encode())
        w.finish()
    _write_json(d / "mapping.json", {"fps": 10, "task": "t", "features": {
        "observation.state": {"topic": "/state", "field": "data"}, "action": {"topic": "/cmd", "field": "data"}}})
    return "size-bomb", "mcap", convert_commands("src/gap.mcap", "error", "--mapping", "mapping.json",
                                                 inspect=True), "two messages 10^15 ns apart (3.7 GB grid)"


@case("rlds-record-length-2^40")
def _(d: Path):
    from vla.data.formats.tfrecord import masked_crc

    synth.write_rlds(d / "src", [5, 4])
    length = struct.pack("<Q", 1 << 40)
    (d / "src/toy_rlds-train.tfrecord-00000-of-00001").write_bytes(
        length + struct.pack("<I", masked_crc(length)) + b"\0" * 64)
    return "size-bomb", "rlds", convert_commands("src", "error", "--fps", "5"), "TFRecord length 2^40, valid CRC"


@case("rlds-shape-declared-huge")
def _(d: Path):
    synth.write_rlds(d / "src", [5, 4])
    f = json.loads((d / "src/features.json").read_text())
    obs = f["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]["observation"]
    obs["featuresDict"]["features"]["state"]["tensor"]["shape"]["dimensions"] = ["100000", "100000"]
    _write_json(d / "src/features.json", f)
    return "size-bomb", "rlds", convert_commands("src", "error", "--fps", "5"), "state declared 100000x100000"


# bad values ----------------------------------------------------------------------------------------------


def _info_case(d: Path, fmt: str, fn: Callable[[dict], Any], note: str):
    src = write_v30(d / "src", camera=False) if fmt == "lerobot-v3.0" else write_v21(d / "src")
    edit_info(src, fn)
    return _lerobot_case("bad-value", fmt, "error", note)


for _fmt, _tag in (("lerobot-v3.0", "v30"), ("lerobot-v2.1", "v21")):
    for _nm, _fn, _note in (
        ("fps-string", lambda i: i.__setitem__("fps", "ten"), "fps as a string"),
        ("fps-zero", lambda i: i.__setitem__("fps", 0), "fps 0"),
        ("fps-nan", lambda i: json.dumps(i).replace('"fps": 10', '"fps": NaN'), "fps NaN"),
        ("features-list", lambda i: i.__setitem__("features", list(i["features"])), "features as a list"),
        ("feature-no-dtype", lambda i: i["features"]["action"].pop("dtype") and None, "a feature without dtype"),
        ("info-string", lambda i: json.dumps("hello"), "info.json is a string"),
    ):
        MAKERS[f"{_tag}-{_nm}"] = (lambda fmt, fn, note: lambda d: _info_case(d, fmt, fn, note))(_fmt, _fn, _note)


@case("v30-provenance-cell-bad-json")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    edit_parquet(episodes_file(src), lambda rs: [{**r, "provenance/hardware": "{not json"} for r in rs])
    return _lerobot_case("bad-value", "lerobot-v3.0", "error", "provenance/hardware is not JSON")


@case("v30-chunk-index-string")
def _(d: Path):
    src = write_v30(d / "src", camera=False)
    edit_parquet(episodes_file(src), lambda rs: [{**r, "data/chunk_index": "0"} for r in rs])
    return _lerobot_case("bad-value", "lerobot-v3.0", "error", "data/chunk_index as a string")


def _task_index_case(d: Path, fmt: str, value: int):
    src = write_v30(d / "src", camera=False) if fmt == "lerobot-v3.0" else write_v21(d / "src")
    p = data_file(src) if fmt == "lerobot-v3.0" else src / "data/chunk-000/episode_000000.parquet"
    edit_parquet(p, lambda rs: [{**r, "task_index": value} for r in rs])
    return _lerobot_case("bad-value", fmt, DATA_ERROR, f"task_index {value} in the data (one task)")


for _fmt, _tag in (("lerobot-v3.0", "v30"), ("lerobot-v2.1", "v21")):
    for _v in (5, -1):
        MAKERS[f"{_tag}-task-index-{'minus1' if _v < 0 else _v}"] = (
            lambda fmt, v: lambda d: _task_index_case(d, fmt, v))(_fmt, _v)


@case("v30-timestamp-1e300")
def _(d: Path):
    src = write_v30(d / "src", camera=False)

    def rows(rs: list[dict]) -> pa.Table:
        t = pa.Table.from_pylist(rs)
        ts = pa.array([1e300 if i == 3 else r["timestamp"] for i, r in enumerate(rs)], pa.float64())
        return t.set_column(t.column_names.index("timestamp"), "timestamp", ts)

    edit_parquet(data_file(src), rows)
    return _lerobot_case("bad-value", "lerobot-v3.0", {"info": "ok", "audit": "any", "view": "any",
                                                       "convert": "error"}, "a timestamp of 1e300")


@case("mcap-fps-string")
def _(d: Path):
    (d / "src").mkdir()
    synth.write_robot_mcap(d / "src/a.mcap", seconds=1.0)
    _write_json(d / "mapping.json", {**synth.ROBOT_MAPPING, "fps": "ten"})
    return "bad-value", "mcap", convert_commands("src/a.mcap", "error", "--mapping", "mapping.json"), "fps 'ten'"


@case("hdf5-control-freq-string")
def _(d: Path):
    import h5py

    (d / "src").mkdir()
    synth.write_robomimic(d / "src/demo.hdf5", {"demo_0": 6})
    with h5py.File(d / "src/demo.hdf5", "a") as f:
        f["data"].attrs["env_args"] = json.dumps({"env_name": "Lift", "env_kwargs": {"control_freq": "fast"}})
    return "bad-value", "hdf5", convert_commands("src/demo.hdf5", "error"), "control_freq 'fast'"


@case("rlds-dtype-void-1GB")
def _(d: Path):
    synth.write_rlds(d / "src", [5, 4])
    f = json.loads((d / "src/features.json").read_text())
    obs = f["featuresDict"]["features"]["steps"]["sequence"]["feature"]["featuresDict"]["features"]["observation"]
    obs["featuresDict"]["features"]["state"]["tensor"]["dtype"] = "V1000000000"
    _write_json(d / "src/features.json", f)
    return "bad-value", "rlds", convert_commands("src", "error", "--fps", "5"), "tensor dtype V1000000000"


@case("rlds-dataset-info-list")
def _(d: Path):
    synth.write_rlds(d / "src", [5, 4])
    (d / "src/dataset_info.json").write_text("[1, 2]")
    return "bad-value", "rlds", convert_commands("src", "error", "--fps", "5"), "dataset_info.json is a list"


# viewer / what holds ---------------------------------------------------------------------------------------


@case("v30-task-html-comment-script")
def _(d: Path):
    write_v30(d / "src", camera=False, tasks=("<!--<script>", "</script><script>window.pwned=1</script>&amp;"))
    return _lerobot_case("viewer", "lerobot-v3.0", "ok", "tasks that would comment out / end the script")


@case("v30-nan-in-state")
def _(d: Path):
    src = write_v30(d / "src", camera=False)

    def rows(rs: list[dict]) -> list[dict]:
        rs[2]["observation.state"] = [math.nan, 0.0, math.inf, 1.0]
        return rs

    edit_parquet(data_file(src), rows)
    return _lerobot_case("holds", "lerobot-v3.0", "ok", "NaN/Inf in the state: a finding, null in stats.json")


# -- building -------------------------------------------------------------------------------------------


def build(root: Path, names: list[str] | None = None) -> list[Case]:
    """Write the cases (all, or the named ones) under ``root``; returns them."""
    out = []
    for name in names or list(MAKERS):
        d = root / name
        if d.exists():
            shutil.rmtree(d)
        (d / "out").mkdir(parents=True)
        _write_json(d / "prov.json", PROV)
        klass, fmt, commands, note = MAKERS[name](d)
        out.append(Case(name, klass, fmt, str(d), commands, note))
    return out
