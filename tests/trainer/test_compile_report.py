"""The compile-time report (trainer.compile_report.CompileTimeHook), in isolation."""

from types import SimpleNamespace

from trainer.compile_report import CompileTimeHook


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
