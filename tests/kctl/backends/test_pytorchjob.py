"""The PyTorchJob backend: golden manifests, the fields that matter, the config tree's journey."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from kctl.backends import load_backend
from kctl.backends import pytorchjob as backend
from kctl.backends.pytorchjob import BACKEND, DataVolume
from kctl.cli import main
from kctl.configfiles import collect, read_values
from kctl.errors import KctlError, UsageError
from kctl.job import Job, Topology
from kctl.validate.manifest import load_documents, validate_object

REPO = Path(__file__).resolve().parents[3]
GOLDEN = REPO / "tests/kctl/golden/pytorchjob"
GOLDEN_CONFIG = GOLDEN / "configs/resnet/resnet18_1xb64_digits.py"
CASES = json.loads((GOLDEN / "cases.json").read_text())
DIGITS = REPO / "configs/resnet/resnet18_1xb64_digits.py"


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


def render(config=GOLDEN_CONFIG, gpus=8, nodes=1, cpu_procs=1, trainer_args=(), name="digits",
           **options):
    job = Job(config=Path(config), topology=Topology.per_node(gpus, nodes, cpu_procs), name=name,
              trainer_args=tuple(trainer_args))
    return BACKEND.render(job, **options)


def objects(dryrun) -> dict:
    return {obj["kind"]: obj for obj in dryrun.request}


def pod_spec(dryrun, replica_type="Master") -> dict:
    return objects(dryrun)["PyTorchJob"]["spec"]["pytorchReplicaSpecs"][replica_type][
        "template"]["spec"]


def container(dryrun, replica_type="Master") -> dict:
    (only,) = pod_spec(dryrun, replica_type)["containers"]
    return only


# --- golden manifests -------------------------------------------------------------------------

def _argv(case: str) -> list[str]:
    args = CASES[case]
    cut = args.index("--") if "--" in args else len(args)
    return ["train", str(GOLDEN_CONFIG), *args[:cut], "--dry-run", *args[cut:]]


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_manifest(case, capsys):
    assert main(_argv(case)) == 0
    out = capsys.readouterr().out
    golden = GOLDEN / f"{case}.yaml"
    if os.environ.get("KCTL_UPDATE_GOLDEN") == "1":
        golden.write_text(out)
    assert out == golden.read_text(), f"regenerate with KCTL_UPDATE_GOLDEN=1 (see {GOLDEN})"


@pytest.mark.parametrize("case", sorted(CASES))
def test_golden_manifest_passes_schema_and_webhook_rules(case):
    docs = load_documents((GOLDEN / f"{case}.yaml").read_text())
    assert [d["kind"] for d in docs][-1] == "PyTorchJob"
    for doc in docs:
        assert validate_object(doc) == []


def test_backend_is_found_by_name_and_declares_what_it_can_do():
    assert load_backend("pytorchjob") is BACKEND
    assert {"multi_node", "gpu", "cpu", "submit"} <= BACKEND.capabilities


# --- the PyTorchJob's fields ------------------------------------------------------------------

def test_one_node_is_a_master_alone_with_explicit_single_replica():
    replicas = objects(render(nodes=1, work_dir_pvc="w"))["PyTorchJob"]["spec"][
        "pytorchReplicaSpecs"]
    assert list(replicas) == ["Master"]
    assert replicas["Master"]["replicas"] == 1
    assert replicas["Master"]["restartPolicy"] == "OnFailure"


def test_n_nodes_are_a_master_and_n_minus_1_workers_with_the_same_pod():
    replicas = objects(render(nodes=4, work_dir_pvc="w"))["PyTorchJob"]["spec"][
        "pytorchReplicaSpecs"]
    assert {t: r["replicas"] for t, r in replicas.items()} == {"Master": 1, "Worker": 3}
    assert replicas["Master"]["template"] == replicas["Worker"]["template"]


@pytest.mark.parametrize("gpus, cpu_procs, nproc", [(8, 1, "8"), (1, 1, "1"), (0, 1, "1"),
                                                     (0, 3, "3")])
def test_nproc_per_node_is_a_string_of_gpus_or_cpu_processes(gpus, cpu_procs, nproc):
    job = objects(render(gpus=gpus, cpu_procs=cpu_procs))["PyTorchJob"]
    assert job["spec"]["nprocPerNode"] == nproc


def test_gpu_limit_per_node_and_none_for_cpu_training():
    assert container(render(gpus=8))["resources"] == {"limits": {"nvidia.com/gpu": 8}}
    assert "resources" not in container(render(gpus=0))


IDENTICAL = {"name": "TORCH_ELASTIC_WORKER_IDENTICAL", "value": "1"}


@pytest.mark.parametrize("gpus", [0, 1, 8])
def test_torchrun_computes_the_ranks_of_identical_nodes(gpus):
    """No rank comes from the rendezvous store, where a restarted node could read stale ones."""
    for replica in objects(render(gpus=gpus, nodes=3, work_dir_pvc="w"))["PyTorchJob"]["spec"][
            "pytorchReplicaSpecs"].values():
        assert replica["template"]["spec"]["containers"][0]["env"][0] == IDENTICAL


def test_cpu_training_hides_gpus_the_runtime_might_show():
    assert container(render(gpus=0))["env"] == [IDENTICAL,
                                                {"name": "CUDA_VISIBLE_DEVICES", "value": ""}]
    assert container(render(gpus=1))["env"] == [IDENTICAL]


@pytest.mark.parametrize("cpu,procs,threads", [
    ("4", 1, "4"), ("4", 2, "2"), ("3", 2, "1"), ("1", 2, "1"), ("500m", 1, "1"),
    ("4500m", 2, "2"), ("2.5", 1, "2"), (".5", 1, "1")])
def test_cpu_training_threads_are_the_cpus_per_process(cpu, procs, threads):
    env = container(render(gpus=0, cpu_procs=procs, cpu=cpu))["env"]
    assert env == [IDENTICAL, {"name": "CUDA_VISIBLE_DEVICES", "value": ""},
                   {"name": "OMP_NUM_THREADS", "value": threads}]


@pytest.mark.parametrize("cpu", ["2k", "1e3", None])
def test_cpu_training_threads_stay_torchruns_without_plain_cores(cpu):
    options = {} if cpu is None else {"cpu": cpu}
    names = [e["name"] for e in container(render(gpus=0, **options))["env"]]
    assert names == [IDENTICAL["name"], "CUDA_VISIBLE_DEVICES"]
    assert container(render(gpus=1, cpu="8"))["env"] == [IDENTICAL]


def test_cpu_and_memory_are_requests_and_limits_per_pod():
    resources = container(render(gpus=2, cpu="16", memory="64Gi"))["resources"]
    assert resources == {"limits": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": 2},
                         "requests": {"cpu": "16", "memory": "64Gi"}}


def test_container_is_named_pytorch_with_the_operator_port():
    spec = container(render())
    assert spec["name"] == "pytorch"
    assert spec["image"] == backend.DEFAULT_IMAGE
    assert spec["ports"] == [{"name": "pytorchjob-port", "containerPort": 23456}]


def test_command_is_bare_torchrun_then_the_trainer_contract():
    spec = container(render(nodes=2, work_dir_pvc="w", trainer_args=["--amp", "--cfg-options",
                                                                     "a=1"]))
    assert spec["command"] == [
        "torchrun", "-m", "trainer", "/config/resnet/resnet18_1xb64_digits.py",
        "--launcher", "pytorch", "--work-dir", "/work_dirs/digits", "--resume",
        "--amp", "--cfg-options", "a=1"]
    # The topology comes from the operator's PET_* variables only.
    assert not [a for a in spec["command"] if a.startswith(("--nnodes", "--nproc", "--node",
                                                            "--master", "--rdzv"))]
    assert "args" not in spec


def test_volumes_config_work_dir_data_and_shared_memory():
    dryrun = render(work_dir_pvc="work", data_pvc=DataVolume("imagenet", "/data"))
    mounts = {m["name"]: m for m in container(dryrun)["volumeMounts"]}
    assert {n: (m["mountPath"], m.get("readOnly", False)) for n, m in mounts.items()} == {
        "config": ("/config", True), "work-dir": ("/work_dirs", False),
        "data": ("/data", True), "dshm": ("/dev/shm", False)}
    volumes = {v["name"]: v for v in pod_spec(dryrun)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "digits-config"
    assert volumes["work-dir"] == {"name": "work-dir",
                                   "persistentVolumeClaim": {"claimName": "work"}}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "imagenet",
                                                        "readOnly": True}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory",
                                           "sizeLimit": backend.DEFAULT_SHM_SIZE}
    shm = {v["name"]: v for v in pod_spec(render(shm_size="16Gi"))["volumes"]}["dshm"]
    assert shm["emptyDir"]["sizeLimit"] == "16Gi"


def test_pods_run_as_non_root_with_no_privileges():
    pod = pod_spec(render())
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": backend.RUN_AS_USER,
        "runAsGroup": backend.RUN_AS_USER, "fsGroup": backend.RUN_AS_USER,
        "seccompProfile": {"type": "RuntimeDefault"}}
    assert backend.RUN_AS_USER > 0
    assert container(render())["securityContext"] == {
        "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}


def test_labels_on_job_config_map_and_pods():
    parts = objects(render(name="digits"))
    expected = {"app.kubernetes.io/name": "kctl-trainer", "app.kubernetes.io/instance": "digits",
                "app.kubernetes.io/managed-by": "kctl",
                "kctl.dev/config": "resnet18_1xb64_digits"}
    assert parts["PyTorchJob"]["metadata"]["labels"] == expected
    assert parts["ConfigMap"]["metadata"]["labels"] == expected
    master = parts["PyTorchJob"]["spec"]["pytorchReplicaSpecs"]["Master"]
    assert master["template"]["metadata"]["labels"] == expected


@pytest.mark.parametrize("file_name, label", [
    ("resnet18_1xb64_digits.py", "resnet18_1xb64_digits"),
    ("my config+v2.py", "my_config_v2"),
    ("_private_.py", "private"),
    ("x" * 80 + ".py", "x" * 63),
])
def test_config_label_is_a_valid_label_value(file_name, label):
    assert backend.config_label(file_name) == label


def test_run_policy_defaults_and_no_namespace_unless_asked():
    job = objects(render(work_dir_pvc="w"))["PyTorchJob"]
    assert job["spec"]["runPolicy"] == {
        "cleanPodPolicy": backend.CLEAN_POD_POLICY, "backoffLimit": backend.DEFAULT_MAX_RESTARTS,
        "ttlSecondsAfterFinished": backend.TTL_SECONDS_AFTER_FINISHED}
    assert "namespace" not in job["metadata"]
    namespaced = render(work_dir_pvc="w", namespace="research", max_restarts=0)
    assert {o["metadata"]["namespace"] for o in namespaced.request} == {"research"}
    assert objects(namespaced)["PyTorchJob"]["spec"]["runPolicy"]["backoffLimit"] == 0


@pytest.mark.parametrize("nodes, max_restarts, limit", [(1, 3, 3), (2, 3, 6), (4, 2, 8),
                                                        (4, 0, 0)])
def test_backoff_limit_is_failures_times_nodes(nodes, max_restarts, limit):
    """The operator counts container restarts, and one failure restarts every node's."""
    job = objects(render(nodes=nodes, max_restarts=max_restarts, work_dir_pvc="w"))["PyTorchJob"]
    assert job["spec"]["runPolicy"]["backoffLimit"] == limit


