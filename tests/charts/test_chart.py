"""charts/kctl on its own: lint, what it refuses (what kctl refuses), names, NOTES, metadata.

How the chart's values follow kctl's option table is in test_values.py; that it renders what
``kctl train`` renders, in test_parity.py.
"""

from __future__ import annotations

import json
import re
import shutil

import pytest
import yaml

from kctl import __version__
from kctl.backends import load_backend
from kctl.backends.kubernetes import config_label
from kctl.cli import main as kctl
from kctl.options import KINDS, OPTIONS
from kctl.validate.limits import QUANTITY_PATTERN
from tests.charts.conftest import CHART, DEMO_CONFIG

CONFIG = ["--set-file", f"config={DEMO_CONFIG}"]
TRAINJOB = ["--set", "kind=TrainJob"]
#: Every feature both kinds have on: what lint and the structural checks run on.
BOTH = [*CONFIG, "--set", "gpus=8", "--set", "nodes=2", "--set", "workDirSize=50Gi",
        "--set", "workDirStorageClass=nfs", "--set", "dataPvc=imagenet", "--set", "queue=team-a",
        "--set", "cpu=8", "--set", "memory=64Gi", "--set", "trainerArgs={--amp}",
        "--set", "labels.team=vision", "--set", "nodeSelector.gpu=h100",
        "--set", "tolerations[0].key=gpu", "--set", "tolerations[0].operator=Exists",
        "--set", "image.pullSecrets={registry}", "--set", "serviceAccount=trainer",
        "--set", "env.NCCL_DEBUG=INFO", "--set", "podAnnotations.team=vision",
        "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
                 "nodeSelectorTerms[0].matchExpressions[0].key=zone",
        "--set", "affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution."
                 "nodeSelectorTerms[0].matchExpressions[0].operator=Exists"]
FULL = {
    "PyTorchJob": [*BOTH, "--set", "gang=true", "--set", "priorityClass=high",
                   "--set", "maxRestarts=5", "--set", "image.pullPolicy=Always"],
    "TrainJob": [*BOTH, *TRAINJOB, "--set", "runtime=torch-h100",
                 "--set", "runtimeKind=TrainingRuntime"],
}


def _kctl_rejects(argv: list[str], capsys) -> str:
    """Run ``kctl train ... --dry-run``; it must exit 2. Returns its stderr."""
    capsys.readouterr()
    try:
        code = kctl(["train", "--dry-run", *argv])
    except SystemExit as exit_:  # argparse's own usage errors
        code = exit_.code
    assert code == 2
    return capsys.readouterr().err


def _job(objects: list[dict]) -> dict:
    return next(o for o in objects if o["kind"] in KINDS)


def _pods(job: dict) -> list[dict]:
    """The pod templates of a job of either kind."""
    if job["kind"] == "PyTorchJob":
        return [r["template"] for r in job["spec"]["pytorchReplicaSpecs"].values()]
    (patch,) = job["spec"]["runtimePatches"]
    return [r["template"]["spec"]["template"]
            for r in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]]


@pytest.mark.parametrize("values", [CONFIG, FULL["PyTorchJob"], [*CONFIG, *TRAINJOB],
                                    FULL["TrainJob"]],
                         ids=["pytorchjob-defaults", "pytorchjob-every-feature",
                              "trainjob-defaults", "trainjob-every-feature"])
def test_lint_strict_is_clean(helm, values):
    proc = helm.run("lint", "--strict", "CHART", *values)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "[WARNING]" not in proc.stdout and "[ERROR]" not in proc.stdout


SUBDOMAIN = "'^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*)?$'"
NAME_PATTERN = "'^([a-z]([-a-z0-9]*[a-z0-9])?)?$'"


