"""CLI: `vla convert`, `vla inspect`, `vla standardize` (registered by `register(app)`)."""

from __future__ import annotations

import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Annotated

import typer

# Standardization options shared by `vla convert` and `vla standardize` (same flags, same meaning).
Fps = Annotated[float | None, typer.Option("--fps", help="Output control rate (resample).")]
Normalize = Annotated[str | None, typer.Option("--normalize", help="min_max | quantile | mean_std")]
Offsets = Annotated[list[str], typer.Option("--offset", help="STREAM=SECONDS latency offset (repeatable).")]
ActionMode = Annotated[str | None, typer.Option("--action-mode", help="absolute | delta")]
BinarizeGripper = Annotated[int | None, typer.Option("--binarize-gripper", help="Action dim to binarize.")]
GripperThreshold = Annotated[float | None, typer.Option("--gripper-threshold")]
AsJson = Annotated[bool, typer.Option("--json", help="Print the report as JSON.")]


def _parse_offsets(items: list[str]) -> dict[str, float]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        try:
            if not sep:
                raise ValueError
            out[key] = float(value)
        except ValueError:
            raise typer.BadParameter(f"--offset {item!r}: expected STREAM=SECONDS, e.g. "
                                     "observation.images.wrist=-0.05") from None
    return out


def _config(fps: float | None, normalize: str | None, offsets: list[str], action_mode: str | None,
            binarize_gripper: int | None, gripper_threshold: float | None):
    from vla.data.normalization import NORM_MODES
    from vla.data.standardize import StandardizeConfig

    if normalize not in (None, *NORM_MODES):
        raise typer.BadParameter(f"--normalize {normalize!r}: expected one of {', '.join(NORM_MODES)}")
    if action_mode not in (None, "absolute", "delta"):
        raise typer.BadParameter(f"--action-mode {action_mode!r}: expected absolute or delta")
    return StandardizeConfig(fps=fps, offsets=_parse_offsets(offsets), normalize=normalize,
                             action_mode=action_mode, binarize_gripper=binarize_gripper,
                             gripper_threshold=gripper_threshold)


def _progress(label: str):
    from tqdm import tqdm

    bar = tqdm(desc=label, unit="ep", file=sys.stderr, disable=None)

    def update(episodes: int, frames: int) -> None:
        bar.update(episodes - bar.n)
        bar.set_postfix(frames=frames)

    return bar, update


def _fail(e: Exception) -> None:
    from vla.cli_util import fail

    fail(e)


