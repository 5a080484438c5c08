"""Fixtures of the trainer tests."""

import pytest

from tests.trainer.small_job import train_reference


@pytest.fixture(scope="session")
def small_job(tmp_path_factory) -> dict:
    """The small digits job (tests/trainer/small_job.py) trained once, uninterrupted:
    ``dict(config, work_dir, run, sha)``."""
    return train_reference(tmp_path_factory.mktemp("small_job"))
