"""trainer.handover: rank 0's checkpoint-like object arrives on rank 1 whole, over gloo, between two
processes (the resume that uses it end to end: test_resume_private.py)."""

import json
import subprocess
import sys

from tests.support.trainer_runtime import REPO, free_port, trainer_env
from trainer.handover import BUCKET_BYTES, _buckets

RANK = r"""
import collections, json, os, sys
import numpy as np, torch
from trainer import handover
from trainer.errors import TrainerError
from trainer.handover import hand_over

handover.BUCKET_BYTES = 64  # small tensors go in several buckets, a larger one alone

def build():
    g = torch.Generator().manual_seed(7)
    weights = collections.OrderedDict(
        conv=torch.randn(3, 4, generator=g), half=torch.randn(5, generator=g).to(torch.bfloat16),
        mask=torch.rand(6, generator=g) > 0.5, steps=torch.tensor(41), empty=torch.empty(0, 5),
        transposed=torch.randn(4, 3, generator=g).t(), trainable=torch.ones(2, requires_grad=True),
        large=torch.randn(40, generator=g))
    weights["tied"] = weights["conv"]
    weights._metadata = collections.OrderedDict({"": {"version": 2}})
    return dict(state_dict=weights, optimizer=dict(state={0: dict(momentum_buffer=torch.randn(3, 4, generator=g))}),
                meta=dict(epoch=1, iter=6, history=np.arange(5.0)), parameter=torch.nn.Parameter(torch.ones(3)))

torch.distributed.init_process_group("gloo")
rank = torch.distributed.get_rank()
got = hand_over(build() if rank == 0 else None, "cpu")
error = hand_over(TrainerError("rank 0 could not read it") if rank == 0 else None, "cpu")
if rank == 1:
    want, weights = build(), got["state_dict"]
    tensors = {k: v for k, v in weights.items()}
    tensors["momentum_buffer"] = got["optimizer"]["state"][0]["momentum_buffer"]
    tensors["parameter"] = got["parameter"]
    expected = dict(want["state_dict"], momentum_buffer=want["optimizer"]["state"][0]["momentum_buffer"],
                    parameter=want["parameter"])
    print(json.dumps(dict(
        equal={k: bool(torch.equal(v, expected[k])) and v.dtype == expected[k].dtype and v.shape == expected[k].shape
               for k, v in tensors.items()},
        type=type(weights).__name__, metadata=getattr(weights, "_metadata", None),
        tied=weights["tied"] is weights["conv"], requires_grad=weights["trainable"].requires_grad,
        parameter=type(got["parameter"]).__name__, meta=dict(got["meta"], history=got["meta"]["history"].tolist()),
        error=[type(error).__name__, str(error)])))
torch.distributed.destroy_process_group()
"""


def test_rank_1_receives_rank_0s_checkpoint_whole():
    port = str(free_port())
    procs = [subprocess.Popen([sys.executable, "-c", RANK], cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              text=True, env=trainer_env(RANK=str(rank), WORLD_SIZE="2", MASTER_ADDR="127.0.0.1",
                                                         MASTER_PORT=port))
             for rank in (0, 1)]
    outputs = [proc.communicate(timeout=120) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    got = json.loads(outputs[1][0])
    assert got["equal"] == dict.fromkeys(["conv", "half", "mask", "steps", "empty", "transposed", "trainable", "large",
                                          "tied", "momentum_buffer", "parameter"], True)
    assert got["type"] == "OrderedDict" and got["metadata"] == {"": {"version": 2}}  # load_state_dict reads it
    assert got["tied"] and got["requires_grad"] and got["parameter"] == "Parameter"
    assert got["meta"] == {"epoch": 1, "iter": 6, "history": [0.0, 1.0, 2.0, 3.0, 4.0]}
    assert got["error"] == ["TrainerError", "rank 0 could not read it"]


def test_small_tensors_share_broadcasts_and_large_ones_go_alone():
    small, large = BUCKET_BYTES // 4, BUCKET_BYTES
    assert sorted(_buckets([small, 0, small, small, small, small, large, small, 3 * large])) == [
        [0, 2, 3, 4], [5, 7], [6], [8]]
    assert _buckets([0, 0]) == []
