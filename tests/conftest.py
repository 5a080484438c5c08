"""Shared test set-up. Fixture modules under tests/support are plugged in here."""

import os
import shutil
import tempfile

pytest_plugins = [
    "tests.support.fake_apiserver",
    "tests.support.helm",
    "tests.support.podman",
    "tests.support.mmpretrain_env",
    "tests.support.mmpretrain_job",
    "tests.support.slurm",
    "tests.support.trainer_runtime",
    "tests.support.tiny_job",
]

_CACHE = "KCTL_CACHE_DIR"


def pytest_configure(config):
    """kctl's compiled-template cache goes to a folder of this test session, not ~/.cache (every
    kctl the tests start, in-process or as a subprocess, inherits it); removed at the end."""
    if _CACHE not in os.environ:
        config._kctl_cache = os.environ[_CACHE] = tempfile.mkdtemp(prefix="kctl-test-cache-")


def pytest_unconfigure(config):
    folder = getattr(config, "_kctl_cache", None)
    if folder:
        shutil.rmtree(folder, ignore_errors=True)
        os.environ.pop(_CACHE, None)
