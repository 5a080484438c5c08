"""``helm template charts/kctl`` renders the objects ``kctl train --dry-run`` renders, both kinds.

Both outputs are parsed and compared as data. The only fields allowed to differ are listed
below with the reason; everything else (the claim, replicas or numNodes, processes per node,
resources, the torchrun command with ``--resume``, environment, volumes, placement, Kueue label
and suspend, gang scheduling, priority class, runtime, security context, the other labels) must be
equal. Every case gives kctl's flags and the chart's values for the same options, and every option
of :data:`kctl.options.OPTIONS` has a case for each kind that takes it (checked below), so a new
option without a parity case fails. Every object the chart renders also passes kctl's own
validation.
"""

from __future__ import annotations

import copy
import re

import pytest
import yaml

from kctl.cli import main as kctl
from kctl.configfiles import collect
from kctl.options import BY_NAME, KINDS, OPTIONS
from kctl.validate.manifest import load_documents, validate_object
from tests.charts.conftest import DEMO_CONFIG
from tests.charts.test_values import NOT_OPTIONS, SPLIT_VALUES

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
#: Annotations only the chart sets, by kind of object.
HELM_ONLY_ANNOTATIONS = {
    "PersistentVolumeClaim": {
        "helm.sh/resource-policy": (
            "keep", "checkpoints outlive helm uninstall; kctl's claim is simply not owned by the "
                    "job, so kctl delete keeps it")},
}
#: Configmap volume ``items``: a list whose order Kubernetes ignores. Helm ranges over the
#: configFiles map in sorted key order; kctl lists the main config first, then its _base_ files.
#: Both are sorted by key before comparing. The user's environment variables come in name order
#: from the chart (a map) and in flag order from kctl: the cases give them in name order.


class Case:
    """One job both ways: ``kctl train --kind KIND ARGS`` and ``helm template RELEASE`` with
    ``helm_args`` and, as a values file, ``values``. ``job`` is the job's name (kctl's default
    name of the config file, or its ``--name``)."""

    def __init__(self, case_id, kind, kctl_args, helm_args, values=None, release="digits",
                 job="digits"):
        self.id, self.kind, self.release, self.job = case_id, kind, release, job
        self.kctl_args, self.helm_args, self.values = kctl_args, helm_args, values or {}

    def __repr__(self):
        return self.id


FLAT = ["--set-file", "config=FLAT", "--set", "configName=digits.py"]
TREE = "resnet18-1xb64-digits"
#: Placement and access, the same in both kinds but for imagePullPolicy (PyTorchJob only).
PLACEMENT_FLAGS = [
    "--image-pull-secret", "registry", "--image-pull-secret", "mirror",
    "--node-selector", "nvidia.com/gpu.product=NVIDIA-H100-80GB-HBM3",
    "--toleration", "nvidia.com/gpu:NoSchedule", "--toleration", "dedicated=ml:NoExecute",
    "--service-account", "trainer", "--env", "NCCL_DEBUG=WARN", "--env", "NCCL_IB_HCA=mlx5",
    "--label", "team=ml", "--label", "example.com/cost-center=42",
    "--annotation", "prometheus.io/scrape=true"]
PLACEMENT_VALUES = {
    "image": {"pullSecrets": ["registry", {"name": "mirror"}]},
    "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-H100-80GB-HBM3"},
    "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"},
                    {"key": "dedicated", "operator": "Equal", "value": "ml",
                     "effect": "NoExecute"}],
    "serviceAccount": "trainer", "env": {"NCCL_DEBUG": "WARN", "NCCL_IB_HCA": "mlx5"},
    "labels": {"team": "ml", "example.com/cost-center": "42"},
    "podAnnotations": {"prometheus.io/scrape": "true"}}
#: 2 nodes and a claim of a given size and class: ReadWriteOnce on a PyTorchJob's Master alone,
#: ReadWriteMany on every node of a TrainJob.
CREATED_CLAIM = (["FLAT", "--gpus", "8", "--nodes", "2", "--work-dir-size", "100Gi",
                  "--storage-class", "nfs"],
                 [*FLAT, "--set", "gpus=8", "--set", "nodes=2", "--set", "workDirSize=100Gi",
                  "--set", "workDirStorageClass=nfs"])

