"""kctl doctor against the fake API server: each check passing and failing, with its fix."""

import socket

import pytest

from kctl.k8s import cluster as k8s_cluster

PYTORCHJOB_MISSING = (
    'the PyTorchJob CRD (kubeflow.org/v1) is not installed: install the Kubeflow '
    'training-operator v1.9 (kubectl apply --server-side -k "github.com/kubeflow/'
    'training-operator.git/manifests/overlays/standalone?ref=v1.9.0")')
TRAINJOB_MISSING = (
    'the TrainJob CRD (trainer.kubeflow.org/v1alpha1) is not installed: install Kubeflow '
    'Trainer v2.3 (kubectl apply --server-side -k "github.com/kubeflow/trainer.git/manifests/'
    'overlays/manager?ref=v2.3.0", then its runtimes: .../manifests/overlays/runtimes'
    '?ref=v2.3.0)')
TRAINJOB_OK = ("✓ TrainJob       trainer.kubeflow.org/v1alpha1 served, Trainer v2.3.0, runtimes: "
               "torch-distributed")


def _healthy(fake, trainer="v2.3.0", gpu_nodes=2):
    """A cluster where every check passes: both operators (Trainer ``trainer``), ``gpu_nodes``
    nodes of 8 GPUs and a CPU node, a default class and an NFS one, a LocalQueue, no Pod
    Security label."""
    fake.install_trainer(trainer)
    for i in range(gpu_nodes):
        fake.add_node(f"gpu-{i}", gpus=8)
    fake.add_node("cpu-1")
    fake.add_storage_class("local", default=True)
    fake.add_storage_class("nfs", provisioner="nfs.csi.k8s.io",
                           access_modes=("ReadWriteOnce", "ReadWriteMany"))
    fake.add_local_queue("team-a", cluster_queue="gpus")
    return fake


@pytest.fixture
def healthy(fake_kube):
    return _healthy(fake_kube)


def _line(result, name: str) -> str:
    """The line of check ``name``."""
    (line,) = [line for line in result.out.splitlines() if line[2:].startswith(name + " ")]
    return line


def _doctor(run_kctl, name: str, *args: str) -> tuple[int, str]:
    """``kctl doctor ARGS``: its exit status and the line of check ``name``."""
    result = run_kctl("doctor", *args)
    return result.code, _line(result, name)


def test_a_healthy_cluster_passes_every_check(healthy, run_kctl):
    result = run_kctl("doctor")
    assert (result.code, result.err) == (0, "")
    assert result.out.splitlines() == [
        f'✓ API server     {healthy.url} (context "fake"), Kubernetes v1.30.0',
        "✓ PyTorchJob     kubeflow.org/v1 served",
        TRAINJOB_OK,
        "✓ GPUs           16 nvidia.com/gpu on 2 nodes (8 per node)",
        '✓ Storage        default StorageClass "local" (rancher.io/local-path)',
        '✓ ReadWriteMany  "nfs" (nfs.csi.k8s.io) likely offers it (a guess from the '
        "provisioner); for a multi-node TrainJob pass --storage-class nfs",
        '✓ Kueue          LocalQueues in "default": team-a (ClusterQueue gpus); pass --queue '
        "NAME",
        '✓ Pod Security   namespace "default" has no pod-security.kubernetes.io/enforce label '
        "(the cluster's default applies, privileged unless set)",
        "✓ Permissions    may create pytorchjobs.kubeflow.org, trainjobs.trainer.kubeflow.org, "
        'configmaps, persistentvolumeclaims in "default"']
    assert {r.method for r in healthy.requests} == {"GET", "POST"}  # POST: access reviews only
    assert {r.path for r in healthy.requests if r.method == "POST"} == {
        "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"}


# -- the API server -----------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_an_unreachable_cluster_is_the_only_line(fake_kube, run_kctl, tmp_path, monkeypatch):
    port = _closed_port()
    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "gone", context="gone")
    kubeconfig.write_text(kubeconfig.read_text().replace(fake_kube.url, f"http://127.0.0.1:{port}"))
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig))
    result = run_kctl("doctor")
    assert (result.code, result.err) == (1, "")
    assert result.out == (f"✗ API server     cannot reach the Kubernetes API server "
                          f'http://127.0.0.1:{port} (context "gone"): connection refused (is the '
                          "cluster up, and is it the right context? see: kubectl config "
                          "get-contexts)\n")


