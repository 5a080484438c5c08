"""Check Kubernetes manifests before they reach a cluster.

What a cluster with the Kubeflow training operator v1.9 or Kubeflow Trainer v2.3 would refuse,
found offline:

- PyTorchJob (``kubeflow.org/v1``): the vendored CRD's ``openAPIV3Schema``, closed to unknown
  fields (:mod:`kctl.validate.schema`), the operator's validating webhook rules
  (:mod:`kctl.validate.webhook`) and the ``x-kubernetes-list-type`` uniqueness the API server
  enforces (:mod:`kctl.validate.listmaps`);
- TrainJob (``trainer.kubeflow.org/v1alpha1``): the same for the Trainer's CRD, plus its CEL
  rules (:mod:`kctl.validate.cel`), the Trainer webhook's rules and what nothing on the server
  checks but breaks the job (:mod:`kctl.validate.trainjob`);
- ConfigMap and PersistentVolumeClaim (``v1``): small hand-written schemas
  (:mod:`kctl.validate.core`);
- every kind's ``metadata``: field types, name and label syntax (:mod:`kctl.validate.metadata`);
- pod rules the API server applies only when the pods are created (:mod:`kctl.validate.pods`).

Entry points live in :mod:`kctl.validate.manifest`. ``jsonschema`` is imported on first use,
``celpy`` (cel-python) only to evaluate a CEL rule.
"""