@pytest.mark.parametrize("helm_args, message, kctl_args", [
    (["--set", "nodes=0"], "nodes: Must be greater than or equal to 1",
     ["--gpus", "0", "--nodes", "0"]),
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
    (["--set", "workDirPvc=Shared"], f"workDirPvc: Does not match pattern {SUBDOMAIN}",
     ["--gpus", "0", "--work-dir-pvc", "Shared"]),
    (["--set", "workDirSize=lots"], "workDirSize: Does not match pattern",
     ["--gpus", "0", "--work-dir-size", "lots"]),
    (["--set", "workDirStorageClass=Fast"], "workDirStorageClass: Does not match pattern",
     ["--gpus", "0", "--storage-class", "Fast"]),
    (["--set", "memory=lots"], "memory: Does not match pattern",
     ["--gpus", "0", "--memory", "lots"]),
    (["--set", "cpu=-1"], "cpu: Must be greater than or equal to 0",
     ["--gpus", "0", "--cpu", "-1"]),
    (["--set", "dataPvc=d", "--set", "dataMountPath=/work_dirs/data"],
     "(root): a dataMountPath apart from /config, /work_dirs, /dev/shm and /tmp is required",
     ["--gpus", "0", "--data-pvc", "d:/work_dirs/data"]),
    (["--set", "dataPvc=d", "--set", "dataMountPath=data"],
     "dataMountPath: Does not match pattern", ["--gpus", "0", "--data-pvc", "d:data"]),
    (["--set", "queue=Team_A"], f"queue: Does not match pattern {SUBDOMAIN}",
     ["--gpus", "0", "--queue", "Team_A"]),
    (["--set", "maxRestarts=-1"], "maxRestarts: Must be greater than or equal to 0",
     ["--gpus", "0", "--max-restarts", "-1"]),
    (["--set", "image.repository=my image"], "image.repository: Does not match pattern",
     ["--gpus", "0", "--image", "my image"]),
    (["--set", "image.pullPolicy=Sometimes"],
     'image.pullPolicy: image.pullPolicy must be one of the following: "", "Always", '
     '"IfNotPresent", "Never"', ["--gpus", "0", "--image-pull-policy", "Sometimes"]),
    (["--set", "image.pullSecrets={Registry}"], "image.pullSecrets.0: Does not match pattern",
     ["--gpus", "0", "--image-pull-secret", "Registry"]),
    (["--set-string", "nodeSelector.gpu=h100 pcie"], "nodeSelector.gpu: Does not match pattern",
     ["--gpus", "0", "--node-selector", "gpu=h100 pcie"]),
    (["--set-string", "nodeSelector.-gpu=h100"],
     'nodeSelector: Property name of "-gpu" does not match',
     ["--gpus", "0", "--node-selector", "-gpu=h100"]),
    (["--set", "tolerations[0].key=gpu", "--set", "tolerations[0].effect=NoRun"],
     "tolerations.0.effect: tolerations.0.effect must be one of the following",
     ["--gpus", "0", "--toleration", "gpu:NoRun"]),
    (["--set", "tolerations[0].key=gpu/x/y", "--set", "tolerations[0].effect=NoSchedule"],
     "tolerations.0.key: Does not match pattern",
     ["--gpus", "0", "--toleration", "gpu/x/y:NoSchedule"]),
    (["--set", "serviceAccount=Trainer"], f"serviceAccount: Does not match pattern {SUBDOMAIN}",
     ["--gpus", "0", "--service-account", "Trainer"]),
    (["--set-string", "env.1X=y"], 'env: Property name of "1X" does not match',
     ["--gpus", "0", "--env", "1X=y"]),
    (["--set-string", "labels.team=-ml"], "labels.team: Does not match pattern",
     ["--gpus", "0", "--label", "team=-ml"]),
    (["--set-string", "podAnnotations.a@b=1"],
     'podAnnotations: Property name of "a@b" does not match',
     ["--gpus", "0", "--annotation", "a@b=1"]),
    (["--set", "kind=TFJob"], 'kind: kind must be one of the following: "PyTorchJob", "TrainJob"',
     ["--gpus", "0", "--kind", "TFJob"]),
    ([*TRAINJOB, "--set", "runtime=Torch"], "runtime: Does not match pattern",
     ["--gpus", "0", "--kind", "TrainJob", "--runtime", "Torch"]),
    ([*TRAINJOB, "--set", "runtimeKind=Runtime"],
     'runtimeKind: runtimeKind must be one of the following: "ClusterTrainingRuntime", '
     '"TrainingRuntime"', ["--gpus", "0", "--kind", "TrainJob", "--runtime-kind", "Runtime"]),
])
def test_schema_rejects_what_kctl_rejects(helm, capsys, helm_args, message, kctl_args):
    proc = helm.run("template", "t", "CHART", *CONFIG, *helm_args)
    assert proc.returncode == 1
    assert "values don't meet the specifications of the schema(s)" in proc.stderr
    assert f"- {message}" in proc.stderr
    _kctl_rejects([str(DEMO_CONFIG), *kctl_args], capsys)


