"""One small training job that every launcher runs, that faults interrupt, and whose results are
compared (issue 6: "nothing lost, same answer everywhere").

The job: the digits demo config cut to 2 epochs over 256 training images, 16 images per rank and
step, 2 ranks on CPU (gloo): 8 iterations per epoch, a log line per iteration, no validation. Used
by tests/kctl/test_every_target.py, tests/kctl/faults/, tests/kctl/slurm/test_preemption.py and
bench/fault_report.py. The session fixture ``tiny_reference`` trains it once, uninterrupted, with
``kctl run --gpus 2``: the answer every other launch must reproduce bit for bit.

Same answer needs the same compute threads per rank (a CPU job's floating-point sums depend on
them): one everywhere here. torchrun gives each of several ranks one; ``launch_env`` sets
``OMP_NUM_THREADS=1`` for the single-rank nodes of ``kctl run``; ``kctl slurm-script
--cpus-per-task 1`` and ``kctl train --cpu 1`` (chart: ``cpu: 1``) set it for their ranks.

Nothing here imports torch: checkpoints are compared in a subprocess
(:func:`compare_checkpoints`).
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tests.support.emulator_bridge import EmulatorBridge
from tests.support.local_launch import REPO, WEIGHTS_LINE, Watched, descendants, launch_env
from tests.support.operator_emulator import emulator_for
from tests.support.pod_runner import PodRunner
from tests.support.trainjob_emulator import build_jobset, find_runtime

CONFIG = "configs/resnet/resnet18_1xb64_digits.py"
EPOCHS = 2
RANKS = 2
ITERS_PER_EPOCH = 8  # 256 images / (2 ranks x 16)
TOTAL_ITERS = EPOCHS * ITERS_PER_EPOCH
TRAINER_ARGS = (
    "--no-validate", "--cfg-options", f"train_cfg.max_epochs={EPOCHS}",
    "train_dataloader.dataset.indices=256", "train_dataloader.batch_size=16",
    "optim_wrapper.optimizer.lr=0.02", "default_hooks.logger.interval=1")
#: Seconds any one launch of the job may take (2 cores shared with other work).
TIMEOUT = 600

ITER_LINE = re.compile(r"Epoch\(train\)\s*\[(\d+)\]\[\s*(\d+)/(\d+)\]")
PREEMPTED_LINE = re.compile(r"trainer: preempted at epoch=(\d+) iter=(\d+), saved (\S+)")
RESUMED_LINE = re.compile(r"trainer: resumed from (\S+) at epoch=(\d+) iter=(\d+)")
#: mmengine's own line, the only one before the trainer printed RESUMED_LINE.
MMENGINE_RESUMED_LINE = re.compile(r"resumed epoch: (\d+), iter: (\d+)")


# -- reading logs ---------------------------------------------------------------------------------

def last_iteration(log: str) -> int:
    """The global iteration (1-based, over all epochs) of the last ``Epoch(train)`` line, or 0."""
    found = list(ITER_LINE.finditer(log))
    if not found:
        return 0
    epoch, i, per_epoch = (int(g) for g in found[-1].groups())
    return (epoch - 1) * per_epoch + i


def final_weights(log: str) -> dict[int, str]:
    """``{rank: sha256}`` of the ``final_weights_sha256`` lines."""
    return {int(m[1]): m[2] for m in WEIGHTS_LINE.finditer(log)}


@dataclass(frozen=True)
class Point:
    """A place in training: ``iteration`` iterations done (over all epochs), ``epoch`` epochs
    done; ``path`` the checkpoint that holds it, where the line names one."""

    epoch: int
    iteration: int
    path: str | None = None


def resumed_points(log: str) -> list[Point]:
    """Where each resumed run started: the trainer's ``resumed from`` lines, else mmengine's."""
    points = [Point(int(m[2]), int(m[3]), m[1]) for m in RESUMED_LINE.finditer(log)]
    return points or [Point(int(m[1]), int(m[2])) for m in MMENGINE_RESUMED_LINE.finditer(log)]


def preempted_points(log: str) -> list[Point]:
    """The trainer's ``preempted at ... saved PATH`` lines."""
    return [Point(int(m[1]), int(m[2]), m[3]) for m in PREEMPTED_LINE.finditer(log)]


