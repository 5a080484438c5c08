"""What every Kubernetes kind's pod holds (PyTorchJob and TrainJob alike), the config tree's
journey, the batch-size warning, option checks and the safety net before a submit."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import types
from pathlib import Path

import pytest

from kctl.backends import kubernetes as kube
from kctl.backends import load_backend
from kctl.configfiles import collect, read_values
from kctl.errors import KctlError, UsageError
from kctl.options import DEFAULT_IMAGE, DEFAULT_SHM_SIZE, DEFAULT_WORK_DIR_SIZE, KINDS
from tests.kctl.backends.kube_views import (GOLDEN_CONFIG, REPO, container, job_object, objects,
                                            pod_labels, pod_spec, render)

DIGITS = REPO / "configs/resnet/resnet18_1xb64_digits.py"
IDENTICAL = {"name": "TORCH_ELASTIC_WORKER_IDENTICAL", "value": "1"}

kinds = pytest.mark.parametrize("kind", KINDS)


def _write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(text))
    return path


# --- the pod -----------------------------------------------------------------------------------

@kinds
def test_gpu_limit_per_node_and_none_for_cpu_training(kind):
    assert container(render(kind, gpus=8))["resources"] == {"limits": {"nvidia.com/gpu": 8}}
    assert "resources" not in container(render(kind, gpus=0))


@kinds
@pytest.mark.parametrize("gpus", [0, 1, 8])
def test_torchrun_computes_the_ranks_of_identical_nodes(kind, gpus):
    """No rank comes from the rendezvous store, where a restarted node could read stale ones."""
    assert container(render(kind, gpus=gpus, nodes=3, work_dir_pvc="w"))["env"][0] == IDENTICAL


@kinds
def test_cpu_training_hides_gpus_the_runtime_might_show(kind):
    assert container(render(kind, gpus=0))["env"] == [
        IDENTICAL, {"name": "CUDA_VISIBLE_DEVICES", "value": ""}]
    assert container(render(kind, gpus=1))["env"] == [IDENTICAL]


@kinds
@pytest.mark.parametrize("cpu,procs,threads", [
    ("4", 1, "4"), ("4", 2, "2"), ("3", 2, "1"), ("1", 2, "1"), ("500m", 1, "1"),
    ("4500m", 2, "2"), ("2.5", 1, "2"), (".5", 1, "1")])
def test_cpu_training_threads_are_the_cpus_per_process(kind, cpu, procs, threads):
    env = container(render(kind, gpus=0, cpu_procs=procs, cpu=cpu))["env"]
    assert env == [IDENTICAL, {"name": "CUDA_VISIBLE_DEVICES", "value": ""},
                   {"name": "OMP_NUM_THREADS", "value": threads}]


@kinds
@pytest.mark.parametrize("cpu", ["2k", "1e3", None])
def test_cpu_training_threads_stay_torchruns_without_plain_cores(kind, cpu):
    options = {} if cpu is None else {"cpu": cpu}
    names = [e["name"] for e in container(render(kind, gpus=0, **options))["env"]]
    assert names == [IDENTICAL["name"], "CUDA_VISIBLE_DEVICES"]
    assert container(render(kind, gpus=1, cpu="8"))["env"] == [IDENTICAL]


@kinds
def test_cpu_and_memory_are_requests_and_limits_per_pod(kind):
    resources = container(render(kind, gpus=2, cpu="16", memory="64Gi"))["resources"]
    assert resources == {"limits": {"cpu": "16", "memory": "64Gi", "nvidia.com/gpu": 2},
                         "requests": {"cpu": "16", "memory": "64Gi"}}


@kinds
def test_command_is_bare_torchrun_then_the_trainer_contract(kind):
    spec = container(render(kind, nodes=2, work_dir_pvc="w",
                            trainer_args=["--amp", "--cfg-options", "a=1"]))
    assert spec["image"] == DEFAULT_IMAGE
    assert spec["command"] == [
        "torchrun", "-m", "trainer", "/config/resnet/resnet18_1xb64_digits.py",
        "--launcher", "pytorch", "--work-dir", "/work_dirs/digits", "--resume",
        "--amp", "--cfg-options", "a=1"]
    # The topology comes from the operator's PET_* variables only.
    assert not [a for a in spec["command"] if a.startswith(("--nnodes", "--nproc", "--node",
                                                            "--master", "--rdzv"))]
    assert "args" not in spec


@kinds
def test_volumes_config_work_dir_data_and_shared_memory(kind):
    dryrun = render(kind, work_dir_pvc="work", data_pvc="imagenet:/data")
    mounts = {m["name"]: m for m in container(dryrun)["volumeMounts"]}
    assert {n: (m["mountPath"], m.get("readOnly", False)) for n, m in mounts.items()} == {
        "config": ("/config", True), "work-dir": ("/work_dirs", False),
        "data": ("/data", True), "dshm": ("/dev/shm", False), "tmp": ("/tmp", False)}
    volumes = {v["name"]: v for v in pod_spec(dryrun)["volumes"]}
    assert volumes["config"]["configMap"]["name"] == "digits-config"
    assert volumes["work-dir"] == {"name": "work-dir",
                                   "persistentVolumeClaim": {"claimName": "work"}}
    assert volumes["data"]["persistentVolumeClaim"] == {"claimName": "imagenet",
                                                        "readOnly": True}
    assert volumes["dshm"]["emptyDir"] == {"medium": "Memory", "sizeLimit": DEFAULT_SHM_SIZE}
    assert volumes["tmp"] == {"name": "tmp", "emptyDir": {}}
    shm = {v["name"]: v for v in pod_spec(render(kind, shm_size="16Gi"))["volumes"]}["dshm"]
    assert shm["emptyDir"]["sizeLimit"] == "16Gi"


@kinds
def test_pods_run_as_non_root_with_no_privileges(kind):
    pod = pod_spec(render(kind))
    assert pod["securityContext"] == {
        "runAsNonRoot": True, "runAsUser": kube.RUN_AS_USER, "runAsGroup": kube.RUN_AS_USER,
        "fsGroup": kube.RUN_AS_USER, "seccompProfile": {"type": "RuntimeDefault"}}
    assert kube.RUN_AS_USER > 0
    # the root filesystem is read-only: the writable folders are the volumes (work dir, /dev/shm,
    # /tmp, where the image keeps its caches)
    assert container(render(kind))["securityContext"] == {
        "allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
        "capabilities": {"drop": ["ALL"]}}


@kinds
def test_labels_on_job_config_map_and_pods(kind):
    dryrun = render(kind, name="digits")
    expected = {"app.kubernetes.io/name": "kctl-trainer", "app.kubernetes.io/instance": "digits",
                "app.kubernetes.io/managed-by": "kctl",
                "kctl.dev/config": "resnet18_1xb64_digits"}
    assert job_object(dryrun)["metadata"]["labels"] == expected
    assert objects(dryrun)["ConfigMap"]["metadata"]["labels"] == expected
    assert pod_labels(dryrun) == expected


@kinds
def test_queue_labels_the_job_only(kind):
    dryrun = render(kind, queue="team-a")
    assert job_object(dryrun)["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "team-a"
    assert "kueue.x-k8s.io/queue-name" not in objects(dryrun)["ConfigMap"]["metadata"]["labels"]
    assert "kueue.x-k8s.io/queue-name" not in pod_labels(dryrun)


@kinds
def test_namespace_only_when_asked(kind):
    assert "namespace" not in job_object(render(kind, work_dir_pvc="w"))["metadata"]
    namespaced = render(kind, work_dir_pvc="w", namespace="research")
    assert {o["metadata"]["namespace"] for o in namespaced.request} == {"research"}


@pytest.mark.parametrize("file_name, label", [
    ("resnet18_1xb64_digits.py", "resnet18_1xb64_digits"),
    ("my config+v2.py", "my_config_v2"),
    ("_private_.py", "private"),
    ("x" * 80 + ".py", "x" * 63),
])
def test_config_label_is_a_valid_label_value(file_name, label):
    assert kube.config_label(file_name) == label


# --- work_dir storage -------------------------------------------------------------------------

def _work_dir_volume(dryrun, replica_type="Master") -> dict:
    (volume,) = [v for v in pod_spec(dryrun, replica_type)["volumes"] if v["name"] == "work-dir"]
    return volume


@kinds
def test_without_a_claim_kctl_creates_one_for_the_job(kind):
    dryrun = render(kind, gpus=0, nodes=1)
    claim = objects(dryrun)["PersistentVolumeClaim"]
    assert [o["kind"] for o in dryrun.request] == ["PersistentVolumeClaim", "ConfigMap", kind]
    assert claim["metadata"]["name"] == "digits-work-dir"
    assert claim["metadata"]["labels"] == job_object(dryrun)["metadata"]["labels"]
    assert claim["spec"] == {"accessModes": ["ReadWriteOnce"],
                             "resources": {"requests": {"storage": DEFAULT_WORK_DIR_SIZE}}}
    assert _work_dir_volume(dryrun)["persistentVolumeClaim"] == {"claimName": "digits-work-dir"}
    assert dryrun.warnings == []
    sized = objects(render(kind, work_dir_size="100Gi", storage_class="fast-ssd"))
    assert sized["PersistentVolumeClaim"]["spec"]["resources"]["requests"]["storage"] == "100Gi"
    assert sized["PersistentVolumeClaim"]["spec"]["storageClassName"] == "fast-ssd"


def test_only_the_pytorchjob_master_mounts_the_work_dir_claim():
    """Rank 0 alone reads and writes checkpoints: the claim needs no ReadWriteMany."""
    dryrun = render("PyTorchJob", nodes=3, trainer_args=["--auto-scale-lr"])
    assert objects(dryrun)["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteOnce"]
    assert _work_dir_volume(dryrun, "Master")["persistentVolumeClaim"] == {
        "claimName": "digits-work-dir"}
    assert _work_dir_volume(dryrun, "Worker") == {"name": "work-dir", "emptyDir": {}}
    assert dryrun.warnings == []


def test_every_trainjob_node_mounts_the_claim_so_it_must_be_read_write_many():
    dryrun = render("TrainJob", nodes=2, trainer_args=["--auto-scale-lr"])
    assert objects(dryrun)["PersistentVolumeClaim"]["spec"]["accessModes"] == ["ReadWriteMany"]
    (warning,) = dryrun.warnings
    assert warning.startswith("every node of a TrainJob mounts the work-dir claim, so kctl asks "
                              "for a ReadWriteMany claim (digits-work-dir)")
    (warning,) = render("TrainJob", nodes=2, work_dir_pvc="shared",
                        trainer_args=["--auto-scale-lr"]).warnings
    assert warning == ("every node of this TrainJob mounts --work-dir-pvc shared: it must be a "
                       "ReadWriteMany claim")


@kinds
def test_a_claim_given_by_name_is_mounted_not_created(kind):
    dryrun = render(kind, work_dir_pvc="shared")
    assert "PersistentVolumeClaim" not in objects(dryrun)
    assert _work_dir_volume(dryrun)["persistentVolumeClaim"] == {"claimName": "shared"}


@kinds
def test_work_dir_size_0_is_an_emptydir_that_dies_with_the_pod(kind):
    dryrun = render(kind, gpus=0, work_dir_size="0")
    assert "PersistentVolumeClaim" not in objects(dryrun)
    (warning,) = dryrun.warnings
    assert "--work-dir-size 0" in warning and "die with the pod" in warning
    assert _work_dir_volume(dryrun) == {"name": "work-dir", "emptyDir": {}}


@kinds
@pytest.mark.parametrize("options, message", [
    (dict(work_dir_pvc="shared", work_dir_size="5Gi"),
     "--work-dir-size is for the claim kctl creates; --work-dir-pvc shared names an existing one"),
    (dict(work_dir_pvc="shared", storage_class="fast"),
     "--storage-class is for the claim kctl creates"),
    (dict(work_dir_size="0", storage_class="fast"), "--work-dir-size 0 asks for none"),
    (dict(work_dir_size="lots"), "--work-dir-size must be a Kubernetes quantity"),
    (dict(storage_class="Fast_SSD"), "--storage-class: 'Fast_SSD' is not a DNS-1123 subdomain"),
])
def test_work_dir_options_that_contradict_or_are_malformed(kind, options, message):
    with pytest.raises(UsageError, match=message):
        render(kind, **options)


# --- placement and access ---------------------------------------------------------------------

@kinds
def test_placement_and_access_options_reach_every_pod(kind):
    dryrun = render(kind, nodes=2, image_pull_secret=["registry", "mirror"],
                    node_selector=["pool=gpu", "zone=a"], toleration=["gpu:NoSchedule",
                                                                       "team=ml:NoExecute"],
                    service_account="trainer", env=["NCCL_DEBUG=INFO"], label=["team=ml"],
                    annotation=["prometheus.io/scrape=true"])
    replicas = ["Master", "Worker"] if kind == "PyTorchJob" else ["Master"]
    for replica in replicas:
        pod = pod_spec(dryrun, replica)
        assert pod["imagePullSecrets"] == [{"name": "registry"}, {"name": "mirror"}]
        assert pod["nodeSelector"] == {"pool": "gpu", "zone": "a"}
        assert pod["tolerations"] == [
            {"key": "gpu", "operator": "Exists", "effect": "NoSchedule"},
            {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoExecute"}]
        assert pod["serviceAccountName"] == "trainer"
    assert container(dryrun)["env"][-1] == {"name": "NCCL_DEBUG", "value": "INFO"}
    assert pod_labels(dryrun)["team"] == "ml"
    assert job_object(dryrun)["metadata"]["labels"]["team"] == "ml"
    assert objects(dryrun)["ConfigMap"]["metadata"]["labels"]["team"] == "ml"


@kinds
def test_no_placement_keys_unless_asked(kind):
    pod = pod_spec(render(kind))
    assert not {"imagePullSecrets", "nodeSelector", "tolerations", "serviceAccountName",
                "priorityClassName"} & set(pod)


@kinds
def test_the_users_env_value_wins_over_kctls(kind):
    env = container(render(kind, gpus=0, cpu="4", env=["OMP_NUM_THREADS=2"]))["env"]
    assert {"name": "OMP_NUM_THREADS", "value": "2"} in env
    assert [e["name"] for e in env].count("OMP_NUM_THREADS") == 1


@kinds
@pytest.mark.parametrize("options, message", [
    (dict(node_selector=["pool"]), "--node-selector must be KEY=VALUE, got 'pool'"),
    (dict(node_selector=["pool=gpu a"]), "--node-selector pool=gpu a: label value 'gpu a'"),
    (dict(toleration=["gpu"]), "--toleration must be KEY.=VALUE.:EFFECT"),
    (dict(toleration=["gpu:Sometimes"]), "--toleration must be KEY.=VALUE.:EFFECT"),
    (dict(env=["1X=2"]), "--env 1X=2: '1X' is not a valid environment variable name"),
    (dict(env=["PET_NNODES=2"]), "--env PET_NNODES=2: PET_NNODES is set by the training "
                                 "operator"),
    (dict(env=["MASTER_ADDR=x"]), "MASTER_ADDR is set by the training operator"),
    (dict(label=["app.kubernetes.io/name=x"]), "kctl sets the label app.kubernetes.io/name "
                                               "itself"),
    (dict(label=["bad key=x"]), "--label bad key=x: key 'bad key'"),
    (dict(annotation=["=x"]), "--annotation must be KEY=VALUE"),
    (dict(image_pull_secret=["Reg"]), "--image-pull-secret: 'Reg' is not a DNS-1123 subdomain"),
    (dict(service_account="SA"), "--service-account: 'SA' is not a DNS-1123 subdomain"),
])
def test_malformed_placement_options_are_one_line(kind, options, message):
    with pytest.raises(UsageError, match=message):
        render(kind, **options)


def test_image_pull_policy_is_a_pytorchjob_container_setting():
    assert container(render("PyTorchJob", image_pull_policy="Always"))["imagePullPolicy"] == \
        "Always"
    with pytest.raises(UsageError, match="--image-pull-policy does not apply to a TrainJob: "
                                         "runtimePatches cannot set a container's "
                                         "imagePullPolicy"):
        render("TrainJob", image_pull_policy="Always")


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
    assert render(config=config, gpus=8, work_dir_pvc="w").warnings == []


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


def _check_tree_travels(kind: str, config: Path, tmp_path: Path) -> None:
    dryrun = render(kind, config=config, gpus=1, work_dir_pvc="w")
    tree = collect(config)
    data = objects(dryrun)["ConfigMap"]["data"]
    assert len(data) == len(tree.files)  # every file, nothing else
    mounted = _mount(dryrun, tmp_path / kind / "mnt")
    main_in_pod = container(dryrun)["command"][3]
    assert main_in_pod == f"/config/{tree.main}"
    local_main = mounted / tree.main
    remounted = collect(local_main)  # _base_ references resolve inside the mounted layout
    assert set(remounted.files) == set(tree.files)
    for relative, path in tree.files.items():
        assert (mounted / relative).read_text() == path.read_text()
    assert read_values(local_main) == read_values(config)


@kinds
def test_config_map_carries_every_base_file_in_its_layout(kind, tmp_path):
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
    _check_tree_travels(kind, config, tmp_path)
    keys = set(objects(render(kind, config=config, gpus=1, work_dir_pvc="w"))["ConfigMap"]["data"])
    assert keys == {"exp__deep__net_digits.py", "_base___models__net.py",
                    "_base___schedules__sgd.py", "_base___schedules__common__runtime.py"}


@kinds
def test_config_map_carries_the_projects_digits_config(kind, tmp_path):
    _check_tree_travels(kind, DIGITS, tmp_path)


def test_config_files_whose_keys_would_collide_are_refused(tmp_path):
    _write(tmp_path / "a/b.py", "x = 1\n")
    _write(tmp_path / "a__b.py", "y = 1\n")
    config = _write(tmp_path / "main.py", "_base_ = ['a/b.py', 'a__b.py']\n")
    with pytest.raises(UsageError, match="share the ConfigMap key 'a__b.py'"):
        render(config=config, gpus=1)


def test_config_file_name_that_cannot_be_a_key_is_refused(tmp_path):
    _write(tmp_path / "my base.py", "x = 1\n")
    config = _write(tmp_path / "main.py", "_base_ = 'my base.py'\n")
    with pytest.raises(UsageError, match="cannot travel in a ConfigMap.*--config-in-image"):
        render(config=config, gpus=1)


def test_config_tree_larger_than_a_config_map_is_refused(tmp_path):
    _write(tmp_path / "big.py", "# " + "x" * (1024 * 1024) + "\n")
    config = _write(tmp_path / "main.py", "_base_ = 'big.py'\n")
    with pytest.raises(UsageError, match="more than a ConfigMap's 1048576; use --config-in-image"):
        render(config=config, gpus=1)


@kinds
def test_config_in_image_ships_no_config_map(kind):
    dryrun = render(kind, config_in_image="configs/resnet/resnet18_1xb64_digits.py",
                    work_dir_pvc="w")
    assert [o["kind"] for o in dryrun.request] == [kind]
    assert container(dryrun)["command"][3] == "configs/resnet/resnet18_1xb64_digits.py"
    assert "config" not in {v["name"] for v in pod_spec(dryrun)["volumes"]}
    assert "config" not in {m["name"] for m in container(dryrun)["volumeMounts"]}


# --- options ----------------------------------------------------------------------------------

@kinds
@pytest.mark.parametrize("options, message", [
    (dict(namespace="Research"), "--namespace: 'Research' is not a DNS-1123 label"),
    (dict(image="two words"), "--image must be an image reference"),
    (dict(work_dir_pvc="Work_Dirs"), "--work-dir-pvc: 'Work_Dirs' is not a DNS-1123 subdomain"),
    (dict(queue="x" * 64), "--queue"),
    (dict(cpu="lots"), "--cpu must be a Kubernetes quantity"),
    (dict(memory="-4Gi"), "--memory must be a Kubernetes quantity"),
    (dict(shm_size="8GB"), "--shm-size must be a Kubernetes quantity"),
    (dict(data_pvc="data:relative/dir"), "must be an absolute folder"),
    (dict(data_pvc="data:/"), "must be an absolute folder"),
    (dict(data_pvc="data:/config/x"), "overlaps /config"),
    (dict(data_pvc="data:/dev"), "overlaps /dev/shm"),
    (dict(data_pvc="data:/tmp/data"), "overlaps /tmp"),
    (dict(config_in_image=" "), "--config-in-image must not be empty"),
])
def test_bad_options_are_usage_errors_naming_the_flag(kind, options, message):
    with pytest.raises(UsageError, match=message.replace("(", r"\(")):
        render(kind, **options)


# --- the safety net and the seams ---------------------------------------------------------------

def _fake_apply(monkeypatch) -> list:
    """``kctl.k8s.apply.create`` replaced: the calls are recorded, nothing is created."""
    calls = []
    fake = types.ModuleType("kctl.k8s.apply")
    fake.create = lambda cluster, kind, objects, namespace: calls.append(
        (cluster, kind, objects, namespace)) or objects[-1]["metadata"]["name"]
    monkeypatch.setitem(sys.modules, "kctl.k8s.apply", fake)
    return calls


def test_a_template_bug_is_caught_before_anything_is_submitted(monkeypatch):
    real = kube.render_template

    def buggy(name, **context):  # as if the template forgot to quote nprocPerNode
        return real(name, **context).replace('nprocPerNode: "8"', "nprocPerNode: 8")

    created = _fake_apply(monkeypatch)
    monkeypatch.setattr(kube, "render_template", buggy)
    dryrun = render(gpus=8, work_dir_pvc="w")
    assert "nprocPerNode: 8" in dryrun.text  # a dry run prints; it does not validate
    with pytest.raises(KctlError, match=r"bug in kctl.*PyTorchJob/digits: spec.nprocPerNode: "
                                        r"must be a string, got 8"):
        load_backend("pytorchjob").submit(dryrun, cluster="the cluster")
    assert created == []


@kinds
def test_submit_creates_the_rendered_objects_through_kctl_k8s(kind, monkeypatch):
    calls = _fake_apply(monkeypatch)
    backend = load_backend(kind.lower())
    dryrun = render(kind, namespace="research", work_dir_pvc="w")
    assert backend.submit(dryrun, "the cluster") == "digits"
    assert calls == [("the cluster", backend, dryrun.request, "research")]
    backend.submit(render(kind, work_dir_pvc="w"), "the cluster")
    assert calls[-1][3] is None  # the context's namespace


@kinds
def test_rendering_and_validating_import_neither_torch_mmengine_nor_kubernetes(kind, tmp_path):
    manifest = tmp_path / "job.yaml"
    code = textwrap.dedent(f"""\
        import contextlib, io, sys
        from kctl.cli import main
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert main(["train", {str(GOLDEN_CONFIG)!r}, "--gpus", "8", "--nodes", "2",
                         "--work-dir-pvc", "w", "--kind", {kind!r}, "--dry-run"]) == 0
        dry_run = sorted(m for m in sys.modules if m.split(".")[0] in ("yaml", "jsonschema",
                                                                      "dataclasses"))
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
    # (no jsonschema), and builds no dataclass (~0.55 ms each, and ~0.9 ms to import the module:
    # docs/performance.md, CLI latency); validating imports neither torch, mmengine nor kubernetes.
    assert proc.stdout.strip() == "[] []"
    assert f"kind: {kind}" in manifest.read_text()
