"""Property-based fuzzing (hypothesis) of info.json, the episodes table, MCAP and TFRecord framing.

Whatever the bytes or values, reading either succeeds or raises one of our user-facing errors
(`VlaError`: DatasetError, ConversionError), never another exception. Each test runs with the address
space capped (soft ``RLIMIT_AS`` lowered for the test, restored after) so a declared size that slipped
through would fail as a MemoryError instead of exhausting the machine.
"""

from __future__ import annotations

import json
import math
import resource
import shutil
import struct
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.data.hostile import corpus
from vla.data import Dataset
from vla.data.errors import DatasetError
from vla.data.formats.episode import ConversionError

CLEAN = (DatasetError, ConversionError)  # the user-facing errors (both are VlaError; named so to run on older code)

FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                        HealthCheck.too_slow])
HEADROOM = 3 << 30  # bytes of address space allowed beyond what the process maps when the test starts


@pytest.fixture
def bounded_memory():
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) * 1024 for line in f if line.startswith("VmSize:"))
    limit = vm + HEADROOM if hard == resource.RLIM_INFINITY else min(vm + HEADROOM, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


def read_all(root: Path) -> None:
    """Open, verify and read every episode's columns and images (what audit / view / convert do)."""
    ds = Dataset.open(root)
    for e in ds.episodes:
        ds.episode_columns(e.index)
        for key in ds.camera_keys:
            ds.episode_images(e.index, key)


json_leaf = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                      st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=40),
                      st.sampled_from(["../x", "/etc/passwd", "{0}", "{chunk_index:0999999999d}", "v3.0", "video",
                                       "float32", "observation.images.a/../../b"]))
json_value = st.recursive(json_leaf, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                             st.dictionaries(st.text(max_size=12), inner, max_size=4)),
                          max_leaves=12)
INFO_PATHS = [("fps",), ("features",), ("codebase_version",), ("data_path",), ("video_path",), ("chunks_size",),
              ("features", "observation.state"), ("features", "observation.state", "shape"),
              ("features", "observation.state", "dtype"), ("features", corpus.CAM, "shape"),
              ("features", corpus.CAM, "dtype"), ("vla",), ("vla", "embodiment"), ("robot_type",)]


@pytest.fixture(scope="module")
def base_v30(tmp_path_factory) -> Path:
    return corpus.write_v30(tmp_path_factory.mktemp("fuzz") / "base", video=False, lengths=(4, 3))


def _fresh_copy(base: Path, where: Path) -> Path:
    if where.exists():
        shutil.rmtree(where)
    shutil.copytree(base, where)
    return where


def _expect_clean(fn) -> None:
    try:
        fn()
    except CLEAN:
        pass


@FUZZ
@given(path=st.sampled_from(INFO_PATHS), value=json_value, whole=st.booleans())
def test_fuzz_info_json(base_v30, tmp_path, bounded_memory, path, value, whole):
    root = _fresh_copy(base_v30, tmp_path / "ds")
    info = json.loads((root / "meta/info.json").read_text())
    if whole and path == ("fps",):
        info = value  # the whole file replaced by an arbitrary JSON value
    else:
        node = info
        for k in path[:-1]:
            node = node[k]
        node[path[-1]] = value
    (root / "meta/info.json").write_text(json.dumps(info))
    _expect_clean(lambda: read_all(root))


EPISODE_COLUMNS = ["episode_index", "length", "data/chunk_index", "data/file_index", "dataset_from_index",
                   "dataset_to_index", "tasks", "provenance/hardware", "provenance/collector_id"]
cell = st.one_of(st.none(), st.integers(min_value=-(2**63), max_value=2**63 - 1),
                 st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=20),
                 st.lists(st.text(max_size=8), max_size=3), st.sampled_from(["{not json", "[1, 2]", "../../x"]))


@FUZZ
@given(column=st.sampled_from(EPISODE_COLUMNS), value=cell, drop=st.booleans())
def test_fuzz_episodes_table(base_v30, tmp_path, bounded_memory, column, value, drop):
    root = _fresh_copy(base_v30, tmp_path / "ds")
    path = corpus.episodes_file(root)
    rows = pq.read_table(path).to_pylist()
    for r in rows:
        if drop:
            r.pop(column, None)
        else:
            r[column] = value
    try:
        table = pa.Table.from_pylist(rows)
    except (pa.ArrowException, OverflowError):
        return  # not representable in parquet: nothing to read
    pq.write_table(table, path)
    _expect_clean(lambda: read_all(root))


