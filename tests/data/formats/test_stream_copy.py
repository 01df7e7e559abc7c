"""LeRobot -> LeRobot conversion copies video packets (no re-encode) when nothing asks for new timing."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from vla.data import Dataset, DatasetWriter
from vla.data.formats.convert import convert
from vla.data.formats.episode import ConversionError
from vla.data.formats.standardize_run import standardize_dataset
from vla.data.standardize import StandardizeConfig

from ..helpers import FEATURES, PROV, make_episode_arrays, write_dataset

G1 = "lerobot_v2.1/unitree_g1_pick_bottle"
CAM = "observation.images.front"


def packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as c:
        return [bytes(p) for p in c.demux(c.streams.video[0]) if p.size]


def stream_of(path: Path) -> tuple[str, int, int, str, bytes]:
    with av.open(str(path)) as c:
        cc = c.streams.video[0].codec_context
        return cc.codec.canonical_name, cc.width, cc.height, cc.pix_fmt, bytes(cc.extradata or b"")


def videos(root: Path, key: str) -> list[Path]:
    return sorted((root / "videos" / key).rglob("*.mp4"))


def assert_frames_equal(a: Dataset, b: Dataset, key_a: str, key_b: str | None = None) -> None:
    for ea, eb in zip(a.episodes, b.episodes, strict=True):
        np.testing.assert_array_equal(a.episode_images(ea.index, key_a), b.episode_images(eb.index, key_b or key_a))


def test_v30_concatenated_file_with_b_frames_is_copied(tmp_path):
    write_dataset(tmp_path / "src", lengths=(12, 17, 9, 5))  # one H.264 file, B-frames, episodes mid-GOP
    r = convert(tmp_path / "src", tmp_path / "out")
    assert r.copied_videos == [CAM]
    [src_file], [out_file] = videos(tmp_path / "src", CAM), videos(tmp_path / "out", CAM)
    assert packets(out_file) == packets(src_file)  # the same bytes: nothing re-encoded
    assert stream_of(out_file) == stream_of(src_file)
    a, b = Dataset.open(tmp_path / "src"), Dataset.open(tmp_path / "out")
    assert_frames_equal(a, b, CAM)
    # the timestamps the writer records: frame offsets in the file / fps, as for an encoded file
    starts = np.cumsum([0, 12, 17, 9]) / 10
    assert [e.videos[CAM].from_timestamp for e in b.episodes] == pytest.approx(starts)
    assert [e.videos[CAM].to_timestamp for e in b.episodes] == pytest.approx(starts + [1.2, 1.7, 0.9, 0.5])
    assert b.info["features"][CAM]["info"]["video.codec"] == "h264"
    assert b.info["features"][CAM]["info"]["video.pix_fmt"] == "yuv444p"


def test_one_file_per_episode_sources_are_joined_into_one_file(tmp_path):
    src = tmp_path / "src"
    with DatasetWriter(src, fps=10, features=FEATURES, robot_type="toy", video_file_size_mb=1e-6) as w:
        for e, n in enumerate((8, 11, 6)):
            arrays = make_episode_arrays(n, seed=e)
            for i in range(n):
                w.add_frame({k: v[i] for k, v in arrays.items()}, task="t")
            w.save_episode(PROV)
    assert len(videos(src, CAM)) >= 2  # the source rotated its video file
    r = convert(src, tmp_path / "out")
    assert r.copied_videos == [CAM]
    [out_file] = videos(tmp_path / "out", CAM)
    assert packets(out_file) == [p for f in videos(src, CAM) for p in packets(f)]
    a, b = Dataset.open(src), Dataset.open(tmp_path / "out")
    assert_frames_equal(a, b, CAM)
    assert [e.videos[CAM].from_timestamp for e in b.episodes] == pytest.approx([0.0, 0.8, 1.9])


def test_g1_av1_is_copied_frame_exact_and_reencode_is_lossy(real_fixtures, tmp_path, prov_file):
    key = "observation.images.cam_high"
    src = real_fixtures / G1
    r = convert(src, tmp_path / "copy", provenance=prov_file)
    assert r.copied_videos == [key] and any("stream-copied" in n for n in r.notes)
    [src_file] = sorted((src / "videos").rglob("*.mp4"))
    [out_file] = videos(tmp_path / "copy", key)
    assert packets(out_file) == packets(src_file) and stream_of(out_file) == stream_of(src_file)
    a, b = Dataset.open(src), Dataset.open(tmp_path / "copy")
    np.testing.assert_array_equal(b.episode_images(0, key), a.episode_images(29, key))
    assert b.info["features"][key]["info"]["video.codec"] == "av1"
    r = convert(src, tmp_path / "enc", provenance=prov_file, video_copy=False)
    assert r.copied_videos == []
    c = Dataset.open(tmp_path / "enc")
    assert c.info["features"][key]["info"]["video.codec"] == "h264"
    assert np.abs(c.episode_images(0, key)[:30].astype(int) - a.episode_images(29, key)[:30]).max() > 0


def test_new_timing_or_images_re_encode(tmp_path):
    write_dataset(tmp_path / "src", lengths=(10, 8))
    assert convert(tmp_path / "src", tmp_path / "fps", fps=5).copied_videos == []
    assert convert(tmp_path / "src", tmp_path / "off", standardize=StandardizeConfig(
        offsets={CAM: -0.1})).copied_videos == []
    assert convert(tmp_path / "src", tmp_path / "png", use_videos=False).copied_videos == []
    with pytest.raises(ConversionError, match="stream copy asked for but not possible: --fps 5 resamples"):
        convert(tmp_path / "src", tmp_path / "x", fps=5, video_copy=True)
    # normalization touches only low-dim data: the video is still copied
    r = standardize_dataset(tmp_path / "src", tmp_path / "norm", StandardizeConfig(normalize="minmax"))
    assert r.copied_videos == [CAM]
    assert_frames_equal(Dataset.open(tmp_path / "src"), Dataset.open(tmp_path / "norm"), CAM)


def test_episode_that_cannot_start_a_copy_falls_back_to_re_encoding(tmp_path, nothing_at):
    """Episodes listed out of file order: episode 0 then starts mid-GOP, where no copy can begin."""
    src = tmp_path / "src"
    write_dataset(src, lengths=(10, 10, 10))
    ep_path = src / "meta/episodes/chunk-000/file-000.parquet"
    t = pq.read_table(ep_path)
    for col in (f"videos/{CAM}/from_timestamp", f"videos/{CAM}/to_timestamp"):
        v = t.column(col).to_pylist()
        v[0], v[1] = v[1], v[0]
        t = t.set_column(t.column_names.index(col), col, pa.array(v, t.schema.field(col).type))
    pq.write_table(t, ep_path)
    a = Dataset.open(src)
    with pytest.raises(ConversionError, match=r"stream copy asked for but not possible: .*does not start on a key "
                       r"frame"):
        convert(src, tmp_path / "x", video_copy=True)
    nothing_at(tmp_path / "x")
    r = convert(src, tmp_path / "out")
    assert r.copied_videos == [] and any(n.startswith("videos re-encoded: a stream copy is not possible here")
                                         for n in r.notes)
    b = Dataset.open(tmp_path / "out")
    assert b.num_frames == 30
    err = np.abs(b.episode_images(0, CAM).astype(int) - a.episode_images(0, CAM)).mean()
    assert err < 3  # re-encoded from the decoded frames of the (reordered) episode