# -- work dirs and checkpoints -------------------------------------------------------------------

def saved_epochs(work_dir: Path) -> list[int]:
    """N of every ``epoch_N.pth`` in ``work_dir``, sorted."""
    return sorted(int(p.name[6:-4]) for p in Path(work_dir).glob("epoch_*.pth"))


def last_checkpoint(work_dir: Path) -> str | None:
    """The name of the checkpoint ``last_checkpoint`` points at, or None."""
    try:
        return Path(Path(work_dir, "last_checkpoint").read_text().strip()).name
    except OSError:
        return None


def assert_finished_exactly(work_dir: Path) -> None:
    """Training ran to the configured last epoch and not beyond; the pointer names it."""
    epochs = saved_epochs(work_dir)
    assert epochs and epochs[-1] == EPOCHS, f"checkpoints in {work_dir}: {epochs}"
    assert last_checkpoint(work_dir) == f"epoch_{EPOCHS}.pth"


_COMPARE = r"""
import json, sys, torch
def weights(path):
    return torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
reference = weights(sys.argv[1])
report = {}
for path in sys.argv[2:]:
    other = weights(path)
    keys = sorted(set(reference) | set(other))
    report[path] = [k for k in keys if k not in reference or k not in other
                    or not torch.equal(reference[k], other[k])]
report["tensors"] = len(reference)
print(json.dumps(report))
"""


def compare_checkpoints(reference: Path, *others: Path) -> dict[str, list[str]]:
    """``{str(path): keys that differ}`` between the ``state_dict`` of ``reference`` and of each
    of ``others`` (every tensor compared with ``torch.equal``; a key missing on one side
    differs); ``"tensors"`` holds how many tensors the reference has. Runs in a subprocess."""
    proc = subprocess.run([sys.executable, "-c", _COMPARE, str(reference), *map(str, others)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "CUDA_VISIBLE_DEVICES": "-1"})
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout)


def assert_same_answer(reference: "Reference", log: str, work_dir: Path) -> None:
    """Every rank's final weights and the final checkpoint's tensors equal the reference's."""
    assert final_weights(log) == {rank: reference.sha for rank in range(RANKS)}, (
        f"reference {reference.sha}; {final_weights(log)}")
    report = compare_checkpoints(reference.checkpoint, Path(work_dir) / f"epoch_{EPOCHS}.pth")
    assert report.pop("tensors") > 0
    assert report == {str(Path(work_dir) / f"epoch_{EPOCHS}.pth"): []}


#: A ``sitecustomize`` that keeps a process from reading one folder (see its docstring).
UNREADABLE = REPO / "tests" / "support" / "unreadable"


def unable_to_read(folder: Path, env: dict[str, str]) -> dict[str, str]:
    """``env`` for a process (and its children) that fails if it opens a file under ``folder`` or
    lists a folder there: how a node without shared storage sees another node's work_dir."""
    pythonpath = os.pathsep.join(p for p in (str(UNREADABLE), env.get("PYTHONPATH")) if p)
    return {**env, "PYTHONPATH": pythonpath, "TEST_UNREADABLE": str(folder)}


# -- faults ---------------------------------------------------------------------------------------