@contextlib.contextmanager
def _clean_exit_on_sigterm():
    """Turn SIGTERM into SystemExit while a dataset is written, so the writer's temporary folder is removed."""
    def stop(signum, _frame):
        raise SystemExit(128 + signum)

    try:
        previous = signal.signal(signal.SIGTERM, stop)
    except ValueError:  # not the main thread (e.g. CliRunner in a thread): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def register(app: typer.Typer) -> None:
    @app.command()
    def convert(
        src: Path = typer.Argument(..., help="Source: LeRobot folder, RLDS/TFDS folder, .mcap file/folder, HDF5 "
                                   "file/folder."),
        dst: Path = typer.Argument(..., help="New dataset folder (must not exist)."),
        format: str = typer.Option("auto", "--format", help="auto | lerobot | rlds | mcap | hdf5"),
        mapping: Path | None = typer.Option(None, "--mapping", help="YAML/JSON mapping (MCAP topics -> features, "
                                            "task, fps, HDF5/RLDS keys; LeRobot: features to rename, "
                                            "video_path/data_path)."),
        provenance: Path | None = typer.Option(None, "--provenance", help="YAML/JSON: collector_id, "
                                               "collection_method, hardware, calibration, annotation_protocol, "
                                               "license."),
        workers: int = typer.Option(1, "--workers", min=1, help="Worker processes decoding episodes."),
        fps: Fps = None,
        normalize: Normalize = None,
        offset: Offsets = [],  # noqa: B006 - typer copies list defaults
        action_mode: ActionMode = None,
        binarize_gripper: BinarizeGripper = None,
        gripper_threshold: GripperThreshold = None,
        images: bool = typer.Option(False, "--images", help="Store PNG images instead of video."),
        robot_type: str | None = typer.Option(None, "--robot-type"),
        skip_missing_videos: bool = typer.Option(False, "--skip-missing-videos", help="LeRobot: leave out the "
                                                 "cameras whose video files are missing (absent, empty, LFS "
                                                 "pointers) instead of failing; every episode is kept."),
        reencode: bool = typer.Option(False, "--reencode", help="LeRobot: decode and re-encode videos instead of "
                                      "copying their streams."),
        as_json: AsJson = False,
    ) -> None:
        """Convert LeRobot / RLDS / MCAP / HDF5 data into a vla dataset (nothing is left at DST on failure)."""
        from vla.data.formats.convert import convert as run
        from vla.errors import VlaError

        cfg = _config(fps, normalize, offset, action_mode, binarize_gripper, gripper_threshold)
        bar, update = _progress("convert")
        try:
            with _clean_exit_on_sigterm():
                report = run(src, dst, format=format, mapping=mapping, provenance=provenance, workers=workers,
                             standardize=cfg, use_videos=not images, robot_type=robot_type, progress=update,
                             skip_missing_videos=skip_missing_videos, video_copy=False if reencode else None)
        except VlaError as e:
            _fail(e)
        except MemoryError:
            _fail("out of memory while reading the input")
        finally:
            bar.close()
        if as_json:
            typer.echo(json.dumps(report.to_json(), indent=2))
            return
        typer.echo(f"{report.dst}: {report.episodes} episodes, {report.frames} frames at {report.fps:g} Hz "
                   f"from {report.format} in {report.seconds:.1f} s")
        for note in report.notes:
            typer.echo(f"note: {note}")

    @app.command()
    def inspect(
        file: Path = typer.Argument(..., help="An MCAP file."),
        as_json: bool = typer.Option(False, "--json", help="Print JSON."),
        decode: bool = typer.Option(False, "--decode", help="Decode every message and show the first per topic."),
        scan: bool = typer.Option(False, "--scan", help="Ignore the summary section; count by reading records."),
    ) -> None:
        """List an MCAP file's topics, schemas, encodings, message counts and time ranges."""
        from vla.data.formats.inspect_mcap import format_inspection, inspect_mcap
        from vla.errors import VlaError

        try:
            info = inspect_mcap(file, scan=scan, decode=decode)
        except VlaError as e:
            _fail(e)
        except MemoryError:
            _fail("out of memory while reading the input")
        typer.echo(json.dumps(info, indent=2) if as_json else format_inspection(info))

    @app.command()
    def standardize(
        src: Path = typer.Argument(..., help="A dataset (ours or LeRobot v2.1/v3.0)."),
        dst: Path = typer.Argument(..., help="New dataset folder (must not exist)."),
        fps: Fps = None,
        normalize: Normalize = None,
        offset: Offsets = [],  # noqa: B006 - typer copies list defaults
        action_mode: ActionMode = None,
        binarize_gripper: BinarizeGripper = None,
        gripper_threshold: GripperThreshold = None,
        provenance: Path | None = typer.Option(None, "--provenance", help="Needed when SRC has no provenance."),
        as_json: AsJson = False,
    ) -> None:
        """Resample, align, normalize and convert actions of a dataset into a new one."""
        from vla.data.formats.standardize_run import standardize_dataset
        from vla.errors import VlaError

        cfg = _config(fps, normalize, offset, action_mode, binarize_gripper, gripper_threshold)
        bar, update = _progress("standardize")
        try:
            report = standardize_dataset(src, dst, cfg, provenance=provenance, progress=update)
        except VlaError as e:
            _fail(e)
        except MemoryError:
            _fail("out of memory while reading the input")
        finally:
            bar.close()
        if as_json:
            typer.echo(json.dumps(report.to_json(), indent=2))
        else:
            typer.echo(f"{report.dst}: {report.episodes} episodes, {report.frames} frames at {report.fps:g} Hz")