def test_rejected_credentials_are_the_only_line(fake_kube, run_kctl, tmp_path, monkeypatch):
    monkeypatch.setenv("KUBECONFIG", str(fake_kube.write_kubeconfig(tmp_path / "old",
                                                                    token="expired")))
    result = run_kctl("doctor")
    assert result.code == 1
    assert result.out == (f"✗ API server     the API server {fake_kube.url} rejected kctl's "
                          "credentials (401 Unauthorized): log in again or refresh the token of "
                          'context "fake"\n')


# -- operators ----------------------------------------------------------------------------------


def test_an_operator_not_installed_is_information_while_another_works(healthy, run_kctl):
    healthy.served.discard("PyTorchJob")
    result = run_kctl("doctor")
    assert result.code == 0
    assert _line(result, "PyTorchJob") == f"- PyTorchJob     {PYTORCHJOB_MISSING}"
    assert _line(result, "TrainJob") == TRAINJOB_OK
    assert _line(result, "Permissions") == (
        "✓ Permissions    may create trainjobs.trainer.kubeflow.org, configmaps, "
        'persistentvolumeclaims in "default"')


def test_no_operator_fails_both_kinds(healthy, run_kctl):
    healthy.served -= {"PyTorchJob", "TrainJob"}
    result = run_kctl("doctor")
    assert result.code == 1
    assert _line(result, "PyTorchJob") == f"✗ PyTorchJob     {PYTORCHJOB_MISSING}"
    assert _line(result, "TrainJob") == f"✗ TrainJob       {TRAINJOB_MISSING}"


@pytest.mark.parametrize("version, release", [
    ("v2.2.1", "Trainer v2.2.1"),
    (None, "Trainer v2.1 or older (no ConfigMap kubeflow-system/kubeflow-trainer-public)")])
def test_a_trainer_older_than_v2_3(fake_kube, run_kctl, version, release):
    _healthy(fake_kube, trainer=version)
    fix = ('kctl renders TrainJobs for Trainer v2.3; install Kubeflow Trainer v2.3 (kubectl apply '
           '--server-side -k "github.com/kubeflow/trainer.git/manifests/overlays/manager'
           '?ref=v2.3.0", then its runtimes: .../manifests/overlays/runtimes?ref=v2.3.0)')
    line = f"TrainJob       trainer.kubeflow.org/v1alpha1 served, {release}: {fix}"
    assert _doctor(run_kctl, "TrainJob") == (0, f"! {line}")  # the PyTorchJob operator works
    fake_kube.served.discard("PyTorchJob")
    assert _doctor(run_kctl, "TrainJob") == (1, f"✗ {line}")


def test_the_default_runtime_missing(fake_kube, run_kctl):
    fake_kube.served = set()
    fake_kube.install_trainer(runtimes=("deepspeed-distributed",))
    result = run_kctl("doctor")
    assert result.code == 1  # TrainJob is the only kind served: no usable kind
    assert _line(result, "TrainJob") == (
        "✗ TrainJob       trainer.kubeflow.org/v1alpha1 served, Trainer v2.3.0, no "
        "ClusterTrainingRuntime \"torch-distributed\" (kctl's default): install the Trainer's "
        "runtimes (manifests/overlays/runtimes, same version), or pass --runtime NAME (here: "
        "deepspeed-distributed)")
    assert _line(result, "PyTorchJob") == f"✗ PyTorchJob     {PYTORCHJOB_MISSING}"


def test_trainer_facts_hidden_by_rbac_warn(healthy, run_kctl):
    healthy.forbid("get", "configmaps")
    healthy.forbid("list", "clustertrainingruntimes")
    assert _doctor(run_kctl, "TrainJob") == (0, (
        "! TrainJob       trainer.kubeflow.org/v1alpha1 served, Trainer version unknown (you may "
        "not read ConfigMap kubeflow-system/kubeflow-trainer-public); runtimes: cannot tell: "
        "you may not list clustertrainingruntimes.trainer.kubeflow.org (RBAC; check: kubectl "
        "auth can-i list clustertrainingruntimes.trainer.kubeflow.org)"))


# -- GPUs ---------------------------------------------------------------------------------------


def test_no_gpu_node_warns(fake_kube, run_kctl):
    _healthy(fake_kube, gpu_nodes=0)
    fake_kube.add_node("gpu-3", gpus=4, ready=False)
    assert _doctor(run_kctl, "GPUs") == (0, (
        "! GPUs           no Ready node offers nvidia.com/gpu (1 GPU node not Ready): GPU jobs "
        "stay Pending; install the NVIDIA device plugin or GPU Operator, or train on CPUs "
        "(--gpus 0)"))


