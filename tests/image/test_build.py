"""Building the trainer image: size, cache, and a base without torch on a machine without network."""

from __future__ import annotations

import re

import pytest

from tests.support.podman import BUILDS, REPO, TORCH_VERSION, build_args, image_size

pytestmark = pytest.mark.image


def test_cpu_image_stays_under_1_7_gb(podman, trainer_image):
    assert image_size(podman, trainer_image) < 1.7e9


def test_second_build_is_all_from_the_cache(trainer_image):
    """The fixture built everything twice: the second time nothing was built again."""
    base_again, image_again = BUILDS[-2:]
    assert base_again.what == "CPU base again" and "is up to date" in base_again.output
    steps = re.findall(r"^STEP (\d+)/(\d+): ", image_again.output, re.M)
    assert steps and steps[-1][0] == steps[-1][1]  # it reached the last step
    assert image_again.cache == f"{len(steps) - 1} of {len(steps) - 1} steps after FROM cached"


def test_base_without_torch_and_no_network_stops_with_one_line(podman, cpu_base, tmp_path):
    no_torch = "localhost/kctl-cpu-base:no-torch"
    (tmp_path / "Containerfile").write_text(
        f"FROM {cpu_base}\nRUN pip uninstall --yes --quiet torch\n")
    proc = podman("build", "--network", "none", "--tag", no_torch, str(tmp_path), timeout=600)
    assert proc.returncode == 0, proc.stderr[-2000:]

    proc = podman(*build_args(no_torch, network="none"), "--tag", "localhost/kctl-trainer:no-torch",
                  str(REPO), timeout=600)
    output = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert [line for line in output.splitlines() if line.startswith("Dockerfile: ")] == [
        f"Dockerfile: the base image has no torch and pip could not install torch=={TORCH_VERSION} "
        "(no network or package index? see docs/image.md): ERROR: No matching distribution found "
        f"for torch=={TORCH_VERSION}"]
    assert "Traceback" not in output
