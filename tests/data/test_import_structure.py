"""The standardization transforms do not import the conversion pipeline (no import circle), and there is
one Normalizer class."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src" / "vla"


def test_standardize_imports_nothing_from_convert() -> None:
    code = ("import sys, vla.data.standardize, vla.data.formats.align; "
            "bad = sorted(m for m in sys.modules if m.startswith('vla.data.formats.convert')); "
            "assert not bad, bad")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr


def test_one_normalizer_class_and_no_lazy_package_exports_in_data() -> None:
    sources = {p: p.read_text() for p in SRC.rglob("*.py")}
    normalizers = [p for p, s in sources.items() if "\nclass Normalizer" in s]
    assert len(normalizers) == 1, normalizers
    lazy = [p for p, s in sources.items() if "def __getattr__" in s and "data" in p.parts]
    assert not lazy, lazy
