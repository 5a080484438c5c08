# syntax=docker/dockerfile:1
# The kctl trainer image: `python -m trainer` on a CUDA build of PyTorch, started through
# image/entrypoint.py, which picks torchrun (Kubeflow PyTorchJob), Slurm, Open MPI or a single
# process from the environment and always passes --resume.
#
#   docker build -t registry.example.com/team/kctl-trainer:0.1.0 .
#   docker run --rm registry.example.com/team/kctl-trainer:0.1.0      # trains the digits demo
#
# BASE_IMAGE must bring torch TORCH_VERSION (checked below); a base without torch gets exactly
# that version installed. Every other runtime dependency is pinned in constraints.txt, the same
# file and extra the README's install uses.
ARG BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime
FROM ${BASE_IMAGE}

ARG TORCH_VERSION=2.5.1
ARG UID=1000

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

# torch: keep the base image's build (CUDA), but only if it is the version asked for.
RUN if python -c "import torch" 2>/dev/null; then \
        have="$(python -c 'import torch; print(torch.__version__.split("+")[0])')"; \
        if [ "${have}" != "${TORCH_VERSION}" ]; then \
            echo "base image has torch ${have}, but TORCH_VERSION=${TORCH_VERSION}" >&2; exit 1; \
        fi; \
    else \
        pip install --no-cache-dir "torch==${TORCH_VERSION}"; \
    fi \
    && echo "torch==${TORCH_VERSION}" > /tmp/torch-constraint.txt

WORKDIR /opt/kctl
COPY pyproject.toml README.md constraints.txt ./
COPY kctl/ kctl/
COPY trainer/ trainer/
# The README's install line, minus -e: the pinned constraints and the [trainer] extra.
RUN pip install --no-cache-dir -c constraints.txt -c /tmp/torch-constraint.txt '.[trainer]' \
    && python -c "import torch, mmengine, trainer" \
    && rm -rf /opt/kctl/build /opt/kctl/*.egg-info /tmp/torch-constraint.txt

COPY --chmod=0755 image/entrypoint.py /usr/local/bin/kctl-entrypoint

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
