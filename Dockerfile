# syntax=docker/dockerfile:1
# The kctl trainer image: `python -m trainer` on a CUDA build of PyTorch, started through
# image/entrypoint.py, which picks torchrun (Kubeflow PyTorchJob), Slurm, Open MPI or a single
# process from the environment and always passes --resume.
#
#   docker build -t registry.example.com/team/kctl-trainer:0.1.0 .
#   docker run --rm registry.example.com/team/kctl-trainer:0.1.0      # trains the digits demo
#
# BASE_IMAGE must bring torch TORCH_VERSION (checked below); a base without torch gets exactly
# that version installed from the package index. A CPU base for machines without a registry or
# a GPU is made by image/build-cpu-base.sh (Debian plus torch's CPU wheel); see docs/image.md.
# Every other runtime dependency is pinned in constraints.txt, the same file the README's install
# uses. Build with `--format docker` under podman/buildah, which otherwise drops SHELL (pipefail).
#
# pip's index and certificates for this build only, never stored in the image: the optional build
# secrets `pip-index-url` (a file holding the index URL) and `pip-ca` (a CA bundle), e.g.
#   --secret id=pip-ca,src=/etc/ssl/certs/ca-certificates.crt --secret id=pip-index-url,src=FILE
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.5.1
# The project's extras to install (comma-separated). `mmpretrain` (MMPretrain's own configs,
# docs/mmpretrain.md) needs the torchvision of the base's torch, which a CUDA base such as
# pytorch/pytorch brings; a CPU base builds with EXTRAS=trainer. With it comes mmcv-lite, without
# its requirements (GUI opencv-python and a second mmengine distribution).
ARG EXTRAS=trainer,mmpretrain
ARG UID=1000

# Caches and config folders of PyTorch, matplotlib and anything else that follows XDG go under
# /tmp, so the trainer runs with a read-only root filesystem (writable: /tmp, /dev/shm, work dir).
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    XDG_CACHE_HOME=/tmp/.cache \
    XDG_CONFIG_HOME=/tmp/.config \
    MPLCONFIGDIR=/tmp/.config/matplotlib

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

WORKDIR /opt/kctl
COPY pyproject.toml README.md constraints.txt ./
COPY kctl/ kctl/
COPY trainer/ trainer/
# torch: keep the base image's build (CUDA), but only if it is the version asked for; install it
# where the base has none. Then the README's install line, minus -e: the pinned constraints and
# the extras. The import check's caches (yapf's grammar) must not stay behind, owned by root.
RUN --mount=type=secret,id=pip-ca --mount=type=secret,id=pip-index-url \
    if [ -s /run/secrets/pip-ca ]; then export PIP_CERT=/run/secrets/pip-ca; fi; \
    if [ -s /run/secrets/pip-index-url ]; then \
        PIP_INDEX_URL="$(cat /run/secrets/pip-index-url)"; export PIP_INDEX_URL; \
    fi; \
    if python -c "import torch" 2>/dev/null; then \
        have="$(python -c 'import torch; print(torch.__version__.split("+")[0])' 2>/dev/null)"; \
        if [ "${have}" != "${TORCH_VERSION}" ]; then \
            echo "Dockerfile: base image has torch ${have}, but TORCH_VERSION=${TORCH_VERSION}" >&2; \
            exit 1; \
        fi; \
    elif ! pip install --no-cache-dir "torch==${TORCH_VERSION}" > /tmp/pip-torch.log 2>&1; then \
        echo "Dockerfile: the base image has no torch and pip could not install" \
             "torch==${TORCH_VERSION} (no network or package index? see docs/image.md):" \
             "$(grep '^ERROR' /tmp/pip-torch.log | tail -n 1)" >&2; \
        exit 1; \
    fi; \
    echo "torch==${TORCH_VERSION}" > /tmp/torch-constraint.txt \
    && pip install --no-cache-dir -c constraints.txt -c /tmp/torch-constraint.txt ".[${EXTRAS}]" \
    && if [[ ",${EXTRAS}," == *,mmpretrain,* ]]; then \
           pip install --no-cache-dir --no-deps -c constraints.txt mmcv-lite \
           && python -c "import torchvision, mmpretrain, mmcv"; \
       fi \
    && python -c "import torch, mmengine, trainer" \
    && rm -rf /opt/kctl/build /opt/kctl/*.egg-info /tmp/torch-constraint.txt /tmp/pip-torch.log \
              "${XDG_CACHE_HOME}" "${XDG_CONFIG_HOME}"

COPY --chmod=0755 image/entrypoint.py /usr/local/bin/kctl-entrypoint
# torchrun that ends with its failing rank's status, 143 when SIGTERM stopped it (PyTorch's ends
# with 1): first on PATH, for the manifests' `torchrun -m trainer ...` and the entrypoint
COPY --chmod=0755 image/torchrun.sh /opt/kctl/bin/torchrun
ENV PATH="/opt/kctl/bin:${PATH}"

# A numeric non-root user, so that Kubernetes' runAsNonRoot can verify it (a base image that
# already has that UID, e.g. ubuntu's 1000, keeps its user).
RUN if ! getent passwd "${UID}" >/dev/null; then \
        useradd --create-home --uid "${UID}" --user-group --shell /bin/bash trainer; \
    fi \
    && mkdir -p /workspace/work_dirs && chown -R "${UID}:${UID}" /workspace
WORKDIR /workspace
COPY --chown=${UID}:${UID} configs/ configs/
USER ${UID}:${UID}

ENTRYPOINT ["kctl-entrypoint"]
CMD ["configs/resnet/resnet18_1xb64_digits.py"]