@pytest.mark.parametrize("helm_args, message, kctl_args", [
    (["--set-string", "env.PET_MASTER_PORT=1"],
     "env.PET_MASTER_PORT: PET_MASTER_PORT is set by the training operator for torchrun (PET_* "
     "and MASTER_ADDR, MASTER_PORT, WORLD_SIZE, RANK are reserved)",
     ["--gpus", "0", "--env", "PET_MASTER_PORT=1"]),
    (["--set-string", "env.WORLD_SIZE=1"], "env.WORLD_SIZE: WORLD_SIZE is set by the training",
     ["--gpus", "0", "--env", "WORLD_SIZE=1"]),
    (["--set", "labels.app\\.kubernetes\\.io/name=x"],
     "labels.app.kubernetes.io/name: the chart sets the label app.kubernetes.io/name itself",
     ["--gpus", "0", "--label", "app.kubernetes.io/name=x"]),
    (["--set", "labels.kueue\\.x-k8s\\.io/queue-name=q"],
     "the chart sets the label kueue.x-k8s.io/queue-name itself",
     ["--gpus", "0", "--label", "kueue.x-k8s.io/queue-name=q"]),
    (["--set", "workDirPvc=shared", "--set", "workDirStorageClass=nfs"],
     "workDirStorageClass is for the claim the chart creates; workDirPvc shared names an "
     "existing one", ["--gpus", "0", "--work-dir-pvc", "shared", "--storage-class", "nfs"]),
    (["--set", "workDirSize=0", "--set", "workDirStorageClass=nfs"],
     "workDirStorageClass is for the claim the chart creates; workDirSize 0 asks for none",
     ["--gpus", "0", "--work-dir-size", "0", "--storage-class", "nfs"]),
    ([*TRAINJOB, "--set", "name=" + "a" * 49],
     f"job name '{'a' * 49}' is 49 characters; a TrainJob of 1 node(s) takes at most 48 (the "
     "JobSet names pods <name>-node-0-<index>-<5 chars>, at most 63 characters, and fails "
     "later without a word on a longer one)",
     ["--gpus", "0", "--kind", "TrainJob", "--name", "a" * 49]),
    ([*TRAINJOB, "--set", "nodes=11", "--set", "workDirPvc=shared", "--set", "name=" + "a" * 48],
     f"job name '{'a' * 48}' is 48 characters; a TrainJob of 11 node(s) takes at most 47",
     ["--gpus", "0", "--kind", "TrainJob", "--nodes", "11", "--name", "a" * 48]),
])
def test_templates_refuse_what_kctl_refuses(helm, capsys, helm_args, message, kctl_args):
    """What the schema cannot say (a kind's limit, a key's meaning): one line from the template."""
    proc = helm.run("template", "t", "CHART", *CONFIG, *helm_args)
    assert proc.returncode == 1
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert message in line
    _kctl_rejects([str(DEMO_CONFIG), *kctl_args], capsys)


#: A value of each PyTorchJob-only option, as chart values and as kctl flags.
PYTORCHJOB_ONLY = {
    "gang": (["--set", "gang=true"], ["--gang"]),
    "priority_class": (["--set", "priorityClass=high"], ["--priority-class", "high"]),
    "max_restarts": (["--set", "maxRestarts=3"], ["--max-restarts", "3"]),
    "image_pull_policy": (["--set", "image.pullPolicy=Always"], ["--image-pull-policy", "Always"]),
}
#: A value of each TrainJob-only option: the chart's defaults are given, so a PyTorchJob ignores
#: them (kctl refuses the flags: a PyTorchJob has no runtime).
TRAINJOB_ONLY = {
    "runtime": ["--set", "runtime=torch-h100"],
    "runtime_kind": ["--set", "runtimeKind=TrainingRuntime"],
}


@pytest.mark.parametrize("option", [o for o in OPTIONS if "TrainJob" not in o.kinds],
                         ids=lambda o: o.name)
def test_pytorchjob_values_are_refused_for_a_trainjob_with_kctls_reason(helm, capsys, option):
    helm_args, kctl_args = PYTORCHJOB_ONLY[option.name]
    proc = helm.run("template", "t", "CHART", *CONFIG, *TRAINJOB, *helm_args)
    assert proc.returncode == 1
    (line,) = [line for line in proc.stderr.splitlines() if line.startswith("Error:")]
    assert line.endswith(f": {option.value} does not apply to a TrainJob: {option.refusal}")
    assert (f"{option.flag} does not apply to a TrainJob: {option.refusal}" in
            _kctl_rejects([str(DEMO_CONFIG), "--gpus", "0", "--kind", "TrainJob", *kctl_args],
                          capsys))


