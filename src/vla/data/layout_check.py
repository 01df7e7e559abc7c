"""Files a dataset's metadata points to but that are not usable, and folders that do not match info.json.

Two jobs, both for `Dataset.open`:

- ``file_problem(path)``: why a file the metadata names cannot be read: absent, empty (0 bytes) or a
  Git LFS pointer (a clone made without its large files). None when it looks like real content.
- ``check_layout(...)``: when files the metadata names are missing while files of the same kind lie
  elsewhere under the dataset folder (in a place the info.json template does not produce, or under a
  camera name that is not a feature), raise a DatasetError naming both: what info.json says and where
  the files are. A partial copy (the files are simply not there) is not a mismatch and passes.
"""

from __future__ import annotations

import os
import re
import string
from collections.abc import Iterable
from pathlib import Path

from vla.data.errors import DatasetError

LFS_POINTER = b"version https://git-lfs.github.com/spec/"
MAX_SCANNED = 20_000  # files looked at when searching a dataset folder for misplaced files


def file_problem(path: Path) -> str | None:
    """'absent', 'empty (0 bytes)', 'a Git LFS pointer (the file was not downloaded)' or None."""
    try:
        size = path.stat().st_size
    except OSError:
        return "absent"
    if not path.is_file():
        return "absent"
    if size == 0:
        return "empty (0 bytes)"
    if size < 1024:
        try:
            with open(path, "rb") as f:
                if f.read(len(LFS_POINTER)) == LFS_POINTER:
                    return "a Git LFS pointer (the file was not downloaded)"
        except OSError:
            return "absent"
    return None


def template_regex(template: str) -> re.Pattern[str]:
    """A regex matching the relative paths a path template produces ({video_key} -> a named group)."""
    out = []
    for text, name, _spec, _conv in string.Formatter().parse(template):
        out.append(re.escape(text))
        if name is None:
            continue
        out.append(f"(?P<{name}>[^/]+)" if name == "video_key" else r"\d+")
    return re.compile("".join(out) + r"\Z")


def _found(root: Path, suffix: str, skip: Iterable[str]) -> list[str]:
    """Relative paths (posix) of non-empty ``*suffix`` files under root, outside ``skip`` folders."""
    out: list[str] = []
    seen = 0
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = Path(dirpath).relative_to(root)
        dirnames[:] = sorted(d for d in dirnames if (rel_dir / d).as_posix() not in skip and not d.startswith("."))
        for name in sorted(filenames):
            seen += 1
            if seen > MAX_SCANNED:
                return out
            if name.endswith(suffix) and file_problem(Path(dirpath) / name) is None:
                out.append((rel_dir / name).as_posix())
    return out


def check_layout(root: Path, info_path: Path, field: str, template: str, missing: list[Path],
                 referenced: set[Path], suffix: str, cameras: list[str] | None = None) -> None:
    """Raise when ``missing`` files (named by info.json's ``field``) have look-alikes elsewhere.

    ``referenced``: every path the metadata names (present or not). A found file is a look-alike when
    the template cannot produce its path, or (videos) produces it with a ``video_key`` that is not a
    camera feature. Files the template produces for unlisted episodes are not counted."""
    if not missing:
        return
    rx = template_regex(template)
    known = {p.resolve() for p in referenced}
    skip = ("meta",) if suffix == ".parquet" else ()
    strays: list[str] = []
    bad_keys: dict[str, str] = {}
    for rel in _found(root, suffix, skip):
        if (root / rel).resolve() in known:
            continue
        m = rx.match(rel)
        if m is None:
            strays.append(rel)
        elif cameras is not None and m.groupdict().get("video_key") not in cameras:
            strays.append(rel)
            bad_keys.setdefault(m.group("video_key"), rel)
    if not strays:
        return
    base = root.resolve()
    expected = [p.resolve().relative_to(base).as_posix() if p.resolve().is_relative_to(base) else str(p)
                for p in missing]
    where = _common_dir(strays)
    more = f" and {len(expected) - 1} more" if len(expected) > 1 else ""
    msg = (f"field {field!r} says {template} (e.g. {expected[0]}{more}: not found), but the "
           f"{suffix[1:]} files are under {where}: {', '.join(strays[:3])}"
           + (f" and {len(strays) - 3} more" if len(strays) > 3 else ""))
    if bad_keys:
        msg += (f"; their folder names camera(s) {sorted(bad_keys)}, while info.json's cameras are "
                f"{cameras}")
    msg += (f". Correct {field} (or the feature names) in info.json, or convert with --mapping FILE giving "
            f"{field} and features (new name: name in the dataset)")
    raise DatasetError(info_path, msg)


def _common_dir(paths: list[str]) -> str:
    parents = [str(Path(p).parent) for p in paths]
    common = os.path.commonpath(parents) if parents else "."
    return (common or ".") + "/"
