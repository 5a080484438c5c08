"""The operator emulator's arithmetic and container view: env injection (pytorchjob-facts.md §5),
volumes, path mapping. Nothing here starts a process."""

from __future__ import annotations

import pytest

from tests.kctl.emulated.conftest import render_train
from tests.support.operator_emulator import (LOCAL_MASTER_ADDR, REPO, EmulatorError,
                                             load_manifest, operator_env)

# pytorchjob-facts.md §11: the minimal valid manifest for --nodes 2 --gpus 8.
FACTS_MANIFEST = """\
apiVersion: kubeflow.org/v1
kind: PyTorchJob
metadata:
  name: llm-train
  namespace: default
spec:
  nprocPerNode: "8"
  runPolicy:
    cleanPodPolicy: None
    backoffLimit: 3
  pytorchReplicaSpecs:
    Master:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            image: registry.example.com/team/train:1.0
            command: ["torchrun", "train.py"]
            ports:
            - name: pytorchjob-port
              containerPort: 23456
            resources:
              limits:
                nvidia.com/gpu: 8
    Worker:
      replicas: 1
      restartPolicy: OnFailure
      template:
        spec:
          containers:
          - name: pytorch
            image: registry.example.com/team/train:1.0
            command: ["torchrun", "train.py"]
            ports:
            - name: pytorchjob-port
              containerPort: 23456
            resources:
              limits:
                nvidia.com/gpu: 8
"""

CONFIG = "configs/resnet/resnet18_1xb64_digits.py"


def job_of(objects):
    return next(o for o in objects if o["kind"] == "PyTorchJob")


def expected_env(job: dict, replica_type: str, index: int) -> dict[str, str]:
    """§5's table, computed here from the manifest's own fields."""
    specs = job["spec"]["pytorchReplicaSpecs"]
    nodes = sum(spec["replicas"] for spec in specs.values())
    nproc = job["spec"]["nprocPerNode"]
    ports = specs["Master"]["template"]["spec"]["containers"][0]["ports"]
    port = str(next(p["containerPort"] for p in ports if p["name"] == "pytorchjob-port"))
    master = f"{job['metadata']['name']}-master-0"
    rank = str(index + 1 if replica_type == "Worker" else 0)
    return {"PYTHONUNBUFFERED": "1", "MASTER_ADDR": master, "PET_MASTER_ADDR": master,
            "MASTER_PORT": port, "PET_MASTER_PORT": port,
            "WORLD_SIZE": str(nodes * (int(nproc) if nproc.isdigit() else 1)),
            "RANK": rank, "PET_NODE_RANK": rank, "PET_NPROC_PER_NODE": nproc,
            "PET_NNODES": str(nodes)}


def test_facts_example_two_nodes_eight_gpus():
    job = job_of(load_manifest(FACTS_MANIFEST))
    master = dict(operator_env(job, "Master", 0))
    worker = dict(operator_env(job, "Worker", 0))
    assert master == expected_env(job, "Master", 0)
    assert worker == expected_env(job, "Worker", 0)
    # §11's table, value by value
    for env in (master, worker):
        assert env["WORLD_SIZE"] == "16" and env["PET_NNODES"] == "2"
        assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == "llm-train-master-0"
        assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == "23456"
        assert env["PET_NPROC_PER_NODE"] == "8"
    assert (master["RANK"], master["PET_NODE_RANK"]) == ("0", "0")
    assert (worker["RANK"], worker["PET_NODE_RANK"]) == ("1", "1")


@pytest.mark.parametrize("nodes,gpus", [(1, 0), (2, 0), (2, 8), (3, 2)])
def test_rendered_job_env(nodes, gpus):
    objects = render_train(CONFIG, "--nodes", str(nodes), "--gpus", str(gpus),
                           "--work-dir-pvc", "shared")
    job = job_of(objects)
    assert set(job["spec"]["pytorchReplicaSpecs"]) == ({"Master", "Worker"} if nodes > 1
                                                       else {"Master"})
    pods = [("Master", 0)] + [("Worker", i) for i in range(nodes - 1)]
    for replica_type, index in pods:
        env = dict(operator_env(job, replica_type, index))
        assert env == expected_env(job, replica_type, index)
        assert env["WORLD_SIZE"] == str(nodes * max(gpus, 1))
        assert env["RANK"] == str(0 if replica_type == "Master" else index + 1)


def test_nproc_words_count_one_process():
    job = job_of(load_manifest(FACTS_MANIFEST))
    job["spec"]["nprocPerNode"] = "auto"
    env = dict(operator_env(job, "Worker", 0))
    assert (env["WORLD_SIZE"], env["PET_NPROC_PER_NODE"]) == ("2", "auto")


def test_without_master_no_rank_variables():
    job = job_of(load_manifest(FACTS_MANIFEST))
    del job["spec"]["pytorchReplicaSpecs"]["Master"]
    env = dict(operator_env(job, "Worker", 0))
    assert set(env) == {"PYTHONUNBUFFERED", "PET_NPROC_PER_NODE", "PET_NNODES"}
    assert env["PET_NNODES"] == "1"


