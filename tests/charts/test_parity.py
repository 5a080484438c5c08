"""``helm template charts/kctl`` renders the objects ``kctl train --dry-run`` renders.

Both outputs are parsed and compared as data. The only fields allowed to differ are listed
below with the reason; everything else (replicas, nprocPerNode, resources, the torchrun command
with ``--resume``, volumes, Kueue label and suspend, gang scheduling, priority class, security
context, the other labels) must be equal. Every object the chart renders also passes kctl's own
validation (the CRD schema, the webhook rules, the ConfigMap/PVC checks).
"""

from __future__ import annotations

import copy
import pytest
import yaml

from kctl.cli import main as kctl
from kctl.configfiles import collect
from kctl.validate.manifest import load_documents, validate_object
from tests.charts.conftest import DEMO_CONFIG

#: Labels only the chart sets: Helm's standard labels (helm.sh/chart best practices).
HELM_ONLY_LABELS = {
    "helm.sh/chart": "which chart and chart version made the object (Helm convention)",
    "app.kubernetes.io/version": "the chart's appVersion (Helm convention); kctl's own version "
                                 "is already in the image tag",
}
#: Labels both set, to different values: (chart's value, kctl's value, reason).
DIFFERENT_LABELS = {
    "app.kubernetes.io/managed-by": (
        lambda case: "Helm", lambda case: "kctl",
        "the tool that owns the objects: helm upgrade/uninstall vs kctl delete"),
    "app.kubernetes.io/instance": (
        lambda case: case.release, lambda case: case.job,
        "Helm's instance is the release (helm list, helm uninstall); kctl's is the job name"),
}
#: Objects only the chart renders.
HELM_ONLY_KINDS = {
    "PersistentVolumeClaim": "the chart can create the work-dir claim (workDirSize); kctl train "
                             "mounts an existing one (--work-dir-pvc), given here by its name",
}
#: Configmap volume ``items``: a list whose order Kubernetes ignores. Helm ranges over the
#: configFiles map in sorted key order; kctl lists the main config first, then its _base_ files.
#: Both are sorted by key before comparing.


class Case:
    def __init__(self, case_id, release, job, kctl_args, helm_args, config=None):
        self.id, self.release, self.job = case_id, release, job
        self.kctl_args, self.helm_args, self.config = kctl_args, helm_args, config

    def __repr__(self):
        return self.id