def test_every_kind_only_option_has_a_case_above():
    assert set(PYTORCHJOB_ONLY) == {o.name for o in OPTIONS if o.kinds == ("PyTorchJob",)}
    assert set(TRAINJOB_ONLY) == {o.name for o in OPTIONS if o.kinds == ("TrainJob",)}
    assert all(set(o.kinds) in ({"PyTorchJob"}, {"TrainJob"}, set(KINDS)) for o in OPTIONS)


@pytest.mark.parametrize("name", TRAINJOB_ONLY)
def test_trainjob_values_leave_a_pytorchjob_alone(helm, name):
    assert helm.template("t", *CONFIG, *TRAINJOB_ONLY[name]) == helm.template("t", *CONFIG)


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


@pytest.mark.parametrize("kind", KINDS)
def test_only_configmap_claim_and_job_no_service_account_or_role(helm, kind):
    objects = helm.template("digits", *FULL[kind], namespace="vision")
    assert sorted(o["kind"] for o in objects) == sorted(["ConfigMap", "PersistentVolumeClaim",
                                                         kind])
    assert {o["metadata"]["namespace"] for o in objects} == {"vision"}
    for template in (CHART / "templates").glob("*.yaml"):
        for line in template.read_text().splitlines():
            if line.strip().startswith("namespace:"):
                assert line.strip() == "namespace: {{ .Release.Namespace }}", template.name


