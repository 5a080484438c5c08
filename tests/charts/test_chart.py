"""charts/kctl on its own: lint, values schema (rejects what kctl rejects), names, NOTES, docs."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from kctl import __version__
from kctl.backends.kubernetes import config_label
from kctl.options import DEFAULT_IMAGE
from kctl.cli import main as kctl
from kctl.validate.limits import QUANTITY_PATTERN
from tests.charts.conftest import CHART, DEMO_CONFIG

CONFIG = ["--set-file", f"config={DEMO_CONFIG}"]
#: Every feature on: what lint and the structural checks run on.
FULL = [*CONFIG, "--set", "gpus=8", "--set", "nodes=2", "--set", "workDirSize=50Gi",
        "--set", "dataPvc=imagenet", "--set", "queue=team-a", "--set", "gang=true",
        "--set", "priorityClass=high", "--set", "cpu=8", "--set", "memory=64Gi",
        "--set", "trainerArgs={--amp}", "--set", "labels.team=vision",
        "--set", "nodeSelector.gpu=h100", "--set", "tolerations[0].key=gpu",
        "--set", "tolerations[0].operator=Exists"]


def _kctl_rejects(argv: list[str], capsys) -> str:
    """Run ``kctl train ... --dry-run``; it must exit 2. Returns its stderr."""
    try:
        code = kctl(["train", "--dry-run", *argv])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    assert code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize("values", [CONFIG, FULL], ids=["defaults", "every-feature"])
def test_lint_strict_is_clean(helm, values):
    proc = helm.run("lint", "--strict", "CHART", *values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


SUBDOMAIN = "'^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$'"
NAME_PATTERN = "'^([a-z]([-a-z0-9]*[a-z0-9])?)?$'"


@pytest.mark.parametrize("helm_args, message, kctl_args", [
    (["--set", "nodes=0"], "nodes: Must be greater than or equal to 1", ["--gpus", "0", "--nodes", "0"]),
    (["--set", "gpus=-1"], "gpus: Must be greater than or equal to 0", ["--gpus", "-1"]),
    (["--set", "name=Bad_Name"], f"name: Does not match pattern {NAME_PATTERN}",
     ["--gpus", "0", "--name", "Bad_Name"]),
    (["--set", "name=1digits"], f"name: Does not match pattern {NAME_PATTERN}",
     ["--gpus", "0", "--name", "1digits"]),
    (["--set", "name=" + "a" * 51], "name: String length must be less than or equal to 50",
     ["--gpus", "0", "--name", "a" * 51]),
    (["--set", "gpus=2", "--set", "cpuProcs=2"],
     "(root): gpus=0 for cpuProcs (with GPUs there is one process per GPU) is required",
     ["--gpus", "2", "--cpu-procs", "2"]),
    (["--set", "cpuProcs=0"], "cpuProcs: Must be greater than or equal to 1",
     ["--gpus", "0", "--cpu-procs", "0"]),
    (["--set", "nodes=2"],
     "(root): a shared work dir for nodes > 1: workDirPvc (ReadWriteMany claim) or workDirSize "
     "is required", ["--gpus", "0", "--nodes", "2"]),
    (["--set", "workDirPvc=Shared"], f"workDirPvc: Does not match pattern {SUBDOMAIN}",
     ["--gpus", "0", "--work-dir-pvc", "Shared"]),
    (["--set", "memory=lots"], "memory: Does not match pattern", ["--gpus", "0", "--memory", "lots"]),
    (["--set", "cpu=-1"], "cpu: Must be greater than or equal to 0", ["--gpus", "0", "--cpu", "-1"]),
    (["--set", "dataPvc=d", "--set", "dataMountPath=/work_dirs/data"],
     "(root): a dataMountPath apart from /config, /work_dirs and /dev/shm is required",
     ["--gpus", "0", "--data-pvc", "d:/work_dirs/data"]),
    (["--set", "dataPvc=d", "--set", "dataMountPath=data"],
     "dataMountPath: Does not match pattern", ["--gpus", "0", "--data-pvc", "d:data"]),
    (["--set", "queue=Team_A"], f"queue: Does not match pattern {SUBDOMAIN}",
     ["--gpus", "0", "--queue", "Team_A"]),
    (["--set", "maxRestarts=-1"], "maxRestarts: Must be greater than or equal to 0",
     ["--gpus", "0", "--max-restarts", "-1"]),
    (["--set", "image.repository=my image"], "image.repository: Does not match pattern",
     ["--gpus", "0", "--image", "my image"]),
])
def test_schema_rejects_what_kctl_rejects(helm, capsys, helm_args, message, kctl_args):
    proc = helm.run("template", "t", "CHART", *CONFIG, *helm_args)
    assert proc.returncode == 1
    assert "values don't meet the specifications of the schema(s)" in proc.stderr
    assert f"- {message}" in proc.stderr
    _kctl_rejects([str(DEMO_CONFIG), *kctl_args], capsys)


def test_missing_config_is_refused_like_kctl(helm, capsys):
    proc = helm.run("template", "t", "CHART")
    assert proc.returncode == 1
    assert ("- (root): a config: --set-file config=path/to/config.py (or configFiles, or "
            "configInImage) is required") in proc.stderr
    assert "CONFIG" in _kctl_rejects(["--gpus", "0"], capsys)


def test_misspelt_value_is_refused(helm):
    proc = helm.run("template", "t", "CHART", *CONFIG, "--set", "node=2")
    assert "- (root): Additional property node is not allowed" in proc.stderr


def test_config_files_without_the_main_config_say_which_names_exist(helm):
    proc = helm.run("template", "t", "CHART", "--set", "configFiles.a\\.py=x=1",
                    "--set", "configFiles.b\\.py=y=2")
    assert proc.returncode == 1
    assert ('configFiles holds no "config.py" (configName, the main config): set configName to '
            "one of a.py, b.py, or give config") in proc.stderr


def test_only_configmap_pytorchjob_and_claim_no_service_account_or_role(helm):
    objects = helm.template("digits", *FULL, namespace="vision")
    assert sorted(o["kind"] for o in objects) == ["ConfigMap", "PersistentVolumeClaim",
                                                  "PyTorchJob"]
    assert {o["metadata"]["namespace"] for o in objects} == {"vision"}
    for template in (CHART / "templates").glob("*.yaml"):
        for line in template.read_text().splitlines():
            if line.strip().startswith("namespace:"):
                assert line.strip() == "namespace: {{ .Release.Namespace }}", template.name


def test_extra_labels_node_selector_and_tolerations_reach_the_pods(helm):
    job = helm.template("digits", *FULL)[-1]
    pod = job["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]
    assert job["metadata"]["labels"]["team"] == pod["metadata"]["labels"]["team"] == "vision"
    assert pod["spec"]["nodeSelector"] == {"gpu": "h100"}
    assert pod["spec"]["tolerations"] == [{"key": "gpu", "operator": "Exists"}]


def test_every_rendered_manifest_passes_kctl_validate(helm, tmp_path, capsys):
    proc = helm.run("template", "digits", "CHART", *FULL, check=True)
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(proc.stdout)
    capsys.readouterr()
    assert kctl(["validate", str(manifest)]) == 0, capsys.readouterr()


def test_names_are_cut_to_kubernetes_limits(helm):
    release = "a" * 49 + "-bcd"  # 53 characters, Helm's longest release name
    objects = helm.template(release, *FULL)
    job = objects[-1]
    assert job["metadata"]["name"] == "a" * 49  # cut to 50, then the trailing '-' dropped
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63
    pod = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    assert pod["containers"][0]["command"][7] == "/work_dirs/" + "a" * 49


def test_release_name_that_is_not_a_dns1035_label_needs_a_name(helm):
    proc = helm.run("template", "1digits", "CHART", *CONFIG)
    assert proc.returncode == 1
    assert ('job name "1digits" (the release name) is not a DNS-1035 label: lowercase letters, '
            "digits and '-', starting with a letter; set name=...") in proc.stderr
    objects = helm.template("1digits", *CONFIG, "--set", "name=digits")
    assert objects[-1]["metadata"]["name"] == "digits"


@pytest.mark.parametrize("config_name", [
    "resnet/resnet18_1xb64_digits.py", "_base_/.hidden-.py", "x.py.py", "a" * 80 + ".py", "-.py"])
def test_config_label_is_kctls(helm, config_name):
    job = helm.template("t", *CONFIG, "--set", f"configName={config_name}")[-1]
    assert job["metadata"]["labels"]["kctl.dev/config"] == config_label(config_name)


def _notes(helm, tmp_path, *args: str) -> str:
    """NOTES.txt as ``helm install`` prints it (``helm template`` skips NOTES, and
    ``install --dry-run`` needs a cluster): a copy of the chart wraps it in a rendered template."""
    chart = tmp_path / "kctl"
    shutil.copytree(CHART, chart)
    notes = (chart / "templates" / "NOTES.txt").read_text()
    (chart / "templates" / "_notes_probe.tpl").write_text(
        '{{- define "notesProbe" -}}\n' + notes + "\n{{- end -}}\n")
    (chart / "templates" / "notes-probe.yaml").write_text(
        'notes: {{ include "notesProbe" . | toJson }}\n')
    proc = helm.run("template", "digits", str(chart), "-n", "vision", "--show-only",
                    "templates/notes-probe.yaml", *args, chart=chart, check=True)
    return yaml.safe_load(proc.stdout)["notes"]


def test_notes_tell_how_to_watch_the_job(helm, tmp_path):
    text = _notes(helm, tmp_path, *CONFIG, "--set", "gpus=8", "--set", "nodes=2",
                  "--set", "workDirSize=50Gi", "--set", "queue=team-a")
    for line in ("PyTorchJob vision/digits: 2 node(s) x 8 process(es) on 8 GPU(s) each.",
                 "It waits suspended in Kueue's queue team-a until admitted.",
                 "Checkpoints and logs: /work_dirs/digits on the claim digits-work-dir.",
                 "  kctl status digits -n vision",
                 "  kctl logs digits -n vision -f",
                 "  kubectl get pytorchjob digits -n vision -w",
                 "  kubectl get pods -n vision -l training.kubeflow.org/job-name=digits",
                 "  kubectl logs -n vision -f digits-master-0",
                 "  kubectl delete pvc digits-work-dir -n vision",
                 "To change the job, `helm uninstall digits` and install it again with the same "
                 "name"):
        assert line in text.splitlines()


def test_notes_for_cpu_training_on_an_emptydir(helm, tmp_path):
    text = _notes(helm, tmp_path, *CONFIG)
    assert "PyTorchJob vision/digits: 1 node(s) x 1 process(es) on CPUs (gloo)." in text
    assert "/work_dirs/digits on an emptyDir (lost with the pod)" in text
    assert "Kueue" not in text and "kubectl delete pvc" not in text and "resumes" not in text


def test_chart_metadata_follows_kctl():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "kctl"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])
    assert chart["appVersion"] == __version__
    image = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    assert f"{image['repository']}:{image['tag'] or chart['appVersion']}" == DEFAULT_IMAGE


def test_schema_quantity_is_kctls_without_a_sign():
    schema = json.loads((CHART / "values.schema.json").read_text())
    unsigned = QUANTITY_PATTERN.replace(r"^(\+|-)?", "", 1).rstrip("$")
    for key in ("cpu", "memory", "workDirSize"):
        assert schema["properties"][key]["pattern"] == f"^({unsigned})?$"
    assert schema["properties"]["shmSize"]["pattern"] == f"^{unsigned}$"


def test_every_value_is_documented_and_in_the_schema():
    lines = (CHART / "values.yaml").read_text().splitlines()
    schema = json.loads((CHART / "values.schema.json").read_text())
    leaves = []
    for number, line in enumerate(lines):
        match = re.match(r"^(\s*)([A-Za-z][A-Za-z0-9]*):(.*)$", line)
        if not match:
            continue
        indent, key, rest = match.groups()
        if rest.strip() == "":  # a parent map (image:), documented by its children
            continue
        above = number - 1
        while above >= 0 and lines[above].strip().startswith("#") and \
                not lines[above].strip().startswith("# --"):
            above -= 1
        assert above >= 0 and lines[above].strip().startswith("# --"), f"{key} has no '# --' doc"
        leaves.append((indent, key))
        assert re.fullmatch(r"[a-z][a-zA-Z0-9]*", key), f"{key} is not camelCase"
    top = {key for indent, key in leaves if not indent}
    assert top <= schema["properties"].keys()
    assert {"config", "gpus", "nodes", "name", "workDirPvc", "trainerArgs"} <= top
