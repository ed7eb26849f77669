"""The project's own code passes the pinned ruff's lint and format checks."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

from ruff.__main__ import find_ruff_bin

ROOT = Path(__file__).resolve().parent.parent


def ruff(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([os.fsdecode(find_ruff_bin()), *args], cwd=ROOT, capture_output=True, text=True)


def test_ruff_check_passes():
    r = ruff("check", ".")
    assert r.returncode == 0, r.stdout


def test_ruff_format_check_passes():
    r = ruff("format", "--check", ".")
    assert r.returncode == 0, r.stdout