CASES = [
    Case("cpu-one-node-emptydir", "digits", "digits",
         ["FLAT", "--gpus", "0"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py"]),
    Case("cpu-procs", "digits", "digits",
         ["FLAT", "--gpus", "0", "--cpu-procs", "2", "--cpu", "2", "--memory", "4Gi"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py", "--set", "cpuProcs=2",
          "--set", "cpu=2", "--set", "memory=4Gi"]),
    Case("cpu-threads-from-millicores", "digits", "digits",
         ["FLAT", "--gpus", "0", "--cpu-procs", "2", "--cpu", "4500m"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py", "--set", "cpuProcs=2",
          "--set", "cpu=4500m"]),
    Case("cpu-threads-from-cores", "digits", "digits",
         ["FLAT", "--gpus", "0", "--cpu", "3.5"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py", "--set", "cpu=3.5"]),
    Case("gpus-8-nodes-2-shared-claim", "digits", "digits",
         ["FLAT", "--gpus", "8", "--nodes", "2", "--work-dir-pvc", "shared",
          "--image", "registry.example.com/team/trainer:1.2", "--max-restarts", "5"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py", "--set", "gpus=8",
          "--set", "nodes=2", "--set", "workDirPvc=shared",
          "--set", "image.repository=registry.example.com/team/trainer",
          "--set", "image.tag=1.2", "--set", "maxRestarts=5"]),
    Case("queue-gang-priority-data-resources-args", "exp1", "digits-big",
         ["FLAT", "--gpus", "4", "--nodes", "3", "--work-dir-pvc",
          "shared", "--data-pvc", "imagenet:/datasets", "--cpu", "500m", "--memory", "64Gi",
          "--shm-size", "16Gi", "--queue", "team-a", "--gang", "--priority-class", "high",
          "--", "--amp", "--cfg-options", "train_cfg.max_epochs=90"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py", "--set", "name=digits-big",
          "--set", "gpus=4", "--set", "nodes=3", "--set", "workDirPvc=shared",
          "--set", "dataPvc=imagenet", "--set", "dataMountPath=/datasets", "--set", "cpu=500m",
          "--set", "memory=64Gi", "--set", "shmSize=16Gi", "--set", "queue=team-a",
          "--set", "gang=true", "--set", "priorityClass=high",
          "--set", "trainerArgs={--amp,--cfg-options,train_cfg.max_epochs=90}"]),
    Case("priority-without-gang", "digits", "digits",
         ["FLAT", "--gpus", "1", "--priority-class", "low"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py", "--set", "gpus=1",
          "--set", "priorityClass=low"]),
    Case("base-tree-in-config-files", "resnet18-1xb64-digits", "resnet18-1xb64-digits",
         [str(DEMO_CONFIG), "--gpus", "2"],
         ["-f", "TREE_VALUES", "--set", "gpus=2"]),
    Case("config-in-image", "digits", "digits",
         [str(DEMO_CONFIG), "--gpus", "0",
          "--config-in-image", "configs/resnet/resnet18_1xb64_digits.py"],
         ["--set", "configInImage=configs/resnet/resnet18_1xb64_digits.py"]),
    Case("created-work-dir-claim", "digits", "digits",
         ["FLAT", "--gpus", "8", "--nodes", "2", "--work-dir-pvc", "digits-work-dir"],
         ["--set-file", "config=FLAT", "--set", "configName=digits.py", "--set", "gpus=8",
          "--set", "nodes=2", "--set", "workDirSize=100Gi", "--set", "workDirStorageClass=nfs"]),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory) -> dict[str, str]:
    """FLAT: the demo config flattened into one file; TREE_VALUES: a values file with its tree."""
    folder = tmp_path_factory.mktemp("parity")
    flat = folder / "digits.py"
    assert kctl(["config", "flatten", str(DEMO_CONFIG), "-o", str(flat)]) == 0
    tree = collect(DEMO_CONFIG)
    values = {"configName": tree.main,
              "configFiles": {rel: path.read_text() for rel, path in tree.files.items()}}
    tree_values = folder / "tree-values.yaml"
    tree_values.write_text(yaml.safe_dump(values))
    return {"FLAT": str(flat), "TREE_VALUES": str(tree_values)}


def _fill(args: list[str], inputs: dict[str, str]) -> list[str]:
    """Put the input files in place of their names (a whole argument or the value after =)."""
    out = []
    for arg in args:
        head, sep, tail = arg.rpartition("=")
        out.append(head + sep + inputs[tail] if tail in inputs else arg)
    return out


def _label_maps(obj: dict):
    yield obj["metadata"].setdefault("labels", {})
    for replica in obj.get("spec", {}).get("pytorchReplicaSpecs", {}).values():
        yield replica["template"]["metadata"]["labels"]


def _normalise(obj: dict, case: Case, chart: bool) -> dict:
    """Drop the listed differences after checking their values; sort configMap items."""
    obj = copy.deepcopy(obj)
    for labels in _label_maps(obj):
        for key in HELM_ONLY_LABELS:
            assert (key in labels) is chart, (key, labels)
            labels.pop(key, None)
        for key, (helm_value, kctl_value, _) in DIFFERENT_LABELS.items():
            assert labels.pop(key) == (helm_value if chart else kctl_value)(case)
    for replica in obj.get("spec", {}).get("pytorchReplicaSpecs", {}).values():
        for volume in replica["template"]["spec"].get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["items"].sort(key=lambda item: item["key"])
    return obj


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_chart_renders_what_kctl_train_renders(case, helm, inputs, capsys):
    capsys.readouterr()
    code = kctl(["train", "--name", case.job, "-n", "ml", "--dry-run",
                 *_fill(case.kctl_args, inputs)])
    assert code == 0, capsys.readouterr().err
    from_kctl = load_documents(capsys.readouterr().out)
    from_chart = helm.template(case.release, *_fill(case.helm_args, inputs), namespace="ml")

    for obj in from_chart:
        assert validate_object(obj) == [], obj["kind"]
    chart_only = [o for o in from_chart if o["kind"] in HELM_ONLY_KINDS]
    shared = [o for o in from_chart if o["kind"] not in HELM_ONLY_KINDS]
    assert sorted(o["kind"] for o in shared) == sorted(o["kind"] for o in from_kctl)
    by_kind = {o["kind"]: o for o in from_kctl}
    for obj in shared:
        assert _normalise(obj, case, chart=True) == _normalise(by_kind[obj["kind"]], case,
                                                               chart=False)
    if case.id == "created-work-dir-claim":
        (claim,) = chart_only
        assert claim["metadata"]["name"] == "digits-work-dir"
        assert claim["metadata"]["annotations"] == {"helm.sh/resource-policy": "keep"}
        assert claim["spec"] == {"accessModes": ["ReadWriteMany"], "storageClassName": "nfs",
                                 "resources": {"requests": {"storage": "100Gi"}}}
    else:
        assert chart_only == []


def test_the_compared_fields_are_really_there(helm, inputs):
    """Guard against a vacuous comparison: the big case renders every feature on both sides."""
    (case,) = [c for c in CASES if c.id == "queue-gang-priority-data-resources-args"]
    job = [o for o in helm.template(case.release, *_fill(case.helm_args, inputs))
           if o["kind"] == "PyTorchJob"][0]
    spec = job["spec"]
    assert spec["nprocPerNode"] == "4"
    assert spec["runPolicy"]["suspend"] is True
    assert spec["runPolicy"]["schedulingPolicy"] == {"minAvailable": 3, "priorityClass": "high"}
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert {k: v["replicas"] for k, v in spec["pytorchReplicaSpecs"].items()} == {
        "Master": 1, "Worker": 2}
    pod = spec["pytorchReplicaSpecs"]["Worker"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["command"] == [
        "torchrun", "-m", "trainer", "/config/digits.py", "--launcher", "pytorch",
        "--work-dir", "/work_dirs/digits-big", "--resume", "--amp", "--cfg-options",
        "train_cfg.max_epochs=90"]
    assert container["resources"] == {
        "limits": {"cpu": "500m", "memory": "64Gi", "nvidia.com/gpu": 4},
        "requests": {"cpu": "500m", "memory": "64Gi"}}
    assert pod["priorityClassName"] == "high"
    assert {m["mountPath"] for m in container["volumeMounts"]} == {
        "/config", "/work_dirs", "/datasets", "/dev/shm"}
    assert pod["securityContext"]["runAsNonRoot"] is True