CASES = [
    # -- PyTorchJob ---------------------------------------------------------------------------
    Case("cpu-defaults-created-claim", "PyTorchJob", ["FLAT", "--gpus", "0"],
         [*FLAT, "--set", "gpus=0"]),
    Case("cpu-procs", "PyTorchJob",
         ["FLAT", "--gpus", "0", "--cpu-procs", "2", "--cpu", "2", "--memory", "4Gi"],
         [*FLAT, "--set", "gpus=0", "--set", "cpuProcs=2", "--set", "cpu=2",
          "--set", "memory=4Gi"]),
    Case("cpu-threads-from-millicores-env-overrides-kctls", "PyTorchJob",
         ["FLAT", "--gpus", "0", "--cpu-procs", "2", "--cpu", "4500m",
          "--env", "AAA=first", "--env", "OMP_NUM_THREADS=1"],
         [*FLAT, "--set", "gpus=0", "--set", "cpuProcs=2", "--set", "cpu=4500m",
          "--set-string", "env.AAA=first", "--set-string", "env.OMP_NUM_THREADS=1"]),
    Case("cpu-threads-from-cores", "PyTorchJob", ["FLAT", "--gpus", "0", "--cpu", "3.5"],
         [*FLAT, "--set", "gpus=0", "--set", "cpu=3.5"]),
    Case("gpus-8-nodes-2-shared-claim", "PyTorchJob",
         ["FLAT", "--gpus", "8", "--nodes", "2", "--work-dir-pvc", "shared",
          "--image", "registry.example.com/team/trainer:1.2", "--max-restarts", "5"],
         [*FLAT, "--set", "gpus=8", "--set", "nodes=2", "--set", "workDirPvc=shared",
          "--set", "image.repository=registry.example.com/team/trainer",
          "--set", "image.tag=1.2", "--set", "maxRestarts=5"]),
    Case("queue-gang-priority-data-resources-args", "PyTorchJob",
         ["FLAT", "--gpus", "4", "--nodes", "3", "--name", "digits-big", "--work-dir-pvc",
          "shared", "--data-pvc", "imagenet:/datasets", "--cpu", "500m", "--memory", "64Gi",
          "--shm-size", "16Gi", "--queue", "team-a", "--gang", "--priority-class", "high",
          "--", "--amp", "--cfg-options", "train_cfg.max_epochs=90"],
         [*FLAT, "--set", "name=digits-big", "--set", "gpus=4", "--set", "nodes=3",
          "--set", "workDirPvc=shared", "--set", "dataPvc=imagenet",
          "--set", "dataMountPath=/datasets", "--set", "cpu=500m", "--set", "memory=64Gi",
          "--set", "shmSize=16Gi", "--set", "queue=team-a", "--set", "gang=true",
          "--set", "priorityClass=high",
          "--set", "trainerArgs={--amp,--cfg-options,train_cfg.max_epochs=90}"],
         release="exp1", job="digits-big"),
    Case("priority-without-gang", "PyTorchJob",
         ["FLAT", "--gpus", "1", "--priority-class", "low"],
         [*FLAT, "--set", "gpus=1", "--set", "priorityClass=low"]),
    Case("base-tree-in-config-files", "PyTorchJob", [str(DEMO_CONFIG), "--gpus", "2"],
         ["-f", "TREE_VALUES", "--set", "gpus=2"], release=TREE, job=TREE),
    Case("config-in-image", "PyTorchJob",
         [str(DEMO_CONFIG), "--gpus", "0", "--config-in-image",
          "configs/resnet/resnet18_1xb64_digits.py"],
         ["--set", "gpus=0", "--set", "configInImage=configs/resnet/resnet18_1xb64_digits.py"],
         release=TREE, job=TREE),
    Case("created-claim-size-and-class-master-only", "PyTorchJob", *CREATED_CLAIM),
    Case("work-dir-size-0-emptydir", "PyTorchJob",
         ["FLAT", "--gpus", "0", "--nodes", "2", "--work-dir-size", "0"],
         [*FLAT, "--set", "gpus=0", "--set", "nodes=2", "--set", "workDirSize=0"]),
    Case("placement-and-pull-policy", "PyTorchJob",
         ["FLAT", "--gpus", "8", "--nodes", "2", *PLACEMENT_FLAGS,
          "--image-pull-policy", "IfNotPresent"],
         [*FLAT, "--set", "gpus=8", "--set", "nodes=2", "--set", "image.pullPolicy=IfNotPresent"],
         values=PLACEMENT_VALUES),
    # -- TrainJob -----------------------------------------------------------------------------
    Case("trainjob-cpu-defaults-created-claim", "TrainJob", ["FLAT", "--gpus", "0"],
         [*FLAT, "--set", "gpus=0"]),
    Case("trainjob-cpu-procs-threads-env", "TrainJob",
         ["FLAT", "--gpus", "0", "--cpu-procs", "2", "--cpu", "4", "--memory", "4Gi",
          "--env", "OMP_NUM_THREADS=1"],
         [*FLAT, "--set", "gpus=0", "--set", "cpuProcs=2", "--set", "cpu=4",
          "--set", "memory=4Gi", "--set-string", "env.OMP_NUM_THREADS=1"]),
    Case("trainjob-2-nodes-created-readwritemany-claim", "TrainJob", *CREATED_CLAIM),
    Case("trainjob-4-nodes-namespaced-runtime-data-image-args", "TrainJob",
         ["FLAT", "--gpus", "8", "--nodes", "4", "--name", "digits-4x8", "--work-dir-pvc",
          "shared", "--data-pvc", "imagenet:/data", "--shm-size", "16Gi",
          "--image", "registry.example.com/team/kctl-trainer:0.1.0", "--runtime", "torch-h100",
          "--runtime-kind", "TrainingRuntime", "--", "--amp", "--auto-scale-lr"],
         [*FLAT, "--set", "name=digits-4x8", "--set", "gpus=8", "--set", "nodes=4",
          "--set", "workDirPvc=shared", "--set", "dataPvc=imagenet", "--set", "shmSize=16Gi",
          "--set", "image.repository=registry.example.com/team/kctl-trainer",
          "--set", "image.tag=0.1.0", "--set", "runtime=torch-h100",
          "--set", "runtimeKind=TrainingRuntime",
          "--set", "trainerArgs={--amp,--auto-scale-lr}"],
         release="exp2", job="digits-4x8"),
    Case("trainjob-queue", "TrainJob",
         ["FLAT", "--gpus", "8", "--nodes", "2", "--work-dir-pvc", "shared", "--queue", "team-a"],
         [*FLAT, "--set", "gpus=8", "--set", "nodes=2", "--set", "workDirPvc=shared",
          "--set", "queue=team-a"]),
    Case("trainjob-placement", "TrainJob", ["FLAT", "--gpus", "8", "--nodes", "2",
                                            *PLACEMENT_FLAGS],
         [*FLAT, "--set", "gpus=8", "--set", "nodes=2"], values=PLACEMENT_VALUES),
    Case("trainjob-base-tree-in-config-files", "TrainJob", [str(DEMO_CONFIG), "--gpus", "1"],
         ["-f", "TREE_VALUES", "--set", "gpus=1"], release=TREE, job=TREE),
    Case("trainjob-config-in-image-emptydir", "TrainJob",
         [str(DEMO_CONFIG), "--gpus", "0", "--work-dir-size", "0", "--config-in-image",
          "configs/resnet/resnet18_1xb64_digits.py"],
         ["--set", "gpus=0", "--set", "workDirSize=0",
          "--set", "configInImage=configs/resnet/resnet18_1xb64_digits.py"],
         release=TREE, job=TREE),
    Case("trainjob-11-nodes-name-at-its-limit", "TrainJob",
         ["FLAT", "--gpus", "8", "--nodes", "11", "--name", "n" * 47],
         [*FLAT, "--set", "gpus=8", "--set", "nodes=11", "--set", "name=" + "n" * 47],
         job="n" * 47),
]


