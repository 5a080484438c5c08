"""``kctl train``: flags to manifest, output formats, bad input, and submitting to a cluster."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from kctl.options import DEFAULT_IMAGE
from kctl.validate.manifest import load_documents, validate_object

REPO = Path(__file__).resolve().parents[3]
CONFIG = REPO / "tests/kctl/golden/configs/resnet/resnet18_1xb64_digits.py"
DIGITS = REPO / "configs/resnet/resnet18_1xb64_digits.py"


def _job(text: str) -> dict:
    return [d for d in load_documents(text) if d["kind"] == "PyTorchJob"][0]


def test_dry_run_prints_valid_yaml_and_warnings_go_to_stderr(run_kctl):
    result = run_kctl("train", CONFIG, "--gpus", "8", "--nodes", "2", "--work-dir-pvc", "w",
                      "--dry-run")
    assert result.code == 0
    docs = list(yaml.safe_load_all(result.out))
    assert [d["kind"] for d in docs] == ["ConfigMap", "PyTorchJob"]
    assert all(validate_object(d) == [] for d in docs)
    # 16 processes x 64 differs from base_batch_size 64: one warning line, nothing on stdout
    (line,) = result.err.splitlines()
    assert line.startswith("kctl: warning: total batch size is 16 processes x 64")
    assert line.endswith("(append `-- --auto-scale-lr`)")


def test_trainer_arguments_after_double_dash_reach_the_command(run_kctl):
    result = run_kctl("train", CONFIG, "--gpus", "8", "--dry-run", "--", "--auto-scale-lr",
                      "--cfg-options", "train_cfg.max_epochs=1", "--gpus", "3")
    assert result.code == 0, result.err
    command = _job(result.out)["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"][
        "containers"][0]["command"]
    assert command[-6:] == ["--resume", "--auto-scale-lr", "--cfg-options",
                            "train_cfg.max_epochs=1", "--gpus", "3"]
    assert "total batch size" not in result.err  # --auto-scale-lr is passed: no warning
    assert _job(result.out)["spec"]["nprocPerNode"] == "8"  # kctl's --gpus, not the trainer's


def test_json_output_is_a_v1_list_kctl_validate_and_kubectl_accept(run_kctl, tmp_path):
    result = run_kctl("train", CONFIG, "--gpus", "0", "--dry-run", "-o", "json")
    assert result.code == 0
    listing = json.loads(result.out)
    assert (listing["apiVersion"], listing["kind"]) == ("v1", "List")
    assert [i["kind"] for i in listing["items"]] == ["PersistentVolumeClaim", "ConfigMap",
                                                     "PyTorchJob"]
    yaml_out = run_kctl("train", CONFIG, "--gpus", "0", "--dry-run").out
    assert listing["items"] == list(yaml.safe_load_all(yaml_out))
    manifest = tmp_path / "job.json"
    manifest.write_text(result.out)
    assert run_kctl("validate", manifest).code == 0


def test_defaults_name_namespace_image(run_kctl):
    job = _job(run_kctl("train", CONFIG, "--gpus", "1", "--dry-run").out)
    assert job["metadata"]["name"] == "resnet18-1xb64-digits"
    assert "namespace" not in job["metadata"]
    pod = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert pod["containers"][0]["image"] == DEFAULT_IMAGE
    named = _job(run_kctl("train", CONFIG, "--gpus", "1", "--name", "mine", "-n", "team",
                          "--image", "reg.example/t:1", "--dry-run").out)
    assert (named["metadata"]["name"], named["metadata"]["namespace"]) == ("mine", "team")


def test_cpu_processes_per_node(run_kctl):
    job = _job(run_kctl("train", CONFIG, "--gpus", "0", "--cpu-procs", "4", "--dry-run").out)
    assert job["spec"]["nprocPerNode"] == "4"
    container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    assert "resources" not in container


def test_the_projects_demo_config_renders(run_kctl):
    result = run_kctl("train", DIGITS, "--gpus", "0", "--dry-run")
    assert result.code == 0, result.err
    assert _job(result.out)["metadata"]["labels"]["kctl.dev/config"] == "resnet18_1xb64_digits"


@pytest.mark.parametrize("args, message", [
    (["--gpus", "-1"], "--gpus must not be negative, got -1"),
    (["--gpus", "8", "--nodes", "0"], "nodes must be at least 1, got 0"),
    (["--gpus", "8", "--name", "Digits_2"], "--name 'Digits_2' is not a DNS-1035 label"),
    (["--gpus", "8", "--name", "a" * 51], "a PyTorchJob of 1 node(s) takes at most 50"),
    (["--gpus", "8", "--name", "a" * 49, "--kind", "TrainJob"],
     "a TrainJob of 1 node(s) takes at most 48"),
    (["--gpus", "8", "--gang", "--kind", "TrainJob"], "--gang does not apply to a TrainJob"),
    (["--gpus", "8", "--data-pvc", "imagenet"], "--data-pvc must be CLAIM:MOUNT"),
    (["--gpus", "8", "--data-pvc", "imagenet:data"], "must be an absolute folder"),
    (["--gpus", "8", "--work-dir-size", "big"], "--work-dir-size must be a Kubernetes quantity"),
    (["--gpus", "8", "--toleration", "gpu"], "--toleration must be KEY[=VALUE]:EFFECT"),
    (["--gpus", "8", "--env", "PET_NNODES=3"], "PET_NNODES is set by the training operator"),
    (["--gpus", "8", "--cpu-procs", "2"], "--cpu-procs applies to CPU training (--gpus 0) only"),
    (["--gpus", "0", "--cpu-procs", "0"], "--cpu-procs must be at least 1, got 0"),
    (["--gpus", "eight"], "--gpus must be a whole number, got 'eight'"),
    (["--gpus", "8", "--memory", "lots"], "--memory must be a Kubernetes quantity"),
    (["--gpus", "8", "-n", "My_NS"], "--namespace: 'My_NS' is not a DNS-1123 label"),
    (["--gpus", "8", "--max-restarts", "-1"], "--max-restarts must not be negative"),
])
def test_bad_input_is_one_line_and_exit_2(run_kctl, args, message):
    result = run_kctl("train", CONFIG, *args, "--dry-run")
    assert result.code == 2
    assert result.out == ""
    (line,) = result.err.splitlines()
    assert line.startswith("kctl: error: ") and message in line


def test_missing_config_is_a_usage_error(run_kctl, tmp_path):
    result = run_kctl("train", tmp_path / "nope.py", "--gpus", "1", "--dry-run")
    assert (result.code, result.err) == (2, f"kctl: error: config file not found: "
                                            f"{tmp_path / 'nope.py'}\n")


@pytest.mark.parametrize("args, message", [
    (["--gpus", "8", "-o", "xml"], "invalid choice: 'xml'"),
    (["--nodes", "2"], "the following arguments are required: --gpus"),
    (["--gpus", "8", "--amp"], "unrecognized arguments: --amp"),
])
def test_argparse_errors_are_one_line_and_exit_2(run_kctl, args, message):
    result = run_kctl("train", CONFIG, *args, "--dry-run")
    assert result.code == 2
    (line,) = result.err.splitlines()
    assert line.startswith(("kctl train: error: ", "kctl: error: ")) and message in line


def test_submit_creates_the_job_and_its_config_map(run_kctl, fake_kube):
    result = run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits", "--work-dir-pvc", "w")
    assert result.code == 0, result.err
    assert result.out == "pytorchjob.kubeflow.org/digits created\n"
    assert "kctl status digits\n" in result.err and "kctl logs digits -f\n" in result.err
    job = fake_kube.get("pytorchjobs", "digits")
    assert job["spec"]["nprocPerNode"] == "1"
    config_map = fake_kube.get("configmaps", "digits-config")
    (owner,) = config_map["metadata"]["ownerReferences"]
    assert (owner["kind"], owner["name"], owner["uid"]) == ("PyTorchJob", "digits",
                                                            job["metadata"]["uid"])


def test_submit_with_output_prints_what_was_created(run_kctl, fake_kube):
    result = run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits", "-o", "json")
    assert result.code == 0, result.err
    assert [i["kind"] for i in json.loads(result.out)["items"]] == [
        "PersistentVolumeClaim", "ConfigMap", "PyTorchJob"]
    assert fake_kube.get("pytorchjobs", "digits") is not None


def test_submitting_the_same_name_twice_fails_in_one_line(run_kctl, fake_kube):
    assert run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits").code == 0
    result = run_kctl("train", CONFIG, "--gpus", "0", "--name", "digits")
    assert result.code == 1
    (line,) = [ln for ln in result.err.splitlines() if not ln.startswith("kctl: warning:")]
    assert line.startswith("kctl: error: ")
