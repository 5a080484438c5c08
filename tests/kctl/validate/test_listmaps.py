"""Duplicates in x-kubernetes-list-type map/set lists, which plain JSON Schema lets through."""

from __future__ import annotations

import pytest

from kctl.validate.listmaps import list_problems
from kctl.validate.schema import job_schema

from .conftest import master_pod

POD = "spec.pytorchReplicaSpecs.Master.template.spec"


def _found(job) -> dict:
    return {p.path: p.message for p in list_problems(job_schema("PyTorchJob"), job)}


def test_a_valid_job_has_no_duplicates(job):
    assert _found(job) == {}


def _index(items, **match) -> int:
    return next(i for i, item in enumerate(items) if match.items() <= item.items())


def _duplicate_volume(pod):
    pod["volumes"].append({"name": "dshm", "emptyDir": {}})
    first, last = _index(pod["volumes"], name="dshm"), len(pod["volumes"]) - 1
    return (f"{POD}.volumes[{last}]",
            f'duplicate entry: name="dshm" is already at {POD}.volumes[{first}]')


def _duplicate_mount(pod):
    mounts = pod["containers"][0]["volumeMounts"]
    mounts.append({"name": "config", "mountPath": "/dev/shm"})
    first, last = _index(mounts, mountPath="/dev/shm"), len(mounts) - 1
    return (f"{POD}.containers[0].volumeMounts[{last}]",
            f'duplicate entry: mountPath="/dev/shm" is already at '
            f'{POD}.containers[0].volumeMounts[{first}]')


def _duplicate_container(pod):
    pod["containers"].append({"name": "pytorch", "image": "sidecar"})
    return (f"{POD}.containers[1]",
            f'duplicate entry: name="pytorch" is already at {POD}.containers[0]')


def _duplicate_env(pod):
    pod["containers"][0].update(env=[{"name": "A", "value": "1"}, {"name": "A", "value": "2"}])
    return (f"{POD}.containers[0].env[1]",
            f'duplicate entry: name="A" is already at {POD}.containers[0].env[0]')


def _duplicate_port(pod):
    # protocol defaults to TCP (the schema's default), so these two are the same port
    pod["containers"][0]["ports"].append({"containerPort": 23456, "protocol": "TCP"})
    return (f"{POD}.containers[0].ports[1]",
            f'duplicate entry: containerPort=23456, protocol="TCP" is already at '
            f'{POD}.containers[0].ports[0]')


@pytest.mark.parametrize("duplicate", [_duplicate_container, _duplicate_volume, _duplicate_mount,
                                       _duplicate_env, _duplicate_port])
def test_duplicates_are_found_by_their_list_map_keys(job, duplicate):
    """The rendered pod's own entries are the first copies; where they sit is looked up."""
    path, message = duplicate(master_pod(job))
    assert _found(job) == {path: message}


def test_same_port_number_with_another_protocol_is_no_duplicate(job):
    master_pod(job)["containers"][0]["ports"].append({"containerPort": 23456, "protocol": "UDP"})
    assert _found(job) == {}


def test_set_lists_refuse_repeated_values():
    schema = {"type": "object", "properties": {"tags": {"type": "array",
                                                        "x-kubernetes-list-type": "set"}}}
    (problem,) = list_problems(schema, {"tags": ["a", "b", "a"]})
    assert (problem.path, problem.message) == ("tags[2]", 'duplicate value "a" (already at '
                                                          'tags[0])')
