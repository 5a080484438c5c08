"""Pod rules the API server applies only when the operator creates the pods.

A PyTorchJob whose pod template (or a TrainJob whose runtime patch) breaks them is accepted, then
every pod creation fails and the job hangs; kctl reports them up front. Checked (from Kubernetes' ``ValidatePodSpec``): volume
names are DNS-1123 labels, every ``volumeMount`` names a volume of the pod, a configMap volume's
``items`` paths are relative and stay inside the volume, and named ports are valid
IANA service names, unique in the pod.
"""

from __future__ import annotations

import re
from pathlib import PurePosixPath

from kctl.validate.names import dns1123_label_error
from kctl.validate.problems import Problem, join, join_all

_PORT_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")


def pod_problems(pod, path: str, elsewhere: frozenset[str] | None = frozenset()) -> list[Problem]:
    """Findings in one pod spec; wrong types are the schema's.

    Args:
        pod: The pod spec (or a patch of one).
        path: Where it is, for messages.
        elsewhere: Names of volumes the pod gets from somewhere else (a TrainJob's runtime or
            its other patches); ``None`` when that is not known, which turns off the check that
            every ``volumeMount`` names a volume.
    """
    if not isinstance(pod, dict):
        return []
    problems = []
    volumes = pod.get("volumes") if isinstance(pod.get("volumes"), list) else []
    names = set(elsewhere) if elsewhere is not None else None
    for index, volume in enumerate(volumes):
        if not isinstance(volume, dict) or not isinstance(volume.get("name"), str):
            continue
        where = join(join(path, "volumes"), index)
        if names is not None:
            names.add(volume["name"])
        error = dns1123_label_error(volume["name"])
        if error:
            problems.append(Problem(join(where, "name"), f"volume name {error}"))
        problems += _items_problems(volume, where)
    ports: dict[str, str] = {}
    for group in ("initContainers", "containers"):
        containers = pod.get(group) if isinstance(pod.get(group), list) else []
        for index, container in enumerate(containers):
            if isinstance(container, dict):
                problems += _container_problems(container, join(join(path, group), index),
                                                names, ports)
    return problems


def _items_problems(volume: dict, where: str) -> list[Problem]:
    problems = []
    for source in ("configMap", "secret"):
        items = volume.get(source, {}).get("items") if isinstance(volume.get(source),
                                                                  dict) else None
        for index, item in enumerate(items if isinstance(items, list) else []):
            target = item.get("path") if isinstance(item, dict) else None
            if not isinstance(target, str):
                continue
            parts = PurePosixPath(target).parts
            if not target or target.startswith("/") or ".." in parts:
                problems.append(Problem(join_all(where, [source, "items", index, "path"]),
                                        f"must be a relative path without '..', got {target!r}"))
    return problems


def _container_problems(container: dict, where: str, volumes: set[str] | None,
                        ports: dict[str, str]) -> list[Problem]:
    problems = []
    mounts = container.get("volumeMounts")
    for index, mount in enumerate(mounts if isinstance(mounts, list) and volumes is not None
                                  else []):
        name = mount.get("name") if isinstance(mount, dict) else None
        if isinstance(name, str) and name not in volumes:
            problems.append(Problem(join_all(where, ["volumeMounts", index, "name"]),
                                    f"no volume named {name!r} in the pod"))
    declared = container.get("ports")
    for index, port in enumerate(declared if isinstance(declared, list) else []):
        name = port.get("name") if isinstance(port, dict) else None
        if not isinstance(name, str):
            continue
        at = join_all(where, ["ports", index, "name"])
        if len(name) > 15 or not _PORT_NAME.match(name) or not re.search("[a-z]", name) \
                or "--" in name:
            problems.append(Problem(at, f"{name!r} is not a port name (IANA_SVC_NAME: at most "
                                        "15 lowercase letters, digits and '-', with a letter)"))
        elif name in ports:
            problems.append(Problem(at, f"port name {name!r} is already used at {ports[name]}"))
        else:
            ports[name] = at
    return problems