def _kctl_options(case: Case) -> set[str]:
    """The options whose flags the case gives kctl (before the trainer's ``--``)."""
    args = case.kctl_args[:case.kctl_args.index("--")] if "--" in case.kctl_args \
        else case.kctl_args
    flags = {option.flag: option.name for option in OPTIONS}
    return {flags[arg] for arg in args if arg in flags}


def _chart_options(case: Case, inputs: dict[str, str]) -> set[str]:
    """The options whose chart values the case sets (``--set``, values files)."""
    paths = []
    for before, arg in zip(case.helm_args, case.helm_args[1:]):
        if before in ("--set", "--set-string", "--set-file"):
            paths.append(re.split(r"[=\[]", arg)[0])
        elif before == "-f":
            paths += _dotted(yaml.safe_load(open(inputs[arg])))
    paths += _dotted(case.values)
    by_path = {path: option.name for option in OPTIONS
               for path in SPLIT_VALUES.get(option.name, (option.value,))}
    found = set()
    for path in paths:
        head = next((p for p in by_path if path == p or path.startswith(p + ".")), None)
        if head is not None:
            found.add(by_path[head])
        else:
            assert path.split(".")[0] in NOT_OPTIONS, f"{case.id}: {path} is no chart value"
    return found


def _dotted(values: dict) -> list[str]:
    """``{"image": {"pullSecrets": [...]}, "env": {...}}`` -> ``image.pullSecrets``, ``env``."""
    return [f"image.{key}" for key in values.get("image", {})] + \
        [key for key in values if key != "image"]


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
    return {"FLAT": str(flat), "TREE_VALUES": str(tree_values), "FOLDER": str(folder)}