def pick_fault(name: str, seed: int | None = None, first: int = ITERS_PER_EPOCH + 1,
               last: int = TOTAL_ITERS - 1) -> tuple[int, int]:
    """(iteration, rank) for a fault in ``name``: ``random.Random`` seeded with ``seed`` (env
    ``KCTL_FAULT_SEED``, default 6) and ``name``; the iteration in ``first..last`` (by default the
    second epoch, so there is an epoch checkpoint to resume from), printed for the test output."""
    if seed is None:
        seed = int(os.environ.get("KCTL_FAULT_SEED", "6"))
    rng = random.Random(f"{seed}-{name}")
    iteration, rank = rng.randint(first, last), rng.randrange(RANKS)
    print(f"fault {name}: seed {seed}: after iteration {iteration} of {TOTAL_ITERS}, rank {rank}")
    return iteration, rank


def wait_for_iteration(read_log, iteration: int, timeout: float = TIMEOUT, poll=None,
                       interval: float = 0.05) -> int:
    """Poll ``read_log()`` every ``interval`` seconds until the log shows ``iteration`` done;
    return the iteration seen. ``poll()`` runs every round (e.g. the emulator's)."""
    deadline = time.monotonic() + timeout
    while True:
        if poll is not None:
            poll()
        seen = last_iteration(read_log())
        if seen >= iteration:
            return seen
        if time.monotonic() > deadline:
            raise AssertionError(f"iteration {iteration} not reached in {timeout}s; log:\n"
                                 f"{read_log()[-3000:]}")
        time.sleep(interval)


def trainer_pids(root: int) -> list[int]:
    """Processes below ``root`` that run ``python -m trainer`` (the ranks, not the ``torchrun -m
    trainer`` that started them)."""
    found = []
    for pid in descendants(root):
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"-m" in argv and argv[argv.index(b"-m") + 1:argv.index(b"-m") + 2] == [b"trainer"]:
            found.append(pid)
    return [pid for pid in found if not set(descendants(pid)) & set(found)]


# -- launching ------------------------------------------------------------------------------------

def kctl_run(work_dir: Path, *flags: str, **env: str) -> Watched:
    """``kctl run CONFIG --gpus 2 --work-dir WORK_DIR FLAGS -- TRAINER_ARGS`` (CPU ranks)."""
    return Watched.kctl("run", CONFIG, "--gpus", "2", "--work-dir", str(work_dir), *flags, "--",
                        *TRAINER_ARGS, env=launch_env(**env))


