"""Handing a checkpoint from rank 0 to rank 1: ``trainer.handover.hand_over`` (the structure pickled, each
tensor broadcast as itself) against mmengine's ``broadcast_object_list`` of the whole checkpoint.

Each method runs in a fresh pair of processes (gloo on CPU, one machine), alternating, ``--repeat`` times.
Rank 0 builds a checkpoint-like dict (``--tensors`` float32 tensors, ``--mib`` MiB in all, as a
``state_dict``, an optimizer's momentum buffers and a little metadata) and hands it over; each rank
reports the time the handover took and how far its peak resident memory rose during it, in units of the
checkpoint's size; rank 1's rise includes the received checkpoint itself (1x), which a rank that reads
the file holds too. Rank 1 checks that every tensor arrived equal.

Usage (from the repository root)::

    python bench/checkpoint_handover.py                  # 256 MiB in 320 tensors, 3 repeats
    python bench/checkpoint_handover.py --mib 1024 --tensors 1000
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]

RANK = r"""
import json, resource, sys, time
import numpy as np, torch
from mmengine.dist import broadcast_object_list
from trainer.handover import hand_over

method, mib, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def sizes():
    share = torch.rand(count, generator=torch.Generator().manual_seed(1))
    return (share / share.sum() * mib * 2**20 / 4 / 2).long().clamp(min=1)

def build():
    g = torch.Generator().manual_seed(0)
    weights = {f"layer{i}.weight": torch.randn(int(n), generator=g) for i, n in enumerate(sizes())}
    state = {i: dict(momentum_buffer=torch.randn(int(n), generator=g)) for i, n in enumerate(sizes())}
    return dict(state_dict=weights, optimizer=dict(state=state, param_groups=[dict(lr=0.1)]),
                meta=dict(epoch=3, iter=300, history=np.arange(1000.0)), message_hub=dict(log=list(range(1000))))

def peak_mib():
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

torch.distributed.init_process_group("gloo")
rank = torch.distributed.get_rank()
obj = build() if rank == 0 else None
size = int(sizes().sum()) * 2 * 4 / 2**20  # weights and momentum, float32
before = peak_mib()
torch.distributed.barrier()
start = time.perf_counter()
if method == "hand_over":
    got = hand_over(obj, "cpu")
else:
    box = [obj]
    broadcast_object_list(box, src=0)
    got = box[0]
seconds = time.perf_counter() - start
rise = peak_mib() - before
equal = None
if rank == 1:
    want = build()
    equal = all(torch.equal(a, b) for a, b in zip(torch.utils._pytree.tree_leaves(want),
                                                    torch.utils._pytree.tree_leaves(got)) if torch.is_tensor(a))
print(json.dumps(dict(rank=rank, seconds=seconds, rise=rise / size, size=size, equal=equal)))
torch.distributed.destroy_process_group()
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def run(method: str, mib: int, tensors: int) -> list[dict]:
    """One handover with ``method`` in a fresh pair of processes: each rank's report."""
    port = str(free_port())
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "-1", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO),
           "WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    procs = [subprocess.Popen([sys.executable, "-c", RANK, method, str(mib), str(tensors)], cwd=REPO,
                              env={**env, "RANK": str(rank)}, stdout=subprocess.PIPE, text=True)
             for rank in (0, 1)]
    reports = []
    for proc in procs:
        out, _ = proc.communicate(timeout=1800)
        if proc.returncode:
            raise SystemExit(f"{method}: a rank failed with exit {proc.returncode}")
        reports.append(json.loads(out.strip().splitlines()[-1]))
    if not reports[1]["equal"]:
        raise SystemExit(f"{method}: rank 1 received different tensors")
    return reports


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mib", type=int, default=256, help="checkpoint size in MiB")
    parser.add_argument("--tensors", type=int, default=320, help="parameters (each with a momentum buffer)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    methods = ("hand_over", "broadcast_object_list")
    results = {m: [] for m in methods}
    for _ in range(args.repeat):
        for method in methods:
            results[method].append(run(method, args.mib, args.tensors))
    size = results[methods[0]][0][0]["size"]
    print(f"checkpoint: {size:.0f} MiB in {2 * args.tensors} tensors; 2 ranks, gloo, one machine; "
          f"medians of {args.repeat}")
    print(f"{'method':<24}{'seconds':>9}{'rank 0 peak rise':>18}{'rank 1 peak rise':>18}")
    for method in methods:
        runs = results[method]
        seconds = statistics.median(max(r["seconds"] for r in pair) for pair in runs)
        rises = [statistics.median(pair[rank]["rise"] for pair in runs) for rank in (0, 1)]
        print(f"{method:<24}{seconds:>9.2f}{rises[0]:>17.2f}x{rises[1]:>17.2f}x")
    ratio = (statistics.median(max(r["seconds"] for r in pair) for pair in results[methods[1]])
             / statistics.median(max(r["seconds"] for r in pair) for pair in results[methods[0]]))
    print(f"hand_over is {ratio:.1f}x as fast as broadcast_object_list")


if __name__ == "__main__":
    main()