def _fill(args: list[str], inputs: dict[str, str]) -> list[str]:
    """Put the input files in place of their names (a whole argument or the value after =)."""
    out = []
    for arg in args:
        head, sep, tail = arg.rpartition("=")
        out.append(head + sep + inputs[tail] if tail in inputs else arg)
    return out


def render_both(case: Case, helm, inputs: dict[str, str], capsys
                ) -> tuple[list[dict], list[dict]]:
    """(kctl's objects, the chart's objects) for ``case``."""
    capsys.readouterr()
    code = kctl(["train", "--kind", case.kind, "-n", "ml", "--dry-run",
                 *_fill(case.kctl_args, inputs)])
    assert code == 0, capsys.readouterr().err
    from_kctl = load_documents(capsys.readouterr().out)
    values = []
    if case.values:
        path = f"{inputs['FOLDER']}/{case.id}.yaml"
        with open(path, "w") as file:
            yaml.safe_dump(case.values, file)
        values = ["-f", path]
    return from_kctl, helm.template(case.release, "--set", f"kind={case.kind}", *values,
                                    *_fill(case.helm_args, inputs), namespace="ml")


def _pod_templates(obj: dict) -> list[dict]:
    """The pod templates of a job of either kind (none for other objects)."""
    spec = obj.get("spec", {})
    templates = [r["template"] for r in spec.get("pytorchReplicaSpecs", {}).values()]
    for patch in spec.get("runtimePatches", []) if isinstance(spec, dict) else []:
        for rjob in patch["trainingRuntimeSpec"]["template"]["spec"]["replicatedJobs"]:
            templates.append(rjob["template"]["spec"]["template"])
    return templates


def _normalise(obj: dict, case: Case, chart: bool) -> dict:
    """Drop the listed differences after checking their values; sort configMap items."""
    obj = copy.deepcopy(obj)
    templates = _pod_templates(obj)
    for labels in [obj["metadata"].setdefault("labels", {})] + \
            [t["metadata"]["labels"] for t in templates]:
        for key in HELM_ONLY_LABELS:
            assert (key in labels) is chart, (key, labels)
            labels.pop(key, None)
        for key, (helm_value, kctl_value, _) in DIFFERENT_LABELS.items():
            assert labels.pop(key) == (helm_value if chart else kctl_value)(case)
    annotations = obj["metadata"].get("annotations", {})
    for key, (value, _) in HELM_ONLY_ANNOTATIONS.get(obj["kind"], {}).items():
        assert (annotations.pop(key, None) == value) is chart, (key, annotations)
    if not annotations:
        obj["metadata"].pop("annotations", None)
    for template in templates:
        for volume in template["spec"].get("volumes", []):
            if "configMap" in volume:
                volume["configMap"]["items"].sort(key=lambda item: item["key"])
    return obj


@pytest.mark.parametrize("case", CASES, ids=repr)
def test_chart_renders_what_kctl_train_renders(case, helm, inputs, capsys):
    assert _chart_options(case, inputs) == _kctl_options(case), "the case is one-sided"
    from_kctl, from_chart = render_both(case, helm, inputs, capsys)
    for obj in from_chart:
        assert validate_object(obj) == [], obj["kind"]
    assert sorted(o["kind"] for o in from_chart) == sorted(o["kind"] for o in from_kctl)
    assert from_kctl[-1]["kind"] == case.kind
    by_kind = {o["kind"]: o for o in from_kctl}
    for obj in from_chart:
        assert _normalise(obj, case, chart=True) == _normalise(by_kind[obj["kind"]], case,
                                                               chart=False)