def test_gpus_of_several_sizes_and_nodes_rbac_hides(healthy, run_kctl):
    healthy.add_node("gpu-3", gpus=4)
    healthy.add_node("gpu-4", gpus=8, ready=False)
    assert _line(run_kctl("doctor"), "GPUs") == (
        "✓ GPUs           20 nvidia.com/gpu on 3 nodes (4 to 8 per node); 1 GPU node not Ready")
    healthy.forbid("list", "nodes")
    assert _doctor(run_kctl, "GPUs") == (0, "! GPUs           cannot tell: you may not list nodes "
                                            "(RBAC; check: kubectl auth can-i list nodes)")


# -- storage ------------------------------------------------------------------------------------


def test_no_default_storage_class_fails(fake_kube, run_kctl):
    _healthy(fake_kube)
    fake_kube.add_storage_class("local")  # no longer the default
    assert _doctor(run_kctl, "Storage") == (1, (
        "✗ Storage        no default StorageClass, so the work-dir claim kctl creates would stay "
        "Pending: pass --storage-class CLASS (here: local, nfs) or --work-dir-pvc CLAIM, or ask "
        "a cluster admin to mark a class default"))


def test_no_storage_class_at_all(fake_kube, run_kctl):
    fake_kube.add_node("gpu-1", gpus=8)
    result = run_kctl("doctor")
    assert result.code == 1
    assert _line(result, "Storage") == (
        "✗ Storage        no StorageClass at all, so the work-dir claim kctl creates would stay "
        "Pending: pass --work-dir-pvc CLAIM, or ask a cluster admin for a default StorageClass")
    assert _line(result, "ReadWriteMany") == (
        "! ReadWriteMany  no StorageClass known to offer it (no StorageClass): a multi-node "
        "TrainJob needs it (--storage-class CLASS of a class that offers it, or --work-dir-pvc "
        "CLAIM); PyTorchJobs do not")


def test_no_read_write_many_warns(fake_kube, run_kctl):
    fake_kube.add_storage_class("local", default=True)
    fake_kube.add_storage_class("ebs", provisioner="ebs.csi.aws.com")
    assert _doctor(run_kctl, "ReadWriteMany") == (0, (
        "! ReadWriteMany  no StorageClass known to offer it (a guess from the provisioners: "
        "ebs.csi.aws.com, rancher.io/local-path): a multi-node TrainJob needs it "
        "(--storage-class CLASS of a class that offers it, or --work-dir-pvc CLAIM); "
        "PyTorchJobs do not"))


def test_read_write_many_from_the_default_class(fake_kube, run_kctl):
    fake_kube.add_storage_class("old", default=True)
    fake_kube.add_storage_class("cephfs", provisioner="rook-ceph.cephfs.csi.ceph.com",
                                default=True)
    result = run_kctl("doctor")
    assert _line(result, "Storage") == ('✓ Storage        default StorageClass "cephfs" '
                                        "(rook-ceph.cephfs.csi.ceph.com) (the newest of 2 marked "
                                        "default)")
    assert _line(result, "ReadWriteMany") == (
        '✓ ReadWriteMany  the default StorageClass "cephfs" (rook-ceph.cephfs.csi.ceph.com) '
        "likely offers it (a guess from its provisioner)")


def test_storage_classes_rbac_hides(healthy, run_kctl):
    healthy.forbid("list", "storageclasses")
    result = run_kctl("doctor")
    assert result.code == 0
    hidden = ("cannot tell: you may not list storageclasses.storage.k8s.io (RBAC; check: "
              "kubectl auth can-i list storageclasses.storage.k8s.io)")
    assert _line(result, "Storage") == f"! Storage        {hidden}"
    assert _line(result, "ReadWriteMany") == f"! ReadWriteMany  {hidden}"


# -- Kueue --------------------------------------------------------------------------------------


def test_kueue_absent_or_without_a_queue_here_is_information(healthy, run_kctl):
    healthy.add_namespace("team-b")
    assert _doctor(run_kctl, "Kueue", "-n", "team-b") == (0, (
        '- Kueue          installed, no LocalQueue in namespace "team-b" (--queue needs one; a '
        "cluster admin creates it)"))
    healthy.served.discard("LocalQueue")
    assert _doctor(run_kctl, "Kueue") == (
        0, "- Kueue          not installed (only --queue needs it)")


