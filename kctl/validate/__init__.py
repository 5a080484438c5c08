"""Check Kubernetes manifests before they reach a cluster.

What a cluster with the Kubeflow training operator v1.9 would refuse, found offline:

- PyTorchJob (``kubeflow.org/v1``): the vendored CRD's ``openAPIV3Schema``, closed to unknown
  fields (:mod:`kctl.validate.schema`), the operator's validating webhook rules
  (:mod:`kctl.validate.webhook`) and the ``x-kubernetes-list-type`` uniqueness the API server
  enforces (:mod:`kctl.validate.listmaps`);
- ConfigMap and PersistentVolumeClaim (``v1``): small hand-written schemas
  (:mod:`kctl.validate.core`);
- every kind's ``metadata``: field types, name and label syntax (:mod:`kctl.validate.metadata`);
- pod rules the API server applies only when the pods are created (:mod:`kctl.validate.pods`).

Entry points live in :mod:`kctl.validate.manifest`. ``jsonschema`` is imported on first use.
"""