@pytest.mark.parametrize("kind", KINDS)
def test_affinity_chart_only_reaches_every_pod(helm, kind):
    pods = _pods(_job(helm.template("digits", *FULL[kind])))
    assert len(pods) == (2 if kind == "PyTorchJob" else 1)
    for pod in pods:
        (term,) = pod["spec"]["affinity"]["nodeAffinity"][
            "requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
        assert term == {"matchExpressions": [{"key": "zone", "operator": "Exists"}]}


@pytest.mark.parametrize("kind", KINDS)
def test_every_rendered_manifest_passes_kctl_validate(helm, tmp_path, capsys, kind):
    """A TrainJob is reported as not checked until kctl validate knows TrainJobs."""
    proc = helm.run("template", "digits", "CHART", *FULL[kind], check=True)
    manifest = tmp_path / "chart.yaml"
    manifest.write_text(proc.stdout)
    capsys.readouterr()
    assert kctl(["validate", str(manifest)]) == 0, capsys.readouterr()


@pytest.mark.parametrize("kind, nodes", [("PyTorchJob", 1), ("PyTorchJob", 20), ("TrainJob", 1),
                                         ("TrainJob", 11), ("TrainJob", 101)])
def test_release_names_are_cut_to_the_kinds_limit(helm, kind, nodes):
    release = "a" * 45 + "-b-c-def"  # 53 characters, Helm's longest release name
    limit = load_backend(kind.lower()).name_limit(nodes)
    objects = helm.template(release, *CONFIG, "--set", f"kind={kind}", "--set", f"nodes={nodes}")
    job = _job(objects)
    assert job["metadata"]["name"] == release[:limit].rstrip("-")
    assert len(job["metadata"]["name"]) <= limit
    for obj in objects:
        assert len(obj["metadata"]["name"]) <= 63
        for value in obj["metadata"]["labels"].values():
            assert len(value) <= 63
    assert _pods(job)[0]["spec"]["volumes"][1]["persistentVolumeClaim"]["claimName"] == \
        job["metadata"]["name"] + "-work-dir"


def test_name_override_names_the_job_cut_like_a_release_name(helm):
    job = _job(helm.template("rel", *CONFIG, "--set", "nameOverride=digits"))
    assert job["metadata"]["name"] == "digits"
    long = "b" * 60
    job = _job(helm.template("rel", *CONFIG, *TRAINJOB, "--set", f"nameOverride={long}"))
    assert job["metadata"]["name"] == "b" * 48
    job = _job(helm.template("rel", *CONFIG, "--set", "nameOverride=digits",
                             "--set", "name=explicit"))
    assert job["metadata"]["name"] == "explicit"


def test_release_name_that_is_not_a_dns1035_label_needs_a_name(helm):
    proc = helm.run("template", "1digits", "CHART", *CONFIG)
    assert proc.returncode == 1
    assert ('job name "1digits" (the release name) is not a DNS-1035 label: lowercase letters, '
            "digits and '-', starting with a letter; set name=...") in proc.stderr
    objects = helm.template("1digits", *CONFIG, "--set", "name=digits")
    assert _job(objects)["metadata"]["name"] == "digits"


@pytest.mark.parametrize("config_name", [
    "resnet/resnet18_1xb64_digits.py", "_base_/.hidden-.py", "x.py.py", "a" * 80 + ".py", "-.py"])
def test_config_label_is_kctls(helm, config_name):
    job = _job(helm.template("t", *CONFIG, "--set", f"configName={config_name}"))
    assert job["metadata"]["labels"]["kctl.dev/config"] == config_label(config_name)


def _notes(helm, tmp_path, *args: str) -> list[str]:
    """NOTES.txt's lines as ``helm install`` prints them (``helm template`` skips NOTES, and
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
    return yaml.safe_load(proc.stdout)["notes"].splitlines()


def test_notes_tell_how_to_watch_a_pytorchjob(helm, tmp_path):
    lines = _notes(helm, tmp_path, *CONFIG, "--set", "gpus=8", "--set", "nodes=2",
                   "--set", "workDirSize=50Gi", "--set", "queue=team-a")
    for line in ("PyTorchJob vision/digits: 2 node(s) x 8 process(es) on 8 GPU(s) each.",
                 "It waits suspended in Kueue's queue team-a until admitted.",
                 "Checkpoints and logs: /work_dirs/digits on the claim digits-work-dir (the "
                 "Master's; the Workers' /work_dirs is an emptyDir).",
                 "  kctl status digits -n vision",
                 "  kctl logs digits -n vision -f",
                 "  kubectl get pytorchjob digits -n vision -w",
                 "  kubectl get pods -n vision -l training.kubeflow.org/job-name=digits",
                 "  kubectl logs -n vision -f digits-master-0",
                 "  kubectl delete pvc digits-work-dir -n vision",
                 "To change the job, `helm uninstall digits` and install it again with the same "
                 "name"):
        assert line in lines
    assert not any("jobset" in line or "ReadWriteMany" in line for line in lines)


def test_notes_tell_how_to_watch_a_trainjob(helm, tmp_path):
    lines = _notes(helm, tmp_path, *CONFIG, *TRAINJOB, "--set", "gpus=8", "--set", "nodes=2")
    for line in ("TrainJob vision/digits: 2 node(s) x 8 process(es) on 8 GPU(s) each, runtime "
                 "ClusterTrainingRuntime/torch-distributed.",
                 "Checkpoints and logs: /work_dirs/digits on the claim digits-work-dir.",
                 "Every node mounts digits-work-dir: it must be ReadWriteMany, so its storage "
                 "class must offer that (kctl doctor tells).",
                 "  kctl status digits -n vision",
                 "  kctl logs digits -n vision -f",
                 "  kubectl get trainjob digits -n vision -w",
                 "  kubectl get pods -n vision -l jobset.sigs.k8s.io/jobset-name=digits",
                 "  kubectl logs -n vision -f -c node -l jobset.sigs.k8s.io/jobset-name=digits,"
                 "batch.kubernetes.io/job-completion-index=0",
                 "  kubectl delete pvc digits-work-dir -n vision"):
        assert line in lines
    assert not any("pytorchjob" in line or "master" in line for line in lines)


def test_notes_for_cpu_training_on_an_emptydir(helm, tmp_path):
    text = "\n".join(_notes(helm, tmp_path, *CONFIG, "--set", "workDirSize=0"))
    assert "PyTorchJob vision/digits: 1 node(s) x 1 process(es) on CPUs (gloo)." in text
    assert "/work_dirs/digits on an emptyDir (lost with the pod)" in text
    assert "Kueue" not in text and "kubectl delete pvc" not in text and "resumes" not in text


def test_chart_metadata_follows_kctl():
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["apiVersion"] == "v2" and chart["name"] == "kctl"
    assert re.fullmatch(r"\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?", chart["version"])
    assert chart["appVersion"] == __version__


def test_schema_quantity_is_kctls_without_a_sign():
    schema = json.loads((CHART / "values.schema.json").read_text())
    unsigned = QUANTITY_PATTERN.replace(r"^(\+|-)?", "", 1).rstrip("$")
    for key in ("cpu", "memory"):
        assert schema["properties"][key]["pattern"] == f"^({unsigned})?$"
    for key in ("shmSize", "workDirSize"):
        assert schema["properties"][key]["pattern"] == f"^{unsigned}$"
