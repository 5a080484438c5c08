"""Validate the objects of any manifest: the entry points of :mod:`kctl.validate`.

Kinds kctl knows: ``PyTorchJob`` (``kubeflow.org/v1``), ``TrainJob``
(``trainer.kubeflow.org/v1alpha1``), ``ConfigMap`` and ``PersistentVolumeClaim`` (``v1``). Other
kinds are reported as not checked, not as wrong. A ``List`` (what ``kubectl get -o json`` and
``kctl train -o json`` print) is checked item by item.
"""

from __future__ import annotations

import yaml

from kctl.errors import KctlError
from kctl.validate.core import config_map_problems, pvc_problems
from kctl.validate.listmaps import list_problems
from kctl.validate.metadata import metadata_problems
from kctl.validate.pods import pod_problems
from kctl.validate.problems import Problem, join, join_all
from kctl.validate.schema import job_schema, schema_problems
from kctl.validate.trainjob import trainjob_problems
from kctl.validate.webhook import pytorchjob_problems


class ManifestError(KctlError):
    """A manifest that is not YAML (or JSON) Kubernetes could read."""


def _pytorchjob(obj: dict) -> list[Problem]:
    problems = schema_problems("PyTorchJob", obj)
    problems += pytorchjob_problems(obj)
    problems += list_problems(job_schema("PyTorchJob"), obj)
    spec = obj.get("spec")
    replicas = spec.get("pytorchReplicaSpecs") if isinstance(spec, dict) else None
    for replica_type, replica in (replicas.items() if isinstance(replicas, dict) else ()):
        template = replica.get("template") if isinstance(replica, dict) else None
        if isinstance(template, dict):
            where = join_all("spec.pytorchReplicaSpecs", [str(replica_type), "template"])
            problems += metadata_problems(template.get("metadata"), "dns1123-subdomain",
                                          join(where, "metadata"), top_level=False)
            problems += pod_problems(template.get("spec"), join(where, "spec"))
    return problems


#: kind -> (apiVersion, checks, rule for metadata.name; None where the checks cover metadata).
KINDS = {
    "PyTorchJob": ("kubeflow.org/v1", _pytorchjob, "dns1035"),
    "TrainJob": ("trainer.kubeflow.org/v1alpha1", trainjob_problems, None),
    "ConfigMap": ("v1", config_map_problems, "dns1123-subdomain"),
    "PersistentVolumeClaim": ("v1", pvc_problems, "dns1123-subdomain"),
}


def is_known(obj) -> bool:
    """Whether kctl has checks for this object's kind."""
    return isinstance(obj, dict) and obj.get("kind") in KINDS


def describe(obj) -> str:
    """``PyTorchJob/digits``: an object as kubectl names it in messages."""
    if not isinstance(obj, dict):
        return "<not an object>"
    meta = obj.get("metadata") if isinstance(obj.get("metadata"), dict) else {}
    name = meta.get("name") or meta.get("generateName") or "<no name>"
    return f"{obj.get('kind') or '<no kind>'}/{name}"


def validate_object(obj) -> list[Problem]:
    """Every problem kctl finds in one object, sorted by path; ``[]`` when it is fine."""
    if not isinstance(obj, dict):
        return [Problem("", "is not a Kubernetes object (a map with apiVersion, kind and "
                            "metadata)")]
    problems = []
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if not isinstance(api_version, str) or not api_version:
        problems.append(Problem("apiVersion", "required field is missing"))
    if not isinstance(kind, str) or not kind:
        problems.append(Problem("kind", "required field is missing"))
    if kind not in KINDS:
        return problems
    expected, check, name_rule = KINDS[kind]
    if isinstance(api_version, str) and api_version != expected:
        return problems + [Problem("apiVersion", f"must be {expected} for a {kind}, "
                                                 f"got {api_version!r}")]
    problems += check(obj)
    if name_rule:
        problems += metadata_problems(obj.get("metadata"), name_rule)
    return sorted(set(problems))


def check_rendered(objects: list[dict]) -> None:
    """Refuse objects kctl rendered itself if any check fails: a bug in a template must never
    reach a cluster. Raises :class:`~kctl.errors.KctlError` naming the first problem."""
    found = [f"{describe(obj)}: {problem}" for obj in objects for problem in validate_object(obj)]
    if found:
        more = f" (and {len(found) - 1} more)" if len(found) > 1 else ""
        raise KctlError(f"kctl rendered an invalid manifest, which is a bug in kctl; please "
                        f"report it: {found[0]}{more}")


_BaseLoader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


class _Loader(_BaseLoader):
    """Safe YAML, but a key repeated in one map is an error (the API server's strict decoding
    refuses it; plain YAML loaders silently keep the last one)."""

    def construct_mapping(self, node, deep=False):
        seen = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=True)
            if isinstance(key, (str, int, float, bool)) or key is None:
                if key in seen:
                    raise yaml.constructor.ConstructorError(
                        None, None, f"duplicate key {key!r}", key_node.start_mark)
                seen.add(key)
        return super().construct_mapping(node, deep=deep)


def load_documents(text: str) -> list:
    """The objects of a multi-document YAML (or JSON) text, ``List`` s expanded, empty
    documents dropped. Raises :class:`ManifestError` with the line of a syntax error."""
    try:
        documents = [doc for doc in yaml.load_all(text, Loader=_Loader) if doc is not None]
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f"line {mark.line + 1}: " if mark is not None else ""
        what = getattr(err, "problem", None) or str(err)
        raise ManifestError(f"{where}not valid YAML: {what}") from None
    return expand_lists(documents)


def expand_lists(documents: list) -> list:
    """Replace every ``kind: List`` by its items."""
    objects = []
    for doc in documents:
        if isinstance(doc, dict) and doc.get("kind") == "List" and isinstance(doc.get("items"),
                                                                                list):
            objects += doc["items"]
        else:
            objects.append(doc)
    return objects

