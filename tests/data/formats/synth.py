"""Writers of small synthetic robot files for the format tests: MCAP (ROS 2 CDR, JSON, protobuf),
HDF5 (robomimic, ALOHA), RLDS (TFRecord + features.json)."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
from PIL import Image

HEADER_DEFS = """================================================================================
MSG: std_msgs/Header
builtin_interfaces/Time stamp
string frame_id
================================================================================
MSG: builtin_interfaces/Time
int32 sec
uint32 nanosec"""

JOINT_STATE = "std_msgs/Header header\nstring[] name\nfloat64[] position\nfloat64[] velocity\nfloat64[] effort\n" + \
    HEADER_DEFS
COMPRESSED_IMAGE = "std_msgs/Header header\nstring format\nuint8[] data\n" + HEADER_DEFS
FLOAT64_MULTI_ARRAY = """std_msgs/MultiArrayLayout layout
float64[] data
================================================================================
MSG: std_msgs/MultiArrayLayout
std_msgs/MultiArrayDimension[] dim
uint32 data_offset
================================================================================
MSG: std_msgs/MultiArrayDimension
string label
uint32 size
uint32 stride"""
STRING = "string data"

T0 = 1_700_000_000 * 10**9


def jpeg(img: np.ndarray, quality: int = 95) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def png(img: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="PNG")
    return buf.getvalue()


def image_at(i: int, h: int = 24, w: int = 32) -> np.ndarray:
    """A flat-colour image whose colour encodes `i` (survives JPEG)."""
    img = np.zeros((h, w, 3), np.uint8)
    img[..., 0] = (i * 7) % 256
    img[..., 1] = 100
    img[..., 2] = 255 - (i * 7) % 256
    return img


def joint(t: float) -> np.ndarray:
    """Joint positions at time t (linear in t, so interpolation is exact)."""
    return np.array([0.5 * t, 1.0 - t, 0.25 * t + 0.1], np.float64)


def command(t: float) -> np.ndarray:
    """Command at time t: 3 linear dims + a gripper that closes at t >= 1.0."""
    return np.array([2.0 * t, -t, 0.1, 1.0 if t >= 1.0 else 0.0], np.float64)


def write_robot_mcap(path: Path, seconds: float = 2.0, instruction: str | None = "pick up the red block",
                     marker_times: tuple[float, ...] = (), metadata: dict | None = None,
                     image_hz: float = 30.0) -> None:
    """JointState at 100 Hz, CompressedImage at `image_hz`, Float64MultiArray commands at 50 Hz (ROS 2 CDR)."""
    from mcap_ros2.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f)
        js = w.register_msgdef("sensor_msgs/msg/JointState", JOINT_STATE)
        ci = w.register_msgdef("sensor_msgs/msg/CompressedImage", COMPRESSED_IMAGE)
        cmd = w.register_msgdef("std_msgs/msg/Float64MultiArray", FLOAT64_MULTI_ARRAY)
        st = w.register_msgdef("std_msgs/msg/String", STRING)
        events = []
        for i in range(int(seconds * 100) + 1):
            events.append((i / 100, "js", i))
        for i in range(int(seconds * image_hz) + 1):
            events.append((i / image_hz, "img", i))
        for i in range(int(seconds * 50) + 1):
            events.append((i / 50, "cmd", i))
        for k, t in enumerate(marker_times):
            events.append((t, "marker", k))
        events.sort(key=lambda e: (e[0], e[1]))
        for t, kind, i in events:
            ns = T0 + round(t * 1e9)
            stamp = {"sec": ns // 10**9, "nanosec": ns % 10**9}
            if kind == "js":
                w.write_message("/joint_states", js, {"header": {"stamp": stamp, "frame_id": ""},
                                                      "name": ["j0", "j1", "j2"], "position": joint(t).tolist(),
                                                      "velocity": [], "effort": []}, log_time=ns, publish_time=ns)
            elif kind == "img":
                w.write_message("/camera/front/compressed", ci,
                                {"header": {"stamp": stamp, "frame_id": "cam"}, "format": "jpeg",
                                 "data": jpeg(image_at(i))}, log_time=ns, publish_time=ns)
            elif kind == "cmd":
                w.write_message("/arm/command", cmd, {"layout": {"dim": [], "data_offset": 0},
                                                      "data": command(t).tolist()}, log_time=ns, publish_time=ns)
            else:
                w.write_message("/episode", st, {"data": f"task {i}"}, log_time=ns, publish_time=ns)
        if instruction is not None:
            w.add_metadata("episode", {"instruction": instruction})
        for name, md in (metadata or {}).items():
            w.add_metadata(name, md)
        w.finish()


ROBOT_MAPPING = {
    "fps": 10,
    "robot_type": "test_arm",
    "features": {
        "observation.state": {"topic": "/joint_states", "field": "position"},
        "observation.images.front": {"topic": "/camera/front/compressed"},
        "action": {"topic": "/arm/command", "field": "data", "hold_dims": [3]},
    },
}


def write_json_mcap(path: Path, seconds: float = 1.0) -> None:
    """JSON-encoded state (20 Hz) and action (20 Hz) and a foxglove-style CompressedImage (base64) at 10 Hz."""
    import base64

    from mcap.writer import Writer

    with open(path, "wb") as f:
        w = Writer(f)
        w.start(profile="", library="vla-tests")
        schema = w.register_schema("vec", "jsonschema", b'{"type": "object"}')
        img_schema = w.register_schema("foxglove.CompressedImage", "jsonschema", b'{"type": "object"}')
        ch_s = w.register_channel("/state", "json", schema)
        ch_a = w.register_channel("/action", "json", schema)
        ch_i = w.register_channel("/image", "json", img_schema)
        for i in range(int(seconds * 20) + 1):
            t = i / 20
            ns = T0 + round(t * 1e9)
            w.add_message(ch_s, ns, json.dumps({"q": joint(t).tolist()}).encode(), ns)
            w.add_message(ch_a, ns, json.dumps({"cmd": {"v": command(t).tolist()}}).encode(), ns)
            if i % 2 == 0:
                data = base64.b64encode(png(image_at(i // 2))).decode()
                w.add_message(ch_i, ns, json.dumps({"format": "png", "data": data,
                                                    "timestamp": {"sec": ns // 10**9, "nsec": ns % 10**9}}
                                                   ).encode(), ns)
        w.add_metadata("provenance", {"collector_id": "operator-7", "collection_method": "teleoperation",
                                      "robot": "json_bot"})
        w.finish()


def protobuf_image_class():
    """A dynamic `foxglove.CompressedImage`-like protobuf message (frame_id, data, format)."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory

    fdp = descriptor_pb2.FileDescriptorProto(name="foxglove/CompressedImage.proto", package="foxglove",
                                             syntax="proto3")
    m = fdp.message_type.add(name="CompressedImage")
    F = descriptor_pb2.FieldDescriptorProto
    m.field.add(name="frame_id", number=2, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    m.field.add(name="data", number=3, type=F.TYPE_BYTES, label=F.LABEL_OPTIONAL)
    m.field.add(name="format", number=4, type=F.TYPE_STRING, label=F.LABEL_OPTIONAL)
    v = fdp.message_type.add(name="Vector")
    v.field.add(name="values", number=1, type=F.TYPE_DOUBLE, label=F.LABEL_REPEATED)
    pool = descriptor_pool.DescriptorPool()
    pool.Add(fdp)
    return (message_factory.GetMessageClass(pool.FindMessageTypeByName("foxglove.CompressedImage")),
            message_factory.GetMessageClass(pool.FindMessageTypeByName("foxglove.Vector")))


def write_protobuf_mcap(path: Path, seconds: float = 1.0) -> None:
    from mcap_protobuf.writer import Writer

    Img, Vec = protobuf_image_class()
    with open(path, "wb") as f:
        w = Writer(f)
        for i in range(int(seconds * 20) + 1):
            t = i / 20
            ns = T0 + round(t * 1e9)
            w.write_message("/state", Vec(values=joint(t).tolist()), log_time=ns, publish_time=ns)
            w.write_message("/action", Vec(values=command(t).tolist()), log_time=ns, publish_time=ns)
            w.write_message("/image", Img(frame_id="cam", data=jpeg(image_at(i)), format="jpeg"), log_time=ns,
                            publish_time=ns)
        w.finish()


# -- HDF5 -------------------------------------------------------------------------------------------


def write_robomimic(path: Path, lengths: dict[str, int], mask: dict[str, list[str]] | None = None) -> dict:
    """robomimic file with demos of the given lengths; returns the arrays written per demo."""
    import h5py

    rng = np.random.default_rng(0)
    out = {}
    with h5py.File(path, "w") as f:
        data = f.create_group("data")
        data.attrs["env_args"] = json.dumps({"env_name": "PickPlaceCan", "type": 1,
                                             "env_kwargs": {"robots": ["Panda"], "control_freq": 20}})
        for name, n in lengths.items():
            g = data.create_group(name)
            arrays = {
                "actions": rng.uniform(-1, 1, (n, 7)),
                "rewards": np.zeros(n),
                "dones": np.r_[np.zeros(n - 1), 1].astype(np.int64),
                "obs/robot0_eef_pos": rng.normal(size=(n, 3)),
                "obs/robot0_gripper_qpos": rng.normal(size=(n, 2)),
                "obs/agentview_image": rng.integers(0, 255, (n, 16, 16, 3), dtype=np.uint8),
            }
            for k, v in arrays.items():
                g.create_dataset(k, data=v)
            g.attrs["num_samples"] = n
            out[name] = arrays
        if mask:
            m = f.create_group("mask")
            for k, demos in mask.items():
                m.create_dataset(k, data=np.array([d.encode() for d in demos]))
    return out


def write_aloha(path: Path, n: int = 12, compressed: bool = False, seed: int = 0) -> dict:
    import h5py

    rng = np.random.default_rng(seed)
    qpos = rng.normal(size=(n, 14))
    action = rng.normal(size=(n, 14))
    cams = {c: np.stack([image_at(i + k * 50, 24, 32) for i in range(n)]) for k, c in
            enumerate(["cam_high", "cam_left_wrist"])}
    with h5py.File(path, "w") as f:
        f.attrs["sim"] = False
        f.attrs["compress"] = compressed
        obs = f.create_group("observations")
        obs.create_dataset("qpos", data=qpos)
        obs.create_dataset("qvel", data=np.zeros((n, 14)))
        f.create_dataset("action", data=action)
        imgs = obs.create_group("images")
        if compressed:
            enc = {c: [jpeg(im, 95) for im in v] for c, v in cams.items()}
            L = max(len(b) for v in enc.values() for b in v)
            lens = np.zeros((len(cams), n), np.int64)
            for ci, (c, v) in enumerate(enc.items()):
                arr = np.zeros((n, L), np.uint8)
                for t, b in enumerate(v):
                    arr[t, : len(b)] = np.frombuffer(b, np.uint8)
                    lens[ci, t] = len(b)
                imgs.create_dataset(c, data=arr)
            f.create_dataset("compress_len", data=lens)
        else:
            for c, v in cams.items():
                imgs.create_dataset(c, data=v)
    return {"qpos": qpos, "action": action, "cams": cams}


# -- RLDS -------------------------------------------------------------------------------------------


def _tensor(shape: list[int], dtype: str = "float32") -> dict:
    return {"pythonClassName": "tensorflow_datasets.core.features.tensor_feature.Tensor",
            "tensor": {"shape": {"dimensions": [str(d) for d in shape]}, "dtype": dtype, "encoding": "none"}}


def _fdict(features: dict) -> dict:
    return {"pythonClassName": "tensorflow_datasets.core.features.features_dict.FeaturesDict",
            "featuresDict": {"features": features}}


def write_rlds(root: Path, episodes: list[int], name: str = "toy_rlds", shards: int = 1,
               missing_shards: tuple[int, ...] = ()) -> list[dict]:
    """RLDS with a dict action (gripper, rotation_delta, world_vector), language in the observation,
    a PNG image, a ragged per-step feature, is_last = 0 everywhere."""
    from vla.data.formats.example import make_example
    from vla.data.formats.tfrecord import write_records

    root.mkdir(parents=True, exist_ok=True)
    step = _fdict({
        "action": _fdict({"gripper_closedness_action": _tensor([1]), "rotation_delta": _tensor([3]),
                          "world_vector": _tensor([3])}),
        "observation": _fdict({
            "natural_language_instruction": {"pythonClassName": "tensorflow_datasets.core.features.text_feature.Text",
                                             "text": {}},
            "image": {"pythonClassName": "tensorflow_datasets.core.features.image_feature.Image",
                      "image": {"shape": {"dimensions": ["16", "16", "3"]}, "dtype": "uint8",
                                "encodingFormat": "png"}},
            "state": _tensor([4]),
            "points": _tensor([-1]),
        }),
        "is_last": {"pythonClassName": "tensorflow_datasets.core.features.scalar.Scalar",
                    "tensor": {"shape": {}, "dtype": "bool", "encoding": "none"}},
        "reward": {"pythonClassName": "tensorflow_datasets.core.features.scalar.Scalar",
                   "tensor": {"shape": {}, "dtype": "float32", "encoding": "none"}},
    })
    features = _fdict({"steps": {"pythonClassName": "tensorflow_datasets.core.features.dataset_feature.Dataset",
                                 "sequence": {"feature": step, "length": "-1"}}})
    (root / "features.json").write_text(json.dumps(features))
    per_shard = [episodes[i::shards] for i in range(shards)]
    info = {"name": name, "version": "1.0.0", "fileFormat": "tfrecord",
            "splits": [{"name": "train", "filepathTemplate": "{DATASET}-{SPLIT}.{FILEFORMAT}-{SHARD_X_OF_Y}",
                        "shardLengths": [str(len(s)) for s in per_shard]}]}
    (root / "dataset_info.json").write_text(json.dumps(info))
    rng = np.random.default_rng(1)
    written = []
    for si, lens in enumerate(per_shard):
        records = []
        for ei, n in enumerate(lens):
            ep = {"world_vector": rng.normal(size=(n, 3)).astype(np.float32),
                  "rotation_delta": rng.normal(size=(n, 3)).astype(np.float32),
                  "gripper": rng.uniform(0, 1, (n, 1)).astype(np.float32),
                  "state": rng.normal(size=(n, 4)).astype(np.float32),
                  "reward": np.zeros(n, np.float32),
                  "images": [image_at(si * 100 + ei * 10 + t, 16, 16) for t in range(n)],
                  "instruction": f"task {si}-{ei}",
                  "points": [rng.normal(size=t % 3 + 1).astype(np.float32) for t in range(n)]}
            records.append(make_example({
                "steps/action/world_vector": ep["world_vector"], "steps/action/rotation_delta": ep["rotation_delta"],
                "steps/action/gripper_closedness_action": ep["gripper"],
                "steps/observation/state": ep["state"],
                "steps/observation/image": [png(im) for im in ep["images"]],
                "steps/observation/natural_language_instruction": [ep["instruction"]] * n,
                "steps/observation/points/ragged_flat_values": np.concatenate(ep["points"]),
                "steps/observation/points/ragged_row_lengths_0": np.array([len(p) for p in ep["points"]]),
                "steps/is_last": np.zeros(n, np.int64),
                "steps/reward": ep["reward"],
            }))
            written.append(ep)
        if si not in missing_shards:
            write_records(root / f"{name}-train.tfrecord-{si:05d}-of-{shards:05d}", records)
    return written
