"""The CLI stays instant: only talking to a cluster imports the kubernetes client."""

import subprocess
import sys

from tests.support.fake_apiserver import REPO_ROOT

HEAVY = ("kubernetes", "torch", "mmengine")


def _imported_after(code: str) -> list[str]:
    script = (f"import sys\n{code}\n"
              f"print(sorted({{m.split('.')[0] for m in sys.modules}} & {set(HEAVY)!r}))")
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=60, check=True)
    return done.stdout.splitlines()[-1]


def test_help_does_not_import_kubernetes():
    code = ("from kctl.cli import main\n"
            "for argv in (['--help'], ['list', '--help'], ['status', '--help'], "
            "['logs', '--help'], ['delete', '--help'], ['doctor', '--help']):\n"
            "    try:\n        main(argv)\n    except SystemExit:\n        pass")
    assert _imported_after(code) == "[]"


def test_k8s_modules_import_kubernetes_only_when_called():
    code = ("import kctl.k8s.apply, kctl.k8s.cluster, kctl.k8s.doctor, kctl.k8s.logs, "
            "kctl.k8s.status")
    assert _imported_after(code) == "[]"
    assert _imported_after(code + "\nimport kubernetes") == "['kubernetes']"  # the check works
