"""TFRecord framing without TensorFlow: read (both CRC checks) and write.

Each record on disk is::

    uint64 length (little endian)
    uint32 masked_crc32c(length bytes)
    bytes  data[length]
    uint32 masked_crc32c(data)

The mask is TensorFlow's: ``((crc >> 15) | (crc << 17)) + 0xa282ead8`` modulo 2**32. Records are read one
at a time (memory bounded by the largest record); a declared length is checked against the bytes left
in the file before anything is read, so a corrupt (or crafted) length field with a valid CRC cannot ask
for more memory than the file holds. Any mismatch raises `ConversionError` naming the file,
the record index and its byte offset.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import crc32c

from vla.data.formats.episode import ConversionError

_MASK_DELTA = 0xA282EAD8


def masked_crc(data: bytes) -> int:
    """TensorFlow's masked CRC-32C of `data`."""
    crc = crc32c.crc32c(data)
    return (((crc >> 15) | (crc << 17)) + _MASK_DELTA) & 0xFFFFFFFF


def iter_records(path: str | Path, check_crc: bool = True) -> Iterator[bytes]:
    """Yield the payload of every record in a TFRecord file, verifying both CRCs."""
    path = Path(path)
    with open(path, "rb") as f:
        yield from _iter_stream(f, str(path), check_crc)


def _iter_stream(f: BinaryIO, name: str, check_crc: bool) -> Iterator[bytes]:
    index = 0
    offset = 0
    try:
        size: int | None = os.fstat(f.fileno()).st_size
    except (OSError, AttributeError, ValueError):  # an in-memory stream: bounded by what it holds
        size = None
    while True:
        header = f.read(12)
        if not header:
            return
        if len(header) < 12:
            raise ConversionError(
                f"{name}: record {index} at byte {offset}: truncated header "
                f"(expected 12 bytes of length+crc, found {len(header)})"
            )
        (length,) = struct.unpack("<Q", header[:8])
        (len_crc,) = struct.unpack("<I", header[8:])
        if check_crc and masked_crc(header[:8]) != len_crc:
            raise ConversionError(
                f"{name}: record {index} at byte {offset}: length CRC mismatch "
                f"(expected {len_crc:#010x}, computed {masked_crc(header[:8]):#010x}); file corrupted"
            )
        left = None if size is None else size - offset - 12
        if left is not None and length + 4 > left:
            raise ConversionError(
                f"{name}: record {index} at byte {offset}: field 'length' declares {length:,} data bytes, but only "
                f"{max(left - 4, 0):,} are left in the file (limit: the file's size); file corrupted or truncated"
            )
        data = f.read(length)
        footer = f.read(4)
        if len(data) < length or len(footer) < 4:
            raise ConversionError(
                f"{name}: record {index} at byte {offset}: truncated "
                f"(expected {length} data bytes + 4 CRC bytes, file ends after {len(data) + len(footer)})"
            )
        if check_crc:
            (data_crc,) = struct.unpack("<I", footer)
            if masked_crc(data) != data_crc:
                raise ConversionError(
                    f"{name}: record {index} at byte {offset}: data CRC mismatch "
                    f"(expected {data_crc:#010x}, computed {masked_crc(data):#010x}); file corrupted"
                )
        yield data
        index += 1
        offset += 16 + length


def frame_record(data: bytes) -> bytes:
    """Frame one payload as a TFRecord record."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", masked_crc(length)) + data + struct.pack("<I", masked_crc(data))


def write_records(path: str | Path, records: list[bytes] | Iterator[bytes]) -> None:
    """Write payloads as a TFRecord file (used by tests and the benchmark)."""
    with open(path, "wb") as f:
        for r in records:
            f.write(frame_record(r))