def test_queue_labels_the_job_and_creates_it_suspended():
    parts = objects(render(queue="team-a"))
    job = parts["PyTorchJob"]
    assert job["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert job["spec"]["runPolicy"]["suspend"] is True
    assert "kueue.x-k8s.io/queue-name" not in parts["ConfigMap"]["metadata"]["labels"]
    assert "suspend" not in objects(render())["PyTorchJob"]["spec"]["runPolicy"]


def test_gang_sets_min_available_to_the_node_count_and_priority_class():
    dryrun = render(nodes=4, work_dir_pvc="w", gang=True, priority_class="high")
    policy = objects(dryrun)["PyTorchJob"]["spec"]["runPolicy"]
    assert policy["schedulingPolicy"] == {"minAvailable": 4, "priorityClass": "high"}
    assert pod_spec(dryrun, "Worker")["priorityClassName"] == "high"
    no_gang = render(priority_class="high")
    assert "schedulingPolicy" not in objects(no_gang)["PyTorchJob"]["spec"]["runPolicy"]
    assert pod_spec(no_gang)["priorityClassName"] == "high"


# --- work_dir storage -------------------------------------------------------------------------

def test_several_nodes_need_a_work_dir_claim():
    with pytest.raises(UsageError, match="--nodes 2 needs --work-dir-pvc"):
        render(nodes=2)


def test_one_node_without_a_claim_warns_that_checkpoints_die_with_the_pod():
    dryrun = render(gpus=0)
    (warning,) = dryrun.warnings
    assert "no --work-dir-pvc" in warning and "die with the pod" in warning
    volumes = {v["name"]: v for v in pod_spec(dryrun)["volumes"]}
    assert volumes["work-dir"]["emptyDir"] == {}
    assert not render(gpus=0, work_dir_pvc="w").warnings


# --- the learning-rate / batch-size warning ----------------------------------------------------

def test_batch_warning_when_total_batch_differs_from_base_batch_size():
    # The golden config: 64 images per process, auto_scale_lr.base_batch_size = 64.
    (warning,) = render(gpus=8, nodes=2, work_dir_pvc="w").warnings
    assert "16 processes x 64" in warning and "= 1024" in warning
    assert "base_batch_size=64" in warning
    assert "append `-- --auto-scale-lr`" in warning


@pytest.mark.parametrize("gpus, nodes, cpu_procs, trainer_args", [
    (0, 1, 1, ()),                                   # 1 x 64 = 64
    (8, 2, 1, ("--auto-scale-lr",)),                 # the user scales already
    (0, 1, 4, ("--cfg-options", "train_dataloader.batch_size=16")),  # 4 x 16 = 64
    (8, 1, 1, ("--cfg-options", "auto_scale_lr.base_batch_size=512")),  # 8 x 64 = 512
])
def test_no_batch_warning_when_it_matches_or_is_handled(gpus, nodes, cpu_procs, trainer_args):
    dryrun = render(gpus=gpus, nodes=nodes, cpu_procs=cpu_procs, trainer_args=trainer_args,
                    work_dir_pvc="w")
    assert dryrun.warnings == []


def test_no_batch_warning_when_the_config_does_not_say(tmp_path):
    config = _write(tmp_path / "plain.py", "train_dataloader = dict(batch_size=32)\n")
    assert render(config, gpus=8, work_dir_pvc="w").warnings == []


# --- the config tree in a ConfigMap -----------------------------------------------------------

def _mount(dryrun, into: Path) -> Path:
    """Materialise the config volume the way the kubelet does (items: key -> path)."""
    data = objects(dryrun)["ConfigMap"]["data"]
    volume = {v["name"]: v for v in pod_spec(dryrun)["volumes"]}["config"]["configMap"]
    for item in volume["items"]:
        target = into / item["path"]
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(data[item["key"]])
    return into


def _check_tree_travels(config: Path, tmp_path: Path) -> None:
    dryrun = render(config, gpus=1, work_dir_pvc="w")
    tree = collect(config)
    data = objects(dryrun)["ConfigMap"]["data"]
    assert len(data) == len(tree.files)  # every file, nothing else
    mounted = _mount(dryrun, tmp_path / "mnt")
    main_in_pod = container(dryrun)["command"][3]
    assert main_in_pod == f"/config/{tree.main}"
    local_main = mounted / tree.main
    remounted = collect(local_main)  # _base_ references resolve inside the mounted layout
    assert set(remounted.files) == set(tree.files)
    for relative, path in tree.files.items():
        assert (mounted / relative).read_text() == path.read_text()
    assert read_values(local_main) == read_values(config)


def test_config_map_carries_every_base_file_in_its_layout(tmp_path):
    src = tmp_path / "src"
    _write(src / "_base_/models/net.py", "model = dict(type='Net', depth=18)\n")
    _write(src / "_base_/schedules/sgd.py", """\
        _base_ = './common/runtime.py'
        optim_wrapper = dict(optimizer=dict(type='SGD', lr=0.1))
        """)
    _write(src / "_base_/schedules/common/runtime.py", "default_scope = 'trainer'\n")
    config = _write(src / "exp/deep/net_digits.py", """\
        _base_ = ['../../_base_/models/net.py', '../../_base_/schedules/sgd.py']
        train_dataloader = dict(batch_size=8)
        """)
    _check_tree_travels(config, tmp_path)
    keys = set(objects(render(config, gpus=1, work_dir_pvc="w"))["ConfigMap"]["data"])
    assert keys == {"exp__deep__net_digits.py", "_base___models__net.py",
                    "_base___schedules__sgd.py", "_base___schedules__common__runtime.py"}


def test_config_map_carries_the_projects_digits_config(tmp_path):
    _check_tree_travels(DIGITS, tmp_path)


def test_config_files_whose_keys_would_collide_are_refused(tmp_path):
    _write(tmp_path / "a/b.py", "x = 1\n")
    _write(tmp_path / "a__b.py", "y = 1\n")
    config = _write(tmp_path / "main.py", "_base_ = ['a/b.py', 'a__b.py']\n")
    with pytest.raises(UsageError, match="share the ConfigMap key 'a__b.py'"):
        render(config, gpus=1)


def test_config_file_name_that_cannot_be_a_key_is_refused(tmp_path):
    _write(tmp_path / "my base.py", "x = 1\n")
    config = _write(tmp_path / "main.py", "_base_ = 'my base.py'\n")
    with pytest.raises(UsageError, match="cannot travel in a ConfigMap.*--config-in-image"):
        render(config, gpus=1)


def test_config_tree_larger_than_a_config_map_is_refused(tmp_path):
    _write(tmp_path / "big.py", "# " + "x" * (1024 * 1024) + "\n")
    config = _write(tmp_path / "main.py", "_base_ = 'big.py'\n")
    with pytest.raises(UsageError, match="more than a ConfigMap's 1048576; use --config-in-image"):
        render(config, gpus=1)


def test_config_in_image_ships_no_config_map():
    dryrun = render(config_in_image="configs/resnet/resnet18_1xb64_digits.py", work_dir_pvc="w")
    assert [o["kind"] for o in dryrun.request] == ["PyTorchJob"]
    assert container(dryrun)["command"][3] == "configs/resnet/resnet18_1xb64_digits.py"
    assert "config" not in {v["name"] for v in pod_spec(dryrun)["volumes"]}
    assert "config" not in {m["name"] for m in container(dryrun)["volumeMounts"]}


# --- options ----------------------------------------------------------------------------------

@pytest.mark.parametrize("options, message", [
    (dict(namespace="Research"), "--namespace: 'Research' is not a DNS-1123 label"),
    (dict(image="two words"), "--image must be an image reference"),
    (dict(work_dir_pvc="Work_Dirs"), "--work-dir-pvc: 'Work_Dirs' is not a DNS-1123 subdomain"),
    (dict(priority_class="HIGH"), "--priority-class"),
    (dict(queue="x" * 64), "--queue"),
    (dict(cpu="lots"), "--cpu must be a Kubernetes quantity"),
    (dict(memory="-4Gi"), "--memory must be a Kubernetes quantity"),
    (dict(shm_size="8GB"), "--shm-size must be a Kubernetes quantity"),
    (dict(max_restarts=-1), "--max-restarts must not be negative"),
    (dict(data_pvc=DataVolume("data", "relative/dir")), "must be an absolute folder"),
    (dict(data_pvc=DataVolume("data", "/")), "must be an absolute folder"),
    (dict(data_pvc=DataVolume("data", "/config/x")), "overlaps /config"),
    (dict(data_pvc=DataVolume("data", "/dev")), "overlaps /dev/shm"),
    (dict(config_in_image=" "), "--config-in-image must name"),
])
def test_bad_options_are_usage_errors_naming_the_flag(options, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        render(**options)


@pytest.mark.parametrize("spec", ["data", ":/data", "data:", ""])
def test_data_pvc_must_be_claim_colon_mount(spec):
    with pytest.raises(UsageError, match="--data-pvc must be CLAIM:MOUNT"):
        DataVolume.parse(spec)


def test_data_pvc_parses_claim_and_mount():
    assert DataVolume.parse("imagenet:/data/in1k") == DataVolume("imagenet", "/data/in1k")


# --- the safety net and the seams ---------------------------------------------------------------

def test_a_template_bug_is_caught_before_anything_is_submitted(monkeypatch):
    real = backend.render_template

    def buggy(name, **context):  # as if the template forgot to quote nprocPerNode
        return real(name, **context).replace('nprocPerNode: "8"', "nprocPerNode: 8")

    created = []
    fake = types.ModuleType("kctl.k8s.apply")
    fake.create = lambda objects, namespace, context: created.append(objects)
    monkeypatch.setitem(sys.modules, "kctl.k8s.apply", fake)
    monkeypatch.setattr(backend, "render_template", buggy)
    dryrun = render(gpus=8, work_dir_pvc="w")
    assert "nprocPerNode: 8" in dryrun.text  # a dry run prints; it does not validate
    with pytest.raises(KctlError, match=r"bug in kctl.*PyTorchJob/digits: spec.nprocPerNode: "
                                        r"must be a string, got 8"):
        BACKEND.submit(dryrun)
    assert created == []


def test_submit_creates_the_rendered_objects_through_kctl_k8s(monkeypatch):
    calls = []
    fake = types.ModuleType("kctl.k8s.apply")
    fake.create = lambda objects, namespace, context: calls.append(
        (objects, namespace, context)) or objects[-1]["metadata"]["name"]
    monkeypatch.setitem(sys.modules, "kctl.k8s.apply", fake)
    dryrun = render(namespace="research", work_dir_pvc="w")
    assert BACKEND.submit(dryrun, context="prod") == "digits"
    assert calls == [(dryrun.request, "research", "prod")]
    BACKEND.submit(render(work_dir_pvc="w"))
    assert calls[-1][1:] == (None, None)  # the context's namespace, the current context


def test_rendering_and_validating_import_neither_torch_mmengine_nor_kubernetes(tmp_path):
    manifest = tmp_path / "job.yaml"
    code = textwrap.dedent(f"""\
        import contextlib, io, sys
        from kctl.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["train", {str(GOLDEN_CONFIG)!r}, "--gpus", "8", "--nodes", "2",
                         "--work-dir-pvc", "w", "--dry-run"]) == 0
        dry_run = sorted(m for m in sys.modules if m.split(".")[0] in ("yaml", "jsonschema"))
        open({str(manifest)!r}, "w").write(out.getvalue())
        with contextlib.redirect_stdout(io.StringIO()):
            assert main(["validate", {str(manifest)!r}]) == 0
        heavy = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "mmengine",
                                                                      "kubernetes"))
        print(dry_run, heavy)
        """)
    proc = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    # The dry run prints YAML text: it parses nothing (no PyYAML) and validates nothing
    # (no jsonschema); validating imports neither torch, mmengine nor kubernetes.
    assert proc.stdout.strip() == "[] []"
    assert "kind: PyTorchJob" in manifest.read_text()
