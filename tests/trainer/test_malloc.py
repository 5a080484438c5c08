"""glibc's malloc keeps what a training step frees, unless the environment chose otherwise."""

import pytest

from tests.support.trainer_runtime import lines_with, run_trainer, trainer_env, write_config
from trainer.malloc import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, settings

BOTH = {M_MMAP_THRESHOLD: 32 << 20, M_TRIM_THRESHOLD: -1}


@pytest.mark.parametrize("environ, expected", [
    ({}, BOTH),
    ({"MALLOC_TRIM_THRESHOLD_": "131072"}, {M_MMAP_THRESHOLD: 32 << 20}),
    ({"MALLOC_MMAP_THRESHOLD_": "1048576"}, {M_TRIM_THRESHOLD: -1}),
    ({"MALLOC_MMAP_MAX_": "0"}, BOTH),  # a parameter the trainer leaves alone
    ({"GLIBC_TUNABLES": "glibc.malloc.arena_max=2:glibc.malloc.trim_threshold=0"}, {M_MMAP_THRESHOLD: 32 << 20}),
    ({"GLIBC_TUNABLES": "glibc.malloc.mmap_threshold=65536:glibc.malloc.trim_threshold=0"}, {}),
    ({"GLIBC_TUNABLES": "glibc.malloc.trim_threshold_extra=1"}, BOTH),
    ({"LD_PRELOAD": "/usr/lib/x86_64-linux-gnu/libjemalloc.so.2"}, {}),
    ({"LD_PRELOAD": "libtcmalloc_minimal.so.4"}, {}),
    ({"LD_PRELOAD": "/opt/libfaketime.so"}, BOTH),
])
def test_settings_leave_the_users_choices(environ, expected):
    assert settings(environ) == expected


# After a short training run in the same process: a "step" that allocates 64 MiB in 1 MiB blocks and
# frees them, five times. Kept memory is reused without a page fault; given back, every step faults
# all 16,384 pages in again.
PROBE = """\
import resource, sys
from trainer.cli import main
rc = main([sys.argv[1], '--work-dir', sys.argv[2]])
def step():
    blocks = [bytearray(1 << 20) for _ in range(64)]
    del blocks
step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print('probe:', rc, (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) // 5)
"""


@pytest.mark.parametrize("extra, kept", [({}, True), ({"MALLOC_TRIM_THRESHOLD_": "131072"}, False)])
def test_the_trainer_keeps_freed_memory_for_the_next_step(tmp_path, extra, kept):
    config = write_config(tmp_path / "cfg")
    proc = run_trainer("-c", PROBE, config, tmp_path / "wd", module=None, env=trainer_env(**extra))
    assert proc.returncode == 0, proc.stderr[-3000:]
    [line] = lines_with(proc.stdout, "probe:")
    rc, faults = map(int, line.split()[1:])
    assert rc == 0
    if kept:
        assert faults < 100
    else:
        assert faults > 16384 * 0.9
