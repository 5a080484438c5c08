"""Golden manifests of every Kubernetes kind (see tests/kctl/golden/README.md)."""

from __future__ import annotations

import json
import os

import pytest

from kctl.cli import main
from kctl.options import KINDS
from kctl.validate.manifest import load_documents, validate_object
from tests.kctl.backends.kube_views import GOLDEN_CONFIG, REPO

GOLDEN = REPO / "tests/kctl/golden"
CASES = [(kind, case, args) for kind in KINDS
         for case, args in json.loads((GOLDEN / kind.lower() / "cases.json").read_text()).items()]
IDS = [f"{kind}-{case}" for kind, case, _ in CASES]


def _argv(kind: str, args: list[str]) -> list[str]:
    cut = args.index("--") if "--" in args else len(args)
    return ["train", str(GOLDEN_CONFIG), "--kind", kind, *args[:cut], "--dry-run", *args[cut:]]


@pytest.mark.parametrize("kind, case, args", CASES, ids=IDS)
def test_golden_manifest(kind, case, args, capsys):
    assert main(_argv(kind, args)) == 0
    out = capsys.readouterr().out
    golden = GOLDEN / kind.lower() / f"{case}.yaml"
    if os.environ.get("KCTL_UPDATE_GOLDEN") == "1":
        golden.write_text(out)
    assert out == golden.read_text(), f"regenerate with KCTL_UPDATE_GOLDEN=1 (see {GOLDEN})"


@pytest.mark.parametrize("kind, case, args", CASES, ids=IDS)
def test_golden_manifest_passes_schema_and_admission_rules(kind, case, args):
    docs = load_documents((GOLDEN / kind.lower() / f"{case}.yaml").read_text())
    assert [d["kind"] for d in docs][-1] == kind
    for doc in docs:
        assert validate_object(doc) == []
