"""tf.train.Example without TensorFlow: message classes (for writing) and a fast wire-format parser.

The messages (Example / Features / Feature / BytesList / FloatList / Int64List, package
``tensorflow``) are built from a `FileDescriptorProto`, so they serialize byte-compatibly with
TensorFlow's, and `parse_example` parses with them. A hand-rolled wire-format parser (numpy
`frombuffer` on packed floats) was measured too and was slower: on the bridge fixture, 138 us per
episode against 99 us for protobuf (upb backend) + `np.array` of the repeated fields, so protobuf it is.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

FeatureValue = list[bytes] | np.ndarray  # bytes_list -> list[bytes]; float_list -> f32; int64_list -> i64


def _build_messages() -> dict[str, Any]:
    fdp = descriptor_pb2.FileDescriptorProto(
        name="vla_tf_example.proto", package="tensorflow", syntax="proto3"
    )
    F = descriptor_pb2.FieldDescriptorProto

    def msg(name: str, fields: list[tuple[str, int, int, int, str | None]], packed: bool = False) -> None:
        m = fdp.message_type.add(name=name)
        for fname, num, ftype, label, tname in fields:
            f = m.field.add(name=fname, number=num, type=ftype, label=label)
            if tname:
                f.type_name = tname
            if packed:
                f.options.packed = True

    rep, opt = F.LABEL_REPEATED, F.LABEL_OPTIONAL
    msg("BytesList", [("value", 1, F.TYPE_BYTES, rep, None)])
    msg("FloatList", [("value", 1, F.TYPE_FLOAT, rep, None)], packed=True)
    msg("Int64List", [("value", 1, F.TYPE_INT64, rep, None)], packed=True)
    feat = fdp.message_type.add(name="Feature")
    feat.oneof_decl.add(name="kind")
    kinds = [("bytes_list", 1, ".tensorflow.BytesList"), ("float_list", 2, ".tensorflow.FloatList"),
             ("int64_list", 3, ".tensorflow.Int64List")]
    for fname, num, tname in kinds:
        feat.field.add(name=fname, number=num, type=F.TYPE_MESSAGE, label=opt, type_name=tname, oneof_index=0)
    feats = fdp.message_type.add(name="Features")
    entry = feats.nested_type.add(name="FeatureEntry")
    entry.options.map_entry = True
    entry.field.add(name="key", number=1, type=F.TYPE_STRING, label=opt)
    entry.field.add(name="value", number=2, type=F.TYPE_MESSAGE, label=opt, type_name=".tensorflow.Feature")
    feats.field.add(name="feature", number=1, type=F.TYPE_MESSAGE, label=rep,
                    type_name=".tensorflow.Features.FeatureEntry")
    msg("Example", [("features", 1, F.TYPE_MESSAGE, opt, ".tensorflow.Features")])
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return {n: message_factory.GetMessageClass(pool.FindMessageTypeByName(f"tensorflow.{n}"))
            for n in ("Example", "Features", "Feature", "BytesList", "FloatList", "Int64List")}


MESSAGES = _build_messages()
Example = MESSAGES["Example"]


def make_example(features: dict[str, FeatureValue | list[float] | list[int]]) -> bytes:
    """Serialize a dict as a tf.train.Example: bytes lists, float32 arrays, integer arrays."""
    ex = Example()
    for key, value in features.items():
        f = ex.features.feature[key]
        if isinstance(value, list) and (not value or isinstance(value[0], bytes | str)):
            f.bytes_list.value.extend(v.encode() if isinstance(v, str) else v for v in value)
            continue
        arr = np.asarray(value)
        if arr.dtype.kind == "f":
            f.float_list.value.extend(arr.astype(np.float32).ravel().tolist())
        else:
            f.int64_list.value.extend(arr.astype(np.int64).ravel().tolist())
    return ex.SerializeToString()


def parse_example(data: bytes) -> dict[str, FeatureValue]:
    """Parse a serialized tf.train.Example into {key: list[bytes] | float32 array | int64 array}.

    Raises ValueError on malformed input (the caller adds file and record)."""
    ex = Example()
    try:
        ex.ParseFromString(data)
    except Exception as e:  # protobuf's DecodeError
        raise ValueError(f"malformed tf.train.Example ({e})") from e
    out: dict[str, FeatureValue] = {}
    for key, f in ex.features.feature.items():
        kind = f.WhichOneof("kind")
        if kind == "bytes_list":
            out[key] = list(f.bytes_list.value)
        elif kind == "float_list":
            out[key] = np.array(f.float_list.value, dtype=np.float32)
        elif kind == "int64_list":
            out[key] = np.array(f.int64_list.value, dtype=np.int64)
        else:
            out[key] = np.zeros(0, np.float32)
    return out
