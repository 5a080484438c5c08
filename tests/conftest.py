"""Shared test set-up. Fixture modules under tests/support are plugged in here."""

pytest_plugins = [
    "tests.support.fake_apiserver",
    "tests.support.helm",
    "tests.support.slurm",
    "tests.support.trainer_runtime",
    "tests.support.tiny_job",
]
