"""Names and paths that cannot escape: feature/camera/stream names and templated file paths.

Every name that becomes part of a path (feature keys, camera keys, stream names) must be a safe path
component (`check_name`). Every path filled from a template (info.json ``data_path`` / ``video_path``,
an RLDS ``filepathTemplate``) may use only the template's documented fields with plain integer formats
(`fill_template`), and the result is resolved and checked to lie under its root (`inside`), whether it
is read (under the dataset root) or written (under the destination).
"""

from __future__ import annotations

import numbers
import re
import string
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vla.data.errors import DatasetError

MAX_NAME_CHARS = 200
# a format spec on an integer field: optional zero fill and a width of at most two digits, optional "d"
_INT_SPEC = re.compile(r"^(0?[0-9]{1,2})?d?$")


def name_problem(name: Any) -> str | None:
    """Why ``name`` is not a safe path component, or None when it is."""
    if not isinstance(name, str):
        return f"is a {type(name).__name__}, expected a string"
    if not name.strip():
        return "is empty"
    if len(name) > MAX_NAME_CHARS:
        return f"is {len(name)} characters long (at most {MAX_NAME_CHARS})"
    if name in (".", "..") or name != name.strip():
        return "is not a usable file name"
    bad = sorted({c for c in name if c in "/\\\x00" or ord(c) < 32 or ord(c) == 127})
    if bad:
        return f"contains {', '.join(repr(c) for c in bad)} (a name must be one path component)"
    return None


def check_name(name: Any, what: str, path: str | Path | None = None) -> str:
    """Return ``name`` if it is a safe path component, else raise DatasetError naming it."""
    problem = name_problem(name)
    if problem:
        raise DatasetError(path, f"{what} {name!r} {problem}")
    return name


def inside(root: Path, rel: str | Path, where: str | Path | None, field: str) -> Path:
    """``root / rel`` resolved, refused unless it lies under ``root`` (resolved too)."""
    rel_p = Path(rel)
    if rel_p.is_absolute():
        raise DatasetError(where, f"{field}: {str(rel)!r} is an absolute path; expected a path inside {root}")
    target = (root / rel_p).resolve()
    base = root.resolve()
    if not target.is_relative_to(base):
        raise DatasetError(where, f"{field}: {str(rel)!r} points outside {root} (to {target})")
    return target


def template_fields(template: Any, allowed: tuple[str, ...], where: str | Path | None, field: str) -> None:
    """Refuse a template that uses anything but ``allowed`` fields with integer width formats."""
    if not isinstance(template, str) or not template:
        raise DatasetError(where, f"{field}: expected a non-empty string template, got {template!r}")
    try:
        parts = list(string.Formatter().parse(template))
    except ValueError as e:
        raise DatasetError(where, f"{field}: {template!r} is not a valid template ({e})") from e
    for _text, name, spec, conv in parts:
        if name is None:
            continue
        if name not in allowed:
            raise DatasetError(where, f"{field}: {template!r} uses the field {{{name}}}; allowed fields: "
                               + ", ".join("{" + a + "}" for a in allowed))
        if conv is not None or (spec and not _INT_SPEC.match(spec)):
            raise DatasetError(where, f"{field}: {template!r}: field {{{name}}} has the format "
                               f"{(('!' + conv) if conv else '') + (':' + spec if spec else '')!r}; "
                               "expected at most a zero-padded width of two digits (e.g. :03d)")


def fill_template(root: Path, template: Any, values: Mapping[str, Any], where: str | Path | None,
                  field: str) -> Path:
    """Fill a path template (only the keys of ``values``) and return the path, checked to lie under root.

    Integer fields must hold integers (not bools, not strings); string fields must be safe names."""
    template_fields(template, tuple(values), where, field)
    clean: dict[str, Any] = {}
    for key, v in values.items():
        if isinstance(v, str):
            clean[key] = check_name(v, f"{field}: {{{key}}}", where)
        elif isinstance(v, bool) or not isinstance(v, numbers.Integral) or v < 0:
            raise DatasetError(where, f"{field}: {{{key}}} is {v!r}; expected an integer >= 0")
        else:
            clean[key] = int(v)
    try:
        rel = template.format(**clean)
    except (ValueError, KeyError, IndexError) as e:
        raise DatasetError(where, f"{field}: cannot fill {template!r} ({e})") from e
    return inside(root, rel, where, field)