@pytest.mark.parametrize("kind", KINDS)
def test_every_option_has_a_parity_case_for_every_kind_that_takes_it(kind):
    covered = {name for case in CASES if case.kind == kind for name in _kctl_options(case)}
    assert sorted(o.name for o in OPTIONS if kind in o.kinds and o.name not in covered) == []
    assert all(kind in BY_NAME[name].kinds for name in covered)


def _job(objects: list[dict]) -> dict:
    return next(o for o in objects if o["kind"] in KINDS)


def test_the_compared_pytorchjob_fields_are_really_there(helm, inputs, capsys):
    """Guard against a vacuous comparison: the big cases render every feature on both sides."""
    (case,) = [c for c in CASES if c.id == "queue-gang-priority-data-resources-args"]
    for objects in render_both(case, helm, inputs, capsys):
        spec = _job(objects)["spec"]
        assert spec["nprocPerNode"] == "4"
        assert spec["runPolicy"]["suspend"] is True
        assert spec["runPolicy"]["schedulingPolicy"] == {"minAvailable": 3,
                                                         "priorityClass": "high"}
        assert _job(objects)["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
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
            "/config", "/work_dirs", "/datasets", "/dev/shm", "/tmp"}
        assert container["securityContext"]["readOnlyRootFilesystem"] is True
        assert pod["securityContext"]["runAsNonRoot"] is True
    (case,) = [c for c in CASES if c.id == "created-claim-size-and-class-master-only"]
    for objects in render_both(case, helm, inputs, capsys):
        claim = next(o for o in objects if o["kind"] == "PersistentVolumeClaim")
        assert claim["spec"]["accessModes"] == ["ReadWriteOnce"]
        volumes = {rtype: {v["name"]: v for v in r["template"]["spec"]["volumes"]}["work-dir"]
                   for rtype, r in _job(objects)["spec"]["pytorchReplicaSpecs"].items()}
        assert volumes == {"Master": {"name": "work-dir", "persistentVolumeClaim": {
            "claimName": "digits-work-dir"}}, "Worker": {"name": "work-dir", "emptyDir": {}}}


def test_the_compared_trainjob_fields_are_really_there(helm, inputs, capsys):
    (case,) = [c for c in CASES if c.id == "trainjob-placement"]
    for objects in render_both(case, helm, inputs, capsys):
        claim = next(o for o in objects if o["kind"] == "PersistentVolumeClaim")
        assert claim["spec"]["accessModes"] == ["ReadWriteMany"]
        spec = _job(objects)["spec"]
        assert spec["runtimeRef"] == {"apiGroup": "trainer.kubeflow.org",
                                      "kind": "ClusterTrainingRuntime",
                                      "name": "torch-distributed"}
        assert {k: spec["trainer"][k] for k in ("numNodes", "numProcPerNode")} == {
            "numNodes": 2, "numProcPerNode": 8}
        assert spec["trainer"]["env"] == [
            {"name": "TORCH_ELASTIC_WORKER_IDENTICAL", "value": "1"},
            {"name": "NCCL_DEBUG", "value": "WARN"}, {"name": "NCCL_IB_HCA", "value": "mlx5"}]
        (patch,) = spec["runtimePatches"]
        assert patch["manager"] == "kctl.dev/kctl"
        (pod,) = _pod_templates(_job(objects))
        assert pod["metadata"]["annotations"] == {"prometheus.io/scrape": "true"}
        assert pod["metadata"]["labels"]["example.com/cost-center"] == "42"
        assert pod["spec"]["imagePullSecrets"] == [{"name": "registry"}, {"name": "mirror"}]
        assert pod["spec"]["serviceAccountName"] == "trainer"
        assert pod["spec"]["tolerations"][1] == {"key": "dedicated", "operator": "Equal",
                                                 "value": "ml", "effect": "NoExecute"}
        assert pod["spec"]["containers"][0]["name"] == "node"
        assert {v["name"]: v for v in pod["spec"]["volumes"]}["work-dir"] == {
            "name": "work-dir", "persistentVolumeClaim": {"claimName": "digits-work-dir"}}
