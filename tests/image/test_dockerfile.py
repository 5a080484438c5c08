"""The Dockerfile, .dockerignore and constraints.txt, checked without a container engine."""

from __future__ import annotations

import re
import subprocess
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCKERFILE = (ROOT / "Dockerfile").read_text()


def _instructions(text: str) -> list[tuple[str, str]]:
    """``(INSTRUCTION, arguments)`` with continuation lines joined and comments dropped."""
    joined = re.sub(r"\\\n", " ", "\n".join(
        line for line in text.splitlines() if not line.lstrip().startswith("#")))
    return [(m.group(1).upper(), m.group(2).strip())
            for m in re.finditer(r"^\s*([A-Za-z]+)\s+(.*)$", joined, re.M)]


INSTRUCTIONS = _instructions(DOCKERFILE)


def _all(kind: str) -> list[str]:
    return [args for name, args in INSTRUCTIONS if name == kind]


def test_hadolint_is_clean(hadolint_bin):
    proc = subprocess.run([str(hadolint_bin), "--no-color", "Dockerfile"], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert (proc.returncode, proc.stdout + proc.stderr) == (0, "")


def test_base_image_is_a_pinned_cuda_pytorch_and_torch_version_is_checked():
    base = dict(a.split("=", 1) for a in _all("ARG") if "=" in a)
    assert re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime",
                        base["BASE_IMAGE"])
    assert base["BASE_IMAGE"].split(":")[1].startswith(base["TORCH_VERSION"] + "-")
    assert _all("FROM") == ["${BASE_IMAGE}"]
    check = next(r for r in _all("RUN") if "TORCH_VERSION" in r)
    assert '"${have}" != "${TORCH_VERSION}"' in check and "exit 1" in check
    assert 'pip install --no-cache-dir "torch==${TORCH_VERSION}"' in check


def test_install_uses_the_constraints_file_and_extra_the_readme_uses():
    assert dict(a.split("=", 1) for a in _all("ARG") if "=" in a)["EXTRAS"] == "trainer,mmpretrain"
    (install,) = [r for r in _all("RUN") if '".[${EXTRAS}]"' in r]
    assert "pip install" in install and "-c constraints.txt" in install
    # with the mmpretrain extra, mmcv-lite as docs/mmpretrain.md installs it (no GUI opencv), checked
    assert "pip install --no-cache-dir --no-deps -c constraints.txt mmcv-lite" in install
    assert 'python -c "import torchvision, mmpretrain, mmcv"' in install
    readme = ROOT / "README.md"
    if readme.is_file():  # the README's own install line names the same file and extra
        text = readme.read_text()
        assert re.search(r"pip install -c constraints\.txt (-e )?'\.\[trainer[],]", text), \
            "README.md must install with: pip install -c constraints.txt -e '.[trainer]'"


def test_constraints_pin_every_runtime_dependency_but_torch():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"]
    wanted = project["dependencies"] + extras["trainer"] + extras["mmpretrain"] + ["mmcv-lite"]
    # setuptools: a bound (setuptools<81) for mmengine's pkg_resources, not a pin
    names = {re.split(r"[<>=!~\[; ]", dep, 1)[0].lower() for dep in wanted} - {"torch", "setuptools"}
    pins = {}
    for line in (ROOT / "constraints.txt").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert re.fullmatch(r"[\w.]+", version), f"{line!r} is not an exact pin"
            pins[name.lower()] = version
    assert "torch" not in pins  # the base image (or the local install) brings torch
    assert names - pins.keys() == set()


def test_runs_as_a_numeric_non_root_user_with_the_image_entrypoint():
    (user,) = _all("USER")
    uid = dict(a.split("=", 1) for a in _all("ARG") if "=" in a)["UID"]
    assert user == "${UID}:${UID}" and int(uid) > 0  # numeric: runAsNonRoot can verify it
    assert _all("ENTRYPOINT") == ['["kctl-entrypoint"]']
    assert "image/entrypoint.py /usr/local/bin/kctl-entrypoint" in " ".join(_all("COPY"))
    assert _all("CMD") == ['["configs/resnet/resnet18_1xb64_digits.py"]']


def test_pip_index_and_certificates_come_from_build_secrets_only():
    """Neither is an ARG or ENV (both would be stored in the image); pipefail stays on."""
    assert not [a for a in _all("ARG") + _all("ENV") if re.search(r"PIP_(INDEX_URL|CERT)", a)]
    (install,) = [r for r in _all("RUN") if "PIP_INDEX_URL" in r]
    assert install.startswith("--mount=type=secret,id=pip-ca --mount=type=secret,id=pip-index-url ")
    assert _all("SHELL") == ['["/bin/bash", "-o", "pipefail", "-c"]']


def _dockerignore_excludes(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents wins."""
    excluded = False
    parts = path.split("/")
    prefixes = ["/".join(parts[:i]) for i in range(1, len(parts) + 1)]
    for pattern in patterns:
        negate = pattern.startswith("!")
        body = pattern.lstrip("!").strip("/")
        regex = re.escape(body).replace(r"\*\*/", "(?:.*/)?").replace(r"\*\*", ".*")
        regex = regex.replace(r"\*", "[^/]*").replace(r"\?", "[^/]")
        regex = regex.replace(r"\[", "[").replace(r"\]", "]")
        if any(re.fullmatch(regex, p) for p in prefixes):
            excluded = not negate
    return excluded


IGNORE = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
          if line.strip() and not line.startswith("#")]


@pytest.mark.parametrize("path", [
    ".git/HEAD", ".venv/bin/python", "work_dirs/resnet18/epoch_1.pth",
    "configs/resnet/work_dirs/x.log", "tests/kctl/test_job.py", "kctl/__pycache__/cli.pyc",
    ".pytest_cache/v/cache", ".cache/kctl-tests/helm/helm", "kctl.egg-info/PKG-INFO",
    "bench/run.py", "charts/kctl/Chart.yaml",
])
def test_dockerignore_keeps_out(path):
    assert _dockerignore_excludes(path, IGNORE)


def test_dockerignore_keeps_everything_the_dockerfile_copies():
    sources = []
    for args in _all("COPY"):
        words = [w for w in args.split() if not w.startswith("--")]
        sources += words[:-1]
    assert {"pyproject.toml", "README.md", "constraints.txt", "kctl/", "trainer/",
            "image/entrypoint.py", "configs/"} <= set(sources)
    for source in sources:
        assert not _dockerignore_excludes(source.rstrip("/"), IGNORE), source
    for inside in ("trainer/data/digits.npz", "configs/_base_/models/resnet18.py"):
        assert not _dockerignore_excludes(inside, IGNORE), inside