# -- Pod Security -------------------------------------------------------------------------------


def test_restricted_warns_about_pytorchjob_workers(healthy, run_kctl):
    healthy.add_namespace("team-a", pod_security="restricted")
    assert _doctor(run_kctl, "Pod Security", "-n", "team-a") == (0, (
        '! Pod Security   namespace "team-a" enforces restricted, which rejects the Worker pods '
        "of a multi-node PyTorchJob (the training operator v1 gives them an init container, "
        "init-pytorch, without allowPrivilegeEscalation: false and capabilities.drop: [ALL]): "
        "run one node, --kind TrainJob, or use a namespace at baseline"))
    healthy.served.discard("PyTorchJob")
    assert _doctor(run_kctl, "Pod Security", "-n", "team-a") == (
        0, '✓ Pod Security   namespace "team-a" enforces restricted')


def test_a_namespace_that_does_not_exist_fails(healthy, run_kctl):
    assert _doctor(run_kctl, "Pod Security", "-n", "nowhere") == (
        1, '✗ Pod Security   namespace "nowhere" not found (create it: kubectl create namespace '
           "nowhere)")


def test_the_namespace_rbac_hides(healthy, run_kctl):
    healthy.forbid("get", "namespaces")
    assert _doctor(run_kctl, "Pod Security") == (0, (
        '! Pod Security   cannot tell: you may not get namespace "default" (RBAC; check: '
        "kubectl auth can-i get namespace/default)"))


# -- permissions --------------------------------------------------------------------------------


def test_one_kind_forbidden_warns_while_another_may_be_created(healthy, run_kctl):
    healthy.forbid("create", "pytorchjobs")
    assert _doctor(run_kctl, "Permissions") == (0, (
        "! Permissions    may create trainjobs.trainer.kubeflow.org, configmaps, "
        "persistentvolumeclaims, but may not create pytorchjobs.kubeflow.org in \"default\" "
        "(RBAC): ask a cluster admin for a Role that allows it (see: kubectl auth can-i --list "
        "-n default)"))


@pytest.mark.parametrize("forbidden", [("pytorchjobs", "trainjobs"), ("configmaps",),
                                       ("persistentvolumeclaims",)])
def test_no_kind_configmaps_or_claims_allowed_fails(healthy, run_kctl, forbidden):
    for resource in forbidden:
        healthy.forbid("create", resource)
    result = run_kctl("doctor")
    assert result.code == 1
    denied = ", ".join({"pytorchjobs": "pytorchjobs.kubeflow.org",
                        "trainjobs": "trainjobs.trainer.kubeflow.org"}.get(r, r)
                       for r in forbidden)
    line = _line(result, "Permissions")
    assert line.startswith("✗ Permissions    may create ")
    assert line.endswith(f'but may not create {denied} in "default" (RBAC): ask a cluster admin '
                         "for a Role that allows it (see: kubectl auth can-i --list -n default)")


# -- a failing server, the command line ---------------------------------------------------------


def test_an_error_that_outlives_the_retries_fails_that_check(healthy, run_kctl, monkeypatch):
    monkeypatch.setattr(k8s_cluster, "RETRY_BACKOFF", 0.01)
    healthy.inject(500, path="^/api/v1/nodes", method="GET", times=10)
    result = run_kctl("doctor")
    assert result.code == 1
    gpus = _line(result, "GPUs")
    assert gpus.startswith("✗ GPUs           cannot list nodes ")
    assert gpus.endswith(": Internal error occurred: injected fault (500 InternalError)")
    assert _line(result, "Storage").startswith("✓ Storage ")  # the other checks go on


def test_transient_faults_are_retried(healthy, run_kctl):
    healthy.inject(429, path="^/api/v1/nodes", method="GET", times=2, retry_after=0)
    healthy.inject("reset", path="storageclasses", method="GET", times=1)
    result = run_kctl("doctor")
    assert result.code == 0, result.out
    assert [r.status for r in healthy.requests if r.injected] == [429, 429, "reset"]


def test_help(run_kctl):
    result = run_kctl("doctor", "--help")
    assert result.code == 0
    assert result.out.startswith("usage: kctl doctor [-h] [-n NS] [--context CTX] "
                                 "[--request-timeout SECONDS]\n")
    assert "✗ no job can run until fixed (exit 1)" in result.out
    assert "doctor" in run_kctl("--help").out
