"""Pod rules that would only fail when the operator creates the pods."""

from __future__ import annotations

from kctl.validate.pods import pod_problems

from .conftest import master_pod


def _found(job) -> dict:
    return {p.path: p.message for p in pod_problems(master_pod(job), "pod")}


def test_a_valid_pod_passes(job):
    assert _found(job) == {}


def test_a_mount_must_name_a_volume_of_the_pod(job):
    master_pod(job)["containers"][0]["volumeMounts"][0]["name"] = "configs"
    assert _found(job) == {"pod.containers[0].volumeMounts[0].name":
                           "no volume named 'configs' in the pod"}


def test_volume_names_are_dns1123_labels(job):
    pod = master_pod(job)
    pod["volumes"][1]["name"] = "work_dir"
    pod["containers"][0]["volumeMounts"][1]["name"] = "work_dir"
    assert list(_found(job)) == ["pod.volumes[1].name"]


def test_config_map_items_stay_inside_the_volume(job):
    items = master_pod(job)["volumes"][0]["configMap"]["items"]
    items[0]["path"] = "../escape.py"
    items[1]["path"] = "/abs.py"
    assert set(_found(job)) == {"pod.volumes[0].configMap.items[0].path",
                                "pod.volumes[0].configMap.items[1].path"}


def test_port_names_are_short_and_unique_in_the_pod(job):
    pod = master_pod(job)
    pod["containers"].append({"name": "sidecar", "image": "x",
                              "ports": [{"name": "pytorchjob-port", "containerPort": 1},
                                        {"name": "a-much-too-long-port-name",
                                         "containerPort": 2}]})
    found = _found(job)
    assert found["pod.containers[1].ports[0].name"] == (
        "port name 'pytorchjob-port' is already used at pod.containers[0].ports[0].name")
    assert "IANA_SVC_NAME" in found["pod.containers[1].ports[1].name"]


def test_volumes_from_elsewhere_count_and_unknown_ones_turn_the_mount_check_off(job):
    pod = master_pod(job)
    pod["containers"][0]["volumeMounts"][0]["name"] = "configs"
    assert pod_problems(pod, "pod", elsewhere=frozenset({"configs"})) == []
    assert pod_problems(pod, "pod", elsewhere=None) == []
    assert [p.path for p in pod_problems(pod, "pod")] == ["pod.containers[0].volumeMounts[0].name"]