def test_user_env_first_operator_wins_and_refs_expand(emulate):
    objects = load_manifest(FACTS_MANIFEST)
    container = job_of(objects)["spec"]["pytorchReplicaSpecs"]["Worker"]["template"]["spec"][
        "containers"][0]
    container["env"] = [{"name": "RANK", "value": "99"}, {"name": "MY_POD", "valueFrom": {
        "fieldRef": {"fieldPath": "metadata.name"}}}, {"name": "EARLY", "value": "r$(RANK)"}]
    container["args"] = ["--node-rank=$(RANK)", "$$(RANK)", "$(UNDEFINED)"]
    emulator = emulate(objects, host_gpus=16)
    pod = emulator.prepare("llm-train-worker-0")
    names = [name for name, _ in emulator.container_env(pod)]
    assert names[:3] == ["RANK", "MY_POD", "EARLY"]  # the user's entries come first
    assert names.count("RANK") == 2
    local = pod.process  # the local process's view
    assert local.env["RANK"] == "1" and local.env["MY_POD"] == "llm-train-worker-0"
    assert local.env["EARLY"] == "r99"  # a reference sees the entries before it, as in Kubernetes
    assert local.argv[-3:] == ["--node-rank=1", "$(RANK)", "$(UNDEFINED)"]


def test_local_deviations_master_address_and_port(emulate):
    objects = load_manifest(FACTS_MANIFEST)
    job = job_of(objects)
    emulator = emulate(objects, host_gpus=16)
    kept = emulate(objects, host_gpus=16, master_port="manifest")
    for name, (replica_type, index) in {"llm-train-master-0": ("Master", 0),
                                        "llm-train-worker-0": ("Worker", 0)}.items():
        injected = expected_env(job, replica_type, index)
        env = emulator.prepare(name).process.env
        changed = {k for k in injected if env[k] != injected[k]}
        assert changed <= {"MASTER_ADDR", "PET_MASTER_ADDR", "MASTER_PORT", "PET_MASTER_PORT"}
        assert env["MASTER_ADDR"] == env["PET_MASTER_ADDR"] == LOCAL_MASTER_ADDR
        assert env["MASTER_PORT"] == env["PET_MASTER_PORT"] == str(emulator.local_port)
        assert kept.prepare(name).process.env["MASTER_PORT"] == injected["MASTER_PORT"]


def test_gpus_are_split_between_pods(emulate):
    objects = load_manifest(FACTS_MANIFEST)
    emulator = emulate(objects, host_gpus=16)
    master = emulator.prepare("llm-train-master-0").process.env["CUDA_VISIBLE_DEVICES"]
    worker = emulator.prepare("llm-train-worker-0").process.env["CUDA_VISIBLE_DEVICES"]
    assert master.split(",") == [str(i) for i in range(8)]
    assert worker.split(",") == [str(i) for i in range(8, 16)]
    with pytest.raises(EmulatorError, match="requests 16 GPUs"):
        emulate(objects, host_gpus=8)


def test_rendered_mounts_items_and_paths(emulate, tmp_path):
    objects = render_train(CONFIG, "--nodes", "2", "--gpus", "0", "--work-dir-pvc", "shared")
    job = job_of(objects)
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    emulator = emulate(objects)
    name = job["metadata"]["name"]
    master = emulator.prepare(f"{name}-master-0").process  # the local process
    worker = emulator.prepare(f"{name}-worker-0").process
    assert master.env["CUDA_VISIBLE_DEVICES"] == ""  # --gpus 0: no nvidia.com/gpu, no GPU
    container = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]
    mounts = {m["name"]: m["mountPath"] for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in
               job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["volumes"]}

    # every ConfigMap item is a file at mountPath/path holding its key's text
    items = volumes["config"]["configMap"]["items"]
    assert items
    for item in items:
        local = master.local_path(f"{mounts['config']}/{item['path']}")
        with open(local) as f:
            assert f.read() == config_map["data"][item["key"]]
    # ... which rebuilds the config tree: every file equals the repository's
    config_arg = next(a for a in container["command"] if a.startswith(mounts["config"] + "/"))
    for item in items:
        assert (REPO / "configs" / item["path"]).read_text() == config_map["data"][item["key"]]
    assert master.local_path(config_arg) in master.argv

    # the work dir is on the claim for the Master alone (rank 0 reads and writes checkpoints);
    # the Worker's is an emptyDir of its own, as are both pods' /dev/shm
    work_dir = container["command"][container["command"].index("--work-dir") + 1]
    claim = volumes["work-dir"]["persistentVolumeClaim"]["claimName"]
    local_work_dir = tmp_path / "pvc" / claim / work_dir[len(mounts["work-dir"]) + 1:]
    assert str(local_work_dir) in master.argv and str(local_work_dir) not in worker.argv
    worker_work_dir = worker.local_path(work_dir)
    assert worker_work_dir in worker.argv and not worker_work_dir.startswith(str(tmp_path / "pvc"))
    shm = mounts["dshm"]
    assert master.local_path(shm) != worker.local_path(shm)
    # the image's working directory and HOME are the container's own, not this machine's
    assert master.cwd.is_relative_to(master.rootfs) and master.cwd.is_dir()
    assert master.env["HOME"].startswith(str(master.rootfs))


def test_missing_claim_and_bad_configmap_are_refused(emulate, tmp_path):
    objects = render_train(CONFIG, "--nodes", "2", "--gpus", "0", "--work-dir-pvc", "nosuchclaim")
    with pytest.raises(EmulatorError, match="'nosuchclaim' is neither in the manifest"):
        emulate(objects)
    objects = render_train(CONFIG, "--nodes", "2", "--gpus", "0", "--work-dir-pvc", "shared")
    config_map = next(o for o in objects if o["kind"] == "ConfigMap")
    key = next(iter(config_map["data"]))
    config_map["data"]["resnet/x.py"] = config_map["data"].pop(key)
    with pytest.raises(EmulatorError, match="not a valid ConfigMap key"):
        emulate(objects)
