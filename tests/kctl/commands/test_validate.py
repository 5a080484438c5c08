"""``kctl validate FILE...``: one line per problem with its path, exit 1; an OK line and 0."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests/kctl/golden/pytorchjob"


def _broken(tmp_path: Path) -> Path:
    """The golden 2x8 manifest with a typo, an int nprocPerNode and Master replicas missing."""
    docs = list(yaml.safe_load_all((GOLDEN / "gpu_2x8.yaml").read_text()))
    job = docs[-1]
    job["spec"]["nprocPerNode"] = 8
    master = job["spec"]["pytorchReplicaSpecs"]["Master"]
    del master["replicas"]
    master["restartPolcy"] = master.pop("restartPolicy")
    path = tmp_path / "broken.yaml"
    path.write_text(yaml.safe_dump_all(docs, sort_keys=False))
    return path


def test_valid_manifests_print_one_ok_line(run_kctl):
    result = run_kctl("validate", GOLDEN / "gpu_2x8.yaml", GOLDEN / "config_in_image.yaml")
    assert result.code == 0
    assert result.out == "OK: 3 objects in 2 files\n"


def test_each_problem_is_a_line_with_file_object_and_path(run_kctl, tmp_path):
    broken = _broken(tmp_path)
    result = run_kctl("validate", broken)
    assert result.code == 1
    prefix = f"{broken}: PyTorchJob/resnet18-1xb64-digits: "
    assert result.out.splitlines() == [
        prefix + "spec.nprocPerNode: must be a string, got 8",
        prefix + "spec.pytorchReplicaSpecs.Master.replicas: must be set to 1 (the webhook "
                 "checks before defaulting)",
        prefix + "spec.pytorchReplicaSpecs.Master.restartPolcy: unknown field (did you mean "
                 "restartPolicy?)",
    ]


def test_stdin_and_files_together(run_kctl, tmp_path, monkeypatch):
    monkeypatch.setattr("sys.stdin", io.StringIO(_broken(tmp_path).read_text()))
    result = run_kctl("validate", GOLDEN / "cpu_1x0.yaml", "-")
    assert result.code == 1
    assert {line.split(": ")[0] for line in result.out.splitlines()} == {"<stdin>"}


def test_kinds_kctl_does_not_know_are_noted_not_failed(run_kctl, tmp_path):
    manifest = tmp_path / "mixed.yaml"
    manifest.write_text((GOLDEN / "gpu_1x8.yaml").read_text()
                        + "---\napiVersion: v1\nkind: Service\nmetadata: {name: web}\n")
    result = run_kctl("validate", manifest)
    assert result.code == 0
    assert result.out == "OK: 3 objects in 1 file, 1 not checked\n"
    assert result.err == (f"{manifest}: Service/web: not checked (kctl knows PyTorchJob, "
                          "TrainJob, ConfigMap, PersistentVolumeClaim)\n")


@pytest.mark.parametrize("text, line", [
    ("a: [\n", ": line 2: not valid YAML"),
    ("", ": no Kubernetes objects found"),
    ("- 1\n- 2\n", ": <not an object>: is not a Kubernetes object"),
])
def test_unreadable_or_empty_manifests_are_problems(run_kctl, tmp_path, text, line):
    manifest = tmp_path / "m.yaml"
    manifest.write_text(text)
    result = run_kctl("validate", manifest)
    assert result.code == 1
    assert result.out.startswith(f"{manifest}{line}")


def test_missing_file_is_a_usage_error(run_kctl, tmp_path):
    result = run_kctl("validate", tmp_path / "nope.yaml")
    assert (result.code, result.out) == (2, "")
    assert result.err == f"kctl: error: file not found: {tmp_path / 'nope.yaml'}\n"


def test_a_file_is_required(run_kctl):
    result = run_kctl("validate")
    assert result.code == 2
    assert "the following arguments are required: FILE" in result.err


TRAINJOB = REPO / "tests/kctl/validate/data/trainjob-2x8gpu.yaml"


def test_a_trainjob_file_passes(run_kctl):
    result = run_kctl("validate", TRAINJOB)
    assert (result.code, result.out, result.err) == (0, "OK: 1 object in 1 file\n", "")


def test_a_broken_trainjob_names_each_problem(run_kctl, tmp_path):
    (job,) = yaml.safe_load_all(TRAINJOB.read_text())
    job["metadata"]["name"] = "llm-fine-tuning-of-the-big-model-for-team-a-2x8gpu"
    job["spec"]["trainer"]["env"].append({"name": "PET_NNODES", "value": "2"})
    job["spec"]["trainer"]["numProcPerNode"] = "auto"
    broken = tmp_path / "trainjob.yaml"
    broken.write_text(yaml.safe_dump(job))
    result = run_kctl("validate", broken)
    assert result.code == 1
    prefix = f"{broken}: TrainJob/llm-fine-tuning-of-the-big-model-for-team-a-2x8gpu: "
    assert result.out.splitlines() == [
        prefix + "metadata.name: 'llm-fine-tuning-of-the-big-model-for-team-a-2x8gpu' is 50 "
                 "characters; a TrainJob with 2 nodes may have at most 48: its pods are named "
                 "<name>-node-0-1-<5 random characters>, at most 63 (a longer name is accepted, "
                 "then no pod is ever created); choose a shorter name",
        prefix + "spec.trainer.env[2].name: PET_NNODES is reserved: the Trainer sets PET_NNODES, "
                 "PET_NPROC_PER_NODE, PET_NODE_RANK, PET_MASTER_ADDR, PET_MASTER_PORT for "
                 "torchrun from numNodes and numProcPerNode; remove it",
        prefix + 'spec.trainer.numProcPerNode: must be an integer, got "auto"',
    ]
