"""Finding the real binaries end-to-end tests run: skip without them, except in CI."""

from __future__ import annotations

import os
import shutil

import pytest

DEBIAN_PACKAGES = {
    "amtool": "prometheus-alertmanager",
    "prometheus-alertmanager": "prometheus-alertmanager",
    "promtool": "prometheus",
    "prometheus": "prometheus",
}


def tool(name: str) -> str:
    """Path of a command-line tool; skip the test without it (fail in CI, where it must exist)."""
    path = shutil.which(name)
    if path is None:
        package = DEBIAN_PACKAGES[name]
        message = f"{name} is not on PATH: install the Debian package {package}"
        if os.environ.get("CI"):
            pytest.fail(message)
        pytest.skip(message)
    return path