# -- MCAP framing ------------------------------------------------------------------------------------------


def _valid_mcap(path: Path) -> bytes:
    from mcap.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="", library="fuzz")
        sid = w.register_schema("S", "jsonschema", b"{}")
        chans = [w.register_channel(t, "json", sid) for t in ("/state", "/cmd")]
        for i in range(6):
            for ch in chans:
                t = i * 100_000_000
                w.add_message(ch, log_time=t, publish_time=t, data=json.dumps({"data": [i, 1.0]}).encode())
        w.add_metadata("episode", {"instruction": "move"})
        w.finish()
    return path.read_bytes()


MAPPING = {"fps": 10, "features": {"observation.state": {"topic": "/state", "field": "data"},
                                   "action": {"topic": "/cmd", "field": "data"}}}


@pytest.fixture(scope="module")
def mcap_bytes(tmp_path_factory) -> bytes:
    return _valid_mcap(tmp_path_factory.mktemp("mcap") / "v.mcap")


@FUZZ
@given(data=st.data())
def test_fuzz_mcap_framing(mcap_bytes, tmp_path, bounded_memory, data):
    from vla.data.formats.inspect_mcap import inspect_mcap
    from vla.data.formats.mcap import McapReader

    buf = bytearray(mcap_bytes)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["set", "set64", "cut", "insert"]))
        pos = data.draw(st.integers(0, len(buf) - 1))
        if op == "set":
            buf[pos] = data.draw(st.integers(0, 255))
        elif op == "set64":  # a length / time field replaced by an arbitrary uint64
            buf[pos:pos + 8] = struct.pack("<Q", data.draw(st.integers(0, 2**64 - 1)))
        elif op == "cut":
            del buf[pos:]
            if not buf:
                buf = bytearray(b"\x89")
        else:
            buf[pos:pos] = data.draw(st.binary(min_size=1, max_size=16))
    p = tmp_path / "f.mcap"
    p.write_bytes(bytes(buf))
    _expect_clean(lambda: inspect_mcap(p))
    _expect_clean(lambda: inspect_mcap(p, scan=True, decode=True))

    def convert_it():
        from vla.data.formats.convert import _init_worker, _prepare

        reader = McapReader(p, MAPPING)
        _init_worker(reader, None, {}, False)
        _prepare(str(p))

    _expect_clean(convert_it)


# -- TFRecord framing ----------------------------------------------------------------------------------------


@FUZZ
@given(raw=st.binary(max_size=200))
def test_fuzz_tfrecord_random_bytes(tmp_path, bounded_memory, raw):
    from vla.data.formats.tfrecord import iter_records

    p = tmp_path / "r.tfrecord"
    p.write_bytes(raw)
    _expect_clean(lambda: list(iter_records(p)))


@FUZZ
@given(length=st.integers(0, 2**64 - 1), payload=st.binary(max_size=64), good_data_crc=st.booleans())
def test_fuzz_tfrecord_length_with_valid_crc(tmp_path, bounded_memory, length, payload, good_data_crc):
    """A header whose length CRC is valid: the reader trusts no length beyond the bytes in the file."""
    from vla.data.formats.tfrecord import iter_records, masked_crc

    head = struct.pack("<Q", length)
    crc = masked_crc(payload) if good_data_crc else (masked_crc(payload) ^ 1)
    p = tmp_path / "r.tfrecord"
    p.write_bytes(head + struct.pack("<I", masked_crc(head)) + payload + struct.pack("<I", crc))
    if length == len(payload) and good_data_crc:
        assert list(iter_records(p)) == [payload]
    else:
        with pytest.raises(ConversionError, match="record 0"):
            list(iter_records(p))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(records=st.lists(st.binary(max_size=300), max_size=6))
def test_tfrecord_roundtrip(tmp_path, records):
    from vla.data.formats.tfrecord import iter_records, write_records

    p = tmp_path / "r.tfrecord"
    write_records(p, records)
    assert list(iter_records(p)) == records


def test_limits_scale_with_file_size():
    from vla.data.limits import LimitError, Limits, check_bytes

    lim = Limits(expansion=10, min_budget_bytes=1000)
    check_bytes(999, 1, "f", "x", lim)
    check_bytes(10 * 500, 500, "f", "x", lim)
    with pytest.raises(LimitError, match=r"x: declares .* the file holds"):
        check_bytes(10 * 500 + 1, 500, "f", "x", lim)
    assert math.isclose(lim.budget(10**6), 10**7)
