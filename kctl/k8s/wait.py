"""Waiting for a job to reach a state: ``kctl wait`` and the end of ``kctl train --follow``.

The job is read every :data:`POLL_SECONDS` (reads survive a flaky API server: see
:mod:`kctl.k8s.cluster`), and its state comes from its backend, so this works for every kind.
"""

from __future__ import annotations

import re
import time

#: Seconds between two looks at the job.
POLL_SECONDS = 2.0

#: What ``--for`` can wait for, and when it can no longer happen.
CONDITIONS = ("succeeded", "failed", "running")

#: Exit statuses: the condition holds; the job ended otherwise (or was deleted); time ran out
#: (``timeout``'s own status).
HOLDS, ENDED_OTHERWISE, TIMED_OUT = 0, 1, 124

_DURATION = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|s|m|h)")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600}


def parse_duration(value: str) -> float:
    """kubectl's ``--timeout`` (a Go duration: ``90s``, ``30m``, ``1h30m``) in seconds.

    Raises:
        ValueError: not such a duration (the message says what is expected).
    """
    text = value.strip()
    parts = _DURATION.findall(text)
    if not text or "".join(number + unit for number, unit in parts) != text:
        raise ValueError(f"not a duration such as 90s, 30m or 1h30m: {value!r}")
    return sum(float(number) * _UNITS[unit] for number, unit in parts)


def describe_end(kind, job: dict) -> str:
    """How an ended job ended, in one line: its outcome and the condition that says why."""
    outcome = kind.outcome(job) or kind.state(job) or "<none>"
    conditions = [c for c in (job.get("status") or {}).get("conditions") or []
                  if c.get("status") == "True"]
    why = conditions[-1] if conditions else {}
    detail = ": ".join(p for p in (why.get("reason"), why.get("message")) if p)
    return f"{outcome}" + (f" ({' '.join(detail.split())})" if detail else "")


def wait_for(cluster, kind, job: dict, condition: str, timeout: float | None,
             clock=time.monotonic, sleep=time.sleep) -> tuple[int, str]:
    """Wait until ``job`` (of ``kind``, a backend) is ``condition``; ``(exit status, line)``.

    Args:
        job: The job as read once (its name, namespace and uid are followed).
        condition: One of :data:`CONDITIONS`.
        timeout: Seconds; ``None`` waits as long as it takes.
    """
    meta = job["metadata"]
    name, namespace = meta["name"], meta["namespace"]
    deadline = None if timeout is None else clock() + timeout
    while True:
        if job is None or job["metadata"].get("uid") != meta.get("uid"):
            return ENDED_OTHERWISE, f"{kind.kind} {name} was deleted"
        state, outcome = kind.state(job), kind.outcome(job)
        if condition == "running" and state == "Running":
            return HOLDS, f"{kind.kind} {name} is Running"
        if outcome is not None:
            if outcome.lower() == condition:
                return HOLDS, f"{kind.kind} {name} {describe_end(kind, job)}"
            return ENDED_OTHERWISE, (f"{kind.kind} {name} ended {describe_end(kind, job)}, "
                                     f"not {condition}")
        if deadline is not None and clock() >= deadline:
            return TIMED_OUT, (f"timed out waiting for {kind.kind} {name} to be {condition} "
                               f"(state: {state or '<none>'})")
        sleep(POLL_SECONDS if deadline is None else max(0.0, min(POLL_SECONDS,
                                                                 deadline - clock())))
        job = kind.get(cluster, name, namespace, missing_ok=True)
