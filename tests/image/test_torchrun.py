"""image/torchrun.sh, the image's torchrun: it ends with its ranks' status (143 after a SIGTERM,
"checkpoint saved, retry") where PyTorch's own torchrun ends with 1."""

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.trainer_runtime import REPO, trainer_env

RANK = """\
import signal, sys, time
def stop(signum, frame):
    print("rank: SIGTERM, saving", flush=True)
    sys.exit(143)
signal.signal(signal.SIGTERM, stop)
print("rank: started", flush=True)
time.sleep(120)
"""


def _torchrun(tmp_path: Path, body: str) -> subprocess.Popen:
    (tmp_path / "rank.py").write_text(body)
    env = trainer_env()  # `python` is this interpreter, as the image's is the one with torch
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return subprocess.Popen(["sh", str(REPO / "image" / "torchrun.sh"), "--nproc-per-node", "1",
                             "--standalone", str(tmp_path / "rank.py")],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_sigterm_ends_it_with_its_ranks_143(tmp_path):
    proc = _torchrun(tmp_path, RANK)
    lines = []
    for line in proc.stdout:  # wait for the rank to run
        lines.append(line)
        if "rank: started" in line:
            break
    proc.send_signal(signal.SIGTERM)
    output = "".join(lines) + proc.stdout.read()
    assert proc.wait(timeout=60) == 143, output
    assert "rank: SIGTERM, saving" in output
    assert "Traceback" not in output


@pytest.mark.parametrize("body, code", [("pass\n", 0), ("import sys; sys.exit(2)\n", 2)])
def test_otherwise_it_ends_with_the_ranks_status(tmp_path, body, code):
    proc = _torchrun(tmp_path, body)
    output = proc.communicate(timeout=120)[0]
    assert proc.returncode == code, output
