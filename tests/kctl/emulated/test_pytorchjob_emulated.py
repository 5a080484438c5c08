"""``kctl train``'s PyTorchJob, run as the Kubeflow training operator v1.9 would run it
(:mod:`tests.support.operator_emulator`): two CPU "nodes" train the digits demo to the end, and a
killed worker costs a restart, not the run.

Each test trains for real (torchrun + the trainer on gloo): a few epochs on a subset of the digits.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

from tests.kctl.emulated.conftest import render_train

CONFIG = "configs/resnet/resnet18_1xb64_digits.py"
# Subsets of the digits keep an epoch to a few iterations on 2 shared cores.
TRAIN_SUBSET = "train_dataloader.dataset.indices=384"
VAL_SUBSET = "val_dataloader.dataset.indices=128"
#: Epochs of the jobs whose worker is killed after the first.
EPOCHS = 3


def job_of(objects: list[dict]) -> dict:
    return next(o for o in objects if o["kind"] == "PyTorchJob")


def work_dir_on_claim(job: dict, pvc_root: Path) -> Path:
    """Where the trainer's ``--work-dir`` is on the claim's folder, read from the manifest."""
    spec = job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    container = spec["containers"][0]
    command = container["command"] + container.get("args", [])
    work_dir = command[command.index("--work-dir") + 1]
    for mount in container["volumeMounts"]:
        if work_dir.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            claim = volume["persistentVolumeClaim"]["claimName"]
            return pvc_root / claim / work_dir[len(mount["mountPath"]):].lstrip("/")
    raise AssertionError(f"--work-dir {work_dir} is on no volume")


def start_line(rank: int) -> str:
    return (rf"^trainer: launcher=pytorch rank={rank} local_rank=0 world_size=2 backend=gloo "
            r"device=cpu$")


def final_sha(log: str, rank: int) -> str:
    found = re.findall(rf"^trainer: rank={rank} final_weights_sha256=([0-9a-f]{{64}})$", log, re.M)
    assert len(found) == 1, log[-3000:]
    return found[0]


def saved_epochs(log: str) -> list[int]:
    return [int(n) for n in re.findall(r"Saving checkpoint at (\d+) epochs", log)]


def cpu_ticks(pids: list[int]) -> int:
    """CPU time (user + system, in clock ticks) the processes have used so far."""
    total = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total


def blocked(emulator, name: str, seconds: float = 2.0) -> bool:
    """Whether pod ``name`` used almost no CPU for ``seconds``: waiting in a collective."""
    pids = emulator.processes(name)
    before = cpu_ticks(pids)
    time.sleep(seconds)
    return cpu_ticks(pids) - before < 0.1 * seconds * os.sysconf("SC_CLK_TCK")


def parent(pid: int) -> int:
    return int(Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[1])


def trainers(emulator, name: str) -> list[int]:
    """The training processes of pod ``name``: the children of its ``torchrun`` (which is the
    child of the container's init)."""
    pids = emulator.processes(name)
    if not pids:
        return []
    found = []
    for pid in pids[1:]:
        try:
            if parent(parent(pid)) == pids[0]:
                found.append(pid)
        except OSError:  # exited meanwhile
            pass
    return found


def test_two_cpu_nodes_train_to_completion(emulate, tmp_path):
    objects = render_train(CONFIG, "--nodes", "2", "--gpus", "0", "--work-dir-pvc", "shared",
                           "--", "--cfg-options", "train_cfg.max_epochs=2", TRAIN_SUBSET,
                           VAL_SUBSET)
    job = job_of(objects)
    emulator = emulate(objects)
    master, worker = (f"{job['metadata']['name']}-{kind}-0" for kind in ("master", "worker"))
    emulator.start()
    assert emulator.wait(timeout=900) == "Succeeded", emulator.report()

    assert [emulator.pods[p].restarts for p in (master, worker)] == [0, 0]
    logs = [emulator.logs(master), emulator.logs(worker)]
    for rank, log in enumerate(logs):
        assert re.search(start_line(rank), log, re.M), log[-3000:]
    assert final_sha(logs[0], 0) == final_sha(logs[1], 1)
    assert re.search(r"Epoch\(val\) \[2\]\[\d+/\d+\]\s+accuracy/top1: [\d.]+", logs[0])

    work_dir = work_dir_on_claim(job, tmp_path / "pvc")
    assert sorted(p.name for p in work_dir.glob("epoch_*.pth")) == ["epoch_1.pth", "epoch_2.pth"]
    assert Path((work_dir / "last_checkpoint").read_text().strip()).name == "epoch_2.pth"



def two_nodes_past_epoch_1(emulate, tmp_path):
    """A 2-node CPU job of :data:`EPOCHS` epochs, started and waited for until its first
    checkpoint: ``(emulator, master pod, worker pod, work_dir on the claim)``."""
    objects = render_train(CONFIG, "--nodes", "2", "--gpus", "0", "--work-dir-pvc", "shared",
                           "--", "--no-validate",
                           "--cfg-options", f"train_cfg.max_epochs={EPOCHS}", TRAIN_SUBSET)
    job = job_of(objects)
    emulator = emulate(objects)
    master, worker = (f"{job['metadata']['name']}-{kind}-0" for kind in ("master", "worker"))
    work_dir = work_dir_on_claim(job, tmp_path / "pvc")
    emulator.start()
    emulator.wait_until(lambda: (work_dir / "epoch_1.pth").exists(), timeout=600)
    return emulator, master, worker, work_dir


def test_killed_worker_restarts_and_training_resumes(emulate, tmp_path):
    """A worker's node hangs, then the worker is killed; the kubelet restarts it, the master's
    torchrun fails with its peer and is restarted too, and training resumes from the checkpoint.

    The worker is frozen until the master blocks in its next collective, then killed, so the
    master fails at once. (The race where the worker is back before the old master has exited is
    the next test.)"""
    emulator, master, worker, work_dir = two_nodes_past_epoch_1(emulate, tmp_path)
    emulator.pause(worker)
    emulator.wait_until(lambda: blocked(emulator, master), timeout=300)
    emulator.kill(worker)
    assert emulator.wait(timeout=900) == "Succeeded", emulator.report()

    # the worker was killed (137); the master's torchrun lost its peer and failed: both restarted
    assert emulator.pods[worker].exit_codes[0] == 137
    assert emulator.pods[master].exit_codes[0] != 0
    assert emulator.pods[worker].restarts >= 1 and emulator.pods[master].restarts >= 1
    assert any(c.type == "Restarting" for c in emulator.conditions)

    log = emulator.logs(master)  # the container that finished
    resumed = re.search(r"resumed epoch: (\d+), iter: \d+", log)
    assert resumed, log[-3000:]
    resumed = int(resumed.group(1))
    assert 1 <= resumed < EPOCHS
    assert saved_epochs(log) == list(range(resumed + 1, EPOCHS + 1))  # EPOCHS - resumed trained
    assert sorted(p.name for p in work_dir.glob("epoch_*.pth"))[-1] == f"epoch_{EPOCHS}.pth"
    assert not (work_dir / f"epoch_{EPOCHS + 1}.pth").exists()
    assert Path((work_dir / "last_checkpoint").read_text().strip()).name == f"epoch_{EPOCHS}.pth"
    assert final_sha(log, 0) == final_sha(emulator.logs(worker), 1)


def test_worker_restarted_before_the_old_master_exits_still_meets_the_new_master(emulate,
                                                                                  tmp_path):
    """The race of a slow master: the killed worker is restarted at once, and its new torchrun
    meets the rendezvous store of the old master's torchrun, which is still shutting down; that
    one exits just after, and the worker's trainer joins the new master's store.

    Had the worker's torchrun read its ranks from the old store (torchrun's default exchange),
    the new master's torchrun would wait for that node's ranks for the store's 10-minute timeout
    while the worker's trainer waited for rank 0. The pods set TORCH_ELASTIC_WORKER_IDENTICAL=1,
    so each node computes its ranks and both trainers resume and finish with the same weights.
    (The master's torchrun then waits out its 300 s exit barrier for the worker's torchrun, which
    registered with the old store; the test stops there. If the worker's trainer reached the old
    store too, it fails with it and the worker restarts once more: the same end, later.)"""
    emulator, master, worker, work_dir = two_nodes_past_epoch_1(emulate, tmp_path)
    old_master_trainers = trainers(emulator, master)
    assert len(old_master_trainers) == 1
    os.kill(old_master_trainers[0], signal.SIGSTOP)  # its torchrun and store live on
    emulator.kill(worker)
    # the worker's new torchrun has been through its rendezvous (with the old store) once it
    # has started its trainer
    emulator.wait_until(lambda: trainers(emulator, worker), timeout=120)
    os.kill(old_master_trainers[0], signal.SIGKILL)

    def finished(name: str, rank: int) -> bool:
        return re.search(rf"^trainer: rank={rank} final_weights_sha256=", emulator.logs(name),
                         re.M) is not None

    emulator.wait_until(lambda: finished(master, 0) and finished(worker, 1), timeout=600)
    assert emulator.pods[master].exit_codes[0] == 1  # the old master's torchrun, its rank lost
    assert emulator.pods[worker].exit_codes[0] == 137
    log = emulator.logs(master)
    resumed = re.search(r"resumed epoch: (\d+), iter: \d+", log)
    assert resumed and 1 <= int(resumed.group(1)) < EPOCHS, log[-3000:]
    assert saved_epochs(log)[-1] == EPOCHS
    assert final_sha(log, 0) == final_sha(emulator.logs(worker), 1)