def train_manifest(name: str, *flags: str) -> list[dict]:
    """``kctl train CONFIG --nodes 2 --gpus 0 --cpu 1 --work-dir-pvc shared --name NAME FLAGS
    --dry-run -- TRAINER_ARGS``: two pods of one CPU rank each."""
    proc = subprocess.run(
        [sys.executable, "-m", "kctl", "train", CONFIG, "--nodes", "2", "--gpus", "0", "--cpu", "1",
         "--work-dir-pvc", "shared", "--name", name, *flags, "--dry-run", "--", *TRAINER_ARGS],
        cwd=REPO, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def helm_manifest(helm: Path, release: str, folder: Path, **values) -> list[dict]:
    """``helm template RELEASE charts/kctl -f VALUES``: the job's config tree, 2 nodes, a
    work-dir claim the chart creates, ``cpu: 1``, the trainer arguments, and ``values``."""
    from kctl.configfiles import collect

    tree = collect(REPO / CONFIG)
    values_file = folder / "values.yaml"
    values_file.write_text(yaml.safe_dump({
        "configName": tree.main,
        "configFiles": {rel: path.read_text() for rel, path in tree.files.items()},
        "nodes": 2, "cpu": 1, "workDirSize": "1Gi", "trainerArgs": list(TRAINER_ARGS),
        **values}))
    home = folder / "helm-home"
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home),
           "HELM_CONFIG_HOME": str(home / "config"), "HELM_CACHE_HOME": str(home / "cache"),
           "HELM_DATA_HOME": str(home / "data"), "KUBECONFIG": str(home / "no-kubeconfig")}
    proc = subprocess.run([str(helm), "template", release, str(REPO / "charts" / "kctl"),
                           "-f", str(values_file)], capture_output=True, text=True, env=env,
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def trainjob_manifest(name: str, *flags: str) -> list[dict]:
    """The tiny job as a TrainJob (Kubeflow Trainer v2.3.0): ``kctl train --kind TrainJob`` with
    the flags of :func:`train_manifest` and ``flags``, 2 nodes of one CPU rank each, against
    ``torch-distributed`` unless ``flags`` name another runtime."""
    return train_manifest(name, "--kind", "TrainJob", *flags)


def job_of(objects: list[dict]) -> dict:
    """The PyTorchJob or TrainJob of a manifest."""
    return next(o for o in objects if o["kind"] in ("PyTorchJob", "TrainJob"))


def pod_spec_of(objects: list[dict]) -> dict:
    """The spec of the job's pods: the PyTorchJob's Master template, or a TrainJob's node pod
    template in the JobSet it becomes."""
    job = job_of(objects)
    if job["kind"] == "PyTorchJob":
        return job["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]
    (node,) = build_jobset(job, find_runtime(job, objects))["spec"]["replicatedJobs"]
    return node["template"]["spec"]["template"]["spec"]


def work_dir_on_claim(objects: list[dict], pvc_root: Path) -> Path:
    """Where the pods' ``--work-dir`` is under the emulator's claim folders."""
    spec = pod_spec_of(objects)
    container = spec["containers"][0]
    command = container["command"] + container.get("args", [])
    work_dir = command[command.index("--work-dir") + 1]
    for mount in container["volumeMounts"]:
        if work_dir.startswith(mount["mountPath"].rstrip("/") + "/"):
            volume = next(v for v in spec["volumes"] if v["name"] == mount["name"])
            claim = volume["persistentVolumeClaim"]["claimName"]
            return pvc_root / claim / work_dir[len(mount["mountPath"]):].lstrip("/")
    raise AssertionError(f"--work-dir {work_dir} is on no volume")


def pods(objects: list[dict]) -> tuple:
    """How the emulator names the pods of ranks 0 and 1 (one rank per pod): the master's and the
    worker's pod (PyTorchJob); nodes 0 and 1 (TrainJob: a node's pod gets a new name when it is
    replaced, and the emulator takes a node index for the node's current pod)."""
    job = job_of(objects)
    if job["kind"] == "TrainJob":
        return 0, 1
    name = job["metadata"]["name"]
    return f"{name}-master-0", f"{name}-worker-0"


@dataclass
class EmulatedJob:
    """The tiny job under its operator emulator (see :func:`emulated_tiny_job`)."""

    emulator: PodRunner
    names: tuple  # how the emulator names the pods of ranks 0 and 1 (see pods())
    work_dir: Path  # the pods' --work-dir, under the claim folder
    seen: int = 0  # the iteration rank 0 had logged when the job was handed over
    bridge: EmulatorBridge | None = None  # publishes the job into a fake API server

    def poll(self) -> str:
        """Poll the emulator (and publish through the bridge); the job's phase."""
        return (self.bridge or self.emulator).poll()

    def wait(self, timeout: float = TIMEOUT) -> str:
        """Run the job to its end (publishing through the bridge); its phase."""
        return (self.bridge or self.emulator).wait(timeout)


@contextlib.contextmanager
def emulated_tiny_job(work: Path, iteration: int, objects: list[dict] | None = None, fake=None,
                      **emulator_options):
    """Run the tiny job's manifest (``objects``; by default ``kctl train``'s PyTorchJob) in its
    operator emulator, its work-dir claim under ``work/pvc``; yield an :class:`EmulatedJob` once
    rank 0 has logged ``iteration`` (the moment a fault is injected). With ``fake`` (a
    :class:`~tests.support.fake_apiserver.FakeKubeAPIServer`), an
    :class:`~tests.support.emulator_bridge.EmulatorBridge` publishes the job there from the
    start. ``emulator_options`` go to the emulator (``restart_delay`` is 1 s)."""
    objects = objects or train_manifest("tiny")
    names = pods(objects)
    pvc_root = work / "pvc"
    (pvc_root / "shared").mkdir(parents=True)
    with emulator_for(objects, work / "emu", pvc_root=pvc_root, restart_delay=1,
                      **emulator_options) as emulator:
        job = EmulatedJob(emulator, names, work_dir_on_claim(objects, pvc_root),
                          bridge=EmulatorBridge(fake, emulator) if fake else None)
        emulator.start()
        job.seen = wait_for_iteration(lambda: emulator.logs(names[0]), iteration, poll=job.poll)
        yield job


def slurm_script(partition: str, work_dir: Path, *flags: str, job_name: str = "tiny",
                 python: str = sys.executable) -> subprocess.CompletedProcess:
    """``kctl slurm-script --gpus 0 --ntasks 2 --cpus-per-task 1 --python PYTHON FLAGS PARTITION
    JOB_NAME CONFIG WORK_DIR TRAINER_ARGS`` from the repository root."""
    argv = [sys.executable, "-m", "kctl", "slurm-script", "--gpus", "0", "--ntasks", "2",
            "--cpus-per-task", "1", "--python", python, *flags, partition, job_name,
            CONFIG, str(work_dir), *TRAINER_ARGS]
    proc = subprocess.run(argv, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return proc


_PRIVATE_PYTHON = """#!/bin/bash
# python for the tasks of a kctl slurm-script job whose nodes share no storage: task N > 0 trains with
# --work-dir WORK_DIR-rankN, an empty folder of its own, and cannot read WORK_DIR (TEST_UNREADABLE).
args=("$@")
if [ "${{SLURM_PROCID:-0}}" != 0 ]; then
  for i in "${{!args[@]}}"; do
    if [ "${{args[i]}}" = --work-dir ]; then
      export TEST_UNREADABLE="${{args[i+1]}}"
      args[i+1]="${{args[i+1]}}-rank$SLURM_PROCID"
    fi
  done
  export PYTHONPATH={unreadable}${{PYTHONPATH:+:$PYTHONPATH}}
fi
exec {python} "${{args[@]}}"
"""


def rank_private_python(folder: Path) -> Path:
    """Write ``folder/python``, the ``--python`` of a ``kctl slurm-script`` job whose task N > 0
    gets ``WORK_DIR-rankN`` as its work_dir and cannot read ``WORK_DIR`` (:func:`unable_to_read`):
    nodes without shared storage, on the one-node test cluster."""
    path = folder / "python"
    path.write_text(_PRIVATE_PYTHON.format(unreadable=UNREADABLE, python=sys.executable))
    path.chmod(0o755)
    return path


# -- the reference --------------------------------------------------------------------------------

@dataclass(frozen=True)
class Reference:
    """The uninterrupted run: its work dir, output, final weights' sha256 and last checkpoint."""

    work_dir: Path
    log: str
    sha: str

    @property
    def checkpoint(self) -> Path:
        return self.work_dir / f"epoch_{EPOCHS}.pth"


def train_reference(work_dir: Path) -> Reference:
    """Train the job with ``kctl run --gpus 2``, uninterrupted; check it ran to the end."""
    run = kctl_run(work_dir)
    code = run.wait(TIMEOUT)
    assert code == 0, run.output[-3000:]
    shas = set(final_weights(run.output).values())
    assert len(final_weights(run.output)) == RANKS and len(shas) == 1, run.output[-3000:]
    assert_finished_exactly(work_dir)
    return Reference(work_dir=work_dir, log=run.output, sha=shas.pop())


@pytest.fixture(scope="session")
def tiny_reference(tmp_path_factory) -> Reference:
    """The job trained once, uninterrupted, by ``kctl run --gpus 2``."""
    return train_reference(tmp_path_factory.mktemp("reference") / "work")
