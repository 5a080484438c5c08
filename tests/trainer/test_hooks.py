"""Runtime hooks in isolation (trainer.hooks): per-iteration seeding and the compile-time report."""

from types import SimpleNamespace

import numpy as np
import torch

from trainer.hooks import CompileTimeHook, IterationSeedHook


def test_iteration_seed_seeds_torch_like_manual_seed():
    runner = SimpleNamespace(seed=7, iter=42, rank=0, _randomness_cfg={})
    IterationSeedHook().before_train_iter(runner, 0)
    drawn = torch.rand(4)
    seed = int(np.random.SeedSequence([7, 42]).generate_state(1, np.uint64)[0])
    torch.manual_seed(seed)
    assert torch.equal(drawn, torch.rand(4))


def test_compile_time_report_after_the_first_iterations(capsys):
    hook = CompileTimeHook(iterations=2)
    runner = SimpleNamespace(rank=0)
    for idx in range(4):
        hook.before_train_iter(runner, idx)
        hook.after_train_iter(runner, idx)
    lines = capsys.readouterr().out.splitlines()
    assert len(lines) == 1 and lines[0].startswith("trainer: compile: iterations 1-2 took ")
    assert len(hook.times) == 2 and all(t >= 0 for t in hook.times)
    assert "torch.compile compiled for" in lines[0]  # this torch tells its compile time
