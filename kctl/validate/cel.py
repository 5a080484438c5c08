"""The CRDs' CEL rules (``x-kubernetes-validations``), evaluated as the API server does on create.

The API server evaluates each rule with ``self`` bound to the value at the rule's place in the
object (at the root: the whole object, ``metadata.name`` included) and refuses the object with the
rule's ``message`` when a rule is false or cannot be evaluated. A rule that mentions ``oldSelf``
is a transition rule (``self == oldSelf``: the field is immutable): the server evaluates it only
on an update, against the stored object, so it is never checked here; kctl creates objects and
never updates them.

Rules are evaluated with cel-python (``celpy``), whose ``matches()`` uses RE2 as Kubernetes does.
It is imported only when an object has a rule to evaluate, never while rendering: importing it
and building its parser costs about 0.2 s of CPU. Kubernetes' CEL extension functions
(``quantity()``, ``url()``, ...) are not available; no rule of the vendored CRDs uses them, and a
rule that cannot be compiled or evaluated is reported, not skipped.
"""

from __future__ import annotations

import functools
import json

from kctl.validate.problems import Problem
from kctl.validate.schema import along

RULES = "x-kubernetes-validations"


def cel_problems(schema: dict, instance) -> list[Problem]:
    """The failed CEL rules of ``schema`` (a CRD's ``openAPIV3Schema``) on object ``instance``.

    Each problem is at the path of the value the rule is on; ``""`` for rules on the object.
    """
    problems = []
    for node, value, path in along(schema, instance):
        rules = [r for r in node.get(RULES, ()) if "oldSelf" not in r.get("rule", "")]
        if not rules or (path == "" and not _named(value)):
            continue  # the object's own rules read metadata.name: its absence is reported elsewhere
        for rule in rules:
            failed = _failure(rule, value)
            if failed:
                problems.append(Problem(path, failed))
    return problems


def _named(obj) -> bool:
    meta = obj.get("metadata") if isinstance(obj, dict) else None
    return isinstance(meta, dict) and isinstance(meta.get("name"), str)


def _failure(rule: dict, value) -> str | None:
    """Why ``value`` fails ``rule`` (its message, as the API server says it), or ``None``."""
    import celpy

    message = rule.get("message") or f"failed rule: {rule['rule']}"
    try:
        # A JSON round trip: YAML timestamps and such become strings, as on the wire.
        result = _program(rule["rule"]).evaluate(
            {"self": celpy.json_to_cel(json.loads(json.dumps(value, default=str)))})
    except Exception as err:  # noqa: BLE001 - celpy raises parse and evaluation errors alike
        return f"{message} (the rule {rule['rule']!r} cannot be evaluated: {_reason(err)})"
    return None if isinstance(result, celpy.celtypes.BoolType) and bool(result) else message


def _reason(err: Exception) -> str:
    first = err.args[0] if err.args else err
    return str(first).strip().splitlines()[0]


@functools.lru_cache(maxsize=None)
def _environment():
    import celpy

    return celpy.Environment()


@functools.lru_cache(maxsize=None)
def _program(rule: str):
    env = _environment()
    return env.program(env.compile(rule))
