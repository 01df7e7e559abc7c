"""TFRecord framing (both CRCs) and tf.train.Example parsing without TensorFlow."""

from __future__ import annotations

import numpy as np
import pytest

from vla.data.formats.episode import ConversionError
from vla.data.formats.example import make_example, parse_example
from vla.data.formats.tfrecord import frame_record, iter_records, masked_crc, write_records


def test_masked_crc_known_value():
    # TensorFlow's masked CRC-32C of an empty string (from tensorflow/core/lib/hash/crc32c tests)
    assert masked_crc(b"") == ((0 >> 15 | (0 << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def test_roundtrip(tmp_path):
    recs = [b"", b"abc", bytes(range(256)) * 10]
    write_records(tmp_path / "f.tfrecord", recs)
    assert list(iter_records(tmp_path / "f.tfrecord")) == recs


def test_bad_data_crc_names_record(tmp_path):
    raw = bytearray(frame_record(b"hello") + frame_record(b"world"))
    raw[-6] ^= 0xFF  # inside record 1's data
    (tmp_path / "f").write_bytes(bytes(raw))
    with pytest.raises(ConversionError, match=r"record 1 at byte 21: data CRC mismatch"):
        list(iter_records(tmp_path / "f"))


def test_bad_length_crc(tmp_path):
    raw = bytearray(frame_record(b"hello"))
    raw[9] ^= 0x01
    (tmp_path / "f").write_bytes(bytes(raw))
    with pytest.raises(ConversionError, match="record 0 at byte 0: length CRC mismatch"):
        list(iter_records(tmp_path / "f"))


def test_truncated(tmp_path):
    (tmp_path / "f").write_bytes(frame_record(b"hello world")[:-3])
    with pytest.raises(ConversionError, match="truncated"):
        list(iter_records(tmp_path / "f"))
    (tmp_path / "g").write_bytes(frame_record(b"x") + b"\x01\x02")
    with pytest.raises(ConversionError, match="record 1 .*truncated header"):
        list(iter_records(tmp_path / "g"))


def test_example_roundtrip():
    data = make_example({"a": np.arange(6, dtype=np.float32), "b": np.array([-3, 2**40]), "c": [b"x", b"yz"]})
    ex = parse_example(data)
    np.testing.assert_array_equal(ex["a"], np.arange(6, dtype=np.float32))
    assert ex["a"].dtype == np.float32 and ex["b"].tolist() == [-3, 2**40] and ex["c"] == [b"x", b"yz"]
    with pytest.raises(ValueError, match="malformed"):
        parse_example(b"\x0a\xff\xff")
